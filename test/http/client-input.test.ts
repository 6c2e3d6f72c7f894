import t, { type Test } from 'tap'
import net from 'node:net'
import { startDemoApp } from '../helpers/demo-app.js'
import { dbFingerprint } from '../helpers/db-fingerprint.js'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { start } from '../helpers/stripe-harness.js'
import { buildApp } from '../../src/app.js'
import { createStripePayments } from '../../src/adapters/stripe/payments.js'
import { signStripePayload } from '../../src/adapters/stripe/webhook.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { syncInvoices } from '../../src/services/sync.js'
import { API_SCOPES, createApiKey } from '../../src/security/api-keys.js'
import { signPayLink } from '../../src/security/pay-links.js'
import { DEMO_STRIPE_WEBHOOK_SECRET } from '../../src/demo/seed.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS, CONNECTWISE_SANDBOX_MEMBER } from '../../src/sandbox/connectwise/index.js'

/** Issue 13 item 9: client input that used to answer 5xx or a foreign body. Each answer is a catalogue 4xx and writes nothing. */

interface Answer { statusCode: number, body: string, headers: Record<string, unknown> }

const catalogue = (t: Test, res: Answer, status: number, code: string, what: string): void => {
  t.equal(res.statusCode, status, `${what}: status`)
  let body: { error?: { code?: unknown, message?: unknown } } = {}
  try { body = JSON.parse(res.body) } catch { t.fail(`${what}: the body is JSON (got ${res.body.slice(0, 120)})`) }
  t.equal(body.error?.code, code, `${what}: code`)
  t.type(body.error?.message, 'string', `${what}: a message`)
}

/** One raw HTTP/1.1 exchange, for what Node's parser refuses before fastify sees a request. */
async function rawExchange (base: string, request: string): Promise<string> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => { socket.end(request) })
    let text = ''
    socket.on('data', chunk => { text += chunk.toString('latin1') })
    socket.on('error', error => { if (text === '') reject(error); else resolve(text) })
    socket.on('close', () => { resolve(text) })
  })
}

const split = (raw: string): Answer => {
  const [head = '', ...rest] = raw.split('\r\n\r\n')
  const statusCode = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)
  return { statusCode, body: rest.join('\r\n\r\n'), headers: {} }
}

t.test('client input on the embedded default answers a catalogue 4xx and writes nothing', async t => {
  const { app, db, base, tenants } = await startDemoApp(t)
  const brightline = tenants.find(x => x.slug === 'brightline')!
  const invoice = await db('invoices').where({ tenant_id: brightline.id }).first('id', 'customer_id') as { id: string, customer_id: string }
  const token = signPayLink(app.keyring, { tenantId: brightline.id, invoiceId: invoice.id, expiresAt: new Date(Date.now() + 86_400_000) })
  const before = await dbFingerprint(db)

  // The SetupIntent id comes from the browser: one Stripe never issued is the client's mistake.
  const unknownSetup = await app.inject({ method: 'POST', url: `/pay/${token}/methods`, headers: { accept: 'application/json' }, payload: { setup_intent: 'seti_doesnotexist123', name: 'Dana Client', keep: 'on' } })
  t.equal(unknownSetup.statusCode, 400, 'an unknown SetupIntent on the pay page')
  t.match(unknownSetup.body, /start again|did not reach us/, 'the page says what to do')

  // ConnectWise member fields are cookie values: refuse what no real member sends before calling ConnectWise.
  const cwTenant = tenants.find(x => x.slug === 'brightline')!
  for (const [what, value] of [['a semicolon', 'demo.tech; admin=1'], ['CR-LF', 'demo.tech\r\nX-Evil: 1'], ['NUL', 'demo\u0000tech'], ['600 characters', 'a'.repeat(600)]] as const) {
    const res = await app.inject({
      method: 'POST', url: '/embedded/cw/session',
      payload: { tenant: cwTenant.slug, companyid: CONNECTWISE_SANDBOX_CREDENTIALS.companyId, memberid: value, memberHash: CONNECTWISE_SANDBOX_MEMBER.memberHash, memberContext: CONNECTWISE_SANDBOX_MEMBER.memberContext }
    })
    catalogue(t, res, 400, 'VALIDATION_FAILED', `a member id with ${what}`)
    t.match(res.json().error.message, /memberid/, `${what}: the field is named`)
    const hash = await app.inject({
      method: 'POST', url: '/embedded/cw/session',
      payload: { tenant: cwTenant.slug, companyid: CONNECTWISE_SANDBOX_CREDENTIALS.companyId, memberid: CONNECTWISE_SANDBOX_MEMBER.memberId, memberHash: value, memberContext: CONNECTWISE_SANDBOX_MEMBER.memberContext }
    })
    catalogue(t, hash, 400, 'VALIDATION_FAILED', `a member hash with ${what}`)
  }

  // The static plugin's own refusals (traversal, a NUL) are mapped like any other error.
  for (const url of ['/assets/%2e%2e/%2e%2e/package.json', '/assets/%2e%2e/app.css', '/assets/%00', '/assets/a%00.css']) {
    const res = await app.inject({ method: 'GET', url })
    t.ok(res.statusCode >= 400 && res.statusCode < 500, `${url}: a 4xx (got ${res.statusCode})`)
    t.type(res.json().error?.code, 'string', `${url}: in the catalogue format`)
  }

  // A validly signed event that is not a Stripe event: refused, stored nowhere.
  for (const [what, event] of [['no data', { id: 'evt_nodata', type: 'payment_intent.succeeded' }], ['no id', { type: 'payment_intent.succeeded', data: { object: { id: 'pi_1', object: 'payment_intent' } } }], ['data not an object', { id: 'evt_x', type: 'x', data: 'nope' }], ['an array', [1, 2]], ['null', null]] as const) {
    const payload = JSON.stringify(event)
    const res = await app.inject({ method: 'POST', url: `/webhooks/stripe/${brightline.slug}`, headers: { 'content-type': 'application/json', 'stripe-signature': signStripePayload(payload, DEMO_STRIPE_WEBHOOK_SECRET) }, payload })
    catalogue(t, res, 400, 'VALIDATION_FAILED', `a signed event with ${what}`)
  }

  // A pay token signed with this server's key whose ids are not UUIDs (a key shared with a tool, an old format).
  const odd: Array<[string, string]> = [[brightline.id, 'not-a-uuid'], ['nope', invoice.id], [brightline.id, "1' or '1'='1"]]
  for (const [tenantId, invoiceId] of odd) {
    const oddToken = signPayLink(app.keyring, { tenantId, invoiceId, expiresAt: new Date(Date.now() + 86_400_000) })
    for (const [method, url] of [['GET', `/pay/${oddToken}`], ['POST', `/pay/${oddToken}/setup`]] as const) {
      const res = await app.inject({ method, url, headers: { accept: 'application/json' } })
      catalogue(t, res, 404, 'PAY_LINK_INVALID', `${method} a pay token naming ${invoiceId} of ${tenantId}`)
    }
  }

  // A path parameter past the router's limit: 414 in the catalogue format.
  const long = await app.inject({ method: 'GET', url: `/pay/${'x'.repeat(600)}` })
  catalogue(t, long, 414, 'URL_TOO_LONG', 'a path parameter past the limit')

  // Refused by Node's HTTP parser before fastify has a request: still the catalogue format.
  const huge = split(await rawExchange(base, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`))
  catalogue(t, huge, 431, 'HEADERS_TOO_LARGE', 'headers past the limit')
  const hugeUrl = split(await rawExchange(base, `GET /health?q=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`))
  catalogue(t, hugeUrl, 431, 'HEADERS_TOO_LARGE', 'a URL past the header limit')
  const garbage = split(await rawExchange(base, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'))
  catalogue(t, garbage, 400, 'MALFORMED_REQUEST', 'a request Node cannot parse')

  t.same(await dbFingerprint(db), before, 'no refusal wrote anything')
})

t.test('the admin API refuses what it does not understand, naming the field, and writes nothing', async t => {
  const db = await testDb(t)
  const { stripe } = await start(t)
  const payments = createStripePayments(stripe)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring(), paymentsFor: async () => payments })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Brightline Managed IT')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.put('1', { company: '1', total: 80_000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoice = (await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1'])).get('1')!
  const customer = await stripe.customers.create({ name: 'Harbor Dental' })
  const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id })
  const card = await savePaymentMethod(db, tenant.id, { customerId: invoice.customerId, processorCustomerRef: customer.id, processorMethodRef: pm.id, type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: true })
  const { key } = await createApiKey(db, tenant.id, 'back office', [...API_SCOPES])
  const call = async (method: 'GET' | 'POST', url: string, payload?: unknown): Promise<Answer & { json: () => any }> =>
    await app.inject({ method, url, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}) })

  const paid = await call('POST', `/api/v1/invoices/${invoice.id}/charges`, { paymentMethodId: card.id, amount: 30_000 })
  t.equal(paid.statusCode, 201)
  const attemptId = paid.json().attempt.id as string
  const before = await dbFingerprint(db)

  const refusals: Array<[string, 'GET' | 'POST', string, unknown, RegExp]> = [
    ['a charge in another currency', 'POST', `/api/v1/invoices/${invoice.id}/charges`, { paymentMethodId: card.id, amount: 1000, currency: 'EUR' }, /currency/],
    ['a charge with a misspelt field', 'POST', `/api/v1/invoices/${invoice.id}/charges`, { paymentMethodId: card.id, ammount: 1000 }, /ammount/],
    ['a charge with a text amount', 'POST', `/api/v1/invoices/${invoice.id}/charges`, { paymentMethodId: card.id, amount: '1000' }, /amount/],
    ['a charge with a boolean amount', 'POST', `/api/v1/invoices/${invoice.id}/charges`, { paymentMethodId: card.id, amount: true }, /amount/],
    ['a charge whose body is a list', 'POST', `/api/v1/invoices/${invoice.id}/charges`, [card.id], /body/],
    ['a refund whose reason is an object', 'POST', `/api/v1/payments/${attemptId}/refunds`, { amount: 1000, reason: { text: 'duplicate' } }, /reason/],
    ['a refund whose reason is a list', 'POST', `/api/v1/payments/${attemptId}/refunds`, { amount: 1000, reason: ['duplicate'] }, /reason/],
    ['a refund with a NUL in its reason', 'POST', `/api/v1/payments/${attemptId}/refunds`, { amount: 1000, reason: 'dup\u0000licate' }, /reason/],
    ['a refund with an unknown field', 'POST', `/api/v1/payments/${attemptId}/refunds`, { amount: 1000, reason: 'duplicate', currency: 'EUR' }, /currency/],
    ['a statement quote with an unknown field', 'POST', `/api/v1/customers/${invoice.customerId}/statement-quote`, { paymentMethodId: card.id, invoiceIds: [invoice.id], sort: 'newest' }, /sort/],
    ['a statement charge with ids that are not text', 'POST', `/api/v1/customers/${invoice.customerId}/statement-charges`, { paymentMethodId: card.id, invoiceIds: [1, 2] }, /invoiceIds/],
    ['an approval with an unknown field', 'POST', '/api/v1/autopay/approvals/00000000-0000-4000-8000-000000000000', { decision: 'approved', force: true }, /force/],
    ['a resolve with an unknown field', 'POST', '/api/v1/exceptions/00000000-0000-4000-8000-000000000000/resolve', { note: 'ok', status: 'closed' }, /status/],
    ['a pay link with a body', 'POST', `/api/v1/invoices/${invoice.id}/pay-link`, { expiresInDays: 90 }, /expiresInDays/],
    ['a prototype-polluting key', 'POST', `/api/v1/invoices/${invoice.id}/charges`, JSON.parse(`{"paymentMethodId":"${card.id}","__proto__":{"amount":1}}`), /proto|body/],
    ['an exceptions list with an unknown filter', 'GET', '/api/v1/exceptions?state=open', undefined, /state/],
    ['a reconciliation accept with an unknown field', 'POST', '/api/v1/reconciliation/exceptions/00000000-0000-4000-8000-000000000000/accept', { rank: 1, force: true }, /force/],
    ['a write-off in another currency', 'POST', '/api/v1/reconciliation/exceptions/00000000-0000-4000-8000-000000000000/write-off', { invoiceId: invoice.id, amount: 100, currency: 'EUR' }, /currency/],
    ['a split whose application has an unknown field', 'POST', '/api/v1/reconciliation/exceptions/00000000-0000-4000-8000-000000000000/split', { applications: [{ invoiceId: invoice.id, amount: 100, memo: 'x' }] }, /applications\[0\]\.memo/],
    ['a dismissal whose reason is an object', 'POST', '/api/v1/reconciliation/exceptions/00000000-0000-4000-8000-000000000000/dismiss', { reason: { text: 'no' } }, /reason/],
    ['a statement upload with an unknown field', 'POST', '/api/v1/reconciliation/statements', { text: 'Date,Amount\n', currency: 'USD', account: 'checking' }, /account/],
    ['a tie-out run with a body', 'POST', '/api/v1/tieout/runs', { since: '2026-01-01' }, /since/],
    ['a reconciliation list with an unknown filter', 'GET', '/api/v1/reconciliation/exceptions?state=open', undefined, /state/],
    ['an exceptions list with a status it does not know', 'GET', '/api/v1/exceptions?status=everything', undefined, /status/]
  ]
  for (const [what, method, url, payload, field] of refusals) {
    const res = await call(method, url, payload)
    const code = res.json().error?.code
    t.ok(res.statusCode === 400 && (code === 'VALIDATION_FAILED' || code === 'MALFORMED_JSON'), `${what}: refused with 400 (got ${res.statusCode} ${String(code)})`)
    t.match(res.json().error?.message, field, `${what}: the message names the field (${String(res.json().error?.message)})`)
  }
  t.same(await dbFingerprint(db), before, 'no refusal wrote anything')

  const refund = await call('POST', `/api/v1/payments/${attemptId}/refunds`, { amount: 1000, reason: 'Duplicate licence line' })
  t.equal(refund.statusCode, 201, 'a well-formed refund still goes through')
  const stored = await db('audit_log').where({ tenant_id: tenant.id, action: 'payment.refund' }).first('detail')
  t.notMatch(JSON.stringify(stored), /\[object Object\]/)
})
