import t from 'tap'
import pino from 'pino'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { achCustomer, start } from '../helpers/stripe-harness.js'
import { buildApp } from '../../src/app.js'
import { createStripeClient } from '../../src/adapters/stripe/client.js'
import { createStripePayments } from '../../src/adapters/stripe/payments.js'
import { putSecret } from '../../src/db/secrets.js'
import { savePaymentMethod, listAttempts } from '../../src/db/payments.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { accountBalance, trialBalance } from '../../src/db/ledger.js'
import { syncInvoices } from '../../src/services/sync.js'
import { chargeInvoice } from '../../src/services/charge.js'
import { Worker } from '../../src/jobs/worker.js'
import { paymentJobHandlers } from '../../src/jobs/payment-jobs.js'
import { STRIPE_SANDBOX_API_KEY } from '../../src/sandbox/stripe/index.js'

/**
 * Collection through the real Stripe adapter against the stand-in over HTTP,
 * with the stand-in's signed webhooks arriving at Settle's own route.
 */
t.test('collecting through the Stripe stand-in', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  const app = await buildApp(testConfig(), { db, keyring })
  const settle = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Collecting MSP')
  const webhookSecret = 'whsec_standin_test'
  await putSecret(db, keyring, tenant.id, 'stripe.secret_key', STRIPE_SANDBOX_API_KEY)
  await putSecret(db, keyring, tenant.id, 'stripe.webhook_secret', webhookSecret)
  const { store, port, stripe } = await start(t, {}, { webhook: { url: `${settle}/webhooks/stripe/${tenant.slug}`, secret: webhookSecret }, events: { duplicates: 2, shuffle: true } })
  const payments = createStripePayments(createStripeClient({ secretKey: STRIPE_SANDBOX_API_KEY, baseUrl: `http://127.0.0.1:${port}`, maxNetworkRetries: 0 }))
  const worker = new Worker({ db, handlers: paymentJobHandlers(async () => payments), log: pino({ level: 'silent' }), concurrency: 1 })

  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  for (let i = 1; i <= 4; i++) psa.put(String(i), { company: '1', total: 120_000 + i * 1000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoices = await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1', '2', '3', '4'])
  const customerId = invoices.get('1')!.customerId
  const save = async (ref: { customer: string, pm: string }, type: 'card' | 'ach'): Promise<string> => {
    const pm = await stripe.paymentMethods.retrieve(ref.pm)
    const saved = await savePaymentMethod(db, tenant.id, {
      customerId, processorCustomerRef: ref.customer, processorMethodRef: pm.id, type,
      brand: pm.card?.brand ?? pm.us_bank_account?.bank_name ?? null, last4: pm.card?.last4 ?? pm.us_bank_account?.last4 ?? '0000',
      expMonth: pm.card?.exp_month ?? null, expYear: pm.card?.exp_year ?? null, funding: pm.card?.funding ?? null, isDefault: type === 'card'
    })
    return saved.id
  }
  const cardCustomer = await stripe.customers.create({ email: 'ap@harbor.example' })
  const visa = await save({ customer: cardCustomer.id, pm: (await stripe.paymentMethods.attach('pm_card_visa', { customer: cardCustomer.id })).id }, 'card')
  const declining = await save({ customer: cardCustomer.id, pm: (await stripe.paymentMethods.attach('pm_card_chargeDeclinedInsufficientFunds', { customer: cardCustomer.id })).id }, 'card')
  const bank = await save(await achCustomer(stripe, 'pm_usBankAccount_success'), 'ach')
  const poorBank = await save(await achCustomer(stripe, 'pm_usBankAccount_insufficientFunds'), 'ach')

  await t.test('a card charge succeeds and books Stripe\'s own fee', async t => {
    const result = await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoices.get('1')!.id, paymentMethodId: visa, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(result.outcome, 'succeeded')
    const intent = await stripe.paymentIntents.retrieve(result.attempt.processorIntentRef ?? '', { expand: ['latest_charge.balance_transaction'] })
    t.equal(intent.metadata.settle_attempt_id, result.attempt.id)
    const fee = ((intent.latest_charge as { balance_transaction: { fee: number } }).balance_transaction).fee
    t.equal(fee, Math.round(121_000 * 0.029) + 30, 'card fee 2.9% + 30¢')
    t.same(await accountBalance(db, tenant.id, 'fees:processor', 'USD'), { amount: fee, currency: 'USD' }, 'the ledger has exactly Stripe\'s fee')
  })

  await t.test('a decline comes back with Stripe\'s codes and a plain-words verdict', async t => {
    const result = await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoices.get('2')!.id, paymentMethodId: declining, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(result.outcome, 'failed')
    if (result.outcome === 'failed') {
      t.equal(result.attempt.failure.declineCode, 'insufficient_funds')
      t.equal(result.verdict.class, 'retry_later')
      t.match(result.verdict.explanation, /enough funds/)
    }
  })

  await t.test('ACH: processing until Stripe settles it; duplicated, shuffled webhooks settle it once', async t => {
    const result = await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoices.get('3')!.id, paymentMethodId: bank, actor: 'autopay', trigger: 'autopay' })
    t.equal(result.outcome, 'processing')
    t.equal((await invoicesByPsaIds(db, tenant.id, 'connectwise', ['3'])).get('3')?.status, 'open', 'never paid while processing')
    store.settleAch()
    await store.flushEvents()
    const events = await db('webhook_events').where({ tenant_id: tenant.id }).count('* as n').then(r => Number(r[0]?.n))
    t.ok(events > 0, `${events} distinct events stored despite duplicates`)
    while (await worker.runOnce() > 0) { /* drain */ }
    const [attempt] = await listAttempts(db, tenant.id, invoices.get('3')!.id)
    t.equal(attempt?.status, 'succeeded')
    t.equal((await invoicesByPsaIds(db, tenant.id, 'connectwise', ['3'])).get('3')?.status, 'paid')
    t.equal(await db('journal_entries').where({ tenant_id: tenant.id, kind: 'payment.succeeded' }).count('* as n').then(r => Number(r[0]?.n)), 2, 'one entry per successful payment')
    t.equal(await db('jobs').where({ tenant_id: tenant.id, state: 'dead' }).count('* as n').then(r => Number(r[0]?.n)), 0)
    t.same((await trialBalance(db, tenant.id)).totals.map(m => m.amount), [0])
  })

  await t.test('an ACH return (R01) after processing schedules exactly one retry, 3 business days out', async t => {
    const result = await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoices.get('4')!.id, paymentMethodId: poorBank, actor: 'autopay', trigger: 'autopay' })
    t.equal(result.outcome, 'processing')
    store.settleAch()
    await store.flushEvents()
    while (await worker.runOnce() > 0) { /* drain */ }
    const [attempt] = await listAttempts(db, tenant.id, invoices.get('4')!.id)
    t.equal(attempt?.status, 'failed')
    t.equal(attempt?.failure.code, 'insufficient_funds')
    t.equal(attempt?.failure.class, 'retry_later')
    const retries = await db('jobs').where({ tenant_id: tenant.id, queue: 'payments.retry' })
    t.equal(retries.length, 1, 'one retry, though the failure events arrived three times each')
    const days = (new Date(retries[0].run_at).getTime() - attempt!.updatedAt.getTime()) / 86_400_000
    t.ok(days >= 3 && days <= 5, `retry ${days.toFixed(1)} days later: 3 business days`)
    t.equal((await invoicesByPsaIds(db, tenant.id, 'connectwise', ['4'])).get('4')?.status, 'open', 'the invoice stays open')
  })
})
