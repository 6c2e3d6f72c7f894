import type { Knex } from 'knex'
import { randomUUID } from 'node:crypto'
import { UpstreamError } from '../adapters/http.js'
import type { AccountingDepositLine, AccountingInvoice, AccountingPort, AccountingSettings, AccountingWrite, DepositPosting, JournalPosting, PaymentPosting } from '../ports/accounting.js'
import {
  ensurePosting, forgetRefusedRequest, getCustomerLinks, getPostingBySource, markNotPosted, markPosted, postingsById, readPostingSettings, saveBatchMembers, saveRequestBody, storeCustomerLink,
  type AccountingPostingRecord, type PostingDocType, type PostingKind
} from '../db/accounting-postings.js'
import { raiseException } from '../db/reconciliation-exceptions.js'
import { allocationsByAttempt, type AttemptAllocation } from '../db/payments.js'
import { capitalised, invoiceLabel } from './charge.js'
import { claimSourceJobs, completeJob, failJob, type Job } from '../db/jobs.js'
import { backoffDelayMs } from '../jobs/backoff.js'
import { getPayout, payoutItems } from '../db/payouts.js'
import { asCurrency, formatMoney, type Currency, type Money } from '../domain/money.js'

/**
 * Posts Settle's collected money into QuickBooks Online, only through the
 * AccountingPort:
 *
 * - A payment is a QBO Payment of the invoice amount (never the surcharge),
 *   into Undeposited Funds, applied to the QBO invoice whose DocNumber is the
 *   PSA number (with the tenant's prefix), at most the invoice's QBO balance;
 *   the rest stays unapplied customer credit and an exception says why.
 * - A payout is one Deposit to the bank grouping those Payments, plus the
 *   card surcharges (positive, to the fees account: they exist to recover
 *   card fees [check: a tenant may want its own income account]), minus the
 *   processor's fees (fees account), plus refund / dispute / adjustment items
 *   signed, against Undeposited Funds (see reversals). Its total equals the
 *   payout's net to the cent or nothing posts.
 * - A reversal (refund, lost dispute) is a JournalEntry: Dr A/R (the
 *   customer) for the invoice share, Dr fees for the surcharge share, Cr
 *   Undeposited Funds for the whole. The payout that carries the refund or
 *   dispute then takes it out of Undeposited Funds with its negative line, so
 *   Undeposited Funds nets to zero, the bank line is the payout, and the QBO
 *   customer balance reopens by what Settle reopened. [check] The QBO
 *   invoice itself stays closed (the JE reopens the customer, not the
 *   invoice); reducing the Payment instead would double count with the
 *   payout's refund line whenever the charge was deposited earlier.
 *
 * Idempotency: one accounting_postings row per source; its id is the
 * requestid and its first request body is kept, so a retry after a crash
 * between QBO's answer and our write resends the same request and QBO
 * replays the first write. A stored external_id short-circuits everything.
 */

export type PostOutcome =
  | { status: 'posted', kind: PostingKind, sourceId: string, externalId: string, amount: Money, replayed: boolean }
  | { status: 'waiting', kind: PostingKind, sourceId: string, reason: string }

/** A posting that cannot be made as the settings stand: the job dies with a posting_failed exception carrying the hint. */
export class PostingBlockedError extends Error {
  override readonly name = 'PostingBlockedError'
  constructor (message: string, readonly fixHint: string) { super(message) }
}

/** Another posting must land first (a deposit's payments): try again later. */
export class PostingNotReadyError extends Error {
  override readonly name = 'PostingNotReadyError'
}

type Op = { kind: 'payment', posting: PaymentPosting } | { kind: 'deposit', posting: DepositPosting } | { kind: 'journal', posting: JournalPosting }

interface Prepared { record: AccountingPostingRecord, op: Op, docType: PostingDocType }

const docTypeOf = (op: Op): PostingDocType => op.kind === 'payment' ? 'Payment' : op.kind === 'deposit' ? 'Deposit' : 'JournalEntry'
const today = (): string => new Date().toISOString().slice(0, 10)

async function settingsFor (db: Knex, tenantId: string): Promise<AccountingSettings> {
  const settings = await readPostingSettings(db, tenantId)
  if (settings === null) throw new PostingBlockedError('QuickBooks is not connected for this tenant.', 'Connect QuickBooks under Settings → Accounting, then retry the posting.')
  return settings
}

function need (value: string | null, what: string): string {
  if (value === null || value === '') throw new PostingBlockedError(`No ${what} is set for QuickBooks postings.`, `Choose the ${what} under Settings → Accounting, then retry.`)
  return value
}

// ---- customer mapping ----

const norm = (s: string | null | undefined): string => (s ?? '').trim().toLowerCase().replace(/\s+/g, ' ')

/** Dice coefficient on letter pairs: cheap, order-insensitive enough for "Acme Inc" vs "ACME, Inc.". */
function similarity (a: string, b: string): number {
  const pairs = (s: string): string[] => { const t = norm(s).replace(/[^a-z0-9 ]/g, ''); const out: string[] = []; for (let i = 0; i < t.length - 1; i++) out.push(t.slice(i, i + 2)); return out }
  const x = pairs(a); const y = pairs(b)
  if (x.length === 0 || y.length === 0) return 0
  const pool = [...y]; let hits = 0
  for (const p of x) { const i = pool.indexOf(p); if (i >= 0) { hits++; pool.splice(i, 1) } }
  return (2 * hits) / (x.length + y.length)
}

/**
 * QBO customer ids for PSA companies: a stored link first, then an exact
 * (trimmed, case-insensitive) DisplayName or CompanyName match, which is
 * stored. Others map to null and get a mapping_needed exception with up to
 * three look-alikes; their postings wait until a person links them.
 * One findCustomers call for all names at once.
 */
export async function resolveCustomers (db: Knex, accounting: AccountingPort, tenantId: string, customers: ReadonlyArray<{ id: string, name: string }>): Promise<Map<string, string | null>> {
  const links = await getCustomerLinks(db, tenantId, customers.map(c => c.id))
  const out = new Map<string, string | null>()
  const unlinked = customers.filter(c => !links.has(c.id))
  for (const c of customers) if (links.has(c.id)) out.set(c.id, links.get(c.id) as string)
  if (unlinked.length === 0) return out
  const found = await accounting.findCustomers({ names: [...new Set(unlinked.map(c => c.name.trim()))] })
  const missing: Array<{ id: string, name: string }> = []
  for (const c of unlinked) {
    if (out.has(c.id)) continue
    const hits = found.filter(f => f.active && (norm(f.displayName) === norm(c.name) || norm(f.companyName) === norm(c.name)))
    if (hits.length === 1) {
      const hit = hits[0] as { id: string }
      try {
        await storeCustomerLink(db, tenantId, c.id, hit.id, 'exact_name')
        out.set(c.id, hit.id)
        continue
      } catch { /* the QBO customer is linked to another company: a person decides */ }
    }
    missing.push(c)
    out.set(c.id, null)
  }
  if (missing.length > 0) {
    // The whole customer list only when something did not match: suggestions need it.
    const all: Array<{ id: string, displayName: string, companyName: string | null }> = []
    for await (const page of accounting.listCustomers()) all.push(...page)
    for (const c of missing) {
      const ranked = all.map(a => ({ a, score: Math.max(similarity(c.name, a.displayName), similarity(c.name, a.companyName ?? '')) }))
        .filter(r => r.score > 0.3).sort((p, q) => q.score - p.score).slice(0, 3)
      await raiseException(db, tenantId, {
        kind: 'mapping_needed',
        dedupeKey: `qbo-customer:${c.id}`,
        customerId: c.id,
        summary: `No QuickBooks customer is named "${c.name}"; Settle's payments for it wait until someone picks one.`,
        likelyCause: 'The company is named differently in QuickBooks, or it does not exist there yet.',
        suggestedRepair: ranked.length > 0 ? `Link it to ${ranked.map(r => `"${r.a.displayName}"`).join(' or ')}, or create the customer in QuickBooks.` : 'Create the customer in QuickBooks (same name), or link it to the right one.',
        details: { candidates: ranked.map(r => ({ externalCustomerId: r.a.id, displayName: r.a.displayName, score: Math.round(r.score * 100) / 100 })) },
        suggestions: ranked.map((r, i) => ({ rank: i + 1, confidence: Math.round(r.score * 100) / 100, invoiceIds: [], amounts: [], reasons: [`QuickBooks customer ${r.a.id} "${r.a.displayName}" has a similar name`] }))
      })
    }
  }
  return out
}

// ---- payments ----

interface AttemptForPosting {
  id: string, status: string, amount: number, surcharge: number, currency: Currency,
  /** What the attempt paid, in order of application: one line, or several for a statement payment. */
  lines: AttemptAllocation[]
  /** "invoice 1001" or "invoices 1001, 1002 and 1003", for notes and descriptions. */
  label: string
  statement: boolean
  customerId: string, customerName: string, methodType: string, intentRef: string | null, settledOn: string
}

async function loadAttempts (db: Knex, tenantId: string, attemptIds: readonly string[]): Promise<AttemptForPosting[]> {
  if (attemptIds.length === 0) return []
  const rows = await db('payment_attempts as a')
    .join('customers as c', function () { this.on('c.tenant_id', 'a.tenant_id').andOn('c.id', 'a.customer_id') })
    .join('payment_methods as m', function () { this.on('m.tenant_id', 'a.tenant_id').andOn('m.id', 'a.payment_method_id') })
    .where('a.tenant_id', tenantId).whereIn('a.id', attemptIds)
    .select('a.id', 'a.status', 'a.amount', 'a.surcharge_amount', 'a.currency', 'a.invoice_id', 'a.customer_id', 'c.name', 'm.type', 'a.processor_intent_ref', 'a.settled_at', 'a.updated_at') as Array<{
    id: string, status: string, amount: string | number, surcharge_amount: string | number | null, currency: string, invoice_id: string | null,
    customer_id: string, name: string, type: string, processor_intent_ref: string | null, settled_at: Date | null, updated_at: Date
  }>
  const linesOf = await allocationsByAttempt(db, tenantId, attemptIds)
  return rows.map(r => {
    const lines = linesOf.get(r.id) ?? []
    return {
      id: r.id, status: r.status, amount: Number(r.amount), surcharge: Number(r.surcharge_amount ?? 0), currency: asCurrency(r.currency.trim()),
      lines, label: invoiceLabel(lines.map(l => l.invoiceNumber)), statement: r.invoice_id === null,
      customerId: r.customer_id, customerName: r.name, methodType: r.type,
      intentRef: r.processor_intent_ref, settledOn: (r.settled_at ?? r.updated_at).toISOString().slice(0, 10)
    }
  })
}

/** Statuses in which Settle still holds the charge as collected (a refunded or disputed one posts too; its reversal follows). */
const POSTABLE = new Set(['succeeded', 'refunded', 'disputed'])

/**
 * Builds the QBO writes for attempts, reading the books once for all of them
 * (one findCustomers, one findInvoices). Posted ones are skipped; waiting
 * ones are reported with the reason.
 */
async function preparePayments (db: Knex, accounting: AccountingPort, tenantId: string, settings: AccountingSettings, attemptIds: readonly string[]): Promise<{ ready: Prepared[], done: PostOutcome[] }> {
  const attempts = (await loadAttempts(db, tenantId, attemptIds)).filter(a => POSTABLE.has(a.status))
  const ready: Prepared[] = []
  const done: PostOutcome[] = []
  const todo: Array<{ a: AttemptForPosting, record: AccountingPostingRecord }> = []
  for (const a of attempts) {
    const record = await ensurePosting(db, tenantId, { kind: 'payment', sourceId: a.id, amount: { amount: a.amount, currency: a.currency }, customerId: a.customerId })
    if (record.status === 'posted' && record.externalId !== null) {
      done.push({ status: 'posted', kind: 'payment', sourceId: a.id, externalId: record.externalId, amount: record.amount, replayed: true })
    } else if (record.requestBody !== null) {
      // Sent before, answer unknown: resend exactly that; QBO replays the first write.
      ready.push({ record, op: { kind: 'payment', posting: record.requestBody as PaymentPosting }, docType: 'Payment' })
    } else {
      todo.push({ a, record })
    }
  }
  if (todo.length === 0) return { ready, done }
  const depositTo = need(settings.undepositedFundsAccountId, 'Undeposited Funds account')
  const customers = await resolveCustomers(db, accounting, tenantId, todo.map(t => ({ id: t.a.customerId, name: t.a.customerName })))
  const docNumber = (n: string): string => `${settings.docNumberPrefix}${n}`
  const mapped = todo.filter(t => customers.get(t.a.customerId) !== null)
  const invoices = mapped.length === 0 ? [] : await accounting.findInvoices({ docNumbers: [...new Set(mapped.flatMap(t => t.a.lines.map(l => docNumber(l.invoiceNumber))))] })
  // Balances as we apply, so two payments on one invoice in one sync never over-apply.
  const open = new Map<string, AccountingInvoice>(invoices.map(i => [i.id, { ...i }]))
  for (const { a, record } of todo) {
    const external = customers.get(a.customerId) ?? null
    const amount: Money = { amount: a.amount, currency: a.currency }
    if (external === null) {
      const reason = `Waiting for a person to link "${a.customerName}" to a QuickBooks customer.`
      await markNotPosted(db, tenantId, record.id, 'pending', reason)
      done.push({ status: 'waiting', kind: 'payment', sourceId: a.id, reason })
      continue
    }
    const applications: PaymentPosting['applications'] = []
    let note = `Settle payment ${a.id} for ${a.label}`
    if (a.surcharge > 0) note += `; card surcharge ${formatMoney({ amount: a.surcharge, currency: a.currency })} posts with the payout deposit`
    for (const line of a.lines) {
      // A statement payment's findings are one per invoice; a single payment keeps its one key.
      const key = (prefix: string): string => a.statement ? `${prefix}:${a.id}:${line.invoiceId}` : `${prefix}:${a.id}`
      const lineAmount: Money = { amount: line.amount, currency: a.currency }
      const doc = docNumber(line.invoiceNumber)
      const invoice: AccountingInvoice | undefined = [...open.values()].find(i => i.docNumber === doc && i.customerId === external) ?? [...open.values()].find(i => i.docNumber === doc)
      if (invoice === undefined) {
        await raiseException(db, tenantId, {
          kind: 'mapping_needed', dedupeKey: key('qbo-invoice'), customerId: a.customerId, invoiceId: line.invoiceId, amount: lineAmount,
          summary: `QuickBooks has no invoice ${doc}; Settle's ${formatMoney(lineAmount)} payment posted as unapplied credit for the customer.`,
          likelyCause: 'The invoice was not synced to QuickBooks, or it is numbered differently there.',
          suggestedRepair: `In QuickBooks, apply the customer's credit to the invoice once it exists (or set the DocNumber prefix under Settings → Accounting).`,
          details: { attemptId: a.id, docNumber: doc }
        })
      } else if (invoice.customerId !== external) {
        await raiseException(db, tenantId, {
          kind: 'mapping_needed', dedupeKey: key('qbo-invoice'), customerId: a.customerId, invoiceId: line.invoiceId, amount: lineAmount,
          summary: `QuickBooks invoice ${doc} belongs to another customer (${invoice.customerName ?? invoice.customerId}); Settle's payment posted as unapplied credit.`,
          likelyCause: 'The company is linked to the wrong QuickBooks customer, or the invoice number is reused.',
          suggestedRepair: 'Check the customer link under Settings → Accounting, then apply the credit in QuickBooks.',
          details: { attemptId: a.id, docNumber: doc, invoiceCustomerId: invoice.customerId }
        })
      } else {
        const apply = Math.max(0, Math.min(line.amount, invoice.balance.amount))
        if (apply > 0) applications.push({ invoiceId: invoice.id, amount: { amount: apply, currency: a.currency } })
        open.set(invoice.id, { ...invoice, balance: { amount: invoice.balance.amount - apply, currency: invoice.balance.currency } })
        if (apply < line.amount) {
          const rest = { amount: line.amount - apply, currency: a.currency }
          await raiseException(db, tenantId, {
            kind: 'tieout_difference', dedupeKey: key('qbo-overpaid'), customerId: a.customerId, invoiceId: line.invoiceId, amount: rest,
            summary: `QBO shows ${formatMoney(invoice.balance)} open on invoice ${doc} but Settle collected ${formatMoney(lineAmount)}: someone applied a payment by hand in QBO? ${formatMoney(rest)} stays as unapplied customer credit.`,
            likelyCause: 'A payment was recorded in QuickBooks by hand as well as collected through Settle, or the invoice was reduced there.',
            suggestedRepair: 'Delete the duplicate manual payment in QuickBooks and apply the credit, or refund the client the difference.',
            details: { attemptId: a.id, docNumber: doc, qboBalance: invoice.balance.amount, collected: line.amount }
          })
        }
      }
    }
    const posting: PaymentPosting = {
      requestId: record.requestId,
      customerId: external,
      amount,
      txnDate: a.settledOn,
      paymentMethodId: a.methodType === 'ach' ? settings.achPaymentMethodId : settings.cardPaymentMethodId,
      reference: a.intentRef,
      depositToAccountId: depositTo,
      note,
      applications
    }
    ready.push({ record, op: { kind: 'payment', posting }, docType: 'Payment' })
  }
  return { ready, done }
}

// ---- deposits ----

async function prepareDeposit (db: Knex, tenantId: string, settings: AccountingSettings, payoutId: string): Promise<Prepared | PostOutcome> {
  const payout = await getPayout(db, tenantId, payoutId)
  const record = await ensurePosting(db, tenantId, { kind: 'deposit', sourceId: payoutId, amount: payout.amount })
  if (record.status === 'posted' && record.externalId !== null) return { status: 'posted', kind: 'deposit', sourceId: payoutId, externalId: record.externalId, amount: record.amount, replayed: true }
  if (record.requestBody !== null) return { record, op: { kind: 'deposit', posting: record.requestBody as DepositPosting }, docType: 'Deposit' }
  if (payout.status !== 'paid') return { status: 'waiting', kind: 'deposit', sourceId: payoutId, reason: `Payout ${payout.processorPayoutRef} is ${payout.status}, not paid yet.` }
  const bank = need(settings.bankAccountId, 'bank account for deposits')
  const fees = need(settings.feesAccountId, 'processor fee expense account')
  const undeposited = need(settings.undepositedFundsAccountId, 'Undeposited Funds account')
  const items = await payoutItems(db, tenantId, payoutId)
  const cur = payout.amount.currency
  const m = (amount: number): Money => ({ amount, currency: cur })
  const lines: AccountingDepositLine[] = []
  const problems: string[] = []
  const attemptIds = items.filter(i => (i.type === 'charge' || i.type === 'payment') && i.attemptId !== null).map(i => i.attemptId as string)
  const attempts = new Map((await loadAttempts(db, tenantId, attemptIds)).map(a => [a.id, a]))
  let feeTotal = 0
  for (const item of items) {
    feeTotal += item.fee.amount
    if (item.type === 'charge' || item.type === 'payment') {
      const attempt = item.attemptId === null ? undefined : attempts.get(item.attemptId)
      if (attempt === undefined) { problems.push(`${item.balanceTransactionRef} is a charge Settle did not make (${formatMoney(item.gross)})`); continue }
      const paid = await getPostingBySource(db, tenantId, 'payment', attempt.id)
      if (paid?.status !== 'posted' || paid.externalId === null) throw new PostingNotReadyError(`Payment for attempt ${attempt.id} is not in QuickBooks yet; the deposit waits for it.`)
      if (attempt.amount + attempt.surcharge !== item.gross.amount) problems.push(`${item.balanceTransactionRef} is ${formatMoney(item.gross)} but Settle charged ${formatMoney(m(attempt.amount + attempt.surcharge))}`)
      lines.push({ paymentId: paid.externalId, amount: m(attempt.amount), description: capitalised(attempt.label) })
      if (attempt.surcharge > 0) lines.push({ accountId: fees, amount: m(attempt.surcharge), description: `Card surcharge on ${attempt.label}` })
    } else if (item.type === 'payout_fee') {
      lines.push({ accountId: fees, amount: item.gross, description: `Payout fee ${item.balanceTransactionRef}` })
    } else if (item.gross.amount !== 0) {
      // Refunds and disputes: their reversal JE credited Undeposited Funds; this takes it back out.
      lines.push({ accountId: undeposited, amount: item.gross, description: `Stripe ${item.type} ${item.balanceTransactionRef}` })
    }
  }
  if (feeTotal !== 0) lines.push({ accountId: fees, amount: m(-feeTotal), description: `Stripe fees, payout ${payout.processorPayoutRef}` })
  const total = lines.reduce((s, l) => s + l.amount.amount, 0)
  if (total !== payout.amount.amount) problems.push(`the lines add up to ${formatMoney(m(total))}, the payout is ${formatMoney(payout.amount)}`)
  if (problems.length > 0) {
    await raiseException(db, tenantId, {
      kind: 'posting_failed', dedupeKey: `qbo-deposit:${payoutId}`, amount: payout.amount,
      summary: `The QuickBooks deposit for payout ${payout.processorPayoutRef} (${formatMoney(payout.amount)}) was not posted: ${problems.join('; ')}.`,
      likelyCause: 'The payout holds money Settle did not collect, or an item was recorded differently than charged.',
      suggestedRepair: 'Record this deposit by hand in QuickBooks, matching the bank line, then dismiss this exception.',
      details: { payoutId, problems }
    })
    await markNotPosted(db, tenantId, record.id, 'failed', problems.join('; '))
    throw new PostingBlockedError(`Deposit for payout ${payout.processorPayoutRef} does not tie: ${problems.join('; ')}`, 'Record the deposit by hand in QuickBooks.')
  }
  const posting: DepositPosting = { requestId: record.requestId, bankAccountId: bank, txnDate: payout.arrivalDate ?? today(), currency: cur, lines, note: `Stripe payout ${payout.processorPayoutRef}` }
  return { record, op: { kind: 'deposit', posting }, docType: 'Deposit' }
}

// ---- reversals ----

export interface ReversalInput {
  /** The refund or dispute id: one reversal each. */
  sourceId: string
  attemptId: string
  /** The part that reopens the invoice (A/R). */
  invoiceAmount: number
  /** The surcharge part returned. */
  surchargeAmount: number
  currency: string
  why: 'refund' | 'dispute_lost' | 'ach_return'
}

async function prepareReversal (db: Knex, accounting: AccountingPort, tenantId: string, settings: AccountingSettings, input: ReversalInput): Promise<Prepared | PostOutcome> {
  const cur = asCurrency(input.currency)
  const total = input.invoiceAmount + input.surchargeAmount
  const [attempt] = await loadAttempts(db, tenantId, [input.attemptId])
  if (attempt === undefined) throw new PostingBlockedError(`No payment attempt ${input.attemptId} for this reversal.`, 'Check the refund or dispute record.')
  const record = await ensurePosting(db, tenantId, { kind: 'reversal', sourceId: input.sourceId, amount: { amount: total, currency: cur }, customerId: attempt.customerId })
  if (record.status === 'posted' && record.externalId !== null) return { status: 'posted', kind: 'reversal', sourceId: input.sourceId, externalId: record.externalId, amount: record.amount, replayed: true }
  if (record.requestBody !== null) return { record, op: { kind: 'journal', posting: record.requestBody as JournalPosting }, docType: 'JournalEntry' }
  // The original payment goes first, or the books would show A/R reopened that was never closed.
  const paid = await getPostingBySource(db, tenantId, 'payment', input.attemptId)
  if (paid?.status !== 'posted') throw new PostingNotReadyError(`The payment for attempt ${input.attemptId} is not in QuickBooks yet; its reversal waits.`)
  const receivable = need(settings.receivableAccountId, 'Accounts Receivable account')
  const undeposited = need(settings.undepositedFundsAccountId, 'Undeposited Funds account')
  const customers = await resolveCustomers(db, accounting, tenantId, [{ id: attempt.customerId, name: attempt.customerName }])
  const external = customers.get(attempt.customerId) ?? null
  if (external === null) return { status: 'waiting', kind: 'reversal', sourceId: input.sourceId, reason: `Waiting for a person to link "${attempt.customerName}" to a QuickBooks customer.` }
  const m = (amount: number): Money => ({ amount, currency: cur })
  const label = input.why === 'refund' ? 'Refund' : input.why === 'dispute_lost' ? 'Lost dispute' : 'ACH return'
  const lines: JournalPosting['lines'] = []
  if (input.invoiceAmount !== 0) lines.push({ accountId: receivable, amount: m(input.invoiceAmount), customerId: external, description: `${label}: ${attempt.label} ${attempt.lines.length === 1 ? 'is' : 'are'} owed again` })
  if (input.surchargeAmount !== 0) lines.push({ accountId: need(settings.feesAccountId, 'processor fee expense account'), amount: m(input.surchargeAmount), description: `${label}: card surcharge returned` })
  lines.push({ accountId: undeposited, amount: m(-total), description: `${label} ${input.sourceId}: leaves with a Stripe payout` })
  const posting: JournalPosting = { requestId: record.requestId, txnDate: today(), currency: cur, note: `${label} of Settle payment ${input.attemptId} (${attempt.label})`, lines }
  return { record, op: { kind: 'journal', posting }, docType: 'JournalEntry' }
}

// ---- writing ----

async function send (accounting: AccountingPort, op: Op): Promise<AccountingWrite> {
  if (op.kind === 'payment') return await accounting.createPayment(op.posting)
  if (op.kind === 'deposit') return await accounting.createDeposit(op.posting)
  return await accounting.createJournalEntry(op.posting)
}

/**
 * A reversal waiting for this payment, or a deposit whose last missing
 * payment this was, runs now instead of sitting out POSTING_WAIT_MS. Only
 * documents that can now post are woken: each wait spends a job attempt.
 */
async function wakeWaitingOn (db: Knex, tenantId: string, attemptId: string): Promise<void> {
  await db.raw(`
    update jobs set run_at = now(), updated_at = now()
    where tenant_id = ? and state = 'pending' and run_at > now() and (
      (queue = ? and payload->>'attemptId' = ?)
      or (queue = ? and payload->>'payoutId' in (
        select pi.payout_id::text from payout_items pi
        where pi.tenant_id = ? and pi.attempt_id = ?::uuid
          and not exists (
            select 1 from payout_items other
            where other.tenant_id = pi.tenant_id and other.payout_id = pi.payout_id and other.attempt_id is not null
              and not exists (select 1 from accounting_postings ap where ap.tenant_id = other.tenant_id and ap.source_kind = 'payment'
                and ap.source_id = other.attempt_id::text and ap.status = 'posted')))))`,
  [tenantId, POST_REVERSAL_QUEUE, attemptId, POST_DEPOSIT_QUEUE, tenantId, attemptId])
}

async function commit (db: Knex, tenantId: string, p: Prepared, write: AccountingWrite): Promise<PostOutcome> {
  await markPosted(db, tenantId, p.record.id, { externalId: write.id, externalType: p.docType })
  if (p.record.sourceKind === 'payment') await wakeWaitingOn(db, tenantId, p.record.sourceId)
  return { status: 'posted', kind: p.record.sourceKind, sourceId: p.record.sourceId, externalId: write.id, amount: p.record.amount, replayed: write.replayed }
}

async function postOne (db: Knex, accounting: AccountingPort, tenantId: string, p: Prepared): Promise<PostOutcome> {
  const batch = await lostBatchOf(db, tenantId, p.record)
  if (batch !== null) {
    const outcome = (await sendBatch(db, accounting, tenantId, batch)).get(p.record.id)
    if (outcome === undefined || outcome instanceof Error) throw outcome ?? new Error('QuickBooks returned no answer for this batch item')
    return outcome
  }
  // Saved before the call: if we crash after QBO answers, the retry resends this very body under the same requestid.
  await saveRequestBody(db, tenantId, p.record.id, p.op.posting)
  let write: AccountingWrite
  try {
    write = await send(accounting, p.op)
  } catch (err) {
    // Refused, not lost (QuickBooks answered, and not with a server error): nothing was written.
    if (err instanceof UpstreamError && err.status !== null && !err.retryable) await forgetRefusedRequest(db, tenantId, p.record.id)
    throw err
  }
  return await commit(db, tenantId, p, write)
}

const opFromSaved = (record: AccountingPostingRecord): Op => {
  const posting = record.requestBody as never
  return record.sourceKind === 'payment' ? { kind: 'payment', posting } : record.sourceKind === 'deposit' ? { kind: 'deposit', posting } : { kind: 'journal', posting }
}

/**
 * The batch a lost answer left this posting in, rebuilt from the saved
 * bodies in the order they went; null when it was sent alone (or is posted).
 * QuickBooks dedupes a batch by its requestid only, which is derived from
 * its members in order: only that very batch replays instead of writing again.
 */
async function lostBatchOf (db: Knex, tenantId: string, record: AccountingPostingRecord): Promise<Prepared[] | null> {
  if (record.sentInBatch === null || record.requestBody === null || record.status === 'posted') return null
  const members = await postingsById(db, tenantId, record.sentInBatch)
  if (members.length !== record.sentInBatch.length || members.some(m => m.requestBody === null)) {
    throw new PostingBlockedError(`The QuickBooks batch that ${record.sourceKind} ${record.sourceId} went out in can no longer be rebuilt, so sending it again could post it twice.`,
      'Look for the document in QuickBooks (its private note names the Settle payment): if it is there, mark this exception resolved; if not, ask support to clear the posting\'s saved request.')
  }
  return members.map(m => { const op = opFromSaved(m); return { record: m, op, docType: docTypeOf(op) } })
}

/**
 * Sends up to 30 postings as one QuickBooks batch and records each item's
 * answer: posted, or (an item QuickBooks refused) pending with the reason and
 * a fresh request next time. The members and bodies are saved first, so a
 * lost answer is resent as this same batch (lostBatchOf). Throws when the
 * whole answer is lost.
 */
async function sendBatch (db: Knex, accounting: AccountingPort, tenantId: string, members: readonly Prepared[]): Promise<Map<string, PostOutcome | Error>> {
  for (const p of members) await saveRequestBody(db, tenantId, p.record.id, p.op.posting)
  await saveBatchMembers(db, tenantId, members.map(p => p.record.id))
  const answers = await accounting.batch(members.map(p => p.op))
  const outcomes = new Map<string, PostOutcome | Error>()
  for (const [j, p] of members.entries()) {
    const answer = answers[j]
    if (answer?.ok === true) {
      outcomes.set(p.record.id, await commit(db, tenantId, p, answer.write))
    } else {
      const reason = answer === undefined ? 'QuickBooks returned no answer for this batch item' : answer.error.message
      await markNotPosted(db, tenantId, p.record.id, 'pending', reason)
      if (answer !== undefined) await forgetRefusedRequest(db, tenantId, p.record.id)
      outcomes.set(p.record.id, answer?.error ?? new Error(reason))
    }
  }
  return outcomes
}

/** Posts one attempt's payment (the qbo.post-payment job). */
export async function postPayment (db: Knex, accounting: AccountingPort, tenantId: string, attemptId: string): Promise<PostOutcome> {
  const settings = await settingsFor(db, tenantId)
  const { ready, done } = await preparePayments(db, accounting, tenantId, settings, [attemptId])
  const first = ready[0]
  if (first !== undefined) return await postOne(db, accounting, tenantId, first)
  return done[0] ?? { status: 'waiting', kind: 'payment', sourceId: attemptId, reason: 'The attempt has not succeeded.' }
}

/** Posts one payout's deposit (the qbo.post-deposit job). Throws PostingNotReadyError while a payment in it is not posted. */
export async function postDeposit (db: Knex, accounting: AccountingPort, tenantId: string, payoutId: string): Promise<PostOutcome> {
  const settings = await settingsFor(db, tenantId)
  const p = await prepareDeposit(db, tenantId, settings, payoutId)
  return 'status' in p ? p : await postOne(db, accounting, tenantId, p)
}

/** Posts one refund's or lost dispute's reversal (the qbo.post-reversal job). */
export async function postReversal (db: Knex, accounting: AccountingPort, tenantId: string, input: ReversalInput): Promise<PostOutcome> {
  const settings = await settingsFor(db, tenantId)
  const p = await prepareReversal(db, accounting, tenantId, settings, input)
  return 'status' in p ? p : await postOne(db, accounting, tenantId, p)
}

// ---- the outbox: queues, and what a failure means ----

export const POST_PAYMENT_QUEUE = 'qbo.post-payment'
export const POST_DEPOSIT_QUEUE = 'qbo.post-deposit'
export const POST_REVERSAL_QUEUE = 'qbo.post-reversal'

/** Each kind's job queue and the payload field naming its source. */
const OUTBOX: Record<PostingKind, { queue: string, key: string, dedupe: string }> = {
  payment: { queue: POST_PAYMENT_QUEUE, key: 'attemptId', dedupe: 'qbo-payment-now' },
  deposit: { queue: POST_DEPOSIT_QUEUE, key: 'payoutId', dedupe: 'qbo-deposit-now' },
  reversal: { queue: POST_REVERSAL_QUEUE, key: 'sourceId', dedupe: 'qbo-reversal-now' }
}

/** How long a deposit or a reversal waits for its payments before looking again. */
export const POSTING_WAIT_MS = 10 * 60_000

/** A qbo.post-reversal payload as the refund, dispute and ACH-return paths queue it; null without its ids. */
export function reversalInput (payload: Record<string, unknown>): ReversalInput | null {
  const { sourceId, attemptId } = payload
  if (typeof sourceId !== 'string' || sourceId === '' || typeof attemptId !== 'string' || attemptId === '') return null
  return {
    sourceId,
    attemptId,
    invoiceAmount: Number(payload.invoiceAmount ?? 0),
    surchargeAmount: Number(payload.surchargeAmount ?? 0),
    currency: String(payload.currency ?? 'USD'),
    why: payload.why === 'dispute_lost' || payload.why === 'ach_return' ? payload.why : 'refund'
  }
}

/**
 * Whether a posting failure is the last word: a posting blocked by the
 * settings, or its job out of attempts. Anything else the job retries on its
 * own, so it raises nothing yet. The jobs and syncNow both decide by this.
 */
export function finalPostingFailure (error: unknown, job: { attempts: number, maxAttempts: number }): boolean {
  return error instanceof PostingBlockedError || job.attempts >= job.maxAttempts
}

/** The dead letter: the posting is marked failed and a posting_failed exception (one per source, refreshed) carries QBO's message and a fix hint. */
export async function recordPostingFailure (db: Knex, tenantId: string, input: { kind: PostingKind, sourceId: string, error: unknown, job: { id: number, queue: string, attempts: number }, via?: string }): Promise<void> {
  const message = input.error instanceof Error ? input.error.message : String(input.error)
  const fixHint = input.error instanceof PostingBlockedError ? input.error.fixHint : fixHintFor(message)
  const posting = await getPostingBySource(db, tenantId, input.kind, input.sourceId)
  if (posting !== null) await markNotPosted(db, tenantId, posting.id, 'failed', message)
  await raiseException(db, tenantId, {
    kind: 'posting_failed',
    dedupeKey: `qbo-${input.kind}:${input.sourceId}`,
    customerId: posting?.customerId ?? null,
    amount: posting?.amount ?? null,
    summary: `Settle could not post the ${input.kind} ${input.sourceId} to QuickBooks: ${message}`,
    likelyCause: message,
    suggestedRepair: `${fixHint} (Retry the dead job ${input.job.id} once fixed.)`,
    details: { jobId: input.job.id, queue: input.job.queue, attempts: input.job.attempts, error: message, ...(input.via === undefined ? {} : { via: input.via }) }
  })
}

// ---- sync now ----

export interface SyncNowResult {
  /** What reached QuickBooks in this run (or had before: replayed). docUrl opens the document in QBO. */
  posted: Array<{ kind: PostingKind, sourceId: string, externalId: string, amount: Money, docUrl?: string }>
  /** What QuickBooks or a check refused, with a hint a person can act on. */
  failed: Array<{ kind: PostingKind, sourceId: string, reason: string, fixHint: string }>
  /** What is still waiting after the run (on a customer link, an earlier posting, a payout in transit, the background job posting it right now). */
  pending: { payments: number, deposits: number, reversals: number }
  /** Calls made to QuickBooks in this run. */
  calls: number
}

const BATCH = 30
/** A sync's hold on the jobs it runs in-line; past it (the process died) the workers take them over. */
const SYNC_LEASE_MS = 10 * 60_000

function docUrl (kind: PostingKind, id: string): string {
  const path = kind === 'payment' ? 'recvpayment' : kind === 'deposit' ? 'deposit' : 'journal'
  return `https://app.qbo.intuit.com/app/${path}?txnId=${encodeURIComponent(id)}`
}

type Settled = { state: 'done' } | { state: 'later', reason: string } | { state: 'failed', error: unknown }

/**
 * Posts everything the tenant (or one customer) has waiting, now: payments
 * first, then reversals (refunds, lost disputes, ACH returns: their payment
 * must exist), then deposits (their payments must exist). Reads the books
 * once per phase and writes in batches of 30 (QBO's batch limit), through
 * the same preparation the jobs use.
 *
 * It runs the outbox in-line: each source's job is claimed first as a
 * worker would claim it (or one is made, already claimed, when none is
 * live), so a job and a sync never post the same document at once; a
 * source a worker holds right now is left to it and counted pending. After
 * the run each claim is settled as the worker would: done, back to pending
 * (a transient failure, or waiting on an earlier posting), or dead with a
 * posting_failed exception when the failure is final (finalPostingFailure).
 */
export async function syncNow (db: Knex, accounting: AccountingPort, tenantId: string, options: { customerId?: string } = {}): Promise<SyncNowResult> {
  const callsBefore = accounting.callsMade()
  const result: SyncNowResult = { posted: [], failed: [], pending: { payments: 0, deposits: 0, reversals: 0 }, calls: 0 }
  let settings: AccountingSettings
  try {
    settings = await settingsFor(db, tenantId)
  } catch (err) {
    if (err instanceof PostingBlockedError) { result.failed.push({ kind: 'payment', sourceId: '*', reason: err.message, fixHint: err.fixHint }); return result }
    throw err
  }
  const holder = `sync-now:${randomUUID()}`
  const claims = new Map<string, { kind: PostingKind, sourceId: string, jobs: Job[] }>()
  const settled = new Map<string, Settled>()
  const key = (kind: PostingKind, sourceId: string): string => `${kind}:${sourceId}`
  const countPending = (kind: PostingKind, n = 1): void => {
    if (kind === 'payment') result.pending.payments += n
    else if (kind === 'deposit') result.pending.deposits += n
    else result.pending.reversals += n
  }
  const fail = (kind: PostingKind, sourceId: string, err: unknown): void => {
    const reason = err instanceof Error ? err.message : String(err)
    result.failed.push({ kind, sourceId, reason, fixHint: err instanceof PostingBlockedError ? err.fixHint : fixHintFor(reason) })
    settled.set(key(kind, sourceId), { state: 'failed', error: err })
  }
  const later = (kind: PostingKind, sourceId: string, reason: string): void => {
    countPending(kind)
    settled.set(key(kind, sourceId), { state: 'later', reason })
  }
  const record = (outcomes: PostOutcome[]): void => {
    for (const o of outcomes) {
      if (o.status === 'posted') result.posted.push({ kind: o.kind, sourceId: o.sourceId, externalId: o.externalId, amount: o.amount, docUrl: docUrl(o.kind, o.externalId) })
      else countPending(o.kind)
      // Waiting on a person is done for now, as in the job: linking the customer queues it again.
      settled.set(key(o.kind, o.sourceId), { state: 'done' })
    }
  }
  /** Claims the sources' jobs; returns the ids this run may post. */
  const claim = async (kind: PostingKind, sources: Array<{ id: string, payload: Record<string, unknown> }>): Promise<string[]> => {
    const o = OUTBOX[kind]
    const { claimed, busy } = await claimSourceJobs(db, tenantId, { queue: o.queue, payloadKey: o.key, sources: sources.map(s => ({ value: s.id, payload: s.payload })), dedupePrefix: o.dedupe, workerId: holder, leaseMs: SYNC_LEASE_MS })
    for (const [sourceId, jobs] of claimed) claims.set(key(kind, sourceId), { kind, sourceId, jobs })
    // The background job is posting these right now; it finishes them.
    countPending(kind, busy.size)
    return sources.map(s => s.id).filter(id => claimed.has(id))
  }
  const runBatches = async (prepared: Prepared[]): Promise<void> => {
    const settle = (p: Prepared, outcome: PostOutcome | Error | undefined): void => {
      if (outcome === undefined) return
      if (outcome instanceof Error) fail(p.record.sourceKind, p.record.sourceId, outcome)
      else record([outcome])
    }
    // Postings a lost answer left in a batch go again in that batch, once per batch.
    const fresh: Prepared[] = []
    const resent = new Set<string>()
    for (const p of prepared) {
      let batch: Prepared[] | null
      try { batch = await lostBatchOf(db, tenantId, p.record) } catch (err) { fail(p.record.sourceKind, p.record.sourceId, err); continue }
      if (batch === null) { fresh.push(p); continue }
      const batchKey = batch.map(m => m.record.id).join(',')
      if (resent.has(batchKey)) continue
      resent.add(batchKey)
      const inRun = prepared.filter(q => batch.some(m => m.record.id === q.record.id))
      try {
        const outcomes = await sendBatch(db, accounting, tenantId, batch)
        for (const q of inRun) settle(q, outcomes.get(q.record.id))
      } catch (err) {
        for (const q of inRun) fail(q.record.sourceKind, q.record.sourceId, err)
      }
    }
    for (let i = 0; i < fresh.length; i += BATCH) {
      const chunk = fresh.slice(i, i + BATCH)
      try {
        const outcomes = await sendBatch(db, accounting, tenantId, chunk)
        for (const p of chunk) settle(p, outcomes.get(p.record.id))
      } catch (err) {
        // The whole batch's answer is lost: whoever posts any of these next resends this very batch.
        for (const p of chunk) fail(p.record.sourceKind, p.record.sourceId, err)
      }
    }
  }

  let crashed = false
  try {
    // Payments: succeeded attempts without a posted payment.
    const attemptQuery = db('payment_attempts as a')
      .leftJoin('accounting_postings as p', function () { this.on('p.tenant_id', 'a.tenant_id').andOn('p.source_id', db.raw('a.id::text')).andOn('p.source_kind', db.raw("'payment'")) })
      .where('a.tenant_id', tenantId).whereIn('a.status', [...POSTABLE])
      .andWhere(q => { void q.whereNull('p.id').orWhereNot('p.status', 'posted') })
    if (options.customerId !== undefined) attemptQuery.andWhere('a.customer_id', options.customerId)
    const attemptIds = await claim('payment', (await attemptQuery.orderBy('a.created_at').select('a.id') as Array<{ id: string }>).map(r => ({ id: r.id, payload: { attemptId: r.id } })))
    try {
      const { ready, done } = await preparePayments(db, accounting, tenantId, settings, attemptIds)
      record(done)
      await runBatches(ready)
    } catch (err) {
      for (const id of attemptIds) fail('payment', id, err)
    }

    // Reversals: refunds, lost disputes and ACH returns queued for QuickBooks and not posted there yet (the job's payload says what to post).
    const reversalQuery = db('jobs as j')
      .leftJoin('accounting_postings as p', function () { this.on('p.tenant_id', 'j.tenant_id').andOn('p.source_id', db.raw("j.payload->>'sourceId'")).andOn('p.source_kind', db.raw("'reversal'")) })
      .where('j.tenant_id', tenantId).andWhere('j.queue', POST_REVERSAL_QUEUE)
      .andWhere(q => { void q.whereNull('p.id').orWhereNot('p.status', 'posted') })
    if (options.customerId !== undefined) {
      reversalQuery.whereExists(db('payment_attempts as a').whereRaw("a.tenant_id = j.tenant_id and a.id::text = j.payload->>'attemptId'").andWhere('a.customer_id', options.customerId).select(db.raw('1')))
    }
    const reversalInputs = new Map<string, ReversalInput>()
    for (const r of await reversalQuery.orderBy('j.id').select('j.payload') as Array<{ payload: Record<string, unknown> }>) {
      const input = reversalInput(r.payload)
      if (input !== null && !reversalInputs.has(input.sourceId)) reversalInputs.set(input.sourceId, input)
    }
    const reversalIds = await claim('reversal', [...reversalInputs.values()].map(i => ({ id: i.sourceId, payload: { ...i } })))
    const reversals: Prepared[] = []
    for (const id of reversalIds) {
      try {
        const p = await prepareReversal(db, accounting, tenantId, settings, reversalInputs.get(id) as ReversalInput)
        if ('status' in p) record([p])
        else reversals.push(p)
      } catch (err) {
        if (err instanceof PostingNotReadyError) later('reversal', id, err.message)
        else fail('reversal', id, err)
      }
    }
    await runBatches(reversals)

    // Deposits: paid payouts without a posted deposit (a customer filter keeps only payouts holding its payments).
    const payoutQuery = db('payouts as po')
      .leftJoin('accounting_postings as p', function () { this.on('p.tenant_id', 'po.tenant_id').andOn('p.source_id', db.raw('po.id::text')).andOn('p.source_kind', db.raw("'deposit'")) })
      .where('po.tenant_id', tenantId).andWhere('po.status', 'paid')
      .andWhere(q => { void q.whereNull('p.id').orWhere('p.status', 'pending') })
    if (options.customerId !== undefined) {
      payoutQuery.whereExists(db('payout_items as it').join('payment_attempts as a', function () { this.on('a.tenant_id', 'it.tenant_id').andOn('a.id', 'it.attempt_id') })
        .whereRaw('it.tenant_id = po.tenant_id and it.payout_id = po.id').andWhere('a.customer_id', options.customerId).select(db.raw('1')))
    }
    const payoutIds = await claim('deposit', (await payoutQuery.orderBy('po.created_at').select('po.id') as Array<{ id: string }>).map(r => ({ id: r.id, payload: { payoutId: r.id } })))
    const deposits: Prepared[] = []
    for (const id of payoutIds) {
      try {
        const p = await prepareDeposit(db, tenantId, settings, id)
        if ('status' in p) record([p])
        else deposits.push(p)
      } catch (err) {
        if (err instanceof PostingNotReadyError) later('deposit', id, err.message)
        else fail('deposit', id, err)
      }
    }
    await runBatches(deposits)
  } catch (err) {
    crashed = true
    throw err
  } finally {
    // Each claim settles as its job would have: done, again later, or dead with the exception. Untouched ones are
    // done (nothing to post), unless the run broke off: those go straight back to the workers.
    for (const [k, c] of claims) {
      const s: Settled = settled.get(k) ?? (crashed ? { state: 'later', reason: 'Sync now stopped before it got to this one.' } : { state: 'done' })
      for (const job of c.jobs) {
        if (s.state === 'done') { await completeJob(db, job, holder); continue }
        if (s.state === 'later' && (crashed || job.attempts < job.maxAttempts)) {
          await failJob(db, job, holder, s.reason, new Date(Date.now() + (crashed ? 0 : POSTING_WAIT_MS)))
          continue
        }
        // Still waiting on its payments at the job's last attempt is final too, as in the job's dead letter.
        const error = s.state === 'later' ? new PostingNotReadyError(s.reason) : s.error
        const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
        const final = finalPostingFailure(error, job)
        if (final && job === c.jobs[0]) await recordPostingFailure(db, tenantId, { kind: c.kind, sourceId: c.sourceId, error, job, via: 'sync_now' })
        await failJob(db, job, holder, message, final ? null : new Date(Date.now() + backoffDelayMs(job.attempts)))
      }
    }
  }
  result.calls = accounting.callsMade() - callsBefore
  return result
}

/** A hint a person can act on, from QBO's message. */
export function fixHintFor (message: string): string {
  if (/Invalid Reference Id|Object Not Found/i.test(message)) return 'An account, customer or payment Settle refers to is gone or inactive in QuickBooks: check Settings → Accounting and the customer link, then retry.'
  if (/stale|SyncToken/i.test(message)) return 'The document changed in QuickBooks while Settle wrote it: retry.'
  if (/auth|token|401|403/i.test(message)) return 'QuickBooks access expired: reconnect QuickBooks under Settings → Accounting, then retry.'
  if (/closed|period|lock/i.test(message)) return 'The books are closed for that date in QuickBooks: open the period or post it by hand, then dismiss.'
  if (/does not tie|add up/i.test(message)) return 'Record the deposit by hand in QuickBooks, matching the bank line.'
  return 'Check the QuickBooks message, fix the cause there or in Settings → Accounting, then retry the posting.'
}
