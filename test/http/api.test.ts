import t from 'tap'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring, countRows } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { start } from '../helpers/stripe-harness.js'
import { buildApp } from '../../src/app.js'
import { createStripePayments } from '../../src/adapters/stripe/payments.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { syncInvoices } from '../../src/services/sync.js'
import { createApiKey, revokeApiKey } from '../../src/security/api-keys.js'

t.test('the admin API: scoped keys, Charge card, refunds, pay links, all audited', async t => {
  const db = await testDb(t)
  const { stripe } = await start(t)
  const payments = createStripePayments(stripe)
  const app = await buildApp(testConfig({ PUBLIC_URL: 'https://pay.brightline.example' }), { db, keyring: testKeyring(), paymentsFor: async () => payments })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Brightline Managed IT')
  const other = await makeTenant(db, 'Other MSP')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.put('1', { company: '1', total: 80_000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoice = (await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1'])).get('1')!
  const customer = await stripe.customers.create({ name: 'Harbor Dental' })
  const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })
  const card = await savePaymentMethod(db, tenant.id, { customerId: invoice.customerId, processorCustomerRef: customer.id, processorMethodRef: pm.id, type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: true })

  const full = await createApiKey(db, tenant.id, 'back office', ['payments:read', 'payments:charge', 'payments:refund'])
  const readOnly = await createApiKey(db, tenant.id, 'reports', ['payments:read'])
  const foreign = await createApiKey(db, other.id, 'theirs', ['payments:read', 'payments:charge'])
  const call = async (key: string | null, method: 'GET' | 'POST', url: string, payload?: object): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method, url, headers: key === null ? {} : { authorization: `Bearer ${key}` }, ...(payload !== undefined ? { payload } : {}) })

  t.equal((await call(null, 'GET', `/api/v1/invoices/${invoice.id}`)).statusCode, 401)
  t.equal((await call(`${full.key}x`, 'GET', `/api/v1/invoices/${invoice.id}`)).statusCode, 401, 'a tampered key')
  t.equal((await call(foreign.key, 'GET', `/api/v1/invoices/${invoice.id}`)).statusCode, 404, 'another tenant\'s key sees nothing')
  const denied = await call(readOnly.key, 'POST', `/api/v1/invoices/${invoice.id}/charges`, { paymentMethodId: card.id })
  t.equal(denied.statusCode, 403)
  t.match(denied.json().error.message, /payments:charge/)

  const view = await call(readOnly.key, 'GET', `/api/v1/invoices/${invoice.id}`)
  t.equal(view.statusCode, 200)
  t.match(view.json(), { invoice: { number: 'INV-1', open: { amount: 80_000 } }, methods: [{ id: card.id, last4: '4242' }], attempts: [] })

  const tooMuch = await call(full.key, 'POST', `/api/v1/invoices/${invoice.id}/charges`, { paymentMethodId: card.id, amount: 80_001 })
  t.equal(tooMuch.statusCode, 422)
  t.equal(tooMuch.json().error.code, 'AMOUNT_EXCEEDS_BALANCE')
  t.equal((await call(full.key, 'POST', `/api/v1/invoices/${invoice.id}/charges`, { paymentMethodId: card.id, amount: 12.5 })).statusCode, 400, 'cents are whole')
  t.equal(await countRows(db, 'payment_attempts'), 0, 'refusals charge nothing')

  const partial = await call(full.key, 'POST', `/api/v1/invoices/${invoice.id}/charges`, { paymentMethodId: card.id, amount: 30_000 })
  t.equal(partial.statusCode, 201)
  t.match(partial.json(), { outcome: 'succeeded', attempt: { amount: { amount: 30_000 }, actor: 'api:back office', trigger: 'charge_card' } })
  const attemptId = partial.json().attempt.id as string

  const refund = await call(full.key, 'POST', `/api/v1/payments/${attemptId}/refunds`, { amount: 10_000, reason: 'Duplicate licence line' })
  t.equal(refund.statusCode, 201)
  t.equal(refund.json().outcome, 'succeeded')
  const over = await call(full.key, 'POST', `/api/v1/payments/${attemptId}/refunds`, { amount: 25_000, reason: 'too much' })
  t.equal(over.statusCode, 409, 'never more than was collected')
  t.equal((await call(full.key, 'POST', `/api/v1/payments/${attemptId}/refunds`, { amount: 1000 })).statusCode, 400, 'a refund needs a reason')

  t.equal((await call(readOnly.key, 'POST', `/api/v1/invoices/${invoice.id}/pay-link`)).statusCode, 403, 'a read-only key mints no pay link')
  const linker = await createApiKey(db, tenant.id, 'dunning', ['paylinks:write'])
  const link = await call(linker.key, 'POST', `/api/v1/invoices/${invoice.id}/pay-link`)
  t.match(link.json().url, /^https:\/\/pay\.brightline\.example\/pay\//)

  const log = await db('audit_log').where({ tenant_id: tenant.id }).orderBy('id').select('actor', 'action')
  t.same(log.map(r => `${r.actor as string} ${r.action as string}`), ['api:back office payment.charge', 'api:back office payment.refund', 'api:dunning pay_link.create'])

  await revokeApiKey(db, tenant.id, readOnly.id)
  t.equal((await call(readOnly.key, 'GET', `/api/v1/invoices/${invoice.id}`)).statusCode, 401, 'a revoked key stops working')
  await t.rejects(createApiKey(db, tenant.id, 'x', ['payments:everything']), { code: 'VALIDATION_FAILED' })
})

t.test('the admin API: a statement payment over the Stripe stand-in, quoted first, audited', async t => {
  const db = await testDb(t)
  const { stripe } = await start(t)
  const payments = createStripePayments(stripe)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring(), paymentsFor: async () => payments })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Brightline Managed IT')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.put('1', { company: '1', total: 80_000, number: '1001', dueOn: '2026-11-30' })
  psa.put('2', { company: '1', total: 20_000, number: '1002', dueOn: '2026-10-31' })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoices = await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1', '2'])
  const customerId = invoices.get('1')!.customerId
  const customer = await stripe.customers.create({ name: 'Harbor Dental' })
  const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })
  const card = await savePaymentMethod(db, tenant.id, { customerId, processorCustomerRef: customer.id, processorMethodRef: pm.id, type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: true })
  const full = await createApiKey(db, tenant.id, 'back office', ['payments:read', 'payments:charge'])
  const readOnly = await createApiKey(db, tenant.id, 'reports', ['payments:read'])
  const call = async (key: string, url: string, payload: object): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${key}` }, payload })

  const quote = await call(readOnly.key, `/api/v1/customers/${customerId}/statement-quote`, { paymentMethodId: card.id, amount: 50_000 })
  t.equal(quote.statusCode, 200)
  t.same(quote.json().allocations.map((a: { number: string, applied: { amount: number } }) => [a.number, a.applied.amount]), [['1002', 20_000], ['1001', 30_000]], 'the older invoice first')
  t.equal((await call(readOnly.key, `/api/v1/customers/${customerId}/statement-charges`, { paymentMethodId: card.id })).statusCode, 403, 'charging needs payments:charge')
  t.equal((await call(full.key, `/api/v1/customers/${customerId}/statement-charges`, { paymentMethodId: card.id, invoiceIds: 'all' })).json().error.code, 'VALIDATION_FAILED')
  t.equal((await call(full.key, `/api/v1/customers/not-a-uuid/statement-charges`, { paymentMethodId: card.id })).statusCode, 400)
  t.equal(await countRows(db, 'payment_attempts'), 0, 'refusals charge nothing')

  const res = await call(full.key, `/api/v1/customers/${customerId}/statement-charges`, { paymentMethodId: card.id, amount: 50_000, expectedSurcharge: quote.json().surcharge.amount })
  t.equal(res.statusCode, 201)
  t.match(res.json(), { outcome: 'succeeded', attempt: { invoiceId: null, amount: { amount: 50_000 }, actor: 'api:back office' } })
  t.same(res.json().allocations.map((a: { invoiceNumber: string, amount: number }) => [a.invoiceNumber, a.amount]), [['1002', 20_000], ['1001', 30_000]])
  const intent = await stripe.paymentIntents.retrieve(res.json().attempt.processorIntentRef as string)
  t.match(intent, { amount: 50_000 + Number(quote.json().surcharge.amount), description: /^Invoices 1002 and 1001/, metadata: { invoice_numbers: '1002, 1001' } }, 'one charge at Stripe, naming both invoices')
  const log = await db('audit_log').where({ tenant_id: tenant.id }).select('actor', 'action', 'subject')
  t.same(log.map(r => [r.actor, r.action, r.subject]), [['api:back office', 'payment.charge_statement', customerId]])
})
