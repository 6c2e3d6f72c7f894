import t from 'tap'
import pino from 'pino'
import { testDb } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { claimJobs, completeJob, enqueue, failJob, getJob, jobCounts, listJobs, retryDeadJob } from '../../src/db/jobs.js'
import { PermanentJobError, RetryLaterError, Worker, type JobHandler } from '../../src/jobs/worker.js'
import { backoffDelayMs } from '../../src/jobs/backoff.js'

const log = pino({ level: 'silent' })

t.test('backoff grows exponentially with bounded jitter and a cap', async t => {
  const policy = { baseMs: 1000, capMs: 60_000 }
  t.equal(backoffDelayMs(1, policy, () => 0.5), 1000)
  t.equal(backoffDelayMs(2, policy, () => 0.5), 2000)
  t.equal(backoffDelayMs(4, policy, () => 0.5), 8000)
  t.equal(backoffDelayMs(40, policy, () => 0.5), 60_000, 'capped')
  t.equal(backoffDelayMs(1, policy, () => 0), 800)
  t.equal(backoffDelayMs(1, policy, () => 1), 1200)
})

t.test('job queue', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)

  await t.test('enqueue is idempotent by dedupe key, per tenant and queue', async t => {
    const first = await enqueue(db, tenant.id, [{ queue: 'email.send', dedupeKey: 'receipt-1001', payload: { to: 'ap@acme.test' } }])
    const again = await enqueue(db, tenant.id, [{ queue: 'email.send', dedupeKey: 'receipt-1001' }])
    t.equal(first.length, 1)
    t.equal(again.length, 0, 'second enqueue is a no-op')
    const system = await enqueue(db, null, [{ queue: 'system.tick', dedupeKey: 'd1' }])
    const systemAgain = await enqueue(db, null, [{ queue: 'system.tick', dedupeKey: 'd1' }])
    t.equal(system.length + systemAgain.length, 1, 'system jobs (no tenant) dedupe too')
    await t.rejects(enqueue(db, tenant.id, [{ queue: 'Bad Queue' }]), { code: 'VALIDATION_FAILED' })
    await t.rejects(enqueue(db, tenant.id, [{ queue: 'ok', maxAttempts: 0 }]), { code: 'VALIDATION_FAILED' })
  })

  await t.test('claim, complete, fail with backoff, then dead after the last attempt', async t => {
    const [job] = await enqueue(db, tenant.id, [{ queue: 'qbo.post', maxAttempts: 2 }])
    if (job === undefined) throw new Error('no job')
    let [claimed] = await claimJobs(db, { workerId: 'w1', limit: 10, leaseMs: 60_000, queues: ['qbo.post'] })
    t.equal(claimed?.id, job.id)
    t.equal(claimed?.attempts, 1)
    t.same(await claimJobs(db, { workerId: 'w2', limit: 10, leaseMs: 60_000, queues: ['qbo.post'] }), [], 'a leased job is not claimed twice')
    t.equal(await failJob(db, claimed!, 'w1', 'QBO 503', new Date(Date.now() - 1)), 'pending')
    ;[claimed] = await claimJobs(db, { workerId: 'w1', limit: 10, leaseMs: 60_000, queues: ['qbo.post'] })
    t.equal(claimed?.attempts, 2)
    t.equal(await failJob(db, claimed!, 'w1', 'QBO 503 again', new Date()), 'dead', 'out of attempts')
    const dead = await getJob(db, tenant.id, job.id)
    t.equal(dead?.state, 'dead')
    t.equal(dead?.lastError, 'QBO 503 again')
    const retried = await retryDeadJob(db, tenant.id, job.id)
    t.equal(retried.state, 'pending')
    ;[claimed] = await claimJobs(db, { workerId: 'w1', limit: 10, leaseMs: 60_000, queues: ['qbo.post'] })
    t.equal(await completeJob(db, claimed!, 'w1'), true)
    t.equal((await getJob(db, tenant.id, job.id))?.state, 'done')
  })

  await t.test('a job is not due before run_at', async t => {
    await enqueue(db, tenant.id, [{ queue: 'later', runAt: new Date(Date.now() + 3_600_000) }])
    t.same(await claimJobs(db, { workerId: 'w1', limit: 10, leaseMs: 1000, queues: ['later'] }), [])
  })

  await t.test('an expired lease is claimed again, and the old claimant is fenced out', async t => {
    await enqueue(db, tenant.id, [{ queue: 'lease' }])
    const [first] = await claimJobs(db, { workerId: 'dying', limit: 1, leaseMs: 1, queues: ['lease'] })
    await new Promise(resolve => setTimeout(resolve, 20))
    const [second] = await claimJobs(db, { workerId: 'rescuer', limit: 1, leaseMs: 60_000, queues: ['lease'] })
    t.equal(second?.id, first?.id)
    t.equal(second?.attempts, 2)
    t.equal(await completeJob(db, first!, 'dying'), false, 'the stale worker cannot complete it')
    t.equal(await failJob(db, first!, 'dying', 'late', new Date()), null, 'nor fail it')
    t.equal(await completeJob(db, second!, 'rescuer'), true)
  })

  await t.test('the worker runs handlers, retries soft failures and dead-letters permanent ones', async t => {
    const seen: string[] = []
    let flaky = 0
    const handlers: Record<string, JobHandler> = {
      'w.ok': async job => { seen.push(`ok:${String(job.payload.n)}`) },
      'w.flaky': async () => { flaky++; if (flaky === 1) throw new RetryLaterError('429 from QBO', 0) },
      'w.permanent': async () => { throw new PermanentJobError('invoice deleted in PSA') }
    }
    await enqueue(db, tenant.id, [{ queue: 'w.ok', payload: { n: 1 } }, { queue: 'w.ok', payload: { n: 2 } }, { queue: 'w.flaky' }, { queue: 'w.permanent' }, { queue: 'w.unknown' }])
    const worker = new Worker({ db, handlers: { ...handlers, 'w.unknown': undefined as unknown as JobHandler }, log, concurrency: 8, workerId: 'test-worker' })
    t.equal(await worker.runOnce(), 5)
    t.equal(await worker.runOnce(), 1, 'the flaky job came back at its Retry-After')
    t.same(seen.sort(), ['ok:1', 'ok:2'])
    const byQueue = Object.fromEntries((await listJobs(db, tenant.id)).map(j => [j.queue, j]))
    t.equal(byQueue['w.flaky']?.state, 'done')
    t.equal(byQueue['w.flaky']?.attempts, 2)
    t.equal(byQueue['w.permanent']?.state, 'dead')
    t.match(byQueue['w.permanent']?.lastError, /invoice deleted in PSA/)
    t.equal(byQueue['w.unknown']?.state, 'dead', 'no handler: dead at once, visible')
    t.equal((await jobCounts(db, tenant.id)).dead, 2, 'the permanent and the unhandled job')
  })

  await t.test('the running worker loop picks up new jobs and stops cleanly', async t => {
    const done: number[] = []
    const worker = new Worker({ db, handlers: { loop: async job => { done.push(Number(job.payload.n)) } }, log, pollMs: 50, concurrency: 2 })
    worker.start()
    await enqueue(db, tenant.id, [1, 2, 3].map(n => ({ queue: 'loop', payload: { n } })))
    for (let i = 0; i < 100 && done.length < 3; i++) await new Promise(resolve => setTimeout(resolve, 50))
    await worker.stop()
    t.same(done.sort(), [1, 2, 3])
  })
})
