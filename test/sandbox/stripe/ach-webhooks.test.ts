import t from 'tap'
import Stripe from 'stripe'
import { achFee } from '../../../src/sandbox/stripe/index.js'
import { ACCEPTANCE, achCustomer, receiver, start } from '../../helpers/stripe-harness.js'

const SECRET = 'whsec_settle_test'
const verifier = new Stripe('sk_test_unused', { apiVersion: '2026-10-28.endive' as never })

const typesFor = (events: Stripe.Event[], objectId: string): string[] => events.filter(e => (e.data.object as { id: string }).id === objectId || (e.data.object as { payment_intent?: string }).payment_intent === objectId).map(e => e.type)

t.test('ACH through the real SDK', async t => {
  const { stripe, store, port } = await start(t)

  await t.test('setup with a mandate, then processing until it settles, then succeeded', async t => {
    const { customer, pm } = await achCustomer(stripe, 'pm_usBankAccount_success')
    const si = [...store.setupIntents.values()].find(s => s.customer === customer)
    t.equal(si?.status, 'succeeded')
    const mandate = await fetch(`http://127.0.0.1:${port}/v1/mandates/${si?.mandate ?? ''}`, { headers: { authorization: 'Bearer sk_test_settle_sandbox' } }).then(async r => await r.json() as Stripe.Mandate)
    t.match(mandate, { object: 'mandate', status: 'active', payment_method: pm, customer_acceptance: { type: 'online', online: { ip_address: '203.0.113.7' } } })
    const pi = await stripe.paymentIntents.create({ amount: 100_000, currency: 'usd', customer, payment_method: pm, off_session: true, confirm: true })
    t.equal(pi.status, 'processing')
    t.match(await stripe.charges.retrieve(String(pi.latest_charge)), { status: 'pending', paid: false, balance_transaction: null })
    t.equal(store.advance(60_000), 0, 'a minute is not enough')
    t.equal((await stripe.paymentIntents.retrieve(pi.id)).status, 'processing')
    t.equal(store.settleAch(), 1)
    const done = await stripe.paymentIntents.retrieve(pi.id, { expand: ['latest_charge.balance_transaction'] })
    t.equal(done.status, 'succeeded')
    const bt = (done.latest_charge as Stripe.Charge).balance_transaction as Stripe.BalanceTransaction
    t.match(bt, { amount: 100_000, fee: 500, net: 99_500 }, '0.8% capped at $5')
    t.equal(bt.fee, achFee(100_000))
    const events = [...store.events.values()].map(e => store.render(e.id) as unknown as Stripe.Event)
    t.same(typesFor(events, pi.id), ['payment_intent.created', 'charge.pending', 'payment_intent.processing', 'charge.succeeded', 'payment_intent.succeeded'])
    const processing = events.find(e => e.type === 'payment_intent.processing' && (e.data.object as Stripe.PaymentIntent).id === pi.id)
    t.equal((processing?.data.object as Stripe.PaymentIntent).status, 'processing', 'data.object is the object at that time')
    t.match(processing?.request?.id, /^req_/, 'events from a request name it')
  })

  const failures: Array<[string, string]> = [
    ['pm_usBankAccount_insufficientFunds', 'insufficient_funds'],
    ['pm_usBankAccount_accountClosed', 'bank_account_closed'],
    ['pm_usBankAccount_debitNotAuthorized', 'debit_not_authorized']
  ]
  for (const [testPm, code] of failures) {
    await t.test(`${testPm}: processing, then payment_failed with ${code}`, async t => {
      const { customer, pm } = await achCustomer(stripe, testPm)
      const pi = await stripe.paymentIntents.create({ amount: 30_000, currency: 'usd', customer, payment_method: pm, off_session: true, confirm: true })
      t.equal(pi.status, 'processing')
      store.advance(4 * 86_400_000)
      const failed = await stripe.paymentIntents.retrieve(pi.id, { expand: ['latest_charge'] })
      t.equal(failed.status, 'requires_payment_method')
      t.equal(failed.last_payment_error?.code, code)
      t.match(failed.latest_charge, { status: 'failed', failure_code: code, balance_transaction: null })
      const last = [...store.events.values()].filter(e => (e.object as { id: string }).id === pi.id).at(-1)
      t.equal(last?.type, 'payment_intent.payment_failed')
      t.equal(last?.request.requestId, null, 'an asynchronous outcome comes from no request')
    })
  }

  await t.test('late return: succeeded, then a dispute', async t => {
    const { customer, pm } = await achCustomer(stripe, 'pm_usBankAccount_lateReturn')
    const pi = await stripe.paymentIntents.create({ amount: 20_000, currency: 'usd', customer, payment_method: pm, off_session: true, confirm: true })
    store.settleAch()
    t.equal((await stripe.paymentIntents.retrieve(pi.id)).status, 'succeeded')
    t.equal([...store.disputes.values()].filter(d => d.paymentIntent === pi.id).length, 0, 'the return comes later')
    t.equal(store.advance(3 * 86_400_000), 1)
    const events = [...store.events.values()].map(e => store.render(e.id) as unknown as Stripe.Event)
    const disputeEvents = events.filter(e => e.type.startsWith('charge.dispute.') && (e.data.object as Stripe.Dispute).payment_intent === pi.id)
    t.same(disputeEvents.map(e => e.type), ['charge.dispute.created', 'charge.dispute.funds_withdrawn', 'charge.dispute.closed'])
    t.match(disputeEvents[1]?.data.object, { amount: 20_000, status: 'lost', reason: 'debit_not_authorized', balance_transactions: [{ amount: -20_000, fee: 1500, net: -21_500 }] })
    t.equal((await stripe.charges.retrieve(String(pi.latest_charge))).disputed, true)
  })

  await t.test('ACH needs a mandate; without one nothing is created', async t => {
    const c = await stripe.customers.create({})
    const pm = await stripe.paymentMethods.attach('pm_usBankAccount_success', { customer: c.id })
    const before = store.paymentIntents.size
    await t.rejects(stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: c.id, payment_method: pm.id, off_session: true, confirm: true }), { statusCode: 400, code: 'payment_intent_mandate_invalid' })
    t.equal(store.paymentIntents.size, before)
    await t.rejects(stripe.setupIntents.create({ customer: c.id, payment_method: 'pm_usBankAccount_success', confirm: true }), { statusCode: 400, code: 'setup_intent_mandate_invalid' })
    await t.rejects(stripe.setupIntents.create({ customer: c.id, payment_method: 'pm_usBankAccount_success', confirm: true, mandate_data: { customer_acceptance: { type: 'online', online: { ip_address: '1.2.3.4' } } } as Stripe.SetupIntentCreateParams.MandateData }), { statusCode: 400, param: 'mandate_data[customer_acceptance][online][user_agent]', code: 'parameter_missing' })
    const on = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: c.id, payment_method: pm.id, confirm: true, mandate_data: ACCEPTANCE })
    t.equal(on.status, 'processing', 'mandate_data on the payment itself')
    t.match(String(store.paymentIntents.get(on.id)?.mandate), /^mandate_/)
  })

  await t.test('SetupIntent: decline and authentication cards', async t => {
    const c = await stripe.customers.create({})
    const err = await stripe.setupIntents.create({ customer: c.id, payment_method: 'pm_card_chargeDeclined', confirm: true }).then(() => null, (e: Stripe.errors.StripeCardError) => e)
    t.equal(err?.type, 'StripeCardError')
    t.equal(err?.setup_intent?.status, 'requires_payment_method')
    const ok = await stripe.setupIntents.create({ customer: c.id, payment_method: 'pm_card_chargeCustomerFail', confirm: true })
    t.equal(ok.status, 'succeeded', '0341 sets up fine and fails later')
    const auth = await stripe.setupIntents.create({ customer: c.id, payment_method: 'pm_card_authenticationRequired' })
    t.equal(auth.status, 'requires_confirmation')
    t.equal((await stripe.setupIntents.confirm(auth.id)).status, 'requires_action')
    t.equal((await stripe.setupIntents.retrieve(ok.id)).payment_method, ok.payment_method)
  })
})

t.test('webhooks: signed like Stripe, verified by the SDK', async t => {
  const hook = await receiver(t)
  const { stripe, store } = await start(t, {}, { webhook: { url: hook.url, secret: SECRET } })
  const pi = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
  const pending = store.pendingDeliveries()
  t.same(pending.map(d => d.type), ['payment_intent.created', 'charge.succeeded', 'payment_intent.succeeded'])
  t.equal(hook.received.length, 0, 'nothing sent before a flush')
  const results = await store.flushEvents()
  t.same(results.map(r => r.status), [200, 200, 200])
  t.equal(store.pendingDeliveries().length, 0)
  const events = hook.received.map(r => verifier.webhooks.constructEvent(r.raw, r.signature, SECRET))
  t.same(events.map(e => e.type), ['payment_intent.created', 'charge.succeeded', 'payment_intent.succeeded'], 'in order when not shuffled')
  t.match(events[2], { object: 'event', api_version: '2026-10-28.endive', livemode: false, data: { object: { id: pi.id, status: 'succeeded' } } })
  t.match(hook.received[0]?.signature, /^t=\d+,v1=[0-9a-f]{64}$/)
  t.throws(() => verifier.webhooks.constructEvent(hook.received[0]?.raw ?? '', hook.received[0]?.signature ?? '', 'whsec_wrong'), { type: 'StripeSignatureVerificationError', message: /No signatures found matching the expected signature/ })
  t.throws(() => verifier.webhooks.constructEvent((hook.received[0]?.raw ?? '') + ' ', hook.received[0]?.signature ?? '', SECRET), 'a changed body fails')
  const fetched = await stripe.events.retrieve(events[1]?.id ?? '')
  t.equal(fetched.type, 'charge.succeeded')
})

t.test('webhooks: duplicates and shuffle when asked', async t => {
  const hook = await receiver(t)
  const { stripe, store } = await start(t, { seed: 3 }, { webhook: { url: hook.url, secret: SECRET }, events: { shuffle: true, duplicates: 2 } })
  for (let i = 0; i < 3; i++) await stripe.paymentIntents.create({ amount: 1000 + i, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
  const created = store.pendingDeliveries().map(d => d.eventId)
  t.equal(created.length, 9)
  await store.flushEvents()
  const ids = hook.received.map(r => verifier.webhooks.constructEvent(r.raw, r.signature, SECRET).id)
  t.equal(ids.length, 27, 'each event three times')
  for (const id of created) t.equal(ids.filter(x => x === id).length, 3)
  const inOrder = created.flatMap(id => [id, id, id])
  t.not(ids.join(), inOrder.join(), 'shuffled')
})

t.test('webhooks: a failing endpoint keeps the event for the next flush', async t => {
  const hook = await receiver(t, 500)
  const { stripe, store } = await start(t, {}, { webhook: { url: hook.url, secret: SECRET } })
  await stripe.customers.create({})
  await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' })
  const results = await store.flushEvents()
  t.same(results.map(r => r.status), [500])
  t.same(store.pendingDeliveries().map(d => d.attempts), [1])
})

t.test('real-time mode: delayMs settles ACH and delivers without a flush', async t => {
  const hook = await receiver(t)
  const { stripe } = await start(t, {}, { webhook: { url: hook.url, secret: SECRET }, events: { delayMs: 20 } })
  const { customer, pm } = await achCustomer(stripe, 'pm_usBankAccount_success')
  const pi = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', customer, payment_method: pm, off_session: true, confirm: true })
  t.equal(pi.status, 'processing')
  const deadline = Date.now() + 5000
  const seen = (): string[] => hook.received.map(r => verifier.webhooks.constructEvent(r.raw, r.signature, SECRET)).filter(e => (e.data.object as { id: string }).id === pi.id).map(e => e.type)
  while (seen().length < 3 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  // Deliveries race each other over HTTP (Stripe does not promise order either): all three, in any order.
  t.same([...seen()].sort(), ['payment_intent.created', 'payment_intent.processing', 'payment_intent.succeeded'])
  t.equal((await stripe.paymentIntents.retrieve(pi.id)).status, 'succeeded')
})
