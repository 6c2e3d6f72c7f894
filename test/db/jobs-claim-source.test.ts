import t from 'tap'
import { testDb } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { claimJobs, claimSourceJobs, completeJob, enqueue, failJob } from '../../src/db/jobs.js'

t.test('claimSourceJobs: a pending job is claimed, a held one is busy, a source without a live job gets a claimed job of its own', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const q = 'qbo.post-payment'
  const claim = async (workerId: string, ids: string[]): ReturnType<typeof claimSourceJobs> =>
    await claimSourceJobs(db, tenant.id, { queue: q, payloadKey: 'attemptId', sources: ids.map(id => ({ value: id, payload: { attemptId: id } })), dedupePrefix: 'qbo-payment-now', workerId, leaseMs: 60_000 })
  await enqueue(db, tenant.id, [
    { queue: q, dedupeKey: 'qbo-payment:a', payload: { attemptId: 'a' }, runAt: new Date(Date.now() + 3_600_000) },
    { queue: q, dedupeKey: 'qbo-payment:b', payload: { attemptId: 'b' } },
    { queue: q, dedupeKey: 'qbo-payment:d', payload: { attemptId: 'd' } }
  ])
  await db('jobs').where({ tenant_id: tenant.id, dedupe_key: 'qbo-payment:d' }).update({ state: 'done' })
  const [held] = await claimJobs(db, { workerId: 'w1', limit: 1, leaseMs: 60_000, queues: [q] })
  t.equal(held?.payload.attemptId, 'b', 'a worker holds b')

  const first = await claim('sync-1', ['a', 'b', 'c', 'd'])
  t.same([...first.claimed.keys()].sort(), ['a', 'c', 'd'])
  t.same([...first.busy], ['b'])
  t.match(first.claimed.get('a'), [{ state: 'running', lockedBy: 'sync-1', attempts: 1, dedupeKey: 'qbo-payment:a' }], 'pending, even if not due yet')
  t.match(first.claimed.get('c'), [{ state: 'running', lockedBy: 'sync-1', dedupeKey: 'qbo-payment-now:c', payload: { attemptId: 'c' } }])
  t.match(first.claimed.get('d'), [{ dedupeKey: 'qbo-payment-now:d' }], 'a done job is history: a fresh claim')

  const second = await claim('sync-2', ['a', 'b', 'c', 'd'])
  t.same(second.claimed.size, 0, 'a second in-line runner gets nothing')
  t.same([...second.busy].sort(), ['a', 'b', 'c', 'd'])
  t.same(await claimJobs(db, { workerId: 'w2', limit: 10, leaseMs: 60_000, queues: [q] }), [], 'nor does a worker')

  // Settled: done rows are reused by the next claim; a pending one (retry later) is claimed as it is.
  t.ok(await completeJob(db, first.claimed.get('c')![0]!, 'sync-1'))
  t.equal(await failJob(db, first.claimed.get('a')![0]!, 'sync-1', 'later', new Date(Date.now() + 60_000)), 'pending')
  const third = await claim('sync-3', ['a', 'c'])
  t.match(third.claimed.get('c'), [{ dedupeKey: 'qbo-payment-now:c', attempts: 1, lockedBy: 'sync-3' }])
  t.match(third.claimed.get('a'), [{ dedupeKey: 'qbo-payment:a', attempts: 2 }])
  t.equal(await db('jobs').where({ tenant_id: tenant.id }).count('* as n').first().then(r => Number((r as { n: string }).n)), 5, 'no row per press')
})

t.test('claimSourceJobs: two live jobs for one source, one held by a worker: ours is handed back, the source is busy', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const q = 'qbo.post-payment'
  await enqueue(db, tenant.id, [{ queue: q, dedupeKey: 'qbo-payment:a', payload: { attemptId: 'a' } }])
  await claimJobs(db, { workerId: 'w1', limit: 1, leaseMs: 60_000, queues: [q] })
  await enqueue(db, tenant.id, [{ queue: q, dedupeKey: 'qbo-payment:a:linked:7', payload: { attemptId: 'a' } }])
  const out = await claimSourceJobs(db, tenant.id, { queue: q, payloadKey: 'attemptId', sources: [{ value: 'a', payload: { attemptId: 'a' } }], dedupePrefix: 'qbo-payment-now', workerId: 's', leaseMs: 60_000 })
  t.same(out.claimed.size, 0)
  t.same([...out.busy], ['a'])
  t.match(await db('jobs').where({ tenant_id: tenant.id }).orderBy('id').select('state', 'attempts', 'locked_by'), [{ state: 'running', locked_by: 'w1' }, { state: 'pending', attempts: 0, locked_by: null }])
})
