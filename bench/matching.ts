import { performance } from 'node:perf_hooks'
import { matchBatch, type CustomerView, type OpenInvoiceView, type OutsidePaymentView } from '../src/domain/matching.js'
import { note, withScratchDatabase } from './lib.js'
import { migrateLatest } from '../src/db/migrate.js'
import { qboRequestsPerPayment } from './qbo-requests.js'

/**
 * Matching money collected elsewhere, in memory (the pure engine, no
 * database): N outside payments against N open invoices over C customers,
 * generated deterministically with known truth and noise (memo typos, fees
 * deducted, split payments, same-amount pairs, no memo, unknown payers).
 * Baseline: an exact hash join of memo tokens on invoice numbers, same data,
 * same run. Precision/recall are of AUTO-applied matches against the truth.
 */
const N = Number(process.env.BENCH_N ?? 100_000)
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 2_000)
/** Payments posted to the QuickBooks stand-in for the calls-per-payment figure. */
const QBO_PAYMENTS = Number(process.env.BENCH_QBO_PAYMENTS ?? 300)

function prng (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (s + 0x6D2B79F5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296 }
}

interface Generated { invoices: OpenInvoiceView[], customers: CustomerView[], payments: OutsidePaymentView[], truth: Map<string, string> }

export function generate (n: number, customerCount: number, seed = 42): Generated {
  const rnd = prng(seed)
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1))
  const customers: CustomerView[] = Array.from({ length: customerCount }, (_, k) => ({
    id: `c${k}`, name: `Customer ${k} Inc.`, aliases: k % 5 === 0 ? [`CUST${k} SERVICES`] : [], bankAccounts: k % 3 === 0 ? [`acct-${k}`] : []
  }))
  const perCustomer = Math.ceil(n / customerCount)
  const invoices: OpenInvoiceView[] = Array.from({ length: n }, (_, j) => {
    const due = new Date(Date.UTC(2026, 8, 1) + int(0, 80) * 86_400_000).toISOString().slice(0, 10)
    return { id: `i${j}`, customerId: `c${Math.floor(j / perCustomer)}`, number: String(100_000 + j), poNumber: j % 7 === 0 ? `PO-${j}` : null, openBalance: int(20_00, 5_000_00), currency: 'USD', dueOn: due }
  })
  const payments: OutsidePaymentView[] = []
  const truth = new Map<string, string>()
  let cursor = 0
  const payer = (c: string): { payer: string | null, bankAccount: string | null } => {
    const k = Number(c.slice(1))
    if (k % 3 === 0) return { payer: null, bankAccount: `acct-${k}` }
    if (k % 5 === 0) return { payer: `cust${k} services`, bankAccount: null }
    return { payer: `CUSTOMER ${k}, LLC`, bankAccount: null }
  }
  const typo = (num: string): string => {
    const at = int(0, num.length - 1)
    return rnd() < 0.5 ? num.slice(0, at) + String((Number(num[at]) + 1) % 10) + num.slice(at + 1) : num.slice(0, at) + num.slice(at + 1)
  }
  for (let i = 0; i < n; i++) {
    const id = `p${i}`
    const roll = rnd()
    const inv = invoices[cursor]
    const base = { id, receivedOn: '2026-11-15', customerId: null, currency: 'USD' }
    if (inv === undefined || roll < 0.06) {
      // Unknown payer, no usable memo: nothing to match (truth: none).
      payments.push({ ...base, amount: { amount: int(10_00, 9_000_00), currency: 'USD' }, memo: rnd() < 0.5 ? null : 'ACH DEPOSIT', payer: 'ACH CREDIT', bankAccount: null })
      continue
    }
    const who = payer(inv.customerId)
    const next = invoices[cursor + 1]
    const sameCustomerNext = next !== undefined && next.customerId === inv.customerId
    if (roll < 0.56) {
      payments.push({ ...base, amount: { amount: inv.openBalance, currency: 'USD' }, memo: rnd() < 0.5 ? `INV-${inv.number}` : `Payment for invoice #${inv.number} thanks`, ...who })
      truth.set(id, inv.id); cursor += 1
    } else if (roll < 0.66) {
      payments.push({ ...base, amount: { amount: inv.openBalance, currency: 'USD' }, memo: `inv ${typo(inv.number)}`, ...who })
      truth.set(id, inv.id); cursor += 1
    } else if (roll < 0.74) {
      const fee = Math.min(2500, Math.max(1, Math.floor(inv.openBalance * 0.01)))
      payments.push({ ...base, amount: { amount: inv.openBalance - fee, currency: 'USD' }, memo: `WIRE REF ${inv.number}`, ...who })
      truth.set(id, inv.id); cursor += 1
    } else if (roll < 0.86) {
      payments.push({ ...base, amount: { amount: inv.openBalance, currency: 'USD' }, memo: null, ...who })
      truth.set(id, inv.id); cursor += 1
    } else if (roll < 0.92 && sameCustomerNext) {
      const take = invoices[cursor + 2]?.customerId === inv.customerId && rnd() < 0.5 ? 3 : 2
      const set = invoices.slice(cursor, cursor + take)
      const total = set.reduce((s, x) => s + x.openBalance, 0)
      payments.push({ ...base, amount: { amount: total, currency: 'USD' }, memo: rnd() < 0.5 ? set.map(x => x.number).join(', ') : null, ...who })
      truth.set(id, set.map(x => x.id).sort().join(',')); cursor += take
    } else if (sameCustomerNext) {
      // Same-amount pair, no memo: either could be meant; the engine must not guess.
      next.openBalance = inv.openBalance
      payments.push({ ...base, amount: { amount: inv.openBalance, currency: 'USD' }, memo: null, ...who })
      truth.set(id, inv.id); cursor += 2
    } else {
      payments.push({ ...base, amount: { amount: inv.openBalance, currency: 'USD' }, memo: inv.number, ...who })
      truth.set(id, inv.id); cursor += 1
    }
  }
  return { invoices, customers, payments, truth }
}

function baseline (g: Generated): number {
  const byNumber = new Map(g.invoices.map(i => [i.number, i]))
  let hits = 0
  for (const p of g.payments) {
    if (p.memo === null) continue
    for (const token of p.memo.split(/[\s,#-]+/)) if (byNumber.get(token)?.openBalance === p.amount.amount) { hits++; break }
  }
  return hits
}

export async function run (): Promise<Record<string, unknown>> {
  note(`matching: ${N} outside payments × ${N} open invoices over ${CUSTOMERS} customers, in memory`)
  const g = generate(N, CUSTOMERS)
  const t0 = performance.now()
  const baseHits = baseline(g)
  const baselineSeconds = (performance.now() - t0) / 1000
  const t1 = performance.now()
  const results = matchBatch(g.payments, g.invoices, g.customers)
  const seconds = (performance.now() - t1) / 1000
  let auto = 0
  let correct = 0
  for (const r of results) {
    if (r.decision.kind !== 'auto') continue
    auto++
    if (r.decision.candidate.applications.map(a => a.invoiceId).sort().join(',') === g.truth.get(r.paymentId)) correct++
  }
  const precision = auto === 0 ? 1 : correct / auto
  const recall = correct / g.truth.size
  const queued = results.length - auto
  note(`auto ${auto}, correct ${correct}, queued ${queued}, truth ${g.truth.size}; baseline hash join found ${baseHits}`)
  note(`${Math.round(N / seconds)} payments matched/s; ${(seconds / baselineSeconds).toFixed(1)}× the baseline`)
  const round = (x: number, d = 4): number => Math.round(x * 10 ** d) / 10 ** d
  // Measured, not computed: HTTP requests the QuickBooks stand-in receives while syncNow posts matched payments and their payout.
  const qbo = await withScratchDatabase(2, async db => { await migrateLatest(db); return await qboRequestsPerPayment(db, QBO_PAYMENTS) })
  note(`QuickBooks: ${qbo.requests} HTTP requests at the stand-in for ${qbo.payments} payments and ${qbo.deposits} deposit`)
  return { bench: 'matching', seconds: round(seconds, 3), baseline_seconds: round(baselineSeconds, 3), precision: round(precision), recall: round(recall), qbo_calls_per_payment: round(qbo.perPayment), qbo_requests: qbo.requests, qbo_payments: qbo.payments }
}
