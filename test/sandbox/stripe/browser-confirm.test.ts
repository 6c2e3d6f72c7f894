import t from 'tap'
import { start } from '../../helpers/stripe-harness.js'
import { STRIPE_SANDBOX_PUBLISHABLE_KEY } from '../../../src/sandbox/stripe/index.js'

/** What Stripe.js sends from a browser: the publishable key and the client secret, as a form. */
async function fromBrowser (port: number, path: string, params: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'Mozilla/5.0 (browser test)', ...headers },
    body: new URLSearchParams(params).toString()
  })
  return { status: res.status, body: await res.json() as Record<string, any> }
}

const card = (number: string, extra: Record<string, string> = {}): Record<string, string> => ({
  'payment_method_data[type]': 'card',
  'payment_method_data[card][number]': number,
  'payment_method_data[card][exp_month]': '12',
  'payment_method_data[card][exp_year]': '34',
  'payment_method_data[card][cvc]': '123',
  'payment_method_data[billing_details][name]': 'Dana Whitfield',
  'payment_method_data[billing_details][address][state]': 'NY',
  ...extra
})

t.test('a browser confirms a SetupIntent with a test card; the server sees only ids', async t => {
  const { port, stripe } = await start(t)
  const customer = await stripe.customers.create({ name: 'Harbor Dental' })
  const si = await stripe.setupIntents.create({ customer: customer.id, usage: 'off_session' })
  const confirmed = await fromBrowser(port, `/v1/setup_intents/${si.id}/confirm`, { key: STRIPE_SANDBOX_PUBLISHABLE_KEY, client_secret: si.client_secret as string, ...card('4242 4242 4242 4242') })
  t.equal(confirmed.status, 200)
  t.equal(confirmed.body.status, 'succeeded')
  const pm = await stripe.paymentMethods.retrieve(String(confirmed.body.payment_method))
  t.match(pm, { customer: customer.id, card: { brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2034, funding: 'credit' }, billing_details: { name: 'Dana Whitfield', address: { state: 'NY' } } })
  t.notOk(JSON.stringify(pm).includes('4242424242424242'), 'the full number is not in the object')
  // It charges off-session afterwards, like any saved card.
  const pi = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: customer.id, payment_method: pm.id, off_session: true, confirm: true })
  t.equal(pi.status, 'succeeded')
})

t.test('the publishable key opens nothing without the right client secret, and nothing but confirmation', async t => {
  const { port, stripe } = await start(t)
  const customer = await stripe.customers.create({ name: 'Harbor Dental' })
  const si = await stripe.setupIntents.create({ customer: customer.id })
  const wrong = await fromBrowser(port, `/v1/setup_intents/${si.id}/confirm`, { key: STRIPE_SANDBOX_PUBLISHABLE_KEY, client_secret: `${si.id}_secret_guess`, ...card('4242424242424242') })
  t.equal(wrong.status, 404)
  t.equal(wrong.body.error.code, 'resource_missing')
  const none = await fromBrowser(port, `/v1/setup_intents/${si.id}/confirm`, { key: STRIPE_SANDBOX_PUBLISHABLE_KEY, ...card('4242424242424242') })
  t.equal(none.status, 404, 'no secret, no access')
  const elsewhere = await fromBrowser(port, '/v1/customers', { key: STRIPE_SANDBOX_PUBLISHABLE_KEY, name: 'x' })
  t.equal(elsewhere.status, 401, 'the publishable key cannot create customers')
  const bearer = await fromBrowser(port, '/v1/payment_intents', { amount: '100', currency: 'usd' }, { authorization: `Bearer ${STRIPE_SANDBOX_PUBLISHABLE_KEY}` })
  t.equal(bearer.status, 401)
  t.match(bearer.body.error.message, /publishable API key/)
  t.equal((await stripe.setupIntents.retrieve(si.id)).status, 'requires_payment_method', 'the SetupIntent is untouched')
})

t.test('card numbers behave as Stripe test numbers do', async t => {
  const { port, stripe } = await start(t)
  const customer = await stripe.customers.create({ name: 'Harbor Dental' })
  const attempt = async (number: string, extra: Record<string, string> = {}): Promise<{ status: number, body: Record<string, any> }> => {
    const si = await stripe.setupIntents.create({ customer: customer.id })
    return await fromBrowser(port, `/v1/setup_intents/${si.id}/confirm`, { key: STRIPE_SANDBOX_PUBLISHABLE_KEY, client_secret: si.client_secret as string, ...card(number, extra) })
  }
  t.match(await attempt('4242424242424241'), { status: 402, body: { error: { code: 'incorrect_number' } } }, 'fails the Luhn check')
  t.match(await attempt('4111111111111111'), { status: 402, body: { error: { code: 'card_declined', decline_code: 'test_mode_live_card' } } }, 'a real card number in test mode')
  t.match(await attempt('4000000000000002'), { status: 402, body: { error: { code: 'card_declined', decline_code: 'generic_decline' } } })
  t.match(await attempt('4242424242424242', { 'payment_method_data[card][exp_year]': '20' }), { status: 402, body: { error: { code: 'invalid_expiry_year' } } })
  t.match(await attempt('4242424242424242', { 'payment_method_data[card][cvc]': '1' }), { status: 402, body: { error: { code: 'incorrect_cvc' } } })
  const debit = await attempt('4000056655665556')
  t.equal((await stripe.paymentMethods.retrieve(String(debit.body.payment_method))).card?.funding, 'debit')
})

t.test('3D Secure at setup: the cardholder approves or fails', async t => {
  const { port, stripe } = await start(t)
  const customer = await stripe.customers.create({ name: 'Harbor Dental' })
  for (const [answer, status] of [['approve', 'succeeded'], ['fail', 'requires_payment_method']] as const) {
    const si = await stripe.setupIntents.create({ customer: customer.id })
    const secret = si.client_secret as string
    const first = await fromBrowser(port, `/v1/setup_intents/${si.id}/confirm`, { key: STRIPE_SANDBOX_PUBLISHABLE_KEY, client_secret: secret, ...card('4000002500003155') })
    t.equal(first.body.status, 'requires_action')
    t.equal(first.body.next_action.type, 'use_stripe_sdk')
    const done = await fromBrowser(port, `/v1/setup_intents/${si.id}/sandbox_authenticate`, { key: STRIPE_SANDBOX_PUBLISHABLE_KEY, client_secret: secret, result: answer })
    t.equal(done.body.status, status, answer)
    if (answer === 'fail') t.equal(done.body.last_setup_error.code, 'setup_intent_authentication_failure')
    else {
      const pi = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', customer: customer.id, payment_method: String(done.body.payment_method), off_session: true, confirm: true })
      t.equal(pi.status, 'succeeded', 'set up with authentication, it then charges off-session')
    }
  }
})

t.test('a bank account: the mandate takes the browser IP and user agent', async t => {
  const { port, stripe } = await start(t)
  const customer = await stripe.customers.create({ name: 'Harbor Dental' })
  const si = await stripe.setupIntents.create({ customer: customer.id })
  const bank = {
    key: STRIPE_SANDBOX_PUBLISHABLE_KEY,
    client_secret: si.client_secret as string,
    'payment_method_data[type]': 'us_bank_account',
    'payment_method_data[us_bank_account][routing_number]': '110000000',
    'payment_method_data[us_bank_account][account_number]': '000123456789',
    'payment_method_data[billing_details][name]': 'Harbor Dental LLC',
    'mandate_data[customer_acceptance][type]': 'online',
    'mandate_data[customer_acceptance][online][infer_from_client]': 'true'
  }
  const wrongAccount = await fromBrowser(port, `/v1/setup_intents/${si.id}/confirm`, { ...bank, 'payment_method_data[us_bank_account][account_number]': '000999' })
  t.equal(wrongAccount.body.error.code, 'account_number_invalid')
  const done = await fromBrowser(port, `/v1/setup_intents/${si.id}/confirm`, bank)
  t.equal(done.body.status, 'succeeded')
  const mandate = await stripe.mandates.retrieve(String(done.body.mandate))
  t.match(mandate.customer_acceptance, { type: 'online', online: { ip_address: '127.0.0.1', user_agent: 'Mozilla/5.0 (browser test)' } })
  const pm = await stripe.paymentMethods.retrieve(String(done.body.payment_method))
  t.match(pm.us_bank_account, { last4: '6789', bank_name: 'STRIPE TEST BANK' })
})
