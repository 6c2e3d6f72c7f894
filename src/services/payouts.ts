import type { Knex } from 'knex'
import { findEntryByKey, postEntry, reverseEntry } from '../db/ledger.js'
import { toPayout, type Payout, type PayoutItemType, type PayoutRow } from '../db/payouts.js'
import { raiseException } from '../db/reconciliation-exceptions.js'
import { requireTenantId } from '../db/tenants.js'
import { Accounts, type PostedEntry, type PostingInput } from '../domain/ledger.js'
import type { PaymentsPort, PayoutState, PayoutTransaction } from '../ports/payments.js'

/**
 * A processor payout, applied from the processor's current view of it (the
 * events only say "look again"): the payout and the balance transactions it
 * settled are recorded, and once it is paid one entry moves its net from
 * processor pending to the bank, with the QuickBooks deposit queued in the
 * same statement. Fees are booked per charge when it succeeds; a fee that
 * was not known then (or differs) is booked here from the balance
 * transactions (`payout:{po}:fees`, same transaction), so processor pending
 * ends at exactly what is still at the processor. A failure after paid reverses the bank entry. Running it again,
 * for any event in any order, changes nothing.
 */
const PROCESSOR = 'stripe'

export interface PayoutResult {
  payout: Payout
  /** The bank entry was written by this run. */
  posted: boolean
  /** The bank entry was reversed by this run (a failure after paid). */
  reversed: boolean
  /**
   * Items from our own payments, refunds or disputes that Settle has not
   * booked yet (their event is still on its way): nothing is posted until
   * they are, or the fee and pending arithmetic would be wrong.
   */
  waitingFor: string[]
  /** Charges at the processor that are not Settle's: raised as exceptions for a person. */
  unmatched: string[]
}

/** Stripe's type and reporting category in the words payout_items keeps. */
export function itemTypeOf (t: Pick<PayoutTransaction, 'type' | 'reportingCategory' | 'sourceRef'>): PayoutItemType {
  if (t.type === 'charge') return 'charge'
  if (t.type === 'payment') return 'payment'
  if (t.type === 'refund' || t.type === 'payment_refund') return 'refund'
  if (t.reportingCategory === 'dispute' || t.reportingCategory === 'dispute_reversal' || (t.sourceRef ?? '').startsWith('dp_')) return 'dispute'
  if (t.type === 'payout_fee' || t.type === 'stripe_fee') return 'payout_fee'
  if (t.type === 'adjustment') return 'adjustment'
  return 'other'
}

interface Mapped {
  txn: PayoutTransaction
  type: PayoutItemType
  attemptId: string | null
  refundId: string | null
  /** The ledger entry that booked this item's gross (and, when known, its fee); null for items Settle never booked. */
  bookedBy: string | null
  /** Money Settle did not move (a dashboard charge or refund): a person says what it was. */
  foreign: boolean
}

const FEES = Accounts.processorFees().code

/** The payout's parts, from the items: amount = gross - fees + refunds. */
function totals (items: readonly Mapped[]): { gross: number, fees: number, refunds: number } {
  let gross = 0
  let fees = 0
  let refunds = 0
  for (const { txn, type } of items) {
    fees += txn.fee.amount
    if (type === 'charge' || type === 'payment') gross += txn.gross.amount
    else refunds += txn.gross.amount
  }
  return { gross, fees, refunds }
}

async function mapItems (db: Knex, tenantId: string, txns: readonly PayoutTransaction[]): Promise<Mapped[]> {
  const intents = [...new Set(txns.map(t => t.paymentIntentRef).filter((r): r is string => r !== null))]
  const attempts = intents.length === 0
    ? []
    : await db('payment_attempts').where({ tenant_id: tenantId }).whereIn('processor_intent_ref', intents).select('id', 'processor_intent_ref', 'status') as Array<{ id: string, processor_intent_ref: string, status: string }>
  const refundRefs = txns.filter(t => (t.sourceRef ?? '').startsWith('re_')).map(t => t.sourceRef as string)
  const refunds = refundRefs.length === 0
    ? []
    : await db('payment_refunds').where({ tenant_id: tenantId }).whereIn('processor_refund_ref', refundRefs).select('id', 'attempt_id', 'processor_refund_ref') as Array<{ id: string, attempt_id: string, processor_refund_ref: string }>
  const attemptOf = new Map(attempts.map(a => [a.processor_intent_ref, a.id]))
  const refundOf = new Map(refunds.map(r => [r.processor_refund_ref, r]))
  return txns.map(txn => {
    const type = itemTypeOf(txn)
    const refund = txn.sourceRef === null ? undefined : refundOf.get(txn.sourceRef)
    const attemptId = refund?.attempt_id ?? (txn.paymentIntentRef === null ? null : attemptOf.get(txn.paymentIntentRef) ?? null)
    // The entry that booked this item's money into processor pending, by the key its service uses.
    const bookedBy = attemptId === null
      ? null
      : type === 'charge' || type === 'payment'
        ? `payment:${attemptId}:succeeded`
        : type === 'refund'
          ? (refund === undefined ? null : `refund:${refund.id}`)
          : type === 'dispute' && txn.sourceRef !== null
            ? `dispute:${txn.sourceRef}:${txn.gross.amount < 0 ? 'withdrawn' : 'won'}`
            : null
    const foreign = ((type === 'charge' || type === 'payment') && attemptId === null) || (type === 'refund' && refund === undefined)
    return { txn, type, attemptId, refundId: refund?.id ?? null, bookedBy, foreign }
  })
}

const feeBooked = (entry: PostedEntry): number => entry.postings.filter(p => p.accountCode === FEES).reduce((sum, p) => sum + p.amount.amount, 0)

/**
 * Applies a payout as the processor now describes it. `payoutRef` is the
 * processor's id (po_…).
 */
export async function applyPayout (db: Knex, tenantId: string, payments: PaymentsPort, payoutRef: string): Promise<PayoutResult> {
  requireTenantId(tenantId)
  const state = await payments.retrievePayout({ payoutId: payoutRef })
  const txns = await payments.listPayoutTransactions({ payoutId: payoutRef })
  const currency = state.amount.currency
  const net = txns.reduce((sum, t) => sum + t.net.amount, 0)
  if (txns.some(t => t.net.currency !== currency) || (txns.length > 0 && net !== state.amount.amount)) {
    // A partial list (or a mixed-currency one) must never be booked: try again later.
    throw new Error(`Payout ${payoutRef}: its balance transactions net ${net} but the payout is ${state.amount.amount} ${currency}; not booked.`)
  }
  const items = await mapItems(db, tenantId, txns)
  return await db.transaction(async trx => await record(trx, tenantId, state, items))
}

/** A payout only moves forward: a read that raced a later event never takes it back (paid after failed, in transit after paid). */
const STAGE: Record<PayoutState['status'], number> = { pending: 0, in_transit: 1, paid: 2, failed: 3, canceled: 3 }

async function record (trx: Knex.Transaction, tenantId: string, read: PayoutState, items: Mapped[]): Promise<PayoutResult> {
  const before = await trx('payouts').where({ tenant_id: tenantId, processor: PROCESSOR, processor_payout_ref: read.id }).forUpdate().first('status', 'failure_code') as { status: PayoutState['status'], failure_code: string | null } | undefined
  const state: PayoutState = before !== undefined && STAGE[before.status] > STAGE[read.status] ? { ...read, status: before.status, failureCode: before.failure_code } : read
  const currency = state.amount.currency
  const parts = totals(items)
  const fields = {
    amount: state.amount.amount,
    currency,
    arrival_date: state.arrivalDate,
    status: state.status,
    gross: parts.gross,
    fees: parts.fees,
    refunds: parts.refunds,
    failure_code: state.failureCode,
    raw: JSON.stringify(state.raw ?? {})
  }
  const [row] = await trx('payouts')
    .insert({ tenant_id: tenantId, processor: PROCESSOR, processor_payout_ref: state.id, ...fields })
    .onConflict(['tenant_id', 'processor', 'processor_payout_ref'])
    .merge({ ...fields, updated_at: trx.fn.now() })
    .returning('*') as PayoutRow[]
  // The row lock from the upsert serialises two events for one payout.
  let payout = toPayout(row as PayoutRow)
  if (items.length > 0) {
    await trx('payout_items').insert(items.map(({ txn, type, attemptId, refundId }) => ({
      tenant_id: tenantId,
      payout_id: payout.id,
      balance_transaction_ref: txn.id,
      type,
      processor_type: txn.type,
      reporting_category: txn.reportingCategory,
      attempt_id: attemptId,
      refund_id: refundId,
      gross: txn.gross.amount,
      fee: txn.fee.amount,
      net: txn.net.amount,
      currency: txn.net.currency,
      source_ref: txn.sourceRef,
      payment_intent_ref: txn.paymentIntentRef,
      occurred_at: txn.created
    }))).onConflict(['payout_id', 'balance_transaction_ref']).merge(['attempt_id', 'refund_id', 'type'])
  }

  const result: PayoutResult = { payout, posted: false, reversed: false, waitingFor: [], unmatched: [] }
  const postedKey = `payout:${state.id}:paid`
  const existing = await findEntryByKey(trx, tenantId, postedKey)

  if (state.status === 'failed' || state.status === 'canceled') {
    if (existing !== null) {
      const reversalKey = `payout:${state.id}:${state.status}`
      if (await findEntryByKey(trx, tenantId, reversalKey) === null) {
        await reverseEntry(trx, tenantId, existing.id, { idempotencyKey: reversalKey, effectiveAt: new Date(), memo: `Payout ${state.id} ${state.status}${state.failureCode === null ? '' : ` (${state.failureCode})`}: the money is back at the processor` })
        result.reversed = true
        // The deposit may already be in QuickBooks: a person undoes it there (nothing does that on its own yet).
        await raiseException(trx, tenantId, {
          kind: 'tieout_difference',
          dedupeKey: `payout-${state.status}:${state.id}`,
          amount: state.amount,
          summary: `Stripe payout ${state.id} ${state.status} after it was paid${state.failureCode === null ? '' : ` (${state.failureCode})`}; the money is back at Stripe.`,
          likelyCause: 'The bank refused the transfer (closed or wrong account, for example).',
          suggestedRepair: 'Delete or void its bank deposit in QuickBooks, fix the bank account in Stripe; the money goes out again in a later payout.',
          details: { payout: state.id, payoutId: payout.id, failureCode: state.failureCode, failureMessage: state.failureMessage }
        })
      }
    }
    return result
  }
  if (state.status !== 'paid' || existing !== null) {
    if (existing !== null && payout.ledgerEntryId === null) payout = await linkEntry(trx, tenantId, payout.id, existing.id)
    return { ...result, payout }
  }

  // Paid and not yet booked: every item of ours must be booked first, so its fee is known to be booked or not.
  let feeDifference = 0
  for (const item of items) {
    if (item.foreign) result.unmatched.push(item.txn.id)
    if (item.bookedBy === null) continue
    const entry = await findEntryByKey(trx, tenantId, item.bookedBy)
    if (entry === null) { result.waitingFor.push(item.txn.id); continue }
    if (item.type === 'charge' || item.type === 'payment' || (item.type === 'dispute' && item.txn.gross.amount < 0)) feeDifference += item.txn.fee.amount - feeBooked(entry)
  }
  if (result.waitingFor.length > 0) return result
  for (const txnId of result.unmatched) {
    const item = items.find(i => i.txn.id === txnId) as Mapped
    await raiseException(trx, tenantId, {
      kind: 'unmatched_payment',
      dedupeKey: `payout-item:${txnId}`,
      amount: item.txn.gross,
      summary: `Payout ${state.id} includes a ${item.type} (${item.txn.sourceRef ?? txnId}) that Settle did not take.`,
      likelyCause: 'Someone charged this client in the Stripe dashboard or another app on the same Stripe account.',
      suggestedRepair: 'Find the invoice it paid and record it there, or dismiss it if it is not an invoice payment.',
      details: { payout: state.id, balanceTransaction: txnId, source: item.txn.sourceRef, paymentIntent: item.txn.paymentIntentRef }
    })
  }
  const amount = state.amount
  const effectiveAt = new Date(`${state.arrivalDate}T00:00:00Z`)
  // Fees are their own entry: a payout that fails later reverses the bank entry, never the fees Stripe really took.
  if (feeDifference !== 0) {
    await postEntry(trx, tenantId, {
      idempotencyKey: `payout:${state.id}:fees`,
      kind: 'payout.fees',
      effectiveAt,
      memo: `Stripe fees in payout ${state.id} that were not known when the payments were booked`,
      postings: [
        { account: Accounts.processorFees(), amount: { amount: feeDifference, currency } },
        { account: Accounts.processorPending(PROCESSOR), amount: { amount: -feeDifference, currency } }
      ],
      source: { processor: PROCESSOR, payout: state.id }
    })
  }
  const postings: PostingInput[] = [
    { account: Accounts.bank('operating'), amount },
    { account: Accounts.processorPending(PROCESSOR), amount: { amount: -amount.amount, currency } }
  ]
  const posted = await postEntry(trx, tenantId, {
    idempotencyKey: postedKey,
    kind: 'payout.paid',
    effectiveAt,
    memo: `Stripe payout ${state.id} to the bank`,
    postings,
    source: { processor: PROCESSOR, payout: state.id, items: items.length }
  }, {
    effects: [{ queue: 'qbo.post-deposit', dedupeKey: `deposit:${payout.id}`, payload: { payoutId: payout.id } }]
  })
  payout = await linkEntry(trx, tenantId, payout.id, posted.entry.id)
  return { ...result, payout, posted: posted.created }
}

async function linkEntry (trx: Knex.Transaction, tenantId: string, payoutId: string, entryId: string): Promise<Payout> {
  const [row] = await trx('payouts').where({ tenant_id: tenantId, id: payoutId }).update({ ledger_entry_id: entryId, updated_at: trx.fn.now() }).returning('*') as PayoutRow[]
  return toPayout(row as PayoutRow)
}
