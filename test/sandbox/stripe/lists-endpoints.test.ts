import t from 'tap'
import Stripe from 'stripe'
import { receiver, start } from '../../helpers/stripe-harness.js'
import { createStripePayments } from '../../../src/adapters/stripe/payments.js'
import { createStripeClient } from '../../../src/adapters/stripe/client.js'
import { STRIPE_SANDBOX_API_KEY } from '../../../src/sandbox/stripe/index.js'

const verifier = new Stripe('sk_test_unused', { apiVersion: '2026-10-28.endive' as never })

t.test('list endpoints: Stripe\'s list object with limit, starting_after, ending_before and has_more', async t => {
  const { stripe } = await start(t)
  const customer = await stripe.customers.create({ email: 'ap@example.com' })
  const pms: string[] = []
  for (let i = 0; i < 3; i++) pms.push((await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })).id)
  const page1 = await stripe.paymentMethods.list({ customer: customer.id, type: 'card', limit: 2 })
  t.match(page1, { object: 'list', url: '/v1/payment_methods', has_more: true })
  t.same(page1.data.map(p => p.id), [pms[2], pms[1]], 'newest first')
  const page2 = await stripe.paymentMethods.list({ customer: customer.id, limit: 2, starting_after: page1.data[1]?.id })
  t.same(page2.data.map(p => p.id), [pms[0]])
  t.equal(page2.has_more, false)
  const auto: string[] = []
  for await (const pm of stripe.paymentMethods.list({ customer: customer.id, limit: 1 })) auto.push(pm.id)
  t.same(auto, [...pms].reverse(), 'the SDK\'s auto-pagination walks it')
  await t.rejects(stripe.paymentMethods.list({ customer: 'cus_nope' }), { statusCode: 400, code: 'resource_missing' })
  await t.rejects(stripe.paymentMethods.list({ limit: 101 }), { statusCode: 400, param: 'limit', message: /./ })
  await t.rejects(stripe.paymentMethods.list({ starting_after: 'pm_nope' }), { statusCode: 400, param: 'starting_after', message: /./ })

  const pi = await stripe.paymentIntents.create({ amount: 5_000, currency: 'usd', customer: customer.id, payment_method: pms[0], off_session: true, confirm: true })
  const r1 = await stripe.refunds.create({ payment_intent: pi.id, amount: 1_000 })
  const r2 = await stripe.refunds.create({ payment_intent: pi.id, amount: 500 })
  const refunds = await stripe.refunds.list({ payment_intent: pi.id })
  t.same(refunds.data.map(r => r.id), [r2.id, r1.id])
  t.match(refunds, { object: 'list', url: '/v1/refunds', has_more: false })
  t.same((await stripe.refunds.list({ charge: 'ch_nothing' })).data, [])

  const events = await stripe.events.list({ type: 'payment_intent.*', limit: 100 })
  t.ok(events.data.length >= 2 && events.data.every(e => e.type.startsWith('payment_intent.')))
  t.ok((await stripe.events.list({ types: ['refund.created'] })).data.every(e => e.type === 'refund.created'))
  const created = events.data[0]?.created ?? 0
  t.equal((await stripe.events.list({ created: { gt: created } })).data.length, 0)
  await t.rejects(stripe.events.list({ bogus: 1 } as never), { code: 'parameter_unknown' })
})

t.test('the documented decline test payment methods decline with their real codes', async t => {
  const { stripe } = await start(t)
  const customer = await stripe.customers.create({})
  for (const [pm, code, declineCode] of [
    ['pm_card_visa_chargeDeclined', 'card_declined', 'generic_decline'],
    ['pm_card_visa_chargeDeclinedInsufficientFunds', 'card_declined', 'insufficient_funds'],
    ['pm_card_chargeDeclinedProcessingError', 'processing_error', 'processing_error'],
    ['pm_card_chargeDeclinedLostCard', 'card_declined', 'lost_card'],
    ['pm_card_chargeDeclinedStolenCard', 'card_declined', 'stolen_card']
  ] as const) {
    await t.rejects(stripe.paymentIntents.create({ amount: 1_000, currency: 'usd', customer: customer.id, payment_method: pm, confirm: true, off_session: true }), { type: 'StripeCardError', code, decline_code: declineCode }, pm)
  }
  const onSession = await stripe.paymentIntents.create({ amount: 1_000, currency: 'usd', customer: customer.id, payment_method: 'pm_card_threeDSecure2Required', confirm: true })
  t.equal(onSession.status, 'requires_action', '3DS2 asks on-session')
  await t.rejects(stripe.paymentIntents.create({ amount: 1_000, currency: 'usd', customer: customer.id, payment_method: 'pm_card_threeDSecure2Required', confirm: true, off_session: true }), { code: 'authentication_required' })
})

t.test('webhook endpoints: created with a secret, listed, deleted; events go to each, signed with its secret', async t => {
  const { stripe, store } = await start(t)
  const a = await receiver(t)
  const b = await receiver(t)
  await t.rejects(stripe.webhookEndpoints.create({ url: 'not a url', enabled_events: ['*'] }), { statusCode: 400, param: 'url', message: /./ })
  await t.rejects(stripe.webhookEndpoints.create({ url: a.url, enabled_events: ['invoice.nope' as never] }), { statusCode: 400, param: 'enabled_events', message: /./ })
  const all = await stripe.webhookEndpoints.create({ url: a.url, enabled_events: ['*'], description: 'Settle' })
  t.match(all, { object: 'webhook_endpoint', url: a.url, status: 'enabled', enabled_events: ['*'], secret: /^whsec_/ })
  const refundsOnly = await stripe.webhookEndpoints.create({ url: b.url, enabled_events: ['refund.created'] })
  t.notOk('secret' in await stripe.webhookEndpoints.retrieve(all.id), 'only the creation answer carries the secret')
  t.same((await stripe.webhookEndpoints.list()).data.map(e => e.id), [refundsOnly.id, all.id])

  const customer = await stripe.customers.create({})
  const pi = await stripe.paymentIntents.create({ amount: 2_000, currency: 'usd', customer: customer.id, payment_method: 'pm_card_visa', confirm: true, off_session: true })
  await stripe.refunds.create({ payment_intent: pi.id, amount: 100 })
  await store.flushEvents()
  const typesAt = (r: typeof a, secret: string): string[] => r.received.map(x => verifier.webhooks.constructEvent(x.raw, x.signature, secret).type)
  t.ok(typesAt(a, all.secret ?? '').includes('payment_intent.succeeded'), 'signed with the first endpoint\'s secret')
  t.same(typesAt(b, refundsOnly.secret ?? ''), ['refund.created'], 'only the enabled type, signed with its own secret')
  t.throws(() => verifier.webhooks.constructEvent(b.received[0]?.raw ?? '', b.received[0]?.signature ?? '', all.secret ?? ''), 'another endpoint\'s secret does not verify')

  t.match(await stripe.webhookEndpoints.del(refundsOnly.id), { id: refundsOnly.id, deleted: true })
  await t.rejects(stripe.webhookEndpoints.retrieve(refundsOnly.id), { statusCode: 404, code: 'resource_missing' })
  await stripe.refunds.create({ payment_intent: pi.id, amount: 100 })
  await store.flushEvents()
  t.equal(b.received.length, 1, 'a deleted endpoint gets nothing more')
  t.equal(typesAt(a, all.secret ?? '').filter(x => x === 'refund.created').length, 2)
})

t.test('fault switch over HTTP: 429s, 500s, and a charge made whose answer is lost; the idempotency key keeps it one charge', async t => {
  const { port, store } = await start(t)
  const control = `http://127.0.0.1:${port}/_sandbox/faults`
  const put = async (body: unknown): Promise<Response> => await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  t.equal((await put({ errorRate: 1.5 })).status, 400)
  t.match(await (await put({ nope: 1 })).json(), { error: { type: 'invalid_request_error', message: /unknown fault setting nope/ } })
  await put({ burst429: 1 })
  const raw = await fetch(`http://127.0.0.1:${port}/v1/customers`, { method: 'POST', headers: { authorization: `Bearer ${STRIPE_SANDBOX_API_KEY}` } })
  t.equal(raw.status, 429)
  t.match(await raw.json(), { error: { code: 'rate_limit' } })
  await put({ errorRate: 1 })
  t.equal((await fetch(`http://127.0.0.1:${port}/v1/customers/cus_x`, { headers: { authorization: `Bearer ${STRIPE_SANDBOX_API_KEY}` } })).status, 500)
  await put({ errorRate: 0 })

  const stripe = createStripeClient({ secretKey: STRIPE_SANDBOX_API_KEY, baseUrl: `http://127.0.0.1:${port}` })
  const payments = createStripePayments(stripe)
  const customer = await stripe.customers.create({})
  await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })
  const pm = (await stripe.paymentMethods.list({ customer: customer.id })).data[0]?.id ?? ''
  for (const lostAnswerMode of ['bad_gateway', 'drop'] as const) {
    await put({ burstLostAnswers: 1, lostAnswerMode })
    const before = store.paymentIntents.size
    const outcome = await payments.charge({ customerRef: customer.id, methodRef: pm, amount: { amount: 3_000, currency: 'USD' }, idempotencyKey: `attempt-${lostAnswerMode}`, metadata: { attempt_id: `att-${lostAnswerMode}` }, description: 'Invoice 1001' })
    t.equal(store.paymentIntents.size, before + 1, `${lostAnswerMode}: one PaymentIntent though the first answer was lost`)
    t.match(outcome, { status: 'succeeded' }, `${lostAnswerMode}: the retry got the first answer`)
  }
})
