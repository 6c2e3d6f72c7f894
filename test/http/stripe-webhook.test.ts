import t from 'tap'
import pino from 'pino'
import { testDb } from '../helpers/db.js'
import { countRows, makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakePayments } from '../helpers/fake-payments.js'
import { buildApp } from '../../src/app.js'
import { putSecret } from '../../src/db/secrets.js'
import { savePaymentMethod, listAttempts } from '../../src/db/payments.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { syncInvoices } from '../../src/services/sync.js'
import { chargeInvoice } from '../../src/services/charge.js'
import { signStripePayload } from '../../src/adapters/stripe/webhook.js'
import { Worker } from '../../src/jobs/worker.js'
import { paymentJobHandlers } from '../../src/jobs/payment-jobs.js'
import { prng } from '../../src/sandbox/random.js'

t.test('Stripe webhooks', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  const app = await buildApp(testConfig(), { db, keyring })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Webhook MSP')
  const secret = 'whsec_test_settle'
  await putSecret(db, keyring, tenant.id, 'stripe.webhook_secret', secret)
  const bare = await makeTenant(db, 'No Secret MSP')

  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.put('1', { company: '1', total: 250_000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoice = (await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1'])).get('1')!
  const bank = await savePaymentMethod(db, tenant.id, { customerId: invoice.customerId, processorCustomerRef: 'cus_1', processorMethodRef: 'pm_bank', type: 'ach', brand: null, last4: '6789', expMonth: null, expYear: null, funding: null, isDefault: true })
  const payments = new FakePayments()
  payments.script = () => ({ status: 'processing', intentId: 'pi_ach_1', raw: {} })
  const charge = await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoice.id, paymentMethodId: bank.id, actor: 'autopay', trigger: 'autopay' })
  t.equal(charge.outcome, 'processing')

  const event = (id: string, type: string): string => JSON.stringify({ id, object: 'event', type, api_version: '2026-10-28.endive', created: 1, livemode: false, pending_webhooks: 1, request: null, data: { object: { id: 'pi_ach_1', object: 'payment_intent' } } })
  const post = async (payload: string, signature: string | undefined, slug = tenant.slug): Promise<{ statusCode: number, json: () => { duplicate?: boolean, error?: { code: string } } }> =>
    await app.inject({ method: 'POST', url: `/webhooks/stripe/${slug}`, payload, headers: { 'content-type': 'application/json', ...(signature !== undefined ? { 'stripe-signature': signature } : {}) } })
  const stored = async (): Promise<number> => await countRows(db, 'webhook_events')

  await t.test('bad signatures are refused before anything is stored', async t => {
    const body = event('evt_bad', 'payment_intent.succeeded')
    t.equal((await post(body, undefined)).statusCode, 401)
    t.equal((await post(body, signStripePayload(body, 'whsec_wrong'))).statusCode, 401)
    t.equal((await post(body.replace('pi_ach_1', 'pi_other'), signStripePayload(body, secret))).statusCode, 401, 'tampered body')
    t.equal((await post(body, signStripePayload(body, secret), bare.slug)).json().error?.code, 'WEBHOOK_SIGNATURE_INVALID', 'no secret set: nothing is accepted')
    t.equal((await post(body, signStripePayload(body, secret), 'no-such-tenant')).statusCode, 401)
    t.equal(await stored(), 0)
  })

  await t.test('duplicated ×3 and shuffled, the settlement lands once', async t => {
    // Stripe settles the ACH debit; the events race each other.
    payments.byKey.set(`settle_attempt_${charge.attempt.id}`, { status: 'succeeded', intentId: 'pi_ach_1', chargeId: 'py_1', fee: { amount: 500, currency: 'USD' }, raw: {} })
    const deliveries = [event('evt_1', 'payment_intent.processing'), event('evt_2', 'payment_intent.succeeded'), event('evt_3', 'charge.succeeded')].flatMap(e => [e, e, e])
    const rand = prng(7)
    deliveries.sort(() => rand() - 0.5)
    const answers = []
    for (const body of deliveries) answers.push((await post(body, signStripePayload(body, secret))).json())
    t.equal(answers.filter(a => a.duplicate === false).length, 3, 'three events stored')
    t.equal(answers.filter(a => a.duplicate === true).length, 6, 'six redeliveries acknowledged and ignored')
    const worker = new Worker({ db, handlers: paymentJobHandlers(async () => payments), log: pino({ level: 'silent' }), concurrency: 1 })
    while (await worker.runOnce() > 0) { /* drain */ }
    const [attempt] = await listAttempts(db, tenant.id, invoice.id)
    t.equal(attempt?.status, 'succeeded')
    t.equal(await db('journal_entries').where({ tenant_id: tenant.id, kind: 'payment.succeeded' }).count('* as n').then(r => Number(r[0]?.n)), 1)
    t.equal((await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1'])).get('1')?.status, 'paid')
    t.equal(await db('jobs').where({ tenant_id: tenant.id, state: 'dead' }).count('* as n').then(r => Number(r[0]?.n)), 0, 'no dead jobs')
  })
})
