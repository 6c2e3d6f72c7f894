import t from 'tap'
import nock from 'nock'
import { createServer, type AddressInfo } from 'node:net'
import { createStripeClient } from '../../../src/adapters/stripe/client.js'
import { createStripePayments } from '../../../src/adapters/stripe/payments.js'
import type { ChargeInput } from '../../../src/ports/payments.js'

nock.disableNetConnect()
nock.enableNetConnect('127.0.0.1')
t.teardown(() => { nock.cleanAll(); nock.enableNetConnect() })

const input: ChargeInput = {
  customerRef: 'cus_123',
  methodRef: 'pm_123',
  amount: { amount: 150_000, currency: 'USD' },
  idempotencyKey: 'settle_attempt_abc',
  description: 'Invoice 1042',
  metadata: { settle_attempt_id: 'abc', invoice_number: '1042' }
}

const intent = (over: Record<string, unknown>): Record<string, unknown> => ({
  id: 'pi_1', object: 'payment_intent', amount: 150_000, currency: 'usd', status: 'succeeded', last_payment_error: null, metadata: {},
  latest_charge: { id: 'ch_1', object: 'charge', balance_transaction: { id: 'txn_1', object: 'balance_transaction', fee: 4380, currency: 'usd', net: 145_620 } },
  ...over
})

// No SDK retries here: its retry sleep does not keep a bare test process alive.
const payments = createStripePayments(createStripeClient({ secretKey: 'sk_test_123', maxNetworkRetries: 0 }))

t.test('a succeeded charge carries the fee from its balance transaction, sent with our key', async t => {
  const scope = nock('https://api.stripe.com')
    .post('/v1/payment_intents', body => body.amount === '150000' && body.currency === 'usd' && body.off_session === 'true' && body.confirm === 'true' &&
      body['metadata[settle_attempt_id]'] === 'abc' && body.payment_method_types === undefined)
    .matchHeader('idempotency-key', 'settle_attempt_abc')
    .matchHeader('stripe-version', '2026-10-28.endive')
    .reply(200, intent({}))
  const outcome = await payments.charge(input)
  t.match(outcome, { status: 'succeeded', intentId: 'pi_1', chargeId: 'ch_1', fee: { amount: 4380, currency: 'USD' } })
  scope.done()
})

t.test('ACH stays processing', async t => {
  nock('https://api.stripe.com').post('/v1/payment_intents').reply(200, intent({ status: 'processing', latest_charge: null }))
  t.match(await payments.charge(input), { status: 'processing', intentId: 'pi_1' })
})

t.test('a card error is a failed outcome with Stripe\'s codes, not an exception', async t => {
  nock('https://api.stripe.com').post('/v1/payment_intents').reply(402, {
    error: { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds', advice_code: 'try_again_later', message: 'Your card has insufficient funds.', payment_intent: intent({ status: 'requires_payment_method', id: 'pi_2' }) }
  })
  t.match(await payments.charge(input), { status: 'failed', intentId: 'pi_2', failure: { code: 'card_declined', declineCode: 'insufficient_funds', adviceCode: 'try_again_later' } })
})

t.test('authentication required off-session is a failure the client must fix', async t => {
  nock('https://api.stripe.com').post('/v1/payment_intents').reply(200, intent({ status: 'requires_action', latest_charge: null }))
  t.match(await payments.charge(input), { status: 'failed', failure: { code: 'authentication_required' } })
})

t.test('5xx and dropped connections are unknown outcomes, never failures', async t => {
  nock('https://api.stripe.com').post('/v1/payment_intents').reply(500, { error: { type: 'api_error', message: 'Something went wrong on Stripe\'s end.' } })
  t.match(await payments.charge(input), { status: 'unknown' })
  // A server that accepts and hangs up: what a network fault looks like to the SDK.
  const server = createServer(socket => { socket.destroy() })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const port = (server.address() as AddressInfo).port
  const dropped = createStripePayments(createStripeClient({ secretKey: 'sk_test_123', baseUrl: `http://127.0.0.1:${port}`, maxNetworkRetries: 0 }))
  t.match(await dropped.charge(input), { status: 'unknown', error: /StripeConnectionError/ })
})

t.test('a request Stripe refused charged nothing: failed', async t => {
  nock('https://api.stripe.com').post('/v1/payment_intents').reply(400, { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such PaymentMethod: pm_123' } })
  t.match(await payments.charge(input), { status: 'failed', failure: { code: 'resource_missing' } })
})

t.test('looking an attempt up searches by our metadata', async t => {
  const scope = nock('https://api.stripe.com')
    .get('/v1/payment_intents/search')
    .query(q => q.query === "metadata['settle_attempt_id']:'abc'")
    .reply(200, { object: 'search_result', data: [intent({})], has_more: false, url: '/v1/payment_intents/search' })
  t.match(await payments.findCharge({ idempotencyKey: 'settle_attempt_abc', attemptId: 'abc' }), { status: 'succeeded', intentId: 'pi_1' })
  nock('https://api.stripe.com').get('/v1/payment_intents/search').query(true).reply(200, { object: 'search_result', data: [], has_more: false })
  t.equal(await payments.findCharge({ idempotencyKey: 'k', attemptId: 'nope' }), null)
  scope.done()
})
