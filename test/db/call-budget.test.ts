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
})
