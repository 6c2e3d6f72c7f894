import type { Knex } from 'knex'
import { listCustomers } from '../db/customers.js'
import { jobCounts, type JobState } from '../db/jobs.js'
import { listEntries, trialBalance } from '../db/ledger.js'
import type { Tenant } from '../db/tenants.js'
import { type Currency, type Money } from '../domain/money.js'

export interface CustomerReceivable { name: string, balance: Money, sharePct: number }

export interface LedgerOverview {
  tenant: Tenant
  receivables: Money
  atProcessor: Money
  inBank: Money
  fees: Money
  billed: Money
  customers: CustomerReceivable[]
  recent: Array<{ date: Date, kind: string, memo: string | null, amount: Money }>
  balanced: boolean
  jobs: Record<JobState, number>
}

/** The home page's figures, each read from the ledger rather than kept on the side. */
export async function ledgerOverview (db: Knex, tenant: Tenant): Promise<LedgerOverview> {
  const currency: Currency = tenant.defaultCurrency
  const [trial, customers, entries, jobs] = await Promise.all([
    trialBalance(db, tenant.id), listCustomers(db, tenant.id), listEntries(db, tenant.id, { limit: 8 }), jobCounts(db, tenant.id)
  ])
  const inCurrency = trial.accounts.filter(a => a.balance.currency === currency)
  const total = (match: (code: string) => boolean): Money =>
    ({ amount: inCurrency.filter(a => match(a.code)).reduce((s, a) => s + a.balance.amount, 0), currency })
  const names = new Map(customers.map(c => [c.id, c.name]))
  const receivables = total(code => code.startsWith('receivable:'))
  const owing = inCurrency
    .filter(a => a.code.startsWith('receivable:') && a.balance.amount !== 0 && a.customerId !== null)
    .map(a => ({ name: names.get(a.customerId ?? '') ?? 'Unknown customer', balance: a.balance }))
    .sort((a, b) => b.balance.amount - a.balance.amount)
  const largest = owing[0]?.balance.amount ?? 1
  return {
    tenant,
    receivables,
    atProcessor: total(code => code.startsWith('processor:')),
    inBank: total(code => code.startsWith('bank:')),
    fees: total(code => code === 'fees:processor'),
    billed: { amount: -total(code => code === 'billed').amount, currency },
    customers: owing.map(o => ({ ...o, sharePct: Math.max(2, Math.round((o.balance.amount / largest) * 100)) })),
    recent: entries.map(e => ({
      date: e.effectiveAt,
      kind: e.kind,
      memo: e.memo,
      // The size of an event is what moved: the sum of its debits.
      amount: { amount: e.postings.filter(p => p.amount.amount > 0 && p.amount.currency === currency).reduce((s, p) => s + p.amount.amount, 0), currency }
    })),
    balanced: trial.totals.every(t => t.amount === 0),
    jobs
  }
}
