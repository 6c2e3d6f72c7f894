import t from 'tap'
import pino from 'pino'
import type { Knex } from 'knex'
import { testDb } from '../helpers/db.js'
import { makeCustomer, makeTenant } from '../helpers/fixtures.js'
import { FakeAccounting } from '../helpers/fake-accounting.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { enqueue } from '../../src/db/jobs.js'
import { getPostingBySource } from '../../src/db/accounting-postings.js'
import { listExceptions } from '../../src/db/reconciliation-exceptions.js'
import { postPayment, syncNow } from '../../src/services/posting.js'
import { postingJobHandlers } from '../../src/jobs/posting-jobs.js'
import { Worker } from '../../src/jobs/worker.js'
import type { Tenant } from '../../src/db/tenants.js'

let seq = 0
const SETTINGS = {
  undepositedFundsAccountId: '4', bankAccountId: '35', feesAccountId: '8', receivableAccountId: '84', writeOffAccountId: '9',
  cardPaymentMethodId: '4', achPaymentMethodId: '5', surchargeItemId: '20', invoiceMatch: 'doc_number', docNumberPrefix: ''
}
interface Ctx { tenant: Tenant, customerId: string, methodId: string, qbo: FakeAccounting, qboCustomerId: string }

async function setup (db: Knex, settings: Record<string, unknown> = SETTINGS): Promise<Ctx> {
  const tenant = await makeTenant(db)
  const customer = await makeCustomer(db, tenant, 'Acme Dental')
  await db('accounting_connections').insert({ tenant_id: tenant.id, system: 'quickbooks', realm_id: '9130000000000001', settings: JSON.stringify(settings) })
  const method = await savePaymentMethod(db, tenant.id, { customerId: customer.id, processorCustomerRef: 'cus_1', processorMethodRef: 'pm_1', type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: true })
  const qbo = new FakeAccounting()
  const c = qbo.addCustomer({ displayName: 'Acme Dental' })
  return { tenant, customerId: customer.id, methodId: method.id, qbo, qboCustomerId: c.id }
}

/** An invoice in Settle and in QBO, and a succeeded charge on it. */
async function paid (db: Knex, ctx: Ctx, cents: number): Promise<string> {
  const number = String(5000 + ++seq)
  ctx.qbo.addInvoice({ customerId: ctx.qboCustomerId, docNumber: number, total: cents })
  const [inv] = await db('invoices').insert({
    tenant_id: ctx.tenant.id, customer_id: ctx.customerId, psa_system: 'connectwise', psa_invoice_id: `cw-${seq}`, number, kind: 'standard', currency: 'USD',
    issued_on: '2026-11-01', total: cents, psa_balance: cents, status: 'open', psa_updated_at: new Date()
  }).returning('id') as Array<{ id: string }>
  const [row] = await db('payment_attempts').insert({
    tenant_id: ctx.tenant.id, invoice_id: inv?.id, customer_id: ctx.customerId, payment_method_id: ctx.methodId, amount: cents, currency: 'USD',
    status: 'succeeded', trigger: 'charge_card', actor: 'member:test', processor_intent_ref: `pi_${seq}`, settled_at: new Date('2026-12-02T15:00:00Z')
  }).returning('id') as Array<{ id: string }>
  return (row as { id: string }).id
}

/** The refund path's outbox row, as src/services/refunds.ts queues it. */
async function queueRefund (db: Knex, ctx: Ctx, attemptId: string, cents: number): Promise<string> {
  const refundId = `re_${++seq}`
  await enqueue(db, ctx.tenant.id, [{ queue: 'qbo.post-reversal', dedupeKey: `qbo-reversal:refund:${refundId}`, payload: { sourceId: refundId, attemptId, invoiceAmount: cents, surchargeAmount: 0, currency: 'USD', why: 'refund' } }])
  return refundId
}

const jobsOf = async (db: Knex, tenantId: string, queue: string): Promise<Array<{ state: string, dedupe_key: string, attempts: number, run_at: Date }>> =>
  await db('jobs').where({ tenant_id: tenantId, queue }).orderBy('id').select('state', 'dedupe_key', 'attempts', 'run_at')

const worker = (db: Knex, qbo: FakeAccounting): Worker =>
  new Worker({ db, handlers: postingJobHandlers(async () => qbo), log: pino({ level: 'silent' }), concurrency: 1, backoff: { baseMs: 0, capMs: 0 } })

t.test('syncNow posts pending reversals through the job\'s own preparation, once; the job then finds them posted', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const a = await paid(db, ctx, 10_000)
  await postPayment(db, ctx.qbo, ctx.tenant.id, a)
  const refund = await queueRefund(db, ctx, a, 4_000)
  const dispute = await queueRefund(db, ctx, a, 1_000)
  await db('jobs').where({ tenant_id: ctx.tenant.id, dedupe_key: `qbo-reversal:refund:${dispute}` }).update({ payload: db.raw("payload || '{\"why\":\"dispute_lost\"}'::jsonb") })

  const out = await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.same(out.failed, [])
  t.same(out.posted.map(p => [p.kind, p.sourceId, p.amount.amount]), [['reversal', refund, 4_000], ['reversal', dispute, 1_000]])
  t.match(out.posted[0], { docUrl: /app\/journal\?txnId=/ })
  t.same(out.pending, { payments: 0, deposits: 0, reversals: 0 })
  t.equal(ctx.qbo.journals.size, 2)
  t.equal(ctx.qbo.log.filter(l => l.method === 'batch').length, 1, 'both in one batch')
  t.match([...ctx.qbo.journals.values()].map(j => j.posting.note), [/^Refund of Settle payment/, /^Lost dispute of Settle payment/])
  t.equal(ctx.qbo.customers.get(ctx.qboCustomerId)?.balance.amount, 5_000, 'A/R reopened as the job would have')
  t.same((await jobsOf(db, ctx.tenant.id, 'qbo.post-reversal')).map(j => j.state), ['done', 'done'], 'the outbox jobs were run in-line and closed')

  // The job (a re-queue, a relink) finds the posting made: nothing posts twice.
  await db('jobs').where({ tenant_id: ctx.tenant.id, queue: 'qbo.post-reversal' }).update({ state: 'pending', run_at: new Date(0) })
  await worker(db, ctx.qbo).runOnce()
  t.equal(ctx.qbo.journals.size, 2)
  const again = await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.same(again.posted, [])
  t.equal(again.calls, 0)
})

t.test('a reversal whose payment is not in QuickBooks yet waits (pending), and posts after it', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const a = await paid(db, ctx, 10_000)
  const refund = await queueRefund(db, ctx, a, 2_500)
  ctx.qbo.fail = method => method === 'createPayment' ? new Error('QuickBooks answered 503') : undefined
  const first = await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.match(first.failed, [{ kind: 'payment', sourceId: a }])
  t.equal(first.pending.reversals, 1, 'waits for its payment')
  const [job] = await jobsOf(db, ctx.tenant.id, 'qbo.post-reversal')
  t.equal(job?.state, 'pending', 'handed back to the job, later')
  t.ok((job?.run_at.getTime() ?? 0) > Date.now() + 5 * 60_000)
  t.same(await listExceptions(db, ctx.tenant.id, { kind: 'posting_failed' }), [], 'a transient failure raises nothing: the job retries it')
  ctx.qbo.fail = () => undefined
  const second = await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.same(second.posted.map(p => [p.kind, p.sourceId]), [['payment', a], ['reversal', refund]])
})

t.test('a permanent failure in syncNow raises (and refreshes) the posting_failed exception the job\'s dead letter would', async t => {
  const db = await testDb(t)
  const ctx = await setup(db, { ...SETTINGS, receivableAccountId: null })
  const a = await paid(db, ctx, 10_000)
  await postPayment(db, ctx.qbo, ctx.tenant.id, a)
  const refund = await queueRefund(db, ctx, a, 3_000)
  const out = await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.match(out.failed, [{ kind: 'reversal', sourceId: refund, reason: /No Accounts Receivable account/, fixHint: /Settings → Accounting/ }])
  const [ex] = await listExceptions(db, ctx.tenant.id, { kind: 'posting_failed' })
  t.match(ex, { summary: new RegExp(`could not post the reversal ${refund}`), suggestedRepair: /Choose the Accounts Receivable account/, details: { via: 'sync_now', queue: 'qbo.post-reversal' } })
  t.equal((await getPostingBySource(db, ctx.tenant.id, 'reversal', refund))?.status, 'failed')
  t.same((await jobsOf(db, ctx.tenant.id, 'qbo.post-reversal')).map(j => j.state), ['dead'], 'dead, as the job would be: a person fixes the setting and retries')
  // Pressing again refreshes the same exception, never a second one.
  await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.equal((await listExceptions(db, ctx.tenant.id, { kind: 'posting_failed' })).length, 1)
})

t.test('a payment QuickBooks refuses on its last attempt is dead-lettered by syncNow; earlier refusals are left to the job', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const a = await paid(db, ctx, 10_000)
  await enqueue(db, ctx.tenant.id, [{ queue: 'qbo.post-payment', dedupeKey: `qbo-payment:${a}`, payload: { attemptId: a }, maxAttempts: 2 }])
  ctx.qbo.fail = method => method === 'createPayment' ? new Error('A business validation error has occurred: The books are closed for that period') : undefined
  const first = await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.match(first.failed, [{ kind: 'payment', sourceId: a, fixHint: /open the period/ }])
  t.same(await listExceptions(db, ctx.tenant.id, { kind: 'posting_failed' }), [], 'attempt 1 of 2: the job will retry')
  t.match(await jobsOf(db, ctx.tenant.id, 'qbo.post-payment'), [{ state: 'pending', attempts: 1 }])
  await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.match(await jobsOf(db, ctx.tenant.id, 'qbo.post-payment'), [{ state: 'dead', attempts: 2 }])
  const [ex] = await listExceptions(db, ctx.tenant.id, { kind: 'posting_failed' })
  t.match(ex, { summary: /books are closed/, suggestedRepair: /open the period/ })
  t.equal((await getPostingBySource(db, ctx.tenant.id, 'payment', a))?.status, 'failed')
  t.equal(ctx.qbo.payments.size, 0)
})

t.test('a sync racing the job never posts twice', async t => {
  await t.test('a document the job holds right now is left to it', async t => {
    const db = await testDb(t)
    const ctx = await setup(db)
    const a = await paid(db, ctx, 10_000)
    const refund = await queueRefund(db, ctx, a, 1_000)
    await db('jobs').insert({ tenant_id: ctx.tenant.id, queue: 'qbo.post-payment', payload: JSON.stringify({ attemptId: a }), dedupe_key: `qbo-payment:${a}`, state: 'running', attempts: 1, locked_by: 'worker-1', locked_until: new Date(Date.now() + 60_000) })
    await db('jobs').where({ tenant_id: ctx.tenant.id, queue: 'qbo.post-reversal' }).update({ state: 'running', attempts: 1, locked_by: 'worker-1', locked_until: new Date(Date.now() + 60_000) })
    const out = await syncNow(db, ctx.qbo, ctx.tenant.id)
    t.same(out.posted, [])
    t.same(out.pending, { payments: 1, deposits: 0, reversals: 1 })
    t.equal(ctx.qbo.payments.size + ctx.qbo.journals.size, 0)
    t.match(await db('jobs').where({ tenant_id: ctx.tenant.id }).select('state', 'locked_by'), [{ state: 'running', locked_by: 'worker-1' }, { state: 'running', locked_by: 'worker-1' }], 'the worker\'s claims untouched')
    t.equal(refund.length > 0, true)
  })

  await t.test('sync and worker at once, and two syncs at once: each document once', async t => {
    const db = await testDb(t)
    const ctx = await setup(db)
    const attempts: string[] = []
    for (let i = 0; i < 6; i++) {
      const a = await paid(db, ctx, 1_000 + i)
      attempts.push(a)
      await enqueue(db, ctx.tenant.id, [{ queue: 'qbo.post-payment', dedupeKey: `qbo-payment:${a}`, payload: { attemptId: a } }])
    }
    const w = worker(db, ctx.qbo)
    const results = await Promise.all([syncNow(db, ctx.qbo, ctx.tenant.id), w.runOnce(), syncNow(db, ctx.qbo, ctx.tenant.id), w.runOnce()])
    const done = async (): Promise<void> => { while (await w.runOnce() > 0) { /* drain */ } }
    await done()
    await syncNow(db, ctx.qbo, ctx.tenant.id)
    t.equal(ctx.qbo.payments.size, 6, 'six payments, each once')
    t.same([...ctx.qbo.payments.values()].map(p => p.total.amount).sort(), [1_000, 1_001, 1_002, 1_003, 1_004, 1_005])
    for (const a of attempts) t.equal((await getPostingBySource(db, ctx.tenant.id, 'payment', a))?.status, 'posted')
    t.ok(results.length === 4)
  })
})

t.test('a reversal still waiting on its payment at the job\'s last attempt is dead-lettered, as the job would', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const a = await paid(db, ctx, 10_000)
  const refund = `re_${++seq}`
  await enqueue(db, ctx.tenant.id, [{ queue: 'qbo.post-reversal', dedupeKey: `qbo-reversal:refund:${refund}`, maxAttempts: 1, payload: { sourceId: refund, attemptId: a, invoiceAmount: 500, surchargeAmount: 0, currency: 'USD', why: 'ach_return' } }])
  ctx.qbo.fail = method => method === 'createPayment' ? new Error('QuickBooks answered 503') : undefined
  await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.match(await jobsOf(db, ctx.tenant.id, 'qbo.post-reversal'), [{ state: 'dead', attempts: 1 }])
  t.match(await listExceptions(db, ctx.tenant.id, { kind: 'posting_failed' }), [{ summary: new RegExp(`reversal ${refund}.*not in QuickBooks yet`) }])
})

t.test('a batch whose answer was lost is sent again as that very batch, never as another: nothing posts twice', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const a = await paid(db, ctx, 10_000)
  const b = await paid(db, ctx, 20_000)
  // QuickBooks writes both payments, and the answer never arrives.
  ctx.qbo.fail = method => method === 'createPayment' ? 'after-write' : undefined
  const lost = await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.same(lost.posted, [])
  t.equal(lost.failed.length, 2)
  t.equal(ctx.qbo.payments.size, 2, 'both were written')
  ctx.qbo.fail = () => undefined

  // Meanwhile a third payment succeeds: the next sync must not send a, b and c together (a new batch to QuickBooks).
  const c = await paid(db, ctx, 30_000)
  const again = await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.same(again.posted.map(p => p.sourceId).sort(), [a, b, c].sort())
  t.equal(ctx.qbo.payments.size, 3, 'a and b were replayed, c written once')
  const batches = ctx.qbo.log.filter(l => l.method === 'batch').map(l => (l.input as Array<{ posting: { requestId: string } }>).length)
  t.same(batches, [2, 2, 1], 'the lost batch went again as it was; c on its own')
  const ids = await Promise.all([a, b, c].map(async id => (await getPostingBySource(db, ctx.tenant.id, 'payment', id))?.externalId))
  t.same(ids.map(id => ctx.qbo.payments.get(id ?? '')?.total.amount), [10_000, 20_000, 30_000], 'each posting holds the id QuickBooks gave it the first time')
})

t.test('the job posting one member of a lost batch sends the whole batch again, under its requestid', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const a = await paid(db, ctx, 10_000)
  const b = await paid(db, ctx, 20_000)
  ctx.qbo.fail = method => method === 'createPayment' ? 'after-write' : undefined
  await syncNow(db, ctx.qbo, ctx.tenant.id)
  ctx.qbo.fail = () => undefined
  const outcome = await postPayment(db, ctx.qbo, ctx.tenant.id, a)
  t.match(outcome, { status: 'posted', sourceId: a, replayed: true })
  t.equal(ctx.qbo.payments.size, 2, 'not written again on its own')
  t.equal((await getPostingBySource(db, ctx.tenant.id, 'payment', b))?.status, 'posted', 'its batch-mate is posted from the same answer')
  t.match(await postPayment(db, ctx.qbo, ctx.tenant.id, b), { status: 'posted', replayed: true })
  t.equal(ctx.qbo.payments.size, 2)
})

t.test('a refusal is forgotten with its requestid: once the cause is fixed, the next try is a new request', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const a = await paid(db, ctx, 10_000)
  ctx.qbo.fail = method => method === 'createPayment' ? new Error('Business Validation Error: the customer is inactive') : undefined
  await syncNow(db, ctx.qbo, ctx.tenant.id)
  const sent = (ctx.qbo.log.find(l => l.method === 'batch')?.input as Array<{ posting: { requestId: string } }>)[0]?.posting.requestId
  const refused = await getPostingBySource(db, ctx.tenant.id, 'payment', a)
  t.ok(sent !== undefined && refused?.requestId !== sent, 'a new requestid for the next try')
  t.same([refused?.requestBody, refused?.sentInBatch], [null, null])
  ctx.qbo.fail = () => undefined
  const fixed = await syncNow(db, ctx.qbo, ctx.tenant.id)
  t.same(fixed.posted.map(p => p.sourceId), [a])
  t.equal(ctx.qbo.payments.size, 1)
})
