import { Accounts, type EntryInput } from './ledger.js'
import type { Currency } from './money.js'

/**
 * How a PSA invoice change becomes ledger entries. The ledger books, per
 * invoice, what was billed and what the PSA says was paid outside Settle;
 * each sync posts only the difference between what is booked and what the
 * PSA now says, so replays and re-syncs post nothing and a customer's
 * receivable always equals the open balances the PSA shows.
 */
export type InvoiceStatus = 'open' | 'partially_paid' | 'paid' | 'voided' | 'disputed' | 'in_collections'

export interface BookedInvoice {
  ledgerBilled: number
  ledgerPaidElsewhere: number
  /** Applied by Settle's own collections; the PSA learns of it through push-back. */
  paidViaSettle: number
  status: InvoiceStatus
}

export interface PsaInvoiceState {
  system: string
  externalId: string
  number: string
  customerId: string
  currency: Currency
  total: number
  psaBalance: number
  voided: boolean
  /** The PSA's change stamp: part of every key, so the same change replays to the same entries. */
  psaUpdatedAt: Date
  /** When the invoice was issued: the billing entry's effective date. */
  issuedAt: Date
}

export interface InvoiceSyncPlan {
  entries: EntryInput[]
  ledgerBilled: number
  ledgerPaidElsewhere: number
  status: InvoiceStatus
  /** true when nothing about the money changed. */
  unchanged: boolean
}

/** Paid elsewhere lies between zero and what is left after Settle's own collections, on the total's side of zero. */
function paidElsewhereTarget (state: PsaInvoiceState, paidViaSettle: number): number {
  if (state.voided) return 0
  const raw = state.total - state.psaBalance - paidViaSettle
  const ceiling = state.total - paidViaSettle
  if (raw === 0 || Math.sign(raw) !== Math.sign(state.total)) return 0
  return Math.abs(raw) > Math.abs(ceiling) ? ceiling : raw
}

/** An invoice's status from what is still open; Settle's own holds (dispute, collections) survive until it is paid. */
export function invoiceStatus (open: number, total: number, voided: boolean, previous: InvoiceStatus | null): InvoiceStatus {
  if (voided) return 'voided'
  if (open === 0) return 'paid'
  // A dispute or a collections hold is Settle's state, not the PSA's: keep it while money is still owed.
  if (previous === 'disputed' || previous === 'in_collections') return previous
  return open === total ? 'open' : 'partially_paid'
}

export function planInvoiceSync (booked: BookedInvoice | null, state: PsaInvoiceState): InvoiceSyncPlan {
  const paidViaSettle = booked?.paidViaSettle ?? 0
  const billedTarget = state.voided ? 0 : state.total
  const elsewhereTarget = paidElsewhereTarget(state, paidViaSettle)
  const billedDelta = billedTarget - (booked?.ledgerBilled ?? 0)
  const elsewhereDelta = elsewhereTarget - (booked?.ledgerPaidElsewhere ?? 0)
  const stamp = state.psaUpdatedAt.toISOString()
  const ref = `psa:${state.system}:invoice:${state.externalId}`
  const receivable = Accounts.receivable(state.customerId)
  const entries: EntryInput[] = []
  const source = { system: state.system, invoice: state.externalId, number: state.number }
  if (billedDelta !== 0) {
    const kind = (booked === null || (booked.ledgerBilled === 0 && !state.voided)) ? 'invoice.billed' : state.voided ? 'invoice.voided' : 'invoice.adjusted'
    entries.push({
      idempotencyKey: `${ref}:billed:${stamp}:${billedTarget}`,
      kind,
      effectiveAt: kind === 'invoice.billed' ? state.issuedAt : state.psaUpdatedAt,
      memo: kind === 'invoice.billed' ? `Invoice ${state.number}` : kind === 'invoice.voided' ? `Invoice ${state.number} voided in the PSA` : `Invoice ${state.number} total changed in the PSA`,
      postings: [
        { account: receivable, amount: { amount: billedDelta, currency: state.currency } },
        { account: Accounts.billed(), amount: { amount: -billedDelta, currency: state.currency } }
      ],
      source
    })
  }
  if (elsewhereDelta !== 0) {
    entries.push({
      idempotencyKey: `${ref}:elsewhere:${stamp}:${elsewhereTarget}`,
      kind: elsewhereDelta * Math.sign(state.total || 1) > 0 ? 'invoice.paid_elsewhere' : 'invoice.reopened',
      effectiveAt: state.psaUpdatedAt,
      memo: `Invoice ${state.number}: payment recorded in the PSA outside Settle`,
      postings: [
        { account: Accounts.collectedElsewhere(state.system), amount: { amount: elsewhereDelta, currency: state.currency } },
        { account: receivable, amount: { amount: -elsewhereDelta, currency: state.currency } }
      ],
      source
    })
  }
  const open = billedTarget - paidViaSettle - elsewhereTarget
  return {
    entries,
    ledgerBilled: billedTarget,
    ledgerPaidElsewhere: elsewhereTarget,
    status: invoiceStatus(open, billedTarget, state.voided, booked?.status ?? null),
    unchanged: entries.length === 0
  }
}
