import type { Knex } from 'knex'
import { AppError } from '../errors.js'
import { audit } from '../db/audit.js'
import { postEntry } from '../db/ledger.js'
import { openBalance } from '../db/invoices.js'
import { closeException, lockOpenException, raiseException, type ExceptionSuggestion } from '../db/reconciliation-exceptions.js'
import { parseBankStatement } from '../domain/bank-statements.js'
import { invoiceStatus, type InvoiceStatus } from '../domain/invoice-sync.js'
import { Accounts, type PostingInput } from '../domain/ledger.js'
import { DEFAULT_MATCHING_CONFIG, matchBatch, type Application, type Candidate, type CustomerView, type OpenInvoiceView, type OutsidePaymentView } from '../domain/matching.js'
import { money, type Currency } from '../domain/money.js'
import { requireTenantId } from '../db/tenants.js'
import { bankAccountFingerprint, payerAliasesByCustomer, rememberPayer } from '../db/payer-aliases.js'

/**
 * Money collected outside Settle (bank lines) matched to invoices. Every
 * application happens in one transaction that locks the payment and invoice
 * rows, re-checks current balances, posts one balanced ledger entry and
 * queues the PSA push in the same statement (outbox).
 *
 * Why applications go into invoices.ledger_paid_elsewhere: the PSA sync books
 * `total - psaBalance - paidViaSettle - ledgerPaidElsewhere` as new money
 * "collected elsewhere". Once our push lowers the PSA balance, that
 * difference would be this very payment again. Recording what we applied
 * (and wrote off) into ledger_paid_elsewhere makes the sync's target equal
 * what is booked, so it posts nothing and the receivable is credited once.
 */

export interface ImportInput { text: string, currency: string, actor: string, source: 'bank_csv' | 'bank_ofx' }
export interface ImportResult { imported: number, duplicates: number, autoApplied: number, exceptions: number }

interface PaymentRow { id: string, tenant_id: string, source: string, amount: number | string, currency: string, received_on: string | Date, memo: string | null, payer: string | null, bank_account: string | null, customer_id: string | null, status: string }
interface InvoiceRow { id: string, customer_id: string, number: string, po_number: string | null, currency: string, due_on: string | Date | null, issued_on: string | Date, voided: boolean, status: InvoiceStatus, psa_system: string, psa_invoice_id: string, ledger_billed: number | string, paid_via_settle: number | string, ledger_paid_elsewhere: number | string }

const day = (v: string | Date | null): string => v === null ? '' : typeof v === 'string' ? v.slice(0, 10) : v.toISOString().slice(0, 10)

export async function importBankStatement (db: Knex, tenantId: string, input: ImportInput): Promise<ImportResult> {
  requireTenantId(tenantId)
  if (input.source !== 'bank_csv' && input.source !== 'bank_ofx') throw new AppError('VALIDATION_FAILED', 'source must be bank_csv or bank_ofx.')
  if (typeof input.text !== 'string' || input.text.trim() === '') throw new AppError('VALIDATION_FAILED', 'The statement is empty.')
  let currency: Currency
  try { currency = money(0, input.currency).currency } catch { throw new AppError('VALIDATION_FAILED', `Unknown currency "${String(input.currency)}".`) }
  // Parse errors throw before anything is stored.
  const parsed = parseBankStatement(input.text, currency)
  const rows = parsed.lines.map(l => ({
    tenant_id: tenantId, source: input.source, source_ref: l.sourceRef, payer: l.payer, amount: l.amount, currency: l.currency,
    received_on: l.receivedOn, memo: [l.memo, l.checkNumber === null ? null : `check ${l.checkNumber}`].filter(s => s !== null).join(' ') || null
  }))
  let imported = 0
  if (rows.length > 0) {
    const inserted = await db('outside_payments').insert(rows).onConflict(['tenant_id', 'source', 'source_ref']).ignore().returning('id') as Array<{ id: string }>
    imported = inserted.length
  }
  await audit(db, tenantId, input.actor, 'reconciliation.statement_imported', null, { source: input.source, lines: rows.length, imported })
  const result = imported > 0 ? await reconcileOutsidePayments(db, tenantId, { actor: input.actor }) : { autoApplied: 0, exceptions: 0 }
  return { imported, duplicates: rows.length - imported, ...result }
}

async function loadIndexInputs (db: Knex, tenantId: string): Promise<{ invoices: OpenInvoiceView[], customers: CustomerView[] }> {
  const rows = await db('invoices').where({ tenant_id: tenantId, voided: false })
    .whereRaw('ledger_billed - paid_via_settle - ledger_paid_elsewhere > 0') as InvoiceRow[]
  const invoices = rows.map(r => ({
    id: r.id, customerId: r.customer_id, number: r.number, poNumber: r.po_number, openBalance: openBalance(r),
    currency: r.currency as Currency, dueOn: day(r.due_on ?? r.issued_on)
  }))
  // Payers a person confirmed earlier are the customer's aliases and bank accounts.
  const remembered = await payerAliasesByCustomer(db, tenantId)
  const customers = (await db('customers').where({ tenant_id: tenantId }).select('id', 'name') as Array<{ id: string, name: string }>)
    .map(c => ({ id: c.id, name: c.name, aliases: remembered.get(c.id)?.names ?? [], bankAccounts: remembered.get(c.id)?.bankAccounts ?? [] }))
  return { invoices, customers }
}

// Remembered bank accounts are fingerprints; the payment's account is compared in the same form.
const toView = (tenantId: string) => (p: PaymentRow): OutsidePaymentView => ({
  id: p.id, amount: money(Number(p.amount), p.currency), receivedOn: day(p.received_on), memo: p.memo, payer: p.payer, bankAccount: bankAccountFingerprint(tenantId, p.bank_account), customerId: p.customer_id
})

const SOURCE_LABEL: Record<string, string> = { quickbooks: 'QuickBooks', bank_csv: 'bank statement', bank_ofx: 'bank statement', manual: 'manually entered' }

const suggestionOf = (c: Candidate, rank: number): ExceptionSuggestion => ({
  rank, confidence: c.confidence, invoiceIds: c.applications.map(a => a.invoiceId), amounts: c.applications.map(a => a.amount),
  reasons: c.reasons.map(r => `${r.rule}: ${r.detail}`)
})

export async function reconcileOutsidePayments (db: Knex, tenantId: string, options: { actor?: string } = {}): Promise<{ autoApplied: number, exceptions: number }> {
  requireTenantId(tenantId)
  const payments = await db('outside_payments').where({ tenant_id: tenantId, status: 'unmatched' }).orderBy('received_on').orderBy('id') as PaymentRow[]
  if (payments.length === 0) return { autoApplied: 0, exceptions: 0 }
  const { invoices, customers } = await loadIndexInputs(db, tenantId)
  const byId = new Map(payments.map(p => [p.id, p]))
  let autoApplied = 0
  let exceptions = 0
  for (const { paymentId, decision } of matchBatch(payments.map(toView(tenantId)), invoices, customers, DEFAULT_MATCHING_CONFIG)) {
    const p = byId.get(paymentId) as PaymentRow
    if (decision.kind === 'auto') {
      try {
        await db.transaction(async trx => {
          await applyPayment(trx, tenantId, paymentId, {
            customerId: decision.candidate.customerId, applications: decision.candidate.applications, writeOffs: decision.candidate.writeOffs,
            kind: 'auto', reasons: decision.candidate.reasons.map(r => `${r.rule}: ${r.detail}`), confidence: decision.candidate.confidence,
            actor: options.actor ?? 'system:reconcile'
          })
          // A payment back on the queue after an edit at its source may have a question open from before: answered now.
          const stale = await trx('reconciliation_exceptions').where({ tenant_id: tenantId, dedupe_key: `outside:${paymentId}`, status: 'open' }).first('id') as { id: string } | undefined
          if (stale !== undefined) await closeException(trx, tenantId, stale.id, { status: 'resolved', resolution: 'Applied automatically once the payment, as changed at its source, matched.', actor: options.actor ?? 'system:reconcile' })
        })
        autoApplied++
        continue
      } catch (error) {
        // Balances moved since matching: never force it, hand it to a person.
        if (!(error instanceof AppError)) throw error
        // A concurrent run (a statement upload, a QuickBooks read) applied it first: nothing left to do.
        if (error.code === 'CONFLICT') continue
      }
    }
    const ambiguous = decision.kind === 'ambiguous' || decision.kind === 'auto'
    const amount = money(Number(p.amount), p.currency)
    await db.transaction(async trx => {
      await raiseException(trx, tenantId, {
        kind: ambiguous ? 'ambiguous_match' : 'unmatched_payment',
        dedupeKey: `outside:${paymentId}`,
        customerId: decision.suggestions[0]?.customerId ?? p.customer_id,
        amount,
        summary: ambiguous
          ? `A ${SOURCE_LABEL[p.source] ?? p.source} payment received ${day(p.received_on)} fits more than one invoice; pick one.`
          : `A ${SOURCE_LABEL[p.source] ?? p.source} payment received ${day(p.received_on)} matches no open invoice.`,
        likelyCause: ambiguous ? 'Several open invoices have the same amount and the memo names none of them.' : 'No reference, amount or customer in the payment points to an open invoice.',
        suggestedRepair: ambiguous ? 'Accept a suggestion, split it by hand, or dismiss it.' : 'Split it by hand to the invoices it pays, or dismiss it.',
        details: { outsidePaymentId: paymentId, source: p.source, memo: p.memo, payer: p.payer, receivedOn: day(p.received_on) },
        // An auto match refused at apply time (balances moved) still offers its candidate first.
        suggestions: (decision.kind === 'auto' ? [decision.candidate, ...decision.suggestions.filter(c => c !== decision.candidate)] : decision.suggestions).map((c, i) => suggestionOf(c, i + 1))
      })
      await trx('outside_payments').where({ tenant_id: tenantId, id: paymentId, status: 'unmatched' }).update({ status: 'exception' })
    })
    exceptions++
  }
  return { autoApplied, exceptions }
}

interface ApplyInput {
  customerId: string
  applications: readonly Application[]
  writeOffs: readonly Application[]
  kind: 'auto' | 'accepted' | 'manual'
  reasons: string[]
  confidence: number | null
  actor: string
}

/**
 * Applies one outside payment, re-validated against the CURRENT rows (locked):
 * amounts positive, one customer and currency, each ≤ the invoice's open
 * balance, total ≤ what is left of the payment. The rest is customer credit.
 */
async function applyPayment (trx: Knex.Transaction, tenantId: string, paymentId: string, input: ApplyInput): Promise<void> {
  const p = await trx('outside_payments').where({ tenant_id: tenantId, id: paymentId }).forUpdate().first() as PaymentRow | undefined
  if (p === undefined) throw new AppError('VALIDATION_FAILED', `No outside payment ${paymentId}.`)
  if (p.status !== 'unmatched' && p.status !== 'exception') throw new AppError('CONFLICT', `This payment is already ${p.status}; nothing was changed.`)
  const all = [...input.applications, ...input.writeOffs]
  if (input.applications.length === 0) throw new AppError('VALIDATION_FAILED', 'Apply the payment to at least one invoice.')
  for (const a of all) {
    if (!Number.isSafeInteger(a.amount) || a.amount <= 0) throw new AppError('VALIDATION_FAILED', 'Every amount must be a positive whole number of cents.')
  }
  const ids = [...new Set(all.map(a => a.invoiceId))]
  const invoices = await trx('invoices').where({ tenant_id: tenantId }).whereIn('id', ids).orderBy('id').forUpdate() as InvoiceRow[]
  const byId = new Map(invoices.map(i => [i.id, i]))
  const perInvoice = new Map<string, { applied: number, written: number }>()
  for (const a of input.applications) { const v = perInvoice.get(a.invoiceId) ?? { applied: 0, written: 0 }; v.applied += a.amount; perInvoice.set(a.invoiceId, v) }
  for (const w of input.writeOffs) { const v = perInvoice.get(w.invoiceId) ?? { applied: 0, written: 0 }; v.written += w.amount; perInvoice.set(w.invoiceId, v) }
  for (const [id, v] of perInvoice) {
    const inv = byId.get(id)
    if (inv === undefined) throw new AppError('INVOICE_NOT_FOUND', `No invoice ${id}.`)
    if (inv.customer_id !== input.customerId) throw new AppError('VALIDATION_FAILED', `Invoice ${inv.number} belongs to another customer; one payment pays one customer's invoices.`)
    if (inv.currency !== p.currency) throw new AppError('VALIDATION_FAILED', `Invoice ${inv.number} is in ${inv.currency}, the payment in ${p.currency}.`)
    if (inv.voided) throw new AppError('VALIDATION_FAILED', `Invoice ${inv.number} is voided.`)
    const open = openBalance(inv)
    if (v.applied + v.written > open) throw new AppError('VALIDATION_FAILED', `Invoice ${inv.number} has ${open} cents open now; ${v.applied + v.written} would over-apply it.`)
  }
  const applied = input.applications.reduce((s, a) => s + a.amount, 0)
  const written = input.writeOffs.reduce((s, a) => s + a.amount, 0)
  const amount = Number(p.amount)
  if (applied > amount) throw new AppError('VALIDATION_FAILED', `The applications total ${applied} cents; the payment is ${amount}.`)
  const unapplied = amount - applied
  const currency = p.currency as Currency
  const m = (cents: number): ReturnType<typeof money> => money(cents, currency)

  // The database's trigger is the last word on over-application.
  try {
    await trx('payment_applications').insert(input.applications.map(a => ({
      tenant_id: tenantId, outside_payment_id: paymentId, invoice_id: a.invoiceId, amount: a.amount, currency, kind: input.kind,
      reasons: JSON.stringify(input.reasons), confidence: input.confidence, actor: input.actor
    })))
  } catch (error) {
    if ((error as { code?: string }).code === '23514') throw new AppError('VALIDATION_FAILED', `The database refused the application: ${(error as Error).message.replace(/^.* - /, '')}. Nothing was changed.`)
    throw error
  }
  for (const [id, v] of perInvoice) {
    const inv = byId.get(id) as InvoiceRow
    const elsewhere = Number(inv.ledger_paid_elsewhere) + v.applied + v.written
    const open = Number(inv.ledger_billed) - Number(inv.paid_via_settle) - elsewhere
    await trx('invoices').where({ tenant_id: tenantId, id }).update({
      ledger_paid_elsewhere: elsewhere, status: invoiceStatus(open, Number(inv.ledger_billed), inv.voided, inv.status), updated_at: trx.fn.now()
    })
  }
  await trx('outside_payments').where({ tenant_id: tenantId, id: paymentId })
    .update({ status: unapplied > 0 ? 'partially_applied' : 'matched', customer_id: input.customerId })

  const postings: PostingInput[] = [
    { account: Accounts.bank('operating'), amount: m(amount) },
    { account: Accounts.receivable(input.customerId), amount: m(-(applied + written)) }
  ]
  if (written > 0) postings.push({ account: Accounts.writeOff(), amount: m(written) })
  if (unapplied > 0) postings.push({ account: Accounts.customerCredit(input.customerId), amount: m(-unapplied) })
  const method = p.memo !== null && /\bcheck\b|\bchk\b/i.test(p.memo) ? 'check' : /\bwire\b/i.test(p.memo ?? '') ? 'wire' : 'other'
  await postEntry(trx, tenantId, {
    idempotencyKey: `outside:${paymentId}:applied`,
    kind: 'outside_payment.applied',
    effectiveAt: new Date(`${day(p.received_on)}T12:00:00Z`),
    memo: `${p.source} payment applied to ${perInvoice.size} invoice(s)`,
    postings,
    source: { system: p.source, outsidePayment: paymentId }
  }, {
    // The PSA learns of the money (written-off short-pay included, so it closes the invoice the way we did).
    effects: [...perInvoice].map(([id, v]) => {
      const inv = byId.get(id) as InvoiceRow
      const open = openBalance(inv) - v.applied - v.written
      return {
        queue: 'psa.push-payment',
        dedupeKey: `push:outside:${paymentId}:${id}`,
        payload: {
          system: inv.psa_system, invoiceExternalId: inv.psa_invoice_id, amount: v.applied + v.written, currency,
          paidOn: day(p.received_on), reference: perInvoice.size === 1 ? paymentId : `${paymentId}:${inv.number}`, method, settlesInvoice: open <= 0
        }
      }
    })
  })
  await audit(trx, tenantId, input.actor, 'reconciliation.payment_applied', paymentId, {
    kind: input.kind, applications: input.applications, writeOffs: input.writeOffs, unapplied
  })
}

async function paymentOf (trx: Knex.Transaction, tenantId: string, exceptionId: string): Promise<{ paymentId: string, exc: Awaited<ReturnType<typeof lockOpenException>> }> {
  const exc = await lockOpenException(trx, tenantId, exceptionId)
  const paymentId = exc.details.outsidePaymentId
  if (typeof paymentId !== 'string') throw new AppError('VALIDATION_FAILED', 'This exception is not about an outside payment.')
  return { paymentId, exc }
}

async function customerOf (trx: Knex.Transaction, tenantId: string, invoiceIds: readonly string[]): Promise<string> {
  const rows = await trx('invoices').where({ tenant_id: tenantId }).whereIn('id', [...new Set(invoiceIds)]).distinct('customer_id') as Array<{ customer_id: string }>
  if (rows.length === 0) throw new AppError('INVOICE_NOT_FOUND', 'None of those invoices exist.')
  if (rows.length > 1) throw new AppError('VALIDATION_FAILED', 'Those invoices belong to different customers; one payment pays one customer\'s invoices.')
  return (rows[0] as { customer_id: string }).customer_id
}

/**
 * A person tied this payment to this customer: its payer name and bank
 * account are remembered for the customer, so the next payment from them is
 * recognised.
 */
async function rememberPayerOf (trx: Knex.Transaction, tenantId: string, paymentId: string, customerId: string, actor: string): Promise<void> {
  const p = await trx('outside_payments').where({ tenant_id: tenantId, id: paymentId }).first('payer', 'bank_account') as { payer: string | null, bank_account: string | null }
  if (p.payer === null && p.bank_account === null) return
  const c = await trx('customers').where({ tenant_id: tenantId, id: customerId }).first('name') as { name: string }
  await rememberPayer(trx, tenantId, { customerId, customerName: c.name, payer: p.payer, bankAccount: p.bank_account, outsidePaymentId: paymentId, actor })
}

export async function acceptSuggestion (db: Knex, tenantId: string, exceptionId: string, rank: number, actor: string): Promise<void> {
  await db.transaction(async trx => {
    const { paymentId, exc } = await paymentOf(trx, tenantId, exceptionId)
    const s = exc.suggestions.find(x => x.rank === rank)
    if (s === undefined) throw new AppError('VALIDATION_FAILED', `This exception has no suggestion ranked ${rank}.`)
    const applications = s.invoiceIds.map((invoiceId, i) => ({ invoiceId, amount: s.amounts[i] as number }))
    const customerId = await customerOf(trx, tenantId, s.invoiceIds)
    await applyPayment(trx, tenantId, paymentId, {
      customerId, applications, writeOffs: [], kind: 'accepted', reasons: s.reasons, confidence: s.confidence, actor
    })
    await rememberPayerOf(trx, tenantId, paymentId, customerId, actor)
    await closeException(trx, tenantId, exceptionId, { status: 'resolved', resolution: `accepted suggestion ${rank}`, actor })
    await audit(trx, tenantId, actor, 'reconciliation.suggestion_accepted', exceptionId, { rank, paymentId })
  })
}

export async function splitManually (db: Knex, tenantId: string, exceptionId: string, applications: readonly Application[], actor: string): Promise<void> {
  if (!Array.isArray(applications) || applications.length === 0) throw new AppError('VALIDATION_FAILED', 'applications must list at least one {invoiceId, amount}.')
  await db.transaction(async trx => {
    const { paymentId } = await paymentOf(trx, tenantId, exceptionId)
    const customerId = await customerOf(trx, tenantId, applications.map(a => a.invoiceId))
    await applyPayment(trx, tenantId, paymentId, {
      customerId, applications, writeOffs: [], kind: 'manual', reasons: ['manual split'], confidence: null, actor
    })
    await rememberPayerOf(trx, tenantId, paymentId, customerId, actor)
    await closeException(trx, tenantId, exceptionId, { status: 'resolved', resolution: 'split by hand', actor })
    await audit(trx, tenantId, actor, 'reconciliation.split', exceptionId, { paymentId, applications })
  })
}

/** A short-pay: the whole payment goes to the invoice and the difference (within tolerance) is written off. */
export async function writeOff (db: Knex, tenantId: string, exceptionId: string, input: { invoiceId: string, amount: number }, actor: string): Promise<void> {
  const cfg = DEFAULT_MATCHING_CONFIG
  await db.transaction(async trx => {
    const { paymentId } = await paymentOf(trx, tenantId, exceptionId)
    const p = await trx('outside_payments').where({ tenant_id: tenantId, id: paymentId }).first('amount') as { amount: number | string }
    const inv = await trx('invoices').where({ tenant_id: tenantId, id: input.invoiceId }).first() as InvoiceRow | undefined
    if (inv === undefined) throw new AppError('INVOICE_NOT_FOUND', `No invoice ${input.invoiceId}.`)
    const open = openBalance(inv)
    const limit = Math.min(cfg.toleranceCents, Math.floor(open * cfg.toleranceBasisPoints / 10_000))
    if (!Number.isSafeInteger(input.amount) || input.amount <= 0 || input.amount > limit) {
      throw new AppError('VALIDATION_FAILED', `A write-off must be between 1 and ${limit} cents on this invoice (the tenant's tolerance).`)
    }
    if (Number(p.amount) + input.amount !== open) throw new AppError('VALIDATION_FAILED', `Payment ${p.amount} + write-off ${input.amount} must equal the invoice's open ${open} cents.`)
    await applyPayment(trx, tenantId, paymentId, {
      customerId: inv.customer_id, applications: [{ invoiceId: inv.id, amount: Number(p.amount) }], writeOffs: [{ invoiceId: inv.id, amount: input.amount }],
      kind: 'manual', reasons: ['short-pay written off'], confidence: null, actor
    })
    await closeException(trx, tenantId, exceptionId, { status: 'resolved', resolution: `short-pay of ${input.amount} written off`, actor })
    await audit(trx, tenantId, actor, 'reconciliation.written_off', exceptionId, { paymentId, ...input })
  })
}

export async function dismiss (db: Knex, tenantId: string, exceptionId: string, reason: string, actor: string): Promise<void> {
  if (typeof reason !== 'string' || reason.trim() === '') throw new AppError('VALIDATION_FAILED', 'Say why it is dismissed.')
  await db.transaction(async trx => {
    const { paymentId } = await paymentOf(trx, tenantId, exceptionId)
    await trx('outside_payments').where({ tenant_id: tenantId, id: paymentId }).update({ status: 'dismissed' })
    await closeException(trx, tenantId, exceptionId, { status: 'dismissed', resolution: reason.trim(), actor })
    await audit(trx, tenantId, actor, 'reconciliation.dismissed', exceptionId, { paymentId, reason: reason.trim() })
  })
}
