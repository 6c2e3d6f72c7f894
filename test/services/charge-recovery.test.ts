import t from 'tap'
import type { Knex } from 'knex'
import pino from 'pino'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { onPostgres, testDb, TEST_DATABASE_URL } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakePayments } from '../helpers/fake-payments.js'
import { syncInvoices } from '../../src/services/sync.js'
import { chargeInvoice, RECOVER_AFTER_MS } from '../../src/services/charge.js'
import { getAttempt, listAttempts, listPaymentMethods, savePaymentMethod } from '../../src/db/payments.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { attemptView } from '../../src/services/embedded.js'
import { Worker } from '../../src/jobs/worker.js'
import { paymentJobHandlers, sweepUnresolvedAttempts } from '../../src/jobs/payment-jobs.js'
import type { ChargeInput, ChargeOutcome } from '../../src/ports/payments.js'

interface Fixture { tenantId: string, invoiceIds: string[], methodId: string }

async function setUp (db: Knex): Promise<Fixture> {
  const tenant = await makeTenant(db)
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  for (const id of ['1', '2', '3', '4']) psa.put(id, { company: '1', total: 120_000 + Number(id) })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoices = await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1', '2', '3', '4'])
  const card = await savePaymentMethod(db, tenant.id, { customerId: invoices.get('1')!.customerId, processorCustomerRef: 'cus_h', processorMethodRef: 'pm_visa', type: 'card', brand: 'visa', last4: '4242', expMonth: 4, expYear: 2029, funding: 'credit', isDefault: true })
  return { tenantId: tenant.id, invoiceIds: ['1', '2', '3', '4'].map(id => invoices.get(id)!.id), methodId: card.id }
}

/** After the crash, as the next process to start: its worker runs what is due once the recovery delay has passed. */
async function recoverAsNextProcess (db: Knex, f: Fixture, attemptId: string, processor: FakePayments): Promise<void> {
  const job = await db('jobs').where({ tenant_id: f.tenantId, queue: 'payments.resolve', dedupe_key: `recover:${attemptId}` }).first()
  if (job === undefined) throw new Error('no recovery job was committed with the attempt')
  // Time passes: the job comes due (no waiting in a test).
  await db('jobs').where({ id: job.id }).update({ run_at: db.raw("now() - interval '1 second'") })
  const worker = new Worker({ db, handlers: paymentJobHandlers(async () => processor), log: pino({ level: 'silent' }), concurrency: 1 })
  while (await worker.runOnce() > 0) { /* drain */ }
}

t.test('an attempt committed before a crash is recovered within the minute, once', async t => {
  const db = await testDb(t)
  const f = await setUp(db)

  await t.test('the recovery job is committed with the attempt, due within a minute', async t => {
    const processor = new FakePayments()
    const result = await chargeInvoice(db, processor, { tenantId: f.tenantId, invoiceId: f.invoiceIds[0]!, paymentMethodId: f.methodId, actor: 'cw:jsmith', trigger: 'charge_card' })
    const job = await db('jobs').where({ tenant_id: f.tenantId, dedupe_key: `recover:${result.attempt.id}` }).first()
    t.ok(job, 'a payments.resolve job for the attempt')
    t.ok(RECOVER_AFTER_MS <= 60_000, 'scheduled within a minute of the click')
    t.ok(new Date(job.run_at).getTime() - result.attempt.createdAt.getTime() <= 60_000, 'due within a minute of the attempt')
    // The process lived: when the job comes due it finds the outcome recorded and changes nothing.
    await recoverAsNextProcess(db, f, result.attempt.id, processor)
    t.equal(processor.charged.length, 1, 'nothing re-sent for a settled attempt')
  })

  await t.test('at the service boundary: the process stops after the processor call, before any answer', async t => {
    const dead = new FakePayments()
    let called!: () => void
    const reached = new Promise<void>(resolve => { called = resolve })
    dead.charge = async (input: ChargeInput): Promise<ChargeOutcome> => { dead.charged.push(input); called(); return await new Promise<never>(() => {}) }
    void chargeInvoice(db, dead, { tenantId: f.tenantId, invoiceId: f.invoiceIds[1]!, paymentMethodId: f.methodId, actor: 'cw:jsmith', trigger: 'charge_card' })
    await reached
    const [attempt] = await listAttempts(db, f.tenantId, f.invoiceIds[1]!)
    t.equal(attempt?.status, 'created')
    const view = attemptView(attempt!, await listPaymentMethods(db, f.tenantId, attempt!.customerId))
    t.equal(view.statusLabel, 'Processing', 'the person sees it processing')
    const click = await chargeInvoice(db, new FakePayments(), { tenantId: f.tenantId, invoiceId: f.invoiceIds[1]!, paymentMethodId: f.methodId, actor: 'cw:jsmith', trigger: 'charge_card' })
    t.equal(click.outcome, 'already_processing', 'a second click is shown the attempt, and charges nothing')
    t.equal(click.attempt.id, attempt!.id)
    // The processor had charged: the resend under the same key is answered with that first charge.
    const processor = new FakePayments()
    processor.byKey.set(dead.charged[0]!.idempotencyKey, { status: 'succeeded', intentId: 'pi_first', chargeId: 'ch_first', fee: null, raw: {} })
    await recoverAsNextProcess(db, f, attempt!.id, processor)
    t.equal((await getAttempt(db, f.tenantId, attempt!.id)).status, 'succeeded')
    t.equal(processor.charged.length, 0, 'no second charge: the processor replayed the first')
    await recoverAsNextProcess(db, f, attempt!.id, processor)
    t.equal(processor.charged.length, 0, 'idempotent: running recovery again does nothing')
  })

  await t.test('a processor call that throws is shown as being checked, not as an error', async t => {
    const processor = new FakePayments()
    processor.script = () => 'throw'
    const result = await chargeInvoice(db, processor, { tenantId: f.tenantId, invoiceId: f.invoiceIds[2]!, paymentMethodId: f.methodId, actor: 'cw:jsmith', trigger: 'charge_card' })
    t.equal(result.outcome, 'unknown')
    t.equal(result.attempt.status, 'unknown')
  })

  await t.test('the sweep, which also runs at process start, takes attempts left for a minute', async t => {
    await db('jobs').where({ tenant_id: f.tenantId, queue: 'payments.resolve', state: 'pending' }).del()
    await db('payment_attempts').where({ tenant_id: f.tenantId }).whereIn('status', ['created', 'unknown']).update({ updated_at: db.raw("now() - interval '90 seconds'") })
    t.ok(await sweepUnresolvedAttempts(db) >= 1, 'found without waiting five minutes')
  })
})

t.test('kill -9 between the commit and the processor\'s answer: the next process charges once', { skip: onPostgres ? false : 'a second process needs real PostgreSQL (TEST_DATABASE_URL)' }, async t => {
  const db = await testDb(t)
  const f = await setUp(db)
  const url = await db.raw('select current_database() as name').then((r: { rows: Array<{ name: string }> }) => { const u = new URL(TEST_DATABASE_URL as string); u.pathname = `/${r.rows[0]!.name}`; return u.toString() })
  const script = fileURLToPath(new URL('../helpers/charge-process.ts', import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', script, url, f.tenantId, f.invoiceIds[3]!, f.methodId], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<NodeJS.Signals | null>(resolve => { child.on('exit', (_code, signal) => { resolve(signal) }) })
  const attemptId = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => { if (line.startsWith('charging ')) resolve(line.slice('charging '.length)) })
    child.on('exit', () => { reject(new Error('the charging process exited before it called the processor')) })
  })
  child.kill('SIGKILL')
  t.equal(await exited, 'SIGKILL', 'killed mid-charge')
  t.equal((await getAttempt(db, f.tenantId, attemptId)).status, 'created', 'the attempt was committed before the call')
  // The processor never received that request; the recovering process sends it under the attempt's own key.
  const processor = new FakePayments()
  await recoverAsNextProcess(db, f, attemptId, processor)
  t.equal((await getAttempt(db, f.tenantId, attemptId)).status, 'succeeded')
  t.equal(processor.charged.length, 1, 'charged once')
  t.equal(processor.charged[0]?.idempotencyKey, `settle_attempt_${attemptId}`)
  await recoverAsNextProcess(db, f, attemptId, processor)
  t.equal(processor.charged.length, 1, 'recovery again charges nothing')
})
