import t from 'tap'
import type { Test } from 'tap'
import pino from 'pino'
import type { Knex } from 'knex'
import type { FastifyInstance } from 'fastify'
import { testDb } from '../helpers/db.js'
import { countRows, makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { start } from '../helpers/stripe-harness.js'
import { buildApp } from '../../src/app.js'
import { createStripePayments } from '../../src/adapters/stripe/payments.js'
import { STRIPE_SANDBOX_PUBLISHABLE_KEY, type StripeStore } from '../../src/sandbox/stripe/index.js'
import { signPayLink } from '../../src/security/pay-links.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { setBrand } from '../../src/db/branding.js'
import { syncInvoices } from '../../src/services/sync.js'
import { achMandateFormText, autopayAuthorisationText } from '../../src/domain/consents.js'
import { Worker } from '../../src/jobs/worker.js'
import type { PaymentsPort } from '../../src/ports/payments.js'
import type Stripe from 'stripe'

const ORIGIN = 'https://pay.brightline.example'
const BROWSER = 'Mozilla/5.0 (checkout test)'

interface Fixture { app: FastifyInstance, db: Knex, stripe: Stripe, store: StripeStore, port: number, tenantId: string, url: (psaId: string) => Promise<string>, invoiceId: (psaId: string) => Promise<string> }

/** A tenant on the Stripe stand-in (the browser's side included) with two clients' invoices synced. */
async function fixture (t: Test, { browser = true, moreOwed = false }: { browser?: boolean, moreOwed?: boolean } = {}): Promise<Fixture> {
  const db = await testDb(t)
  const { port, stripe, store } = await start(t)
  const payments: PaymentsPort = createStripePayments(stripe, browser ? { publishableKey: STRIPE_SANDBOX_PUBLISHABLE_KEY, sandboxApiBase: `http://127.0.0.1:${port}` } : { publishableKey: 'pk_live_example', sandboxApiBase: null })
  const app = await buildApp(testConfig({ PUBLIC_URL: ORIGIN }), { db, keyring: testKeyring(), paymentsFor: async () => payments })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Brightline Managed IT')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.addCompany('2', 'Summit Law')
  psa.put('1', { company: '1', total: 123_456 })
  psa.put('2', { company: '2', total: 50_000 })
  // Harbor Dental also owes two older invoices (a statement to pay).
  if (moreOwed) { psa.put('3', { company: '1', total: 20_000, dueOn: '2026-09-30' }); psa.put('4', { company: '1', total: 5_000, dueOn: '2026-08-31' }) }
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoiceId = async (psaId: string): Promise<string> => (await invoicesByPsaIds(db, tenant.id, 'connectwise', [psaId])).get(psaId)!.id
  const url = async (psaId: string): Promise<string> => `/pay/${signPayLink(app.keyring, { tenantId: tenant.id, invoiceId: await invoiceId(psaId), expiresAt: new Date(Date.now() + 86_400_000) })}`
  return { app, db, stripe, store, port, tenantId: tenant.id, url, invoiceId }
}

/** Step 1 from the page's script, then the browser's confirmation at the processor, as checkout.js does it. */
async function setUp (f: Fixture, url: string, data: Record<string, string>): Promise<string> {
  const started = await f.app.inject({ method: 'POST', url: `${url}/setup`, headers: { origin: ORIGIN } })
  if (started.statusCode !== 200) throw new Error(started.body)
  const setup = started.json() as { setupId: string, clientSecret: string, publishableKey: string }
  const res = await fetch(`http://127.0.0.1:${f.port}/v1/setup_intents/${setup.setupId}/confirm`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': BROWSER },
    body: new URLSearchParams({ key: setup.publishableKey, client_secret: setup.clientSecret, ...data }).toString()
  })
  const body = await res.json() as { status?: string, error?: { message: string } }
  if (body.status !== 'succeeded') throw new Error(body.error?.message ?? `setup ${body.status ?? ''}`)
  return setup.setupId
}

const CARD = { 'payment_method_data[type]': 'card', 'payment_method_data[card][number]': '4242424242424242', 'payment_method_data[card][exp_month]': '9', 'payment_method_data[card][exp_year]': '2031', 'payment_method_data[card][cvc]': '314', 'payment_method_data[billing_details][address][state]': 'NY' }
const BANK = { 'payment_method_data[type]': 'us_bank_account', 'payment_method_data[us_bank_account][routing_number]': '110000000', 'payment_method_data[us_bank_account][account_number]': '000123456789', 'payment_method_data[billing_details][name]': 'Harbor Dental LLC', 'mandate_data[customer_acceptance][type]': 'online', 'mandate_data[customer_acceptance][online][infer_from_client]': 'true' }

/** A form post as a browser makes it: the page's answer is a redirect (POST/redirect/GET), followed to the page. */
async function post (f: Fixture, options: { url: string, headers: Record<string, string>, payload?: Record<string, string | undefined> }): Promise<{ statusCode: number, body: string }> {
  const posted = await f.app.inject({ method: 'POST', ...options })
  if (posted.statusCode !== 303) return posted
  return await f.app.inject({ url: String(posted.headers.location), headers: { accept: 'text/html' } })
}

const submit = async (f: Fixture, url: string, form: Record<string, string>): Promise<{ statusCode: number, body: string }> =>
  await post(f, { url: `${url}/methods`, headers: { origin: ORIGIN, 'user-agent': BROWSER, 'x-forwarded-for': '198.51.100.9' }, payload: form })

const drain = async (f: Fixture): Promise<void> => {
  const worker = new Worker({ db: f.db, handlers: f.app.jobHandlers, log: pino({ level: 'silent' }), concurrency: 1 })
  while (await worker.runOnce() > 0) { /* until idle */ }
}

t.test('a client adds a card, turns on auto-pay and pays, all from the pay page', async t => {
  const f = await fixture(t)
  const url = await f.url('1')
  const page = await f.app.inject({ url, headers: { accept: 'text/html' } })
  t.equal(page.statusCode, 200)
  t.match(page.body, /Pay with a card or bank account/)
  t.match(page.body, /data-mode="sandbox"/)
  t.match(page.body, /Test mode/)
  t.notMatch(page.body, /name="number"|name="account"/, 'card and account fields have no name: the form never posts them to Settle')
  t.ok(page.body.includes(autopayAuthorisationText('Brightline Managed IT')), 'the authorisation text is shown as recorded')

  const setupId = await setUp(f, url, CARD)
  const done = await submit(f, url, { setup_intent: setupId, name: 'Dana Whitfield', email: 'dana@harbor.example', keep: 'on', autopay: 'on', pay_now: 'on' })
  t.equal(done.statusCode, 200, done.body.slice(0, 300))
  t.match(done.body, /Thank you: your payment of \$1,234\.56 went through/)
  t.match(done.body, /Visa ending 4242, expires 09\/2031/)
  t.match(done.body, /Auto-pay is on since/)

  const method = await f.db('payment_methods').where({ tenant_id: f.tenantId }).first()
  t.match(method, { type: 'card', brand: 'visa', last4: '4242', exp_month: 9, exp_year: 2031, funding: 'credit', is_default: true, status: 'active' })
  const mapped = await f.db('processor_customers').where({ tenant_id: f.tenantId, customer_id: method.customer_id }).first()
  t.equal(mapped.ref, method.processor_customer_ref, 'the client has one Stripe customer, remembered')
  const consent = await f.db('payment_consents').where({ tenant_id: f.tenantId, kind: 'autopay' }).first()
  t.match(consent, { accepted_by_name: 'Dana Whitfield', accepted_by_email: 'dana@harbor.example', user_agent: BROWSER, text: autopayAuthorisationText('Brightline Managed IT'), revoked_at: null })
  t.ok(consent.ip.length > 0)
  t.equal((await f.db('autopay_rules').where({ tenant_id: f.tenantId, customer_id: method.customer_id }).first()).enrolled, true)
  const attempt = await f.db('payment_attempts').where({ tenant_id: f.tenantId }).first()
  t.match(attempt, { status: 'succeeded', trigger: 'checkout', actor: 'client', amount: '123456' })
  t.equal((await invoicesByPsaIds(f.db, f.tenantId, 'connectwise', ['1'])).get('1')?.status, 'paid')

  // A double submit (reload, second click) saves nothing more and charges nothing more.
  const twice = await submit(f, url, { setup_intent: setupId, name: 'Dana Whitfield', keep: 'on', autopay: 'on', pay_now: 'on' })
  t.equal(twice.statusCode, 200)
  t.equal(await countRows(f.db, 'payment_methods'), 1)
  t.equal(await countRows(f.db, 'payment_consents'), 1)
  t.equal(await countRows(f.db, 'payment_attempts'), 1)

  // Turning auto-pay off from the same page.
  const off = await post(f, { url: `${url}/autopay/cancel`, headers: { origin: ORIGIN } })
  t.match(off.body, /Auto-pay is off/)
  t.equal((await f.db('autopay_rules').where({ tenant_id: f.tenantId, customer_id: method.customer_id }).first()).enrolled, false)
  t.match(await f.db('payment_consents').where({ tenant_id: f.tenantId, kind: 'autopay' }).first(), { revoked_by: 'client' })
  t.ok((await f.db('payment_consents').where({ tenant_id: f.tenantId, kind: 'autopay' }).first()).revoked_at, 'revoked, kept for the record')
})

t.test('a bank account records the mandate in the words shown, and pays as processing', async t => {
  const f = await fixture(t)
  const url = await f.url('1')
  const setupId = await setUp(f, url, BANK)
  const done = await submit(f, url, { setup_intent: setupId, name: 'Dana Whitfield', keep: 'on', pay_now: 'on' })
  t.match(done.body, /Your payment of \$1,234\.56 is processing/)
  const mandate = await f.db('payment_consents').where({ tenant_id: f.tenantId, kind: 'ach_mandate' }).first()
  t.equal(mandate.text, achMandateFormText('Brightline Managed IT'))
  t.equal(mandate.user_agent, BROWSER)
  t.ok(mandate.payment_method_id)
  t.equal(await countRows(f.db, 'payment_consents'), 1, 'no auto-pay consent when not asked')
  t.match(await f.db('payment_attempts').first(), { status: 'processing' })
  const remove = await f.app.inject({ method: 'POST', url: `${url}/methods/${mandate.payment_method_id as string}/remove`, headers: { origin: ORIGIN } })
  t.equal(remove.statusCode, 409, 'a method with a payment in flight cannot be removed')
  t.match(remove.body, /still processing/)
})

t.test('a method used once and not kept is forgotten: detached at Stripe', async t => {
  const f = await fixture(t)
  const url = await f.url('2')
  const setupId = await setUp(f, url, CARD)
  const done = await submit(f, url, { setup_intent: setupId, name: 'Pat Summit', pay_now: 'on' })
  t.match(done.body, /Thank you/)
  await drain(f)
  const method = await f.db('payment_methods').first()
  t.equal(method.status, 'detached')
  t.equal((await f.stripe.paymentMethods.retrieve(method.processor_method_ref)).customer, null, 'detached at the processor through the outbox')
  const refused = await submit(f, url, { setup_intent: setupId, name: 'Pat Summit', autopay: 'on' })
  t.equal(refused.statusCode, 400, 'auto-pay without keeping the method is refused')
})

t.test('a SetupIntent from another client, or one not confirmed, saves nothing', async t => {
  const f = await fixture(t)
  const harbor = await f.url('1')
  const summit = await f.url('2')
  const summitSetup = await setUp(f, summit, CARD)
  const crossed = await submit(f, harbor, { setup_intent: summitSetup, name: 'Mallory', keep: 'on', pay_now: 'on' })
  t.equal(crossed.statusCode, 400)
  t.match(crossed.body, /belong to another payment page/)
  const started = (await f.app.inject({ method: 'POST', url: `${harbor}/setup`, headers: { origin: ORIGIN } })).json() as { setupId: string }
  const unconfirmed = await submit(f, harbor, { setup_intent: started.setupId, name: 'Dana', keep: 'on' })
  t.equal(unconfirmed.statusCode, 409)
  t.match(unconfirmed.body, /not been confirmed yet/)
  const garbage = await submit(f, harbor, { setup_intent: '<script>', name: 'Dana', keep: 'on' })
  t.equal(garbage.statusCode, 400)
  const noName = await submit(f, harbor, { setup_intent: summitSetup, name: ' ', keep: 'on' })
  t.equal(noName.statusCode, 400)
  const foreign = await f.app.inject({ method: 'POST', url: `${harbor}/setup`, headers: { origin: 'https://evil.example' } })
  t.equal(foreign.statusCode, 400, 'another site cannot start a setup')
  t.equal(await countRows(f.db, 'payment_methods'), 0)
  t.equal(await countRows(f.db, 'payment_consents'), 0)
  t.equal(await countRows(f.db, 'payment_attempts'), 0)
})

t.test('the tenant brand: name, colours and logo, safely', async t => {
  const f = await fixture(t)
  const url = await f.url('1')
  await setBrand(f.db, f.tenantId, { name: 'Brightline <IT>', accent: '#1D4ED8', supportEmail: 'billing@brightline.example', logo: { type: 'image/svg+xml', bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>') } })
  const page = await f.app.inject({ url, headers: { accept: 'text/html' } })
  t.match(page.body, /Brightline &lt;IT&gt;/, 'escaped')
  t.notMatch(page.body, /Brightline <IT>/)
  t.match(page.body, /billing@brightline\.example/)
  const theme = /href="(\/brand\/[^"]+\/theme\.css\?v=[^"]+)"/.exec(page.body)?.[1]
  const logo = /src="(\/brand\/[^"]+\/logo\?v=[^"]+)"/.exec(page.body)?.[1]
  const css = await f.app.inject({ url: theme ?? '' })
  t.equal(css.statusCode, 200)
  t.match(css.body, /--accent: #1d4ed8;/)
  t.match(css.headers['content-type'], /text\/css/)
  const img = await f.app.inject({ url: logo ?? '' })
  t.equal(img.headers['content-type'], 'image/svg+xml')
  t.match(img.headers['content-security-policy'], /sandbox/, 'an SVG opened on its own runs no script')
  t.equal((await f.app.inject({ url: '/brand/not-a-uuid/logo' })).statusCode, 404)
  const bad = setBrand(f.db, f.tenantId, { accent: 'red' })
  await t.rejects(bad, { code: 'VALIDATION_FAILED' })
  await t.rejects(setBrand(f.db, f.tenantId, { logo: { type: 'text/html', bytes: Buffer.from('<p>') } }), { code: 'VALIDATION_FAILED' })
  t.match(await f.app.inject({ url: theme ?? '' }), { body: /#1d4ed8/ }, 'refused changes changed nothing')
})

t.test('on the real service the page loads Stripe.js under a CSP that allows only Stripe', async t => {
  const f = await fixture(t, { browser: false })
  const page = await f.app.inject({ url: await f.url('1'), headers: { accept: 'text/html' } })
  t.match(page.body, /data-mode="stripe"/)
  t.match(page.body, /<script src="https:\/\/js\.stripe\.com\/v3\/"/)
  t.match(page.body, /id="payment-element"/)
  t.match(page.headers['content-security-policy'], /script-src 'self' https:\/\/js\.stripe\.com;/)
  t.match(page.headers['content-security-policy'], /frame-src https:\/\/js\.stripe\.com https:\/\/hooks\.stripe\.com/)
})

t.test('installments from the pay page: see the schedule, agree in those words, pay part 1, cancel the rest', async t => {
  const f = await fixture(t)
  const { setInstallmentSettings } = await import('../../src/db/installments.js')
  await setInstallmentSettings(f.db, f.tenantId, { minAmount: 100_000, maxParts: 3 })
  const url = await f.url('1')
  const setupId = await setUp(f, url, CARD)
  await submit(f, url, { setup_intent: setupId, name: 'Dana Whitfield', keep: 'on' })
  const page = await f.app.inject({ url, headers: { accept: 'text/html' } })
  t.match(page.body, /Or pay in monthly installments/)
  t.match(page.body, /3 monthly payments of \$411\.52 \(the first \$411\.52\)|3 monthly payments of \$411\.52/)
  t.notMatch(page.body, /4 monthly payments/, 'no more parts than the tenant allows')

  const preview = await f.app.inject({ method: 'POST', url: `${url}/installments/preview`, headers: { origin: ORIGIN }, payload: { parts: '3' } })
  t.match(preview.body, /Pay in 3 monthly payments/)
  const text = /name="text_shown" value="([^"]+)"/.exec(preview.body)?.[1]?.replace(/&#x27;/g, "'").replace(/&amp;/g, '&').replace(/&#x3D;/g, '=')
  t.ok(text?.includes('in 3 installments'), 'the exact words are carried to the agreement')
  const methodId = (await f.db('payment_methods').first('id')).id as string

  const stale = await f.app.inject({ method: 'POST', url: `${url}/installments`, headers: { origin: ORIGIN }, payload: { parts: '3', method: methodId, name: 'Dana Whitfield', text_shown: 'other words' } })
  t.equal(stale.statusCode, 409, 'terms that differ from what was shown are refused')
  t.equal(await countRows(f.db, 'installment_plans'), 0)

  const agreed = await post(f, { url: `${url}/installments`, headers: { origin: ORIGIN, 'user-agent': BROWSER }, payload: { parts: '3', method: methodId, name: 'Dana Whitfield', text_shown: text } })
  t.equal(agreed.statusCode, 200, agreed.body.slice(0, 200))
  t.match(agreed.body, /Your plan of 3 payments is set up\./)
  t.match(agreed.body, /The first payment of \$[\d,.]+ went through/)
  t.match(agreed.body, /Installment plan/)
  t.equal((agreed.body.match(/<td>Paid<\/td>/g) ?? []).length, 1)
  t.equal((agreed.body.match(/<td>Scheduled<\/td>/g) ?? []).length, 2)
  const consent = await f.db('payment_consents').where({ kind: 'installments' }).first()
  t.equal(consent.text, text)
  t.equal(consent.user_agent, BROWSER)

  const planId = (await f.db('installment_plans').first('id')).id as string
  const cancelled = await post(f, { url: `${url}/installments/${planId}/cancel`, headers: { origin: ORIGIN } })
  t.match(cancelled.body, /remaining payments are cancelled/)
  t.equal((await f.db('installment_plans').first('status')).status, 'cancelled')
  t.equal((await f.db('installment_parts').where({ status: 'cancelled' })).length, 2)
})

t.test('a credit card surcharge is shown before paying, and charged only as shown', async t => {
  const f = await fixture(t)
  const { setTenantSurcharge } = await import('../../src/db/tenants.js')
  await setTenantSurcharge(f.db, f.tenantId, { rateBp: 300, blockedStates: ['CT'] })
  const url = await f.url('1')
  const setupId = await setUp(f, url, CARD)
  const added = await submit(f, url, { setup_intent: setupId, name: 'Dana Whitfield', keep: 'on', pay_now: 'on' })
  t.match(added.body, /a \$37\.03 surcharge applies: confirm the total of \$1,271\.59 above/)
  t.equal(await countRows(f.db, 'payment_attempts'), 0, 'nothing charged before the client saw the surcharge')
  t.match(added.body, /\$1,271\.59, including a \$37\.03 credit card surcharge/)
  const methodId = (await f.db('payment_methods').first('id')).id as string

  const stale = await f.app.inject({ method: 'POST', url, headers: { origin: ORIGIN }, payload: { method: `${methodId}:0` } })
  t.equal(stale.statusCode, 409, 'a surcharge different from the one shown is refused')
  t.equal(await countRows(f.db, 'payment_attempts'), 0)

  const paid = await post(f, { url, headers: { origin: ORIGIN }, payload: { method: `${methodId}:3703` } })
  t.match(paid.body, /your payment of \$1,271\.59 went through/)
  t.match(await f.db('payment_attempts').first(), { amount: '123456', surcharge_amount: '3703', status: 'succeeded' })
  const intent = await f.stripe.paymentIntents.retrieve((await f.db('payment_attempts').first('processor_intent_ref')).processor_intent_ref as string)
  t.equal(intent.amount, 127_159, 'the processor charged the total shown')
})

t.test('a client who owes several invoices pays them all in one payment from the link for any one', async t => {
  const f = await fixture(t, { moreOwed: true })
  const { setTenantSurcharge } = await import('../../src/db/tenants.js')
  await setTenantSurcharge(f.db, f.tenantId, { rateBp: 300, blockedStates: [] })
  const url = await f.url('1')
  const single = await f.app.inject({ method: 'GET', url })
  t.notMatch(single.body, 'Pay everything you owe', 'nothing offered before a method is on file')
  await submit(f, url, { setup_intent: await setUp(f, url, CARD), name: 'Dana Whitfield', keep: 'on' })
  const page = await f.app.inject({ method: 'GET', url })
  t.match(page.body, 'Pay everything you owe')
  t.match(page.body, /You have 3 open invoices, \$1,484\.56 in all/)
  t.match(page.body, /Pay all 3 invoices: \$1,484\.56/)
  t.match(page.body, /\$1,529\.09, including a \$44\.53 credit card surcharge/, 'the surcharge on the whole is shown before paying')
  const rows = [...page.body.matchAll(/<tr><td>(INV-\d)<\/td>/g)].map(m => m[1])
  t.same(rows, ['INV-4', 'INV-3', 'INV-1'], 'listed in the order they are paid: oldest due first')
  const methodId = (await f.db('payment_methods').first('id')).id as string

  const stale = await f.app.inject({ method: 'POST', url: `${url}/statement`, headers: { origin: ORIGIN }, payload: { method: `${methodId}:0` } })
  t.equal(stale.statusCode, 409, 'a surcharge other than the one shown is refused')
  const offsite = await f.app.inject({ method: 'POST', url: `${url}/statement`, headers: { origin: 'https://evil.example' }, payload: { method: `${methodId}:4453` } })
  t.equal(offsite.statusCode, 400, 'a form from another site is refused')
  t.equal(await countRows(f.db, 'payment_attempts'), 0)

  const paid = await post(f, { url: `${url}/statement`, headers: { origin: ORIGIN }, payload: { method: `${methodId}:4453` } })
  t.match(paid.body, /your payment of \$1,529\.09 went through/)
  t.match(paid.body, 'Paid in full')
  const attempt = await f.db('payment_attempts').first() as { invoice_id: string | null, amount: string, surcharge_amount: string, actor: string, trigger: string, processor_intent_ref: string }
  t.match(attempt, { invoice_id: null, amount: '148456', surcharge_amount: '4453', actor: 'client', trigger: 'checkout' })
  const intent = await f.stripe.paymentIntents.retrieve(attempt.processor_intent_ref)
  t.equal(intent.amount, 152_909, 'one charge for the total shown')
  const statuses = await f.db('invoices').where({ tenant_id: f.tenantId }).orderBy('psa_invoice_id').pluck('status')
  t.same(statuses, ['paid', 'open', 'paid', 'paid'], 'all three of Harbor\'s invoices are paid; Summit\'s is untouched')
  t.notMatch((await f.app.inject({ method: 'GET', url: await f.url('3') })).body, 'Pay everything you owe', 'nothing left to offer')
})
