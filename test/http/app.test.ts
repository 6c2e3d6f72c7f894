import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { testDb } from '../helpers/db.js'
import { testConfig, testKeyring } from '../helpers/fixtures.js'
import { buildApp } from '../../src/app.js'
import { loggerOptions, REDACT_PATHS, requestLogger } from '../../src/logging.js'

t.test('HTTP skeleton', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig({ BODY_LIMIT_BYTES: '2048' }), { db, keyring: testKeyring() })
  // A route that takes JSON, to exercise body parsing and limits.
  app.post('/test/echo', { schema: { body: { type: 'object', required: ['amount'], properties: { amount: { type: 'string' } }, additionalProperties: false } } }, async request => request.body)
  app.get('/test/boom', async () => { throw new Error('database password is hunter2') })
  t.teardown(async () => { await app.close() })

  await t.test('liveness and readiness', async t => {
    const health = await app.inject('/health')
    t.equal(health.statusCode, 200)
    t.same(health.json(), { status: 'ok' })
    const ready = await app.inject('/ready')
    t.equal(ready.statusCode, 200)
    t.same(ready.json(), { status: 'ready', database: 'ok', migrations: 'current' })
  })

  await t.test('without demo mode the home page shows no tenant data', async t => {
    const res = await app.inject({ url: '/', headers: { accept: 'text/html' } })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /text\/html/)
    for (const text of ['Issuance', 'Communication', 'Collection', 'Reconciliation', 'Reporting']) t.ok(res.body.includes(text), `shows "${text}"`)
    t.notMatch(res.body, /Demo tenant|Open receivables/)
    t.equal((await app.inject('/sandbox.json')).statusCode, 404, 'no stand-ins outside the embedded default')
  })

  await t.test('errors use the catalogue and never leak internals', async t => {
    const missing = await app.inject('/nope')
    t.equal(missing.statusCode, 404)
    t.same(missing.json(), { error: { code: 'ROUTE_NOT_FOUND', message: 'Nothing at GET /nope.' } })
    const page = await app.inject({ url: '/nope', headers: { accept: 'text/html' } })
    t.equal(page.statusCode, 404)
    t.match(page.body, /Not found/)
    const boom = await app.inject('/test/boom')
    t.equal(boom.statusCode, 500)
    t.equal(boom.json().error.code, 'INTERNAL')
    t.notMatch(boom.body, /hunter2|at .*\.ts|stack/)
    const invalid = await app.inject({ method: 'POST', url: '/test/echo', payload: { amount: 5 } })
    t.equal(invalid.statusCode, 400, 'a number is not the declared string: types are not coerced')
  t.equal(invalid.json().error.message, 'Body field "amount" must be text.', 'naming the field and what it expects')
  const extra = await app.inject({ method: 'POST', url: '/test/echo', payload: { amount: '5', currency: 'EUR' } })
  t.equal(extra.json().error.message, 'Body field "currency" is not accepted here; remove it.', 'an unknown field is refused, not dropped')
    const missingField = await app.inject({ method: 'POST', url: '/test/echo', payload: {} })
    t.equal(missingField.statusCode, 400)
    t.equal(missingField.json().error.code, 'VALIDATION_FAILED')
    t.match(missingField.json().error.message, /amount/)
    const malformed = await app.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json' }, payload: '{"amount":' })
    t.equal(malformed.statusCode, 400)
    t.equal(malformed.json().error.code, 'MALFORMED_JSON')
    const tooBig = await app.inject({ method: 'POST', url: '/test/echo', payload: { amount: 'x'.repeat(5000) } })
    t.equal(tooBig.statusCode, 413)
    t.equal(tooBig.json().error.code, 'PAYLOAD_TOO_LARGE')
    const wrongType = await app.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/xml' }, payload: '<a/>' })
    t.equal(wrongType.statusCode, 415)
    t.equal(wrongType.json().error.code, 'UNSUPPORTED_MEDIA_TYPE')
  })

  await t.test('security headers on every response', async t => {
    const res = await app.inject('/')
    t.match(res.headers['content-security-policy'], /default-src 'self'/)
    t.match(res.headers['content-security-policy'], /frame-ancestors 'self'/)
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.equal(res.headers['referrer-policy'], 'no-referrer')
    t.ok(res.headers['strict-transport-security'])
    const css = await app.inject('/assets/settle.css')
    t.equal(css.statusCode, 200)
    t.match(css.headers['content-type'], /text\/css/)
  })

})

t.test('readiness reports pending migrations', async t => {
  const db = await testDb(t, { migrate: false })
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  t.teardown(async () => { await app.close() })
  const res = await app.inject('/ready')
  t.equal(res.statusCode, 503)
  t.equal(res.json().error.code, 'NOT_READY')
  t.match(res.json().error.message, /npm run migrate/)
})

t.test('the logger redacts secrets and card/bank data', async t => {
  const lines: string[] = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const log = pino({ redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink)
  log.info({
    req: { headers: { authorization: 'Basic c2VjcmV0', cookie: 'sid=abc', 'stripe-signature': 't=1,v1=abc' } },
    tenant: { apiKey: 'ak_live_123', privateKey: 'pk_456' },
    payment: { card: { number: '4242424242424242', cvc: '123', exp_month: 12 }, bank: { accountNumber: '000123456789', routingNumber: '110000000' } },
    refreshToken: 'rt_789',
    invoice: { number: 'INV-1001' }
  }, 'charge')
  const line = lines.join('')
  for (const secret of ['c2VjcmV0', 'sid=abc', 'v1=abc', 'ak_live_123', 'pk_456', '4242424242424242', '"123"', '000123456789', '110000000', 'rt_789']) {
    t.notOk(line.includes(secret), `${secret} is redacted`)
  }
  t.ok(line.includes('INV-1001'), 'an invoice number is not a secret')
})

t.test('request loggers carry the request id; everything else they log or bind is still redacted', async t => {
  const lines: string[] = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const root = pino(loggerOptions('info', true), sink)
  const app = await buildApp(testConfig(), { db: await testDb(t), keyring: testKeyring() })
  t.equal(app.childLoggerFactory, requestLogger, 'the app builds its request loggers with it')
  await app.close()
  const parsed = (): any[] => lines.splice(0).map(l => JSON.parse(l))

  const request = requestLogger.call(app, root, { reqId: 'req-1"x' }, {}, null as never)
  request.info({ token: 'tok_1', tenant: { apiKey: 'ak_1' }, invoice: { number: 'INV-9' } }, 'hello')
  const [line] = parsed()
  t.equal(line.reqId, 'req-1"x', 'the id, escaped as JSON')
  t.equal(line.token, '[redacted]')
  t.equal(line.tenant.apiKey, '[redacted]')
  t.equal(line.invoice.number, 'INV-9')
  t.equal(line.msg, 'hello')

  request.child({ secret: 's3cr3t', payment: { card: { number: '4242424242424242' } } }).info('nested')
  const nested = parsed()[0]
  t.equal(nested.reqId, 'req-1"x', 'a child of a request logger keeps the id')
  t.equal(nested.secret, '[redacted]', 'and its bindings are redacted')
  t.equal(nested.payment.card.number, '[redacted]')

  // Any other binding from Fastify goes the ordinary (redacting) way.
  requestLogger.call(app, root, { reqId: 'req-2', apiKey: 'ak_2' }, {}, null as never).info('other')
  const other = parsed()[0]
  t.equal(other.reqId, 'req-2')
  t.equal(other.apiKey, '[redacted]')
  t.notOk(JSON.stringify(other).includes('ak_2'))
})

t.test('closing waits for a handler that is still querying after its client left', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  let started!: () => void
  let finished = false
  const handlerStarted = new Promise<void>(resolve => { started = resolve })
  app.get('/test/slow', async () => {
    started()
    await new Promise(resolve => setTimeout(resolve, 200))
    const [row] = await db('tenants').count('* as n') as Array<{ n: number | string }>
    finished = true
    return { tenants: Number(row?.n) }
  })
  const inFlight = app.inject('/test/slow')
  await handlerStarted
  // What close-with-grace does on SIGTERM, and what the benchmarks do at their end.
  await app.close()
  t.ok(finished, 'the handler finished its query before close returned, so the pool can be closed')
  const res = await inFlight
  t.equal(res.statusCode, 200)
  t.same(res.json(), { tenants: 0 })
})
