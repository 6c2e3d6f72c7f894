import type { Knex } from 'knex'
import { listCustomers } from '../db/customers.js'
import { OPEN_BALANCE_SQL } from '../db/invoices.js'
import { allocationsByAttempt } from '../db/payments.js'
import { jobCounts, type JobState } from '../db/jobs.js'
import { listEntries, trialBalance } from '../db/ledger.js'
import { getSyncState, listPsaConnections, listSyncRuns, type SyncRun } from '../db/psa.js'
import type { Tenant } from '../db/tenants.js'
import { asCurrency, type Currency, type Money } from '../domain/money.js'
import { classifyFailure } from '../domain/retry-policy.js'
import { capitalised, invoiceLabel } from './charge.js'
import { getAccountingConnection } from './accounting-connections.js'
import { listPostings } from '../db/accounting-postings.js'
import { listPayouts } from '../db/payouts.js'
import { latestTieoutRun } from './tieout.js'
import { listExceptions } from '../db/reconciliation-exceptions.js'

export interface AgingBucket { label: string, amount: Money, count: number, heightPct: number }

export interface SyncPanel {
  system: string
  title: string
  running: boolean
  lastRun: SyncRun | null
  lastError: string | null
}

export interface AttemptLine {
  when: Date
  client: string
  /** "Invoice 1001", or "Invoices 1001 and 1002" for a statement payment. */
  invoices: string
  method: string
  amount: Money
  status: 'succeeded' | 'processing' | 'failed' | 'unknown' | 'created' | 'refunded' | 'disputed'
  label: string
  detail: string | null
  trigger: string
}

export interface CollectionPanel {
  connected: boolean
  collected: Money
  enrolled: number
  processing: number
  retriesScheduled: number
  approvalsWaiting: number
  attempts: AttemptLine[]
}

export interface LedgerOverview {
  tenant: Tenant
  receivables: Money
  overdue: Money
  collectedElsewhere: Money
  invoiceCount: number
  openInvoiceCount: number
  aging: AgingBucket[]
  customers: Array<{ name: string, balance: Money, sharePct: number }>
  recent: Array<{ date: Date, kind: string, memo: string | null, amount: Money }>
  balanced: boolean
  syncing: boolean
  syncs: SyncPanel[]
  jobs: Record<JobState, number>
  collection: CollectionPanel
}

/** A PSA sync is queued and due, or running: the page refreshes itself until it lands. */
async function syncDueNow (db: Knex, tenantId: string): Promise<boolean> {
  const due = await db('jobs').where({ tenant_id: tenantId }).where('queue', 'like', 'psa.sync%').whereIn('state', ['pending', 'running'])
    .where('run_at', '<=', new Date()).first('id')
  return due !== undefined
}

const TRIGGERS: Record<string, string> = { charge_card: 'Charge card', autopay: 'Auto-pay', retry: 'Retry', checkout: 'Pay link' }

/** Recent payment attempts and auto-pay state, in words a finance lead reads at a glance. */
async function collectionPanel (db: Knex, tenant: Tenant): Promise<CollectionPanel> {
  const currency = tenant.defaultCurrency
  const rows = await db('payment_attempts as a')
    .join('customers as c', function () { this.on('c.tenant_id', 'a.tenant_id').andOn('c.id', 'a.customer_id') })
    .join('payment_methods as m', function () { this.on('m.tenant_id', 'a.tenant_id').andOn('m.id', 'a.payment_method_id') })
    .where('a.tenant_id', tenant.id).orderBy('a.created_at', 'desc').limit(10)
    .select('a.id', 'a.created_at', 'a.amount', 'a.currency', 'a.status', 'a.trigger', 'a.failure_code', 'a.decline_code', 'a.advice_code', 'a.failure_class', 'c.name', 'm.type', 'm.brand', 'm.last4') as Array<Record<string, string | number | Date | null>>
  // Every invoice each attempt paid: one, or several for a statement payment.
  const paid = await allocationsByAttempt(db, tenant.id, rows.map(r => String(r.id)))
  const attempts: AttemptLine[] = rows.map(r => {
    const status = r.status as AttemptLine['status']
    const verdict = status === 'failed' ? classifyFailure({ method: r.type === 'ach' ? 'ach' : 'card', code: r.failure_code as string | null, declineCode: r.decline_code as string | null, adviceCode: r.advice_code as string | null }) : null
    const label = status === 'succeeded' ? 'Paid' : status === 'processing' ? 'Processing' : status === 'failed'
      ? (verdict?.class === 'retry_later' ? 'Declined · will retry' : verdict?.class === 'needs_client' ? 'Needs the client' : 'Declined · do not retry')
      : status === 'unknown' || status === 'created' ? 'Checking with Stripe' : status === 'refunded' ? 'Refunded' : 'Disputed'
    const brand = typeof r.brand === 'string' ? capitalised(r.brand) : r.type === 'ach' ? 'Bank' : 'Card'
    return {
      when: r.created_at as Date,
      client: String(r.name),
      invoices: capitalised(invoiceLabel((paid.get(String(r.id)) ?? []).map(a => a.invoiceNumber))),
      method: `${brand} ····${String(r.last4)}`,
      amount: { amount: Number(r.amount), currency: asCurrency(String(r.currency)) },
      status,
      label,
      detail: verdict === null ? (status === 'processing' ? 'ACH debits take up to 4 business days to clear.' : null) : verdict.explanation,
      trigger: TRIGGERS[String(r.trigger)] ?? String(r.trigger)
    }
  })
  const count = async (query: Knex.QueryBuilder): Promise<number> => Number(((await query.count('* as n')) as Array<{ n: number | string }>)[0]?.n ?? 0)
  const [collected] = await db('payment_attempts').where({ tenant_id: tenant.id, status: 'succeeded', currency }).sum({ total: 'amount' }) as Array<{ total: number | string | null }>
  return {
    connected: await db('tenant_secrets').where({ tenant_id: tenant.id, name: 'stripe.secret_key' }).first('name') !== undefined,
    collected: { amount: Number(collected?.total ?? 0), currency },
    enrolled: await count(db('autopay_rules').where({ tenant_id: tenant.id, enrolled: true }).whereNotNull('customer_id')),
    processing: await count(db('payment_attempts').where({ tenant_id: tenant.id, status: 'processing' })),
    retriesScheduled: await count(db('jobs').where({ tenant_id: tenant.id, queue: 'payments.retry', state: 'pending' })),
    approvalsWaiting: await count(db('autopay_approvals').where({ tenant_id: tenant.id, status: 'pending' })),
    attempts
  }
}

const BUCKETS = [
  { label: 'Current', min: Number.NEGATIVE_INFINITY, max: 0 },
  { label: '1–30 days', min: 1, max: 30 },
  { label: '31–60 days', min: 31, max: 60 },
  { label: '61–90 days', min: 61, max: 90 },
  { label: '90+ days', min: 91, max: Number.POSITIVE_INFINITY }
] as const

const TITLES: Record<string, string> = { connectwise: 'ConnectWise PSA', autotask: 'Autotask PSA' }

/** The overview page's figures, every one from Settle's ledger (and the invoice rows kept with it), never kept on the side. */
export async function ledgerOverview (db: Knex, tenant: Tenant, today: Date): Promise<LedgerOverview> {
  const currency: Currency = tenant.defaultCurrency
  const trial = await trialBalance(db, tenant.id)
  const customers = await listCustomers(db, tenant.id)
  const entries = await listEntries(db, tenant.id, { limit: 8 })
  const jobs = await jobCounts(db, tenant.id)
  const inCurrency = trial.accounts.filter(a => a.balance.currency === currency)
  const total = (match: (code: string) => boolean): Money =>
    ({ amount: inCurrency.filter(a => match(a.code)).reduce((s, a) => s + a.balance.amount, 0), currency })
  const names = new Map(customers.map(c => [c.id, c.name]))
  const owing = inCurrency
    .filter(a => a.code.startsWith('receivable:') && a.balance.amount > 0 && a.customerId !== null)
    .map(a => ({ name: names.get(a.customerId ?? '') ?? 'Unknown customer', balance: a.balance }))
    .sort((a, b) => b.balance.amount - a.balance.amount)
    .slice(0, 10)
  const largest = owing[0]?.balance.amount ?? 1

  // Days past due per invoice Settle's ledger holds open, bucketed in SQL so the page stays fast on large tenants.
  // The ledger, not the PSA's balance: the buckets then add up to the receivables above them, also while a
  // push-back is on its way to the PSA.
  const day = today.toISOString().slice(0, 10)
  const open = await db('invoices')
    .where({ tenant_id: tenant.id, currency })
    .whereRaw(`${OPEN_BALANCE_SQL} <> 0`)
    .select(db.raw('coalesce(?::date - due_on, 0) as days_late', [day]), db.raw(`sum(${OPEN_BALANCE_SQL}) as amount`), db.raw('count(*) as n'))
    .groupByRaw('1') as Array<{ days_late: number, amount: number | string, n: number | string }>
  const aging = BUCKETS.map(b => {
    const rows = open.filter(r => Number(r.days_late) >= b.min && Number(r.days_late) <= b.max)
    return { label: b.label, amount: { amount: rows.reduce((s, r) => s + Number(r.amount), 0), currency }, count: rows.reduce((s, r) => s + Number(r.n), 0), heightPct: 0 }
  })
  const tallest = Math.max(1, ...aging.map(b => b.amount.amount))
  for (const b of aging) b.heightPct = b.amount.amount <= 0 ? 0 : Math.max(2, Math.round((b.amount.amount / tallest) * 100))
  const [counts] = await db('invoices').where({ tenant_id: tenant.id })
    .select(db.raw('count(*) as n'), db.raw("count(*) filter (where status in ('open','partially_paid')) as open")) as Array<{ n: number | string, open: number | string }>

  const syncs: SyncPanel[] = []
  for (const connection of await listPsaConnections(db, { tenantId: tenant.id })) {
    const state = await getSyncState(db, tenant.id, connection.system)
    const [lastRun] = await listSyncRuns(db, tenant.id, { system: connection.system, limit: 1 })
    syncs.push({
      system: connection.system,
      title: TITLES[connection.system] ?? connection.system,
      running: state?.lastStatus === 'running',
      lastRun: lastRun ?? null,
      lastError: state?.lastStatus === 'failed' ? state.lastError : null
    })
  }
  return {
    tenant,
    receivables: total(code => code.startsWith('receivable:')),
    overdue: { amount: aging.slice(1).reduce((s, b) => s + b.amount.amount, 0), currency },
    collectedElsewhere: total(code => code.startsWith('collected_elsewhere:')),
    invoiceCount: Number(counts?.n ?? 0),
    openInvoiceCount: Number(counts?.open ?? 0),
    aging,
    customers: owing.map(o => ({ ...o, sharePct: Math.max(2, Math.round((o.balance.amount / largest) * 100)) })),
    recent: entries.map(e => ({
      date: e.effectiveAt,
      kind: e.kind,
      memo: e.memo,
      // An event's size is its largest debit (a payment's gross, not gross plus fee).
      amount: { amount: Math.max(0, ...e.postings.filter(p => p.amount.currency === currency).map(p => p.amount.amount)), currency }
    })),
    balanced: trial.totals.every(t => t.amount === 0),
    // A first sync is queued but has not started yet, or one is running.
    syncing: syncs.some(s => s.running || s.lastRun === null) || await syncDueNow(db, tenant.id),
    syncs,
    jobs,
    collection: await collectionPanel(db, tenant)
  }
}

export interface ReconciliationPanel {
  books: { connected: boolean, status: string | null, companyName: string | null, lastError: string | null }
  postings: { posted: number, pending: number, failed: number, latest: Array<{ kind: string, docType: string | null, externalId: string | null, amount: Money, postedAt: Date | null }> }
  payouts: Array<{ ref: string, arrivalDate: string | null, status: string, amount: Money, fees: Money, deposit: string | null }>
  tieout: { status: string, finishedAt: Date | null, differences: number } | null
  exceptions: { open: number, top: Array<{ kind: string, summary: string, amount: Money | null }> }
}

/** The loop's last leg for the overview: books connection, postings, payouts with their deposits, the tie-out and the exception queue. */
export async function reconciliationOverview (db: Knex, tenantId: string): Promise<ReconciliationPanel> {
  const connection = await getAccountingConnection(db, tenantId)
  const postings = await listPostings(db, tenantId)
  const payouts = await listPayouts(db, tenantId, { limit: 5 })
  const deposits = new Map(postings.filter(p => p.sourceKind === 'deposit').map(p => [p.sourceId, p]))
  const tieout = await latestTieoutRun(db, tenantId)
  const open = await listExceptions(db, tenantId, { status: 'open', limit: 200 })
  return {
    books: { connected: connection !== null && connection.status !== 'disconnected', status: connection?.status ?? null, companyName: connection?.companyName ?? null, lastError: connection?.lastError ?? null },
    postings: {
      posted: postings.filter(p => p.status === 'posted').length,
      pending: postings.filter(p => p.status === 'pending').length,
      failed: postings.filter(p => p.status === 'failed').length,
      latest: postings.filter(p => p.status === 'posted')
        .sort((a, b) => (b.postedAt?.getTime() ?? 0) - (a.postedAt?.getTime() ?? 0)).slice(0, 6)
        .map(p => ({ kind: p.sourceKind, docType: p.externalType, externalId: p.externalId, amount: p.amount, postedAt: p.postedAt }))
    },
    payouts: payouts.map(p => ({
      ref: p.processorPayoutRef,
      arrivalDate: p.arrivalDate,
      status: p.status,
      amount: p.amount,
      fees: p.fees,
      deposit: deposits.get(p.id)?.externalId ?? null
    })),
    tieout: tieout === null ? null : { status: tieout.run.status, finishedAt: tieout.run.finishedAt, differences: tieout.run.differencesCount },
    exceptions: { open: open.length, top: open.slice(0, 5).map(e => ({ kind: e.kind.replace(/_/g, ' '), summary: e.summary, amount: e.amount })) }
  }
}
