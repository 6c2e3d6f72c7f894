import t from 'tap'
import { testDb } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { dbCallBudget } from '../../src/db/call-budget.js'

t.test('the shared PSA call budget', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const other = await makeTenant(db)

  await t.test('two budget instances (two processes) draw from one bucket', async t => {
    const a = dbCallBudget(db, { tenantId: tenant.id, system: 'autotask', perHour: 10, maxWaitMs: 0 })
    const b = dbCallBudget(db, { tenantId: tenant.id, system: 'autotask', perHour: 10, maxWaitMs: 0 })
    for (let i = 0; i < 5; i++) { await a.take(); await b.take() }
    await t.rejects(a.take(), { code: 'RATE_BUDGET_EXHAUSTED' }, 'the 11th call in the hour is refused')
    await t.rejects(b.take(), { code: 'RATE_BUDGET_EXHAUSTED' })
    t.equal(await a.used(), 10)
  })

  await t.test('concurrent takers never overspend', async t => {
    const budget = dbCallBudget(db, { tenantId: other.id, system: 'autotask', perHour: 25, maxWaitMs: 0 })
    const outcomes = await Promise.allSettled(Array.from({ length: 40 }, async () => { await budget.take() }))
    t.equal(outcomes.filter(o => o.status === 'fulfilled').length, 25)
  })

  await t.test('a caller waits for the refill when it may', async t => {
    const slept: number[] = []
    // 10 calls a second: after draining, 5 more need about 500 ms, far more than
    // can pass between two statements, so the wait is certain even on a busy machine.
    const budget = dbCallBudget(db, { tenantId: tenant.id, system: 'connectwise', perHour: 36_000, maxWaitMs: 10_000, sleep: async ms => { slept.push(ms); await new Promise(resolve => setTimeout(resolve, ms)) } })
    await budget.take(36_000) // drain
    await budget.take(5)
    t.ok(slept.length >= 1 && slept.every(ms => ms > 0 && ms <= 500), `waited briefly for the refill (${slept.join(', ')} ms)`)
  })
  // QuickBooks: bursts of 10, refilled at 490/min. A clock both budgets share,
  // moved only by their sleeps, makes every wait and refill exact.
  const qbo = (tenantId: string, clock: { ms: number }, slept: number[] = [], maxWaitMs = 0): ReturnType<typeof dbCallBudget> =>
    dbCallBudget(db, { tenantId, system: 'quickbooks', capacity: 10, refillPerMinute: 490, maxWaitMs, now: () => clock.ms, sleep: async ms => { slept.push(ms); clock.ms += ms } })

  await t.test('QuickBooks: a burst of 10, then callers wait for the refill', async t => {
    const q = await makeTenant(db)
    const clock = { ms: Date.parse('2026-12-03T10:00:00Z') }
    const budget = qbo(q.id, clock)
    for (let i = 0; i < 10; i++) await budget.take()
    const refused = await budget.take().then(() => null, (e: Error & { code?: string }) => e)
    t.equal(refused?.code, 'RATE_BUDGET_EXHAUSTED', 'the 11th call at the same instant is refused')
    t.match(refused?.message, /quickbooks call budget \(490\/minute, bursts of 10\)/, 'the message names the per-minute rate and the burst')
    await t.rejects(budget.take(11), /11 calls at once exceed/, 'more than the burst can never be granted')

    const slept: number[] = []
    const waiting = qbo(q.id, clock, slept, 10_000)
    await waiting.take(5)
    t.same(slept, [Math.ceil(5 / (490 / 60_000))], '5 calls wait 5/490 of a minute (613 ms)')
  })

  await t.test('QuickBooks: refills at 490 a minute and never holds more than 10', async t => {
    const q = await makeTenant(db)
    const clock = { ms: Date.parse('2026-12-03T10:00:00Z') }
    const budget = qbo(q.id, clock)
    for (let i = 0; i < 10; i++) await budget.take()
    clock.ms += 60_000 / 490 * 4 + 1 // 4 tokens and a bit
    for (let i = 0; i < 4; i++) await budget.take()
    await t.rejects(budget.take(), { code: 'RATE_BUDGET_EXHAUSTED' }, 'a 5th is not back yet')
    clock.ms += 10 * 60_000 // idle for ten minutes
    for (let i = 0; i < 10; i++) await budget.take()
    await t.rejects(budget.take(), { code: 'RATE_BUDGET_EXHAUSTED' }, 'an idle bucket holds 10, not 4,900')
  })

  await t.test('QuickBooks: two processes share one bucket and together stay inside the limit', async t => {
    const q = await makeTenant(db)
    const clock = { ms: Date.parse('2026-12-03T10:00:00Z') }
    const a = qbo(q.id, clock)
    const b = qbo(q.id, clock)
    const at = await Promise.allSettled(Array.from({ length: 30 }, async (_, i) => { await (i % 2 === 0 ? a : b).take() }))
    t.equal(at.filter(o => o.status === 'fulfilled').length, 10, 'concurrent takers from both get the burst of 10 between them')

    // A minute of both taking as fast as they may: within 500, the QBO limit.
    const start = clock.ms - 1 // the burst above counts towards this minute
    const patientA = qbo(q.id, clock, [], 60_000)
    const patientB = qbo(q.id, clock, [], 60_000)
    let calls = 10
    for (let i = 0; ; i++) {
      await (i % 2 === 0 ? patientA : patientB).take()
      if (clock.ms - start > 60_000) break
      calls++
    }
    t.ok(calls <= 500 && calls >= 495, `${calls} calls in the first minute`)
    t.equal(await a.used(), calls + 1, 'every call counted once in the shared row')
  })
})
