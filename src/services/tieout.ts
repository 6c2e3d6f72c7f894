import type { Knex } from 'knex'
import type { Db } from '../db/knex.js'
import { pgError } from '../db/knex.js'
import { requireTenantId, tenantToday } from '../db/tenants.js'
import { isoDate, openBalance } from '../db/invoices.js'
import { audit } from '../db/audit.js'
import { raiseException } from '../db/reconciliation-exceptions.js'
import { AppError } from '../errors.js'
import { asCurrency, type Currency, type Money } from '../domain/money.js'
import {
  compareTieout, docNumbersToLookUp, isCreditMemo, mapQboCustomer,
  type CustomerLine, type OurCustomerView, type OurInvoiceView, type PayoutView, type QboCreditMemoView, type QboCustomerView, type QboInvoiceView,
  type SourceTotals, type TieoutCause, type TieoutDifference
} from '../domain/tieout.js'
import type { AccountingCreditMemo, AccountingPort } from '../ports/accounting.js'

/**
 * Runs the three-way tie-out for one tenant and records it.
 *
 * The PSA side is Settle's mirror (`invoices.psa_balance`), not a live
 * re-read: the sync keeps it current on its own schedule and a full live
 * listing would spend the PSA call budget every day for the same answer.
 * The run records when the mirror was last synced, so a stale mirror shows.
 * QuickBooks is read live (the open-invoice and open-credit-memo listings,
 * the customers, a DocNumber lookup for our open invoices and credit memos
 * they did not list, and one read per posted deposit in the payout window).
 * PSA credit memos are compared with QBO CreditMemos, never with invoices.
 */
export type TieoutStatus = 'running' | 'clean' | 'differences' | 'failed'
export type TieoutTrigger = 'daily' | 'manual'

export interface TieoutRun {
  id: string
  tenantId: string
  trigger: TieoutTrigger
  startedAt: Date
  finishedAt: Date | null
  status: TieoutStatus
  totals: Partial<Record<Currency, SourceTotals>>
  differencesCount: number
  summary: Record<string, unknown>
  error: string | null
}

export interface TieoutRunOptions {
  trigger: TieoutTrigger
  now?: Date
  /** Payouts that arrived in the last N days are compared (default 45). */
  payoutWindowDays?: number
}

export interface TieoutOutcome {
  run: TieoutRun
  differences: TieoutDifference[]
  lines: CustomerLine[]
  /** Exceptions raised or refreshed (open), and open ones closed because their difference is gone. */
  exceptionsRaised: number
  exceptionsCleared: number
}

interface RunRow {
  id: string, tenant_id: string, trigger: TieoutTrigger, started_at: Date, finished_at: Date | null, status: TieoutStatus,
  totals: Partial<Record<Currency, SourceTotals>>, differences_count: number, summary: Record<string, unknown>, error: string | null
}

const toRun = (r: RunRow): TieoutRun => ({
  id: r.id,
  tenantId: r.tenant_id,
  trigger: r.trigger,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  status: r.status,
  totals: r.totals,
  differencesCount: r.differences_count,
  summary: r.summary,
  error: r.error
})

/** A run left `running` this long died with its process; it no longer blocks the next one. */
const ABANDONED_AFTER_MS = 30 * 60_000
const ACTOR = 'tieout'

export async function runTieout (db: Knex, tenantId: string, accounting: AccountingPort | null, options: TieoutRunOptions): Promise<TieoutOutcome> {
  requireTenantId(tenantId)
  if (accounting === null) throw new AppError('ACCOUNTING_NOT_CONNECTED', 'Connect QuickBooks before running a tie-out: there is nothing to compare the PSA and Settle with.')
  const now = options.now ?? new Date()
  const run = await startRun(db, tenantId, options.trigger, now)
  try {
    return await tieOut(db, tenantId, accounting, run, now, options.payoutWindowDays ?? 45)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    await db('tieout_runs').where({ tenant_id: tenantId, id: run.id })
      .update({ status: 'failed', finished_at: db.fn.now(), error: message.slice(0, 2000) })
    throw error
  }
}

async function startRun (db: Knex, tenantId: string, trigger: TieoutTrigger, now: Date): Promise<RunRow> {
  await db('tieout_runs').where({ tenant_id: tenantId, status: 'running' }).where('started_at', '<', new Date(now.getTime() - ABANDONED_AFTER_MS))
    .update({ status: 'failed', finished_at: db.fn.now(), error: 'Abandoned: the process running it stopped before it finished.' })
  try {
    const [row] = await db('tieout_runs').insert({ tenant_id: tenantId, trigger }).returning('*') as RunRow[]
    return row as RunRow
  } catch (error) {
    if (pgError(error).code === '23505') throw new AppError('TIEOUT_IN_PROGRESS', 'A tie-out is already running for this tenant; its result will be the latest run in a minute or two.', { cause: error })
    throw error
  }
}

interface InvoiceQueryRow {
  id: string, customer_id: string, customer_name: string, number: string, kind: string, currency: string, voided: boolean, total: number | string,
  psa_balance: number | string, ledger_billed: number | string, paid_via_settle: number | string, ledger_paid_elsewhere: number | string,
  push_in_flight: boolean
  posting_in_flight: boolean
}

const invoiceColumns = ['i.id', 'i.customer_id', 'c.name as customer_name', 'i.number', 'i.kind', 'i.currency', 'i.voided', 'i.total', 'i.psa_balance', 'i.ledger_billed', 'i.paid_via_settle', 'i.ledger_paid_elsewhere']

function invoiceQuery (db: Db, tenantId: string): Knex.QueryBuilder {
  return db('invoices as i').join('customers as c', function () { this.on('c.tenant_id', 'i.tenant_id').andOn('c.id', 'i.customer_id') })
    .where('i.tenant_id', tenantId).select(invoiceColumns)
    // A push-back queued, running, or done since the mirror last changed: the PSA has heard (or is about to) but our
    // copy of its balance is from before, so the gap is in flight until the next sync, not a difference.
    .select(db.raw(`exists (select 1 from jobs j where j.tenant_id = i.tenant_id and j.queue in ('psa.push-payment', 'psa.restate-payment')
      and j.payload->>'invoiceExternalId' = i.psa_invoice_id
      and (j.state in ('pending', 'running') or (j.state = 'done' and j.finished_at > i.updated_at))) as push_in_flight`))
    // A payment Settle collected whose QuickBooks posting is queued or running: QuickBooks is about to hear.
    .select(db.raw(`exists (select 1 from jobs j join payment_attempt_allocations al on al.tenant_id = j.tenant_id and j.dedupe_key = 'qbo-payment:' || al.attempt_id
      where j.tenant_id = i.tenant_id and j.queue = 'qbo.post-payment' and j.state in ('pending', 'running') and al.invoice_id = i.id) as posting_in_flight`))
}

const toView = (r: InvoiceQueryRow): OurInvoiceView => ({
  invoiceId: r.id,
  customerId: r.customer_id,
  customerName: r.customer_name,
  number: r.number,
  currency: asCurrency(r.currency),
  voided: r.voided,
  creditMemo: r.kind === 'credit_memo' || Number(r.total) < 0,
  psaTotal: Number(r.total),
  psaBalance: Number(r.psa_balance),
  settleOpen: openBalance(r),
  paidViaSettle: Number(r.paid_via_settle),
  pushInFlight: r.push_in_flight,
  postingInFlight: r.posting_in_flight
})

async function collect<T> (pages: AsyncIterable<T[]>): Promise<T[]> {
  const all: T[] = []
  for await (const page of pages) all.push(...page)
  return all
}

const toQboInvoice = (q: { id: string, docNumber: string | null, customerId: string, customerName: string | null, total: Money, balance: Money }): QboInvoiceView =>
  ({ id: q.id, docNumber: q.docNumber, customerId: q.customerId, customerName: q.customerName, total: q.total, balance: q.balance })
const toQboCreditMemo = (m: AccountingCreditMemo): QboCreditMemoView =>
  ({ id: m.id, docNumber: m.docNumber, customerId: m.customerId, customerName: m.customerName, total: m.total, remainingCredit: m.remainingCredit })

async function tieOut (db: Knex, tenantId: string, accounting: AccountingPort, run: RunRow, now: Date, windowDays: number): Promise<TieoutOutcome> {
  const callsBefore = accounting.callsMade()
  const today = await tenantToday(db, tenantId, now)
  const connection = await db('accounting_connections').where({ tenant_id: tenantId, system: accounting.system }).first('settings') as { settings: { docNumberPrefix?: unknown } } | undefined
  const prefix = typeof connection?.settings?.docNumberPrefix === 'string' ? connection.settings.docNumberPrefix : ''

  // Ours: every invoice the PSA or Settle still shows open (paid-everywhere history is not read).
  const openRows = await invoiceQuery(db, tenantId)
    .andWhere(q => { void q.where(w => { void w.where('i.voided', false).andWhereNot('i.psa_balance', 0) }).orWhereRaw('i.ledger_billed - i.paid_via_settle - i.ledger_paid_elsewhere <> 0') }) as InvoiceQueryRow[]
  const invoices = new Map(openRows.map(r => [r.id, toView(r)]))

  // QuickBooks: its open invoices and credit memos, then ours it did not list (paid or applied there, or missing), by DocNumber.
  // A PSA credit memo is a QBO CreditMemo, so each kind is looked up among its own.
  const ours = [...invoices.values()]
  const qboOpen = (await collect(accounting.listOpenInvoices())).map(toQboInvoice)
  const lookups = docNumbersToLookUp(ours.filter(i => !isCreditMemo(i)), qboOpen, prefix)
  const found = lookups.length === 0 ? [] : (await accounting.findInvoices({ docNumbers: lookups })).map(toQboInvoice)
  const qboOpenCredits = (await collect(accounting.listOpenCreditMemos())).map(toQboCreditMemo)
  const creditLookups = docNumbersToLookUp(ours.filter(isCreditMemo), qboOpenCredits, prefix)
  const foundCredits = creditLookups.length === 0 ? [] : (await accounting.findCreditMemos({ docNumbers: creditLookups })).map(toQboCreditMemo)
  // QuickBooks' open invoices and credit memos that are settled or voided on our side: read those of ours too.
  const qboNumbers = [...qboOpen, ...qboOpenCredits].map(q => q.docNumber).filter((d): d is string => d !== null && d.toLowerCase().startsWith(prefix.toLowerCase())).map(d => d.slice(prefix.length))
  const known = new Set([...invoices.values()].map(i => i.number.toLowerCase()))
  const wanted = [...new Set(qboNumbers.filter(n => !known.has(n.toLowerCase())))]
  for (let i = 0; i < wanted.length; i += 500) {
    const chunk = wanted.slice(i, i + 500)
    const rows = await invoiceQuery(db, tenantId).andWhereRaw('lower(i.number) = any(?::text[])', [chunk.map(n => n.toLowerCase())]) as InvoiceQueryRow[]
    for (const r of rows) invoices.set(r.id, toView(r))
  }

  // Customers: ledger receivables, and QuickBooks customers linked by the stored link, then exact name.
  const receivableRows = await db('postings as p')
    .join('ledger_accounts as a', function () { this.on('a.tenant_id', 'p.tenant_id').andOn('a.code', 'p.account_code') })
    .where('p.tenant_id', tenantId).andWhere('a.code', 'like', 'receivable:%').whereNotNull('a.customer_id')
    .groupBy('a.customer_id', 'p.currency').select('a.customer_id', 'p.currency').sum({ total: 'p.amount' }) as Array<{ customer_id: string, currency: string, total: number | string }>
  const customerIds = new Set([...receivableRows.map(r => r.customer_id), ...[...invoices.values()].map(i => i.customerId)])
  const allCustomers = await db('customers').where({ tenant_id: tenantId }).select('id', 'name') as Array<{ id: string, name: string }>
  const receivables = new Map<string, Money[]>()
  for (const r of receivableRows) receivables.set(r.customer_id, [...(receivables.get(r.customer_id) ?? []), { amount: Number(r.total), currency: asCurrency(r.currency) }])
  const customers: OurCustomerView[] = allCustomers.filter(c => customerIds.has(c.id)).map(c => ({ customerId: c.id, name: c.name, receivable: receivables.get(c.id) ?? [] }))
  const links = new Map((await db('accounting_customer_links').where({ tenant_id: tenantId }).select('customer_id', 'external_customer_id') as Array<{ customer_id: string, external_customer_id: string }>)
    .map(l => [l.external_customer_id, l.customer_id]))
  // A name two customers share maps to neither: a person links those.
  const nameCounts = new Map<string, string[]>()
  for (const c of allCustomers) nameCounts.set(c.name.trim().toLowerCase(), [...(nameCounts.get(c.name.trim().toLowerCase()) ?? []), c.id])
  const byName = new Map([...nameCounts].filter(([, ids]) => ids.length === 1).map(([name, ids]) => [name, ids[0] as string]))
  const qboCustomers: QboCustomerView[] = (await collect(accounting.listCustomers())).map(c => ({
    id: c.id, displayName: c.displayName, balance: c.balance, settleCustomerId: mapQboCustomer(c, links, byName)
  }))

  // Payouts that reached the bank in the window: Settle's bank postings, the deposit postings, the deposits as QuickBooks has them.
  const since = new Date(`${today}T00:00:00Z`)
  since.setUTCDate(since.getUTCDate() - windowDays)
  const payoutRows = await db('payouts').where({ tenant_id: tenantId, status: 'paid' }).andWhere('arrival_date', '>=', since.toISOString().slice(0, 10))
    .select('id', 'processor_payout_ref', 'amount', 'currency', 'arrival_date', 'ledger_entry_id') as Array<{ id: string, processor_payout_ref: string, amount: number | string, currency: string, arrival_date: string | Date, ledger_entry_id: number | string | null }>
  const entryIds = payoutRows.map(p => p.ledger_entry_id).filter((id): id is number | string => id !== null)
  const bankRows = entryIds.length === 0
    ? []
    : await db('postings').where({ tenant_id: tenantId }).whereIn('entry_id', entryIds).andWhere('account_code', 'like', 'bank:%')
      .groupBy('entry_id', 'currency').select('entry_id', 'currency').sum({ total: 'amount' }) as Array<{ entry_id: number | string, currency: string, total: number | string }>
  const postingRows = payoutRows.length === 0
    ? []
    : await db('accounting_postings').where({ tenant_id: tenantId, source_kind: 'deposit' }).whereIn('source_id', payoutRows.map(p => p.id)) as Array<Record<string, unknown>>
  const payouts: PayoutView[] = []
  for (const p of payoutRows) {
    const currency = asCurrency(p.currency)
    const bank = p.ledger_entry_id === null ? null : bankRows.filter(b => String(b.entry_id) === String(p.ledger_entry_id) && b.currency === currency).reduce((s, b) => s + Number(b.total), 0)
    const postings = postingRows.filter(r => String(r.source_id) === p.id)
    // A posted one wins over an earlier failed attempt.
    const posting = postings.find(r => r.status === 'posted') ?? postings[0]
    const externalId = typeof posting?.external_id === 'string' && posting.external_id !== '' ? posting.external_id : null
    const lastError = typeof posting?.last_error === 'string' ? posting.last_error : typeof posting?.error === 'string' ? posting.error : null
    const deposit = posting?.status === 'posted' && externalId !== null ? await accounting.getDeposit({ id: externalId }) : null
    payouts.push({
      payoutId: p.id,
      processorPayoutRef: p.processor_payout_ref,
      currency,
      net: Number(p.amount),
      arrivalDate: isoDate(p.arrival_date) ?? today,
      bankPosting: bank,
      posting: posting === undefined ? null : { status: String(posting.status), externalId, lastError },
      qboDeposit: deposit === null ? null : { id: deposit.id, total: deposit.total, txnDate: deposit.txnDate }
    })
  }

  const result = compareTieout({ invoices: [...invoices.values()], customers, qboInvoices: [...qboOpen, ...found], qboCreditMemos: [...qboOpenCredits, ...foundCredits], qboCustomers, payouts, docNumberPrefix: prefix, today })
  const psaSynced = await db('sync_state').where({ tenant_id: tenantId }).max({ at: 'last_finished_at' }).first() as { at: Date | null } | undefined
  const byCause: Partial<Record<TieoutCause, number>> = {}
  for (const d of result.differences) byCause[d.cause] = (byCause[d.cause] ?? 0) + 1
  const summary = {
    date: today,
    byCause,
    invoicesCompared: invoices.size,
    qboOpenInvoices: qboOpen.length,
    qboOpenCreditMemos: qboOpenCredits.length,
    qboLookups: lookups.length + creditLookups.length,
    payoutsCompared: payouts.length,
    payoutWindowDays: windowDays,
    qboCalls: accounting.callsMade() - callsBefore,
    psaMirrorSyncedAt: psaSynced?.at ?? null
  }

  return await db.transaction(async trx => {
    let raised = 0
    const keys = new Set<string>()
    for (const d of result.differences) {
      keys.add(d.dedupeKey)
      const stored = await raiseException(trx, tenantId, {
        kind: 'tieout_difference',
        dedupeKey: d.dedupeKey,
        customerId: d.customerId,
        invoiceId: d.invoiceId,
        amount: d.difference,
        summary: d.summary,
        likelyCause: d.likelyCause,
        suggestedRepair: d.suggestedRepair,
        details: { cause: d.cause, subject: d.subject, payoutId: d.payoutId, figures: d.figures, runId: run.id, date: today }
      })
      if (stored.status === 'open') raised++
    }
    const cleared = await clearGone(trx, tenantId, keys, new Set(payouts.map(p => p.payoutId)), run.id, today)
    if (result.lines.length > 0) {
      await trx.batchInsert('tieout_lines', result.lines.map((l, n) => ({
        tenant_id: tenantId, run_id: run.id, line_no: n + 1, customer_id: l.customerId, name: l.name, currency: l.currency, psa: l.psa, settle: l.settle, qbo: l.qbo, differences: l.differences
      })), 500).transacting(trx)
    }
    const [row] = await trx('tieout_runs').where({ tenant_id: tenantId, id: run.id }).update({
      status: result.status,
      finished_at: trx.fn.now(),
      totals: JSON.stringify(result.totals),
      differences_count: result.differences.length,
      summary: JSON.stringify({ ...summary, exceptionsOpen: raised, exceptionsCleared: cleared })
    }).returning('*') as RunRow[]
    await audit(trx, tenantId, ACTOR, 'tieout.run', run.id, { status: result.status, differences: result.differences.length, cleared })
    return { run: toRun(row as RunRow), differences: result.differences, lines: result.lines, exceptionsRaised: raised, exceptionsCleared: cleared }
  })
}

/**
 * Open tie-out exceptions whose difference this run no longer finds are
 * resolved by the run. Their dedupe key gets the run id appended, so if the
 * same difference comes back later it opens a new exception instead of
 * hiding behind the resolved one. Payouts outside the window were not
 * compared, so their exceptions are left alone.
 */
async function clearGone (trx: Knex.Transaction, tenantId: string, found: ReadonlySet<string>, payoutsCompared: ReadonlySet<string>, runId: string, today: string): Promise<number> {
  const open = await trx('reconciliation_exceptions').where({ tenant_id: tenantId, kind: 'tieout_difference', status: 'open' }).andWhere('dedupe_key', 'like', 'tieout:%')
    .select('id', 'dedupe_key', 'details') as Array<{ id: string, dedupe_key: string, details: { subject?: { type?: string, id?: string } } }>
  const gone = open.filter(e => !found.has(e.dedupe_key) && (e.details.subject?.type !== 'payout' || payoutsCompared.has(e.details.subject.id ?? '')))
  for (const e of gone) {
    await trx('reconciliation_exceptions').where({ tenant_id: tenantId, id: e.id, status: 'open' }).update({
      status: 'resolved',
      resolution: `The tie-out of ${today} no longer finds this difference.`,
      resolved_by: ACTOR,
      resolved_at: trx.fn.now(),
      updated_at: trx.fn.now(),
      dedupe_key: `${e.dedupe_key}:cleared:${runId}`
    })
    await audit(trx, tenantId, ACTOR, 'exception.resolve', e.id, { runId, reason: 'difference gone' })
  }
  return gone.length
}

export async function latestTieoutRun (db: Db, tenantId: string): Promise<{ run: TieoutRun, lines: CustomerLine[] } | null> {
  requireTenantId(tenantId)
  // The latest finished run is the answer; one still running is shown beside it by the caller if wanted.
  const row = await db('tieout_runs').where({ tenant_id: tenantId }).whereNot('status', 'running').orderBy('started_at', 'desc').orderBy('finished_at', 'desc').first() as RunRow | undefined
  if (row === undefined) return null
  return { run: toRun(row), lines: await tieoutLines(db, tenantId, row.id) }
}

export async function getTieoutRun (db: Db, tenantId: string, runId: string): Promise<{ run: TieoutRun, lines: CustomerLine[] }> {
  requireTenantId(tenantId)
  const row = await db('tieout_runs').where({ tenant_id: tenantId, id: runId }).first() as RunRow | undefined
  if (row === undefined) throw new AppError('TIEOUT_NOT_FOUND', `No tie-out run ${runId} for this tenant.`)
  return { run: toRun(row), lines: await tieoutLines(db, tenantId, row.id) }
}

async function tieoutLines (db: Db, tenantId: string, runId: string): Promise<CustomerLine[]> {
  const rows = await db('tieout_lines').where({ tenant_id: tenantId, run_id: runId }).orderBy('line_no') as Array<{ customer_id: string | null, name: string, currency: string, psa: number | string, settle: number | string, qbo: number | string, differences: number }>
  return rows.map(r => ({ customerId: r.customer_id, name: r.name, currency: asCurrency(r.currency), psa: Number(r.psa), settle: Number(r.settle), qbo: Number(r.qbo), differences: r.differences }))
}
