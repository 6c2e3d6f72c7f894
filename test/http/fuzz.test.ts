import t from 'tap'
import fc from 'fast-check'
import { startDemoApp } from '../helpers/demo-app.js'
import { fingerprinter } from '../helpers/db-fingerprint.js'
import { ERRORS } from '../../src/errors.js'
import { API_SCOPES, createApiKey } from '../../src/security/api-keys.js'
import { issueSession } from '../../src/security/embedded-sessions.js'
import { signPayLink } from '../../src/security/pay-links.js'
import { signStripePayload } from '../../src/adapters/stripe/webhook.js'
import { DEMO_STRIPE_WEBHOOK_SECRET } from '../../src/demo/seed.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS, CONNECTWISE_SANDBOX_MEMBER } from '../../src/sandbox/connectwise/index.js'

/**
 * Every route Settle registers, sent hostile params, query strings, bodies
 * and headers, with and without valid credentials: no answer is a 5xx, every
 * refusal is in the catalogue format, and no refusal writes anything.
 * Seeded (FUZZ_SEED to replay another run), FUZZ_RUNS requests per route,
 * FUZZ_ROUTE to fuzz only the routes whose path contains it.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 1313)
const RUNS = Number(process.env.FUZZ_RUNS ?? 20)
// Webhooks take raw bytes from anyone on the internet: they get more runs.
const runsFor = (url: string): number => url.startsWith('/webhooks/') ? RUNS * 4 : RUNS

// The stand-ins imitate the outside services and /_sandbox/faults switches their faults on (5xx on purpose): not Settle's surface.
const STAND_INS = /^\/(sandbox\/|_sandbox\/|v1\/)/

// Field names the routes read, so generated bodies and queries reach past "unknown field".
const FIELDS = ['amount', 'reason', 'paymentMethodId', 'invoiceIds', 'expectedSurcharge', 'decision', 'note', 'status', 'kind', 'customer', 'tenant', 'site', 'companyid', 'memberid',
  'memberHash', 'memberContext', 'surface', 'id', 'apiKey', 'exp', 'sig', 'method', 'methodId', 'parts', 'name', 'email', 'text_shown', 'setup_intent', 'keep', 'autopay', 'pay_now',
  'invoiceId', 'customerId', 'code', 'state', 'realmId', 'lines', 'statement', 'rows', 'csv', 'currency', 'date', 'from', 'to', '__proto__', 'constructor', 'prototype']

const HOSTILE = ['', ' ', '\u0000', 'a\u0000b', 'a\r\nSet-Cookie: x=1', '\r\n\r\n', '../../../etc/passwd', '..%2f..%2f', '%00', '%2e%2e', '%', '%zz', "' or '1'='1", '"; drop table tenants; --',
  '<script>alert(1)</script>', '{{constructor.constructor}}', '__proto__', 'constructor', 'toString', '💸', '\u202e\u0301', '\ud800', 'null', 'true', '-1', '0', '1e309', 'NaN', '9007199254740993',
  '00000000-0000-0000-0000-000000000000', 'seti_123', 'pm_card_visa', 'evt_1', 'brightline', 'cobalt', 'connectwise', 'autotask', 'invoice', 'company', 'quickbooks']

// Path segments sent as they are, not encoded: bad escapes, traversal, an encoded NUL.
const RAW_SEGMENTS = ['%', '%zz', '%2e%2e', '%2E%2E%2F', '%00', 'a%00.css', '..', '.', 'a%2Fb', '%252e', '%c0%ae', '%ff']

const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE) },
  { weight: 2, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.integer({ min: 600, max: 20_000 }).map(n => 'x'.repeat(n)) }
)
const key = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...FIELDS) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) })

interface Valid { params: Record<string, string[]>, values: string[] }

const hostileValue = (valid: Valid): fc.Arbitrary<unknown> => fc.letrec(tie => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    hostileString,
    fc.constantFrom(...valid.values),
    fc.integer(), fc.double(), fc.boolean(), fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(key, tie('value'), { maxKeys: 4 }))
})).value

/** A well-formed body for a route, by URL: the fuzz mutates it (drops, replaces, adds a field) to get past the first check. */
type Templates = Record<string, Record<string, unknown>>

/** A template with some fields dropped, some replaced by hostile values, maybe one added. */
const mutated = (template: Record<string, unknown>, valid: Valid): fc.Arbitrary<Record<string, unknown>> => {
  const keys = Object.keys(template)
  return fc.record({
    keep: fc.subarray(keys, { minLength: Math.max(0, keys.length - 1) }),
    replace: keys.length === 0 ? fc.constant({}) : fc.dictionary(fc.constantFrom(...keys), hostileValue(valid), { maxKeys: 1 }),
    add: fc.option(fc.dictionary(key, hostileValue(valid), { maxKeys: 1 }), { freq: 3 })
  }).map(({ keep, replace, add }) => ({ ...Object.fromEntries(keep.map(k => [k, template[k]])), ...replace, ...(add ?? {}) }))
}

type Body = { kind: 'none' } | { kind: 'json', value: unknown } | { kind: 'form', value: Record<string, unknown> } | { kind: 'raw', text: string, type: string | null }

const body = (valid: Valid, template: Record<string, unknown> | undefined): fc.Arbitrary<Body> => fc.oneof(
  fc.constant({ kind: 'none' as const }),
  ...(template === undefined ? [] : [
    mutated(template, valid).map(value => ({ kind: 'json' as const, value })),
    mutated(template, valid).map(value => ({ kind: 'json' as const, value })),
    mutated(template, valid).map(value => ({ kind: 'form' as const, value }))
  ]),
  hostileValue(valid).map(value => ({ kind: 'json' as const, value })),
  fc.dictionary(key, hostileValue(valid), { maxKeys: 6 }).map(value => ({ kind: 'json' as const, value })),
  fc.dictionary(key, fc.oneof(hostileString, fc.constantFrom(...valid.values)), { maxKeys: 6 }).map(value => ({ kind: 'form' as const, value })),
  fc.record({ text: fc.oneof(hostileString, fc.constantFrom('{', '{"a":', '[1,2', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', 'a=1&a=2&__proto__[x]=1', '<xml/>')), type: fc.constantFrom(null, 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', '') })
    .map(r => ({ kind: 'raw' as const, ...r }))
)

const encode = (value: unknown): string => typeof value === 'string' ? value : JSON.stringify(value) ?? ''
// A lone surrogate has no UTF-8 form: the browser would send U+FFFD.
const urlEncode = (text: string): string => encodeURIComponent(text.replace(/[\ud800-\udfff]/gu, '\ufffd'))

function payloadOf (b: Body): { payload?: string, type?: string } {
  switch (b.kind) {
    case 'none': return {}
    case 'json': return { payload: JSON.stringify(b.value) ?? 'null', type: 'application/json' }
    case 'form': return { payload: Object.entries(b.value).map(([k, v]) => `${urlEncode(k)}=${urlEncode(encode(v))}`).join('&'), type: 'application/x-www-form-urlencoded' }
    case 'raw': return { payload: b.text, ...(b.type === null ? {} : { type: b.type }) }
  }
}

t.test('no route answers client input with a 5xx or writes on a refusal', async t => {
  // ~1,400 requests after booting the demo: well within this on 2 busy cores, but not within tap's default.
  t.setTimeout(300_000)
  const { app, db, tenants } = await startDemoApp(t)
  const brightline = tenants.find(x => x.slug === 'brightline')!
  const invoice = await db('invoices').where({ tenant_id: brightline.id }).orderBy('number').first('id', 'customer_id', 'psa_invoice_id') as { id: string, customer_id: string, psa_invoice_id: string }
  const company = await db('customers').where({ tenant_id: brightline.id, id: invoice.customer_id }).first('psa_company_id') as { psa_company_id: string }
  const apiKey = (await createApiKey(db, brightline.id, 'fuzz', [...API_SCOPES])).key
  const session = issueSession(app.keyring, { tenantId: brightline.id, system: 'connectwise', member: 'cw:demo.tech', permissions: ['view', 'charge', 'sync'] })
  const method = await savePaymentMethod(db, brightline.id, { customerId: invoice.customer_id, processorCustomerRef: 'cus_fuzz', processorMethodRef: 'pm_fuzz', type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: false })
  // Signed with the server's own key, but naming ids that are not UUIDs.
  const oddToken = signPayLink(app.keyring, { tenantId: brightline.id, invoiceId: "1' or '1'='1", expiresAt: new Date(Date.now() + 86_400_000) })
  const payToken = signPayLink(app.keyring, { tenantId: brightline.id, invoiceId: invoice.id, expiresAt: new Date(Date.now() + 7 * 86_400_000) })

  const valid: Valid = {
    params: {
      token: [payToken, payToken, oddToken], tenant: ['brightline', 'cobalt'], tenantId: [brightline.id], invoiceId: [invoice.id], customerId: [invoice.customer_id],
      psa: ['cw', 'autotask'], methodId: [method.id], planId: [invoice.id], approvalId: [invoice.id], exceptionId: [invoice.id], surface: ['invoice', 'company', 'quickbooks'], attemptId: [invoice.id], id: [invoice.id], runId: [invoice.id]
    },
    values: [method.id, `${method.id}:0`, brightline.id, invoice.id, invoice.customer_id, invoice.psa_invoice_id, company.psa_company_id, 'brightline', 'on', '2', '100']
  }
  const member = { tenant: 'brightline', site: 'sandbox', companyid: CONNECTWISE_SANDBOX_CREDENTIALS.companyId, memberid: CONNECTWISE_SANDBOX_MEMBER.memberId, memberHash: CONNECTWISE_SANDBOX_MEMBER.memberHash, memberContext: CONNECTWISE_SANDBOX_MEMBER.memberContext }
  const payForm = { method: `${method.id}:0`, parts: '2', name: 'Dana Client', email: 'dana@harbor.example', text_shown: 'I agree', setup_intent: 'seti_fuzz', keep: 'on', autopay: 'on', pay_now: 'on' }
  const charge = { invoiceId: invoice.id, customerId: invoice.customer_id, paymentMethodId: method.id, amount: 100, invoiceIds: [invoice.id], expectedSurcharge: 0 }
  const templates: Templates = {
    '/api/v1/invoices/:invoiceId/charges': { paymentMethodId: method.id, amount: 100 },
    '/api/v1/customers/:customerId/statement-quote': { paymentMethodId: method.id, amount: 100, invoiceIds: [invoice.id] },
    '/api/v1/customers/:customerId/statement-charges': { paymentMethodId: method.id, amount: 100, invoiceIds: [invoice.id], expectedSurcharge: 0 },
    '/api/v1/payments/:attemptId/refunds': { amount: 100, reason: 'Duplicate line' },
    '/api/v1/autopay/approvals/:approvalId': { decision: 'approved' },
    '/api/v1/exceptions/:exceptionId/resolve': { note: 'called the client' },
    '/api/v1/reconciliation/statements': { text: 'Date,Amount,Description\n2026-12-01,100.00,ACH HARBOR DENTAL', currency: 'USD', format: 'csv' },
    '/api/v1/reconciliation/exceptions/:id/accept': { rank: 1 },
    '/api/v1/reconciliation/exceptions/:id/split': { applications: [{ invoiceId: invoice.id, amount: 100 }] },
    '/api/v1/reconciliation/exceptions/:id/write-off': { invoiceId: invoice.id, amount: 100 },
    '/api/v1/reconciliation/exceptions/:id/dismiss': { reason: 'not ours' },
    '/embedded/cw/session': member,
    '/embedded/autotask/sign-in': { tenant: 'cobalt', surface: 'invoice', id: '1', apiKey: 'settle_sk_x' },
    '/embedded/:psa/invoice/quote': charge,
    '/embedded/:psa/invoice/charge': charge,
    '/embedded/:psa/company/quote': charge,
    '/embedded/:psa/company/charge': charge,
    '/embedded/:psa/invoice/pay-link': charge,
    '/pay/:token': payForm,
    '/pay/:token/statement': payForm,
    '/pay/:token/methods': payForm,
    '/pay/:token/installments/preview': payForm,
    '/pay/:token/installments': payForm
  }
  const auth = fc.constantFrom<Record<string, string>>(
    {},
    { authorization: `Bearer ${apiKey}` },
    { authorization: `Bearer ${apiKey}` },
    { 'x-settle-session': session.token, 'x-csrf-token': session.csrf },
    { authorization: 'Bearer settle_sk_00000000-0000-4000-8000-000000000000_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' },
    { authorization: '\u00ff' },
    { 'x-settle-session': session.token, 'x-csrf-token': session.csrf },
    { 'x-settle-session': `${session.token}x`, 'x-csrf-token': 'nope' },
    { 'x-settle-session': session.token, 'x-csrf-token': session.csrf, authorization: `Bearer ${apiKey}`, origin: 'https://evil.example' }
  )
  const segment = (name: string): fc.Arbitrary<string> => fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...(valid.params[name] ?? ['x'])) },
    { weight: 2, arbitrary: hostileString.map(s => urlEncode(s).slice(0, 600)).filter(s => s !== '') },
    { weight: 1, arbitrary: fc.constantFrom(...RAW_SEGMENTS) }
  )
  const query = fc.dictionary(key, fc.oneof(hostileString, fc.constantFrom(...valid.values), fc.array(hostileString, { maxLength: 2 })), { maxKeys: 4 })
    .map(q => Object.entries(q).flatMap(([k, v]) => [v].flat().map(x => `${urlEncode(k)}=${urlEncode(encode(x)).slice(0, 4000)}`)).join('&'))

  // FUZZ_ROUTE narrows a replay to the routes whose path contains it.
  const only = process.env.FUZZ_ROUTE
  const routes = app.routeTable.filter(r => r.method !== 'HEAD' && !STAND_INS.test(r.url) && (only === undefined || r.url.includes(only)))
  if (only === undefined) t.ok(routes.length >= 40, `the route table lists Settle's routes (${routes.length})`)
  // Rows a refusal may write by design: the bounded record of a refused ConnectWise sign-in (issue 13 item 10).
  const dbFingerprint = await fingerprinter(db, { audit_log: "action = 'embedded.sign_in_refused'" })
  let fingerprint = await dbFingerprint()
  let requests = 0
  let limited = 0
  const statuses = new Map<string, Record<number, number>>()

  for (const route of routes) {
    const started = Date.now()
    const names = [...route.url.matchAll(/:(\w+)/g)].map(m => m[1] as string)
    const request = fc.record({
      params: fc.tuple(...names.map(segment)),
      wildcard: fc.oneof(hostileString.map(s => urlEncode(s).slice(0, 200)), fc.constantFrom(...RAW_SEGMENTS), fc.array(fc.constantFrom(...RAW_SEGMENTS, 'app.css', 'a'), { maxLength: 4 }).map(parts => parts.join('/'))),
      query,
      body: route.method === 'GET' ? fc.constant<Body>({ kind: 'none' }) : body(valid, templates[route.url]),
      headers: auth,
      signed: fc.boolean(),
      accept: fc.constantFrom('application/json', 'text/html', '*/*', '')
    })
    const result = await fc.check(fc.asyncProperty(request, async r => {
      let i = 0
      const path = route.url.replace(/:(\w+)/g, () => r.params[i++] ?? 'x').replace('*', r.wildcard)
      const url = r.query === '' ? path : `${path}?${r.query}`
      const { payload, type } = payloadOf(r.body)
      const headers: Record<string, string> = { ...r.headers, ...(type !== undefined ? { 'content-type': type } : {}), ...(r.accept !== '' ? { accept: r.accept } : {}) }
      // A validly signed webhook body reaches past the signature check.
      if (r.signed && payload !== undefined && route.url.startsWith('/webhooks/stripe')) headers['stripe-signature'] = signStripePayload(payload, DEMO_STRIPE_WEBHOOK_SECRET)
      // Each request from its own (documentation-range) address, so the rate limiter counts but never hides a route from the fuzz.
      const remoteAddress = `2001:db8::${(requests + 1).toString(16)}`
      const res = await app.inject({ method: route.method as 'GET' | 'POST', url, headers, remoteAddress, ...(payload !== undefined ? { payload } : {}) })
      requests++
      if (res.statusCode === 429) limited++
      const tally = statuses.get(route.url + ' ' + route.method) ?? {}
      tally[res.statusCode] = (tally[res.statusCode] ?? 0) + 1
      statuses.set(route.url + ' ' + route.method, tally)
      const after = await dbFingerprint()
      const what = `${route.method} ${url.slice(0, 300)} → ${res.statusCode} ${res.body.slice(0, 300)}`
      if (res.statusCode >= 500) throw new Error(`a 5xx: ${what}`)
      // 402 is a payment the processor declined: a real attempt, recorded, not a refusal of the input.
      if (res.statusCode >= 400 && res.statusCode !== 402) {
        if (JSON.stringify(after) !== JSON.stringify(fingerprint)) {
          const changed = Object.keys(after).filter(k => after[k] !== fingerprint[k])
          throw new Error(`a refusal wrote to ${changed.join(', ')}: ${what}`)
        }
        if (/json/.test(String(res.headers['content-type']))) {
          const code = (res.json() as { error?: { code?: unknown } }).error?.code
          if (typeof code !== 'string' || !Object.hasOwn(ERRORS, code)) throw new Error(`a refusal outside the catalogue: ${what}`)
        }
      }
      fingerprint = after
    }), { numRuns: runsFor(route.url), seed: SEED + routes.indexOf(route), endOnFailure: true })
    if (process.env.FUZZ_VERBOSE !== undefined) t.comment(`${route.method} ${route.url}: ${Date.now() - started} ms`)
    t.notOk(result.failed, `${route.method} ${route.url}`, result.failed ? { diagnostic: true, error: String(result.errorInstance).replace(/x{20,}/g, 'x…').slice(0, 2000), seed: result.seed, path: result.counterexamplePath } : {})
  }
  t.ok(requests >= routes.length * RUNS, `${requests} requests over ${routes.length} routes`)
  t.equal(limited, 0, 'no request was turned away by the rate limiter, so every one reached its route')
  if (process.env.FUZZ_VERBOSE !== undefined) for (const [route, tally] of statuses) t.comment(`${route}: ${JSON.stringify(tally)}`)
})
