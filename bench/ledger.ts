import { migrateLatest } from '../src/db/migrate.js'
import { createTenant } from '../src/db/tenants.js'
import { upsertCustomer } from '../src/db/customers.js'
import { postEntry } from '../src/db/ledger.js'
import { Accounts, type PostingInput } from '../src/domain/ledger.js'
import { money } from '../src/domain/money.js'
import { BENCH_SERVER, median, note, throughput, withScratchDatabase } from './lib.js'

/**
 * Settling N payments: each its own transaction with one balanced entry of
 * 2–4 postings and one outbox job, from 4 concurrent writers. Baseline: plain
 * single-row INSERT transactions from the same 4 writers on the same pool.
 * Commits are fsync-bound, so the ratio is the measure; rounds alternate to
 * share the machine's noise, and the median round is reported.
 */
const N = Number(process.env.BENCH_N ?? 2000)
const WRITERS = 4
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

export async function run (): Promise<Record<string, unknown>> {
  note(`ledger: ${N} settlements × ${ROUNDS} rounds, ${WRITERS} writers, PostgreSQL at ${new URL(BENCH_SERVER).host}`)
  return await withScratchDatabase(WRITERS, async db => {
    await migrateLatest(db)
    await db.schema.createTable('bench_baseline', t => { t.bigIncrements('id'); t.text('ref'); t.bigInteger('amount') })
    const tenant = await createTenant(db, { slug: 'bench', name: 'Bench MSP' })
    const customers = await Promise.all(Array.from({ length: 50 }, async (_, i) => await upsertCustomer(db, tenant.id, { name: `Client ${i}`, psaSystem: 'connectwise', psaCompanyId: String(i) })))
    const usd = (cents: number): ReturnType<typeof money> => money(cents, 'USD')
    const settlement = (i: number, round: number): PostingInput[] => {
      const customer = customers[i % customers.length]!
      const gross = 10_000 + (i % 997) * 13
      const postings: PostingInput[] = [
        { account: Accounts.processorPending('stripe'), amount: usd(gross) },
        { account: Accounts.receivable(customer.id), amount: usd(-gross) }
      ]
      // Mix of 2, 3 and 4 postings: plain payment, payment with surcharge, payment with fee.
      if (i % 3 === 1) {
        postings[0] = { account: Accounts.processorPending('stripe'), amount: usd(gross + 300) }
        postings.push({ account: Accounts.surchargeIncome(), amount: usd(-300) })
      } else if (i % 3 === 2) {
        const fee = Math.round(gross * 0.029) + 30
        postings.push({ account: Accounts.processorFees(), amount: usd(fee) }, { account: Accounts.processorPending('stripe'), amount: usd(-fee) })
      }
      void round
      return postings
    }
    // Warm up pools, plans and account rows.
    for (let i = 0; i < 50; i++) {
      await postEntry(db, tenant.id, { idempotencyKey: `warm-${i}`, kind: 'payment.succeeded', effectiveAt: new Date(), postings: settlement(i, -1) })
    }
    const baselines: number[] = []
    const ledgers: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      baselines.push(await throughput(N, WRITERS, async i => {
        await db.transaction(async trx => { await trx('bench_baseline').insert({ ref: `r${round}-${i}`, amount: i }) })
      }))
      ledgers.push(await throughput(N, WRITERS, async i => {
        await postEntry(db, tenant.id, {
          idempotencyKey: `stripe:pi_${round}_${i}`,
          kind: 'payment.succeeded',
          effectiveAt: new Date(),
          postings: settlement(i, round)
        }, { effects: [{ queue: 'qbo.post-payment', payload: { payment: `pi_${round}_${i}` } }] })
      }))
      note(`round ${round + 1}: baseline ${baselines[round]}/s, ledger ${ledgers[round]}/s`)
    }
    const [entries] = await db('journal_entries').count('* as n') as Array<{ n: number }>
    const [jobs] = await db('jobs').count('* as n') as Array<{ n: number }>
    if (Number(entries?.n) !== 50 + N * ROUNDS || Number(jobs?.n) !== N * ROUNDS) throw new Error('bench wrote the wrong number of rows')
    const entriesPerS = median(ledgers)
    const baselinePerS = median(baselines)
    return { bench: 'ledger', entries_per_s: entriesPerS, baseline_per_s: baselinePerS, ratio: Math.round((entriesPerS / baselinePerS) * 100) / 100 }
  })
}
