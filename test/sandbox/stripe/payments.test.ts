import t from 'tap'
import Stripe from 'stripe'
import { readFileSync } from 'node:fs'
import { achFee, cardFee, createStripeStore, divRound } from '../../../src/sandbox/stripe/index.js'
import { parseForm } from '../../../src/sandbox/stripe/form.js'
import { ACCEPTANCE, SECOND_KEY, achCustomer, client, start } from '../../helpers/stripe-harness.js'

t.test('fees: integer cents, half away from zero', async t => {
  t.equal(divRound(145, 10), 15)
  t.equal(divRound(144, 10), 14)
  t.equal(divRound(-145, 10), -15)
  t.equal(cardFee(1000), 59, '29 + 30')
  t.equal(cardFee(500), 45, '14.5 rounds up to 15, + 30')
  t.equal(cardFee(12345), 388, '358.005 -> 358, + 30')
  t.equal(achFee(1000), 8)
  t.equal(achFee(62500), 500, 'exactly at the cap')
  t.equal(achFee(1_000_000), 500, 'capped at $5.00')
  t.equal(achFee(6250 + 62), 50, '50.496 -> 50')
})

t.test('form bodies: Stripe bracket syntax', async t => {
  t.same(parseForm('a=1&metadata[attempt_id]=att_1&mandate_data[customer_acceptance][online][ip_address]=1.2.3.4&expand[]=x&expand[]=y.z'), {
    a: '1', metadata: { attempt_id: 'att_1' }, mandate_data: { customer_acceptance: { online: { ip_address: '1.2.3.4' } } }, expand: ['x', 'y.z']
  })
  t.same(parseForm('expand[0]=latest_charge&expand[1]=customer'), { expand: ['latest_charge', 'customer'] }, 'the SDK indexes arrays')
  t.same(parseForm('metadata[0]=a'), { metadata: { 0: 'a' } }, 'metadata keys stay keys')
  t.throws(() => parseForm('__proto__[x]=1'))
  t.throws(() => parseForm('a=1&a[b]=2'), 'a scalar and a hash under one name')
})

t.test('same seed, same ids', async t => {
  const ids = (): string[] => {
    const s = createStripeStore({ seed: 42, now: () => 1_750_000_000_000 })
    const c = s.createCustomer({}, { requestId: null, idempotencyKey: null })
    const pi = s.createPaymentIntent({ amount: '1000', currency: 'usd', customer: String(c.id), payment_method: 'pm_card_visa', confirm: 'true' }, { requestId: null, idempotencyKey: null })
    return [String(c.id), String(pi.id), String(pi.latest_charge)]
  }
  const a = ids()
  t.same(a, ids())
  t.match(a, [/^cus_[0-9A-Za-z]{24}$/, /^pi_[0-9A-Za-z]{24}$/, /^ch_[0-9A-Za-z]{24}$/])
})

t.test('the real SDK against the stand-in', async t => {
  const { stripe, store, port } = await start(t)

  await t.test('auth: a wrong or missing key is 401 in Stripe\'s shape', async t => {
    await t.rejects(client(port, 'sk_test_wrong_key_1234').customers.create({}), { type: 'StripeAuthenticationError', statusCode: 401, message: /^Invalid API Key provided: sk_test_\*+1234$/ })
    const res = await fetch(`http://127.0.0.1:${port}/v1/customers`, { method: 'POST' })
    t.equal(res.status, 401)
    t.match(res.headers.get('request-id'), /^req_\w{14}$/)
    const body = await res.json() as { error: { type: string, message: string } }
    t.equal(body.error.type, 'invalid_request_error')
    t.match(body.error.message, /You did not provide an API key/)
    const basic = await fetch(`http://127.0.0.1:${port}/v1/customers`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from('sk_test_settle_sandbox:').toString('base64')}` } })
    t.equal(basic.status, 200, 'Basic auth with the key as user')
  })

  await t.test('customers and attaching test payment methods', async t => {
    const c = await stripe.customers.create({ email: 'ap@acme.example', name: 'Acme', metadata: { tenant: 't1' } })
    t.match(c, { object: 'customer', email: 'ap@acme.example', name: 'Acme', metadata: { tenant: 't1' }, livemode: false, discount: null })
    t.match(c.lastResponse.requestId, /^req_/)
    const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: c.id })
    t.not(pm.id, 'pm_card_visa', 'a concrete copy, as Stripe does')
    t.match(pm, { type: 'card', customer: c.id, card: { brand: 'visa', last4: '4242', funding: 'credit', country: 'US' } })
    const bank = await stripe.paymentMethods.attach('pm_usBankAccount_success', { customer: c.id })
    t.match(bank.us_bank_account, { bank_name: 'STRIPE TEST BANK', last4: '6789', account_type: 'checking', routing_number: '110000000' })
    const list = await stripe.customers.listPaymentMethods(c.id, { type: 'card' })
    t.same(list.data.map(p => p.id), [pm.id])
    const updated = await stripe.customers.update(c.id, { invoice_settings: { default_payment_method: pm.id }, metadata: { tenant: '', extra: 'x' } })
    t.equal(updated.invoice_settings.default_payment_method, pm.id)
    t.same(updated.metadata, { extra: 'x' }, 'an empty value unsets a key')
    const other = await stripe.customers.create({})
    await t.rejects(stripe.paymentMethods.attach(pm.id, { customer: other.id }), { type: 'StripeInvalidRequestError', statusCode: 400, message: /already been attached/ })
    await t.rejects(stripe.customers.retrieve('cus_missing'), { type: 'StripeInvalidRequestError', statusCode: 404, code: 'resource_missing' })
    const detached = await stripe.paymentMethods.detach(pm.id)
    t.equal(detached.customer, null)
    t.equal((await stripe.customers.retrieve(c.id) as Stripe.Customer).invoice_settings.default_payment_method, null)
  })

  await t.test('off-session card charge succeeds, with the fee on the balance transaction', async t => {
    const c = await stripe.customers.create({})
    const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: c.id })
    const pi = await stripe.paymentIntents.create({ amount: 12345, currency: 'usd', customer: c.id, payment_method: pm.id, off_session: true, confirm: true, metadata: { attempt_id: 'att_ok' }, expand: ['latest_charge.balance_transaction'] })
    t.equal(pi.status, 'succeeded')
    t.equal(pi.amount_received, 12345)
    t.same(pi.payment_method_types, ['card', 'us_bank_account'], 'responses still list payment_method_types')
    const ch = pi.latest_charge as Stripe.Charge
    t.match(ch, { object: 'charge', status: 'succeeded', paid: true, captured: true, amount: 12345, payment_intent: pi.id, customer: c.id, metadata: { attempt_id: 'att_ok' } })
    const bt = ch.balance_transaction as Stripe.BalanceTransaction
    t.match(bt, { object: 'balance_transaction', amount: 12345, fee: 388, net: 11957, type: 'charge', reporting_category: 'charge', source: ch.id })
    t.same(bt.fee_details, [{ amount: 388, application: null, currency: 'usd', description: 'Stripe processing fees', type: 'stripe_fee' }])
    const plain = await stripe.paymentIntents.retrieve(pi.id)
    t.equal(plain.latest_charge, ch.id, 'not expanded unless asked')
    t.equal((await stripe.balanceTransactions.retrieve(bt.id)).net, 11957)
    t.equal((await stripe.charges.retrieve(ch.id, { expand: ['balance_transaction'] })).balance_transaction && ((await stripe.charges.retrieve(ch.id, { expand: ['balance_transaction'] })).balance_transaction as Stripe.BalanceTransaction).fee, 388)
    await t.rejects(stripe.paymentIntents.retrieve(pi.id, { expand: ['status'] }), { statusCode: 400, message: /cannot be expanded/ })
    await t.rejects(stripe.paymentIntents.confirm(pi.id), { code: 'payment_intent_unexpected_state' })
    await t.rejects(stripe.paymentIntents.cancel(pi.id), { code: 'payment_intent_unexpected_state' })
    const debit = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_card_visa_debit', confirm: true, expand: ['payment_method'] })
    t.equal((debit.payment_method as Stripe.PaymentMethod).card?.funding, 'debit')
  })

  const declines: Array<[string, { code: string, decline_code?: string, advice_code?: string }]> = [
    ['pm_card_chargeDeclined', { code: 'card_declined', decline_code: 'generic_decline' }],
    ['pm_card_chargeDeclinedInsufficientFunds', { code: 'card_declined', decline_code: 'insufficient_funds' }],
    ['pm_card_chargeDeclinedExpiredCard', { code: 'expired_card' }],
    ['pm_card_chargeDeclinedFraudulent', { code: 'card_declined', decline_code: 'fraudulent', advice_code: 'do_not_try_again' }],
    ['pm_card_chargeCustomerFail', { code: 'card_declined', decline_code: 'generic_decline' }]
  ]
  for (const [testPm, expected] of declines) {
    await t.test(`${testPm} declines with ${expected.decline_code ?? expected.code}`, async t => {
      const c = await stripe.customers.create({})
      const pm = await stripe.paymentMethods.attach(testPm, { customer: c.id })
      const err = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', customer: c.id, payment_method: pm.id, off_session: true, confirm: true }).then(() => null, (e: unknown) => e)
      t.ok(err instanceof Stripe.errors.StripeCardError, 'StripeCardError')
      const e = err as Stripe.errors.StripeCardError
      t.equal(e.statusCode, 402)
      t.equal(e.code, expected.code)
      if (expected.decline_code !== undefined) t.equal(e.decline_code, expected.decline_code)
      t.equal((e.raw as { advice_code?: string }).advice_code, expected.advice_code, 'advice_code only where Stripe sends one')
      t.match(e.payment_intent, { status: 'requires_payment_method', last_payment_error: { code: expected.code, type: 'card_error' } })
      t.equal(e.payment_method?.id, pm.id)
      const pi = await stripe.paymentIntents.retrieve(String(e.payment_intent?.id), { expand: ['latest_charge'] })
      t.equal(pi.status, 'requires_payment_method')
      t.match(pi.latest_charge, { status: 'failed', failure_code: expected.code, balance_transaction: null, paid: false })
    })
  }

  await t.test('authentication required: off-session fails, on-session asks for action', async t => {
    const c = await stripe.customers.create({})
    const pm = await stripe.paymentMethods.attach('pm_card_authenticationRequired', { customer: c.id })
    await t.rejects(stripe.paymentIntents.create({ amount: 5000, currency: 'usd', customer: c.id, payment_method: pm.id, off_session: true, confirm: true }), {
      type: 'StripeCardError', code: 'authentication_required', decline_code: 'authentication_required', payment_intent: { status: 'requires_payment_method' }
    })
    const on = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', customer: c.id, payment_method: pm.id, confirm: true })
    t.equal(on.status, 'requires_action')
    t.equal(on.next_action?.type, 'use_stripe_sdk')
    const canceled = await stripe.paymentIntents.cancel(on.id, { cancellation_reason: 'abandoned' })
    t.match(canceled, { status: 'canceled', cancellation_reason: 'abandoned' })
    t.type(canceled.canceled_at, 'number')
  })

  await t.test('payment_method_types is rejected in 2026-10-28.endive', async t => {
    await t.rejects(stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method_types: ['card'] } as Stripe.PaymentIntentCreateParams), { type: 'StripeInvalidRequestError', statusCode: 400, code: 'payment_method_types_no_longer_supported', param: 'payment_method_types' })
    await t.rejects(stripe.setupIntents.create({ payment_method_types: ['us_bank_account'] } as Stripe.SetupIntentCreateParams), { statusCode: 400, code: 'payment_method_types_no_longer_supported' })
    const restricted = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', allowed_payment_method_types: ['card'] } as Stripe.PaymentIntentCreateParams)
    t.same(restricted.payment_method_types, ['card'])
    await t.rejects(stripe.paymentIntents.confirm(restricted.id, { payment_method: 'pm_usBankAccount_success', mandate_data: ACCEPTANCE }), { statusCode: 400, param: 'payment_method', message: /not allowed for this PaymentIntent/ })
  })

  await t.test('amount, currency and unknown parameters are validated', async t => {
    const before = store.paymentIntents.size
    await t.rejects(stripe.paymentIntents.create({ amount: 0, currency: 'usd' }), { statusCode: 400, param: 'amount', message: 'This value must be greater than or equal to 1.' })
    await t.rejects(stripe.paymentIntents.create({ amount: -500, currency: 'usd' }), { statusCode: 400, param: 'amount', message: 'This value must be greater than or equal to 1.' })
    await t.rejects(stripe.paymentIntents.create({ amount: 10.5, currency: 'usd' }), { statusCode: 400, code: 'parameter_invalid_integer' })
    await t.rejects(stripe.paymentIntents.create({ amount: 49, currency: 'usd' }), { statusCode: 400, code: 'amount_too_small' })
    await t.rejects(stripe.paymentIntents.create({ amount: 1000, currency: 'USD' }), { statusCode: 400, param: 'currency', message: /^Invalid currency: USD/ })
    await t.rejects(stripe.paymentIntents.create({ amount: 1000, currency: 'us' }), { statusCode: 400, param: 'currency', message: /^Invalid currency: us\./ })
    await t.rejects(stripe.paymentIntents.create({ amount: 1000 } as Stripe.PaymentIntentCreateParams), { statusCode: 400, param: 'currency', message: 'Missing required param: currency.' })
    await t.rejects(stripe.paymentIntents.create({ amount: 1000, currency: 'usd', colour: 'red' } as Stripe.PaymentIntentCreateParams), { statusCode: 400, code: 'parameter_unknown', param: 'colour' })
    t.equal(store.paymentIntents.size, before, 'nothing created')
  })

  await t.test('idempotency: replay, mismatch, per API key', async t => {
    const params = { amount: 2500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, metadata: { attempt_id: 'att_idem' } }
    const before = store.paymentIntents.size
    const a = await stripe.paymentIntents.create(params, { idempotencyKey: 'settle-att_idem' })
    const b = await stripe.paymentIntents.create(params, { idempotencyKey: 'settle-att_idem' })
    t.equal(b.id, a.id)
    t.same(b, a, 'the exact same response')
    t.equal(b.lastResponse.headers['idempotent-replayed'], 'true')
    t.equal(a.lastResponse.headers['idempotent-replayed'], undefined)
    t.equal(store.paymentIntents.size, before + 1, 'one PaymentIntent')
    await t.rejects(stripe.paymentIntents.create({ ...params, amount: 2600 }, { idempotencyKey: 'settle-att_idem' }), { type: 'StripeIdempotencyError', statusCode: 400, rawType: 'idempotency_error', message: /Keys for idempotent requests can only be used with the same parameters/ })
    const other = await client(port, SECOND_KEY).paymentIntents.create({ ...params, amount: 2600 }, { idempotencyKey: 'settle-att_idem' })
    t.not(other.id, a.id, 'keys are scoped to the API key')
    // a decline is a result: the retry with the same key gets the same 402, not a second attempt
    const declined = { amount: 2500, currency: 'usd', payment_method: 'pm_card_chargeDeclined', confirm: true }
    const e1 = await stripe.paymentIntents.create(declined, { idempotencyKey: 'settle-att_dec' }).then(() => null, (e: Stripe.errors.StripeCardError) => e)
    const e2 = await stripe.paymentIntents.create(declined, { idempotencyKey: 'settle-att_dec' }).then(() => null, (e: Stripe.errors.StripeCardError) => e)
    t.equal(e2?.payment_intent?.id, e1?.payment_intent?.id)
    t.equal(e2?.headers?.['idempotent-replayed'], 'true')
    // a validation failure is not saved: fixing nothing and retrying still reaches the endpoint
    await t.rejects(stripe.paymentIntents.create({ amount: 0, currency: 'usd' }, { idempotencyKey: 'settle-att_bad' }), { statusCode: 400, rawType: 'invalid_request_error', code: 'parameter_invalid_integer' })
    await t.rejects(stripe.paymentIntents.create({ amount: 0, currency: 'usd' }, { idempotencyKey: 'settle-att_bad' }), { statusCode: 400, rawType: 'invalid_request_error', code: 'parameter_invalid_integer' })
  })

  await t.test('search by metadata', async t => {
    for (const id of ['att_s1', 'att_s2', 'att_s2']) await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', metadata: { attempt_id: id, tenant: 'acme' } })
    const one = await stripe.paymentIntents.search({ query: "metadata['attempt_id']:'att_s1'" })
    t.equal(one.object, 'search_result')
    t.equal(one.data.length, 1)
    t.equal(one.data[0]?.metadata.attempt_id, 'att_s1')
    const two = await stripe.paymentIntents.search({ query: 'metadata["attempt_id"]:"att_s2" AND status:"requires_payment_method"' })
    t.equal(two.data.length, 2)
    const none = await stripe.paymentIntents.search({ query: "metadata['attempt_id']:'att_s2' AND status:'succeeded'" })
    t.equal(none.data.length, 0)
    const paged = await stripe.paymentIntents.search({ query: "metadata['tenant']:'acme'", limit: 2 })
    t.equal(paged.has_more, true)
    const rest = await stripe.paymentIntents.search({ query: "metadata['tenant']:'acme'", limit: 2, page: String(paged.next_page) })
    t.equal(rest.data.length, 1)
    t.equal(rest.has_more, false)
    await t.rejects(stripe.paymentIntents.search({ query: 'nonsense' }), { statusCode: 400, message: /unable to parse your search query/ })
  })

  await t.test('refunds: partial then full, fees kept', async t => {
    const pi = await stripe.paymentIntents.create({ amount: 2000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
    const r1 = await stripe.refunds.create({ payment_intent: pi.id, amount: 300 }, { idempotencyKey: 'refund-1' })
    t.match(r1, { object: 'refund', amount: 300, status: 'succeeded', payment_intent: pi.id, charge: pi.latest_charge })
    const bt = await stripe.balanceTransactions.retrieve(String(r1.balance_transaction))
    t.match(bt, { amount: -300, fee: 0, net: -300, type: 'refund', source: r1.id })
    let ch = await stripe.charges.retrieve(String(pi.latest_charge))
    t.match(ch, { amount_refunded: 300, refunded: false })
    await t.rejects(stripe.refunds.create({ payment_intent: pi.id, amount: 1701 }), { statusCode: 400, param: 'amount', message: /\(\$17\.01\) is greater than unrefunded amount on charge \(\$17\.00\)/ })
    const r2 = await stripe.refunds.create({ payment_intent: pi.id })
    t.equal(r2.amount, 1700, 'the rest by default')
    ch = await stripe.charges.retrieve(String(pi.latest_charge))
    t.match(ch, { amount_refunded: 2000, refunded: true })
    t.same(ch.refunds?.data.map(r => r.id), [r2.id, r1.id])
    await t.rejects(stripe.refunds.create({ payment_intent: pi.id }), { code: 'charge_already_refunded' })
    const refundedEvents = [...store.events.values()].filter(e => e.type === 'charge.refunded' && (e.object as { id: string }).id === ch.id)
    t.same(refundedEvents.map(e => (e.object as { amount_refunded: number }).amount_refunded), [300, 2000], 'one charge.refunded per refund, with the charge as it was')
    const unpaid = await stripe.paymentIntents.create({ amount: 2000, currency: 'usd' })
    await t.rejects(stripe.refunds.create({ payment_intent: unpaid.id }), { statusCode: 400, message: /does not have a successful charge to refund/ })
  })

  await t.test('card dispute from pm_card_createDispute', async t => {
    const pi = await stripe.paymentIntents.create({ amount: 4000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true })
    t.equal(pi.status, 'succeeded')
    t.equal(store.disputes.size, 0, 'nothing until time moves')
    t.equal(store.advance(0), 1)
    const ch = await stripe.charges.retrieve(String(pi.latest_charge))
    t.equal(ch.disputed, true)
    const types = [...store.events.values()].filter(e => (e.object as { charge?: string }).charge === ch.id).map(e => e.type)
    t.same(types, ['charge.dispute.created', 'charge.dispute.funds_withdrawn'])
    const dp = [...store.disputes.values()].find(d => d.charge === ch.id)
    t.ok(dp)
    const wire = await fetch(`http://127.0.0.1:${port}/v1/disputes/${dp?.id ?? ''}`, { headers: { authorization: 'Bearer sk_test_settle_sandbox' } }).then(async r => await r.json() as Stripe.Dispute)
    t.match(wire, { status: 'needs_response', amount: 4000, reason: 'fraudulent' })
    t.match(wire.balance_transactions[0], { amount: -4000, fee: 1500, net: -5500, reporting_category: 'dispute' })
    store.closeDispute(String(dp?.id), 'lost')
    t.equal([...store.events.values()].at(-1)?.type, 'charge.dispute.closed')
    await t.rejects(stripe.refunds.create({ payment_intent: pi.id }), { code: 'charge_disputed' })
  })

  await t.test('unknown URL is a Stripe 404', async t => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/widgets`, { headers: { authorization: 'Bearer sk_test_settle_sandbox' } })
    t.equal(res.status, 404)
    t.match(await res.json(), { error: { type: 'invalid_request_error', message: /Unrecognized request URL \(GET: \/v1\/widgets\)/ } })
  })

  await t.test('responses carry every key of Stripe\'s example objects', async t => {
    // A copy of the shared contract inside the repository, so the check always runs.
    const contract = JSON.parse(readFileSync(new URL('../../fixtures/contracts/stripe-objects.json', import.meta.url), 'utf8')) as { objects: Record<string, Record<string, unknown>> }
    const c = await stripe.customers.create({})
    const { customer, pm: bankPm } = await achCustomer(stripe, 'pm_usBankAccount_success')
    const pi = await stripe.paymentIntents.create({ amount: 2000, currency: 'usd', customer: c.id, payment_method: 'pm_card_createDispute', confirm: true, expand: ['latest_charge.balance_transaction', 'payment_method'] })
    const refund = await stripe.refunds.create({ payment_intent: pi.id, amount: 100 })
    store.advance(0)
    const dispute = [...store.disputes.values()].at(-1)
    const si = [...store.setupIntents.values()].find(s => s.customer === customer)
    const samples: Record<string, unknown> = {
      customer: c,
      payment_method: pi.payment_method,
      payment_intent: pi,
      charge: store.render((pi.latest_charge as Stripe.Charge).id),
      balance_transaction: (pi.latest_charge as Stripe.Charge).balance_transaction,
      refund,
      dispute: store.render(String(dispute?.id)),
      setup_intent: store.render(String(si?.id)),
      mandate: store.render(String(si?.mandate)),
      event: store.render([...store.events.keys()].at(-1) ?? '')
    }
    t.ok(bankPm.startsWith('pm_'))
    for (const [name, sample] of Object.entries(samples)) {
      const example = contract.objects[name]
      t.ok(example, `${name} is in the contract`)
      const ours = sample as Record<string, unknown>
      const missingKeys = Object.keys(example ?? {}).filter(k => !(k in ours))
      t.same(missingKeys, [], `${name}: no key missing`)
      const wrongType = Object.entries(example ?? {}).filter(([k, v]) => v !== null && ours[k] !== null && ours[k] !== undefined && typeof v !== typeof ours[k]).map(([k]) => k)
      t.same(wrongType, [], `${name}: same types`)
      if (name === 'payment_method') t.same(Object.keys((example as { card: object }).card).filter(k => !(k in ((ours.card ?? {}) as object))), [], 'card keys')
    }
  })
})
