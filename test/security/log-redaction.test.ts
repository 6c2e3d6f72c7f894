import t from 'tap'
import Fastify from 'fastify'
import { Writable } from 'node:stream'
import { loggerOptions, redactUrl, requestLogger } from '../../src/logging.js'
import errorsPlugin from '../../src/plugins/errors.js'

/** Bearer material that reaches Settle in URLs: pay tokens, LiveLink signatures, OAuth codes and states. */
const PAY_TOKEN = 'eyJ0IjoiYWJjIn0.k1.c2lnbmF0dXJlLXBheS10b2tlbg'
const SECRETS = [PAY_TOKEN, 'livelinkSIG123', 'oauthCODE456', 'oauthSTATE789', 'beginSTATE000']

t.test('request logs never carry pay tokens, LiveLink signatures or OAuth codes and states', async t => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const app = Fastify({ logger: { ...loggerOptions('info', true), stream }, childLoggerFactory: requestLogger, routerOptions: { maxParamLength: 512 } })
  app.get('/pay/:token', async () => 'ok')
  app.post('/pay/:token/setup', async () => 'ok')
  app.get('/embedded/autotask/:surface', async () => 'ok')
  app.get('/connect/quickbooks/callback', async () => 'ok')
  app.get('/connect/quickbooks/begin', async () => 'ok')
  t.teardown(async () => { await app.close() })

  const urls = [
    `/pay/${PAY_TOKEN}`,
    `/pay/${PAY_TOKEN}/setup`,
    '/embedded/autotask/invoice?tenant=cobalt&id=42&exp=1900000000&sig=livelinkSIG123',
    '/connect/quickbooks/callback?code=oauthCODE456&state=oauthSTATE789&realmId=9130',
    '/connect/quickbooks/begin?state=beginSTATE000'
  ]
  for (const url of urls) {
    const res = await app.inject({ method: url.endsWith('/setup') ? 'POST' : 'GET', url })
    t.equal(res.statusCode, 200, url)
  }
  const logged = lines.join('')
  t.ok(logged.includes('incoming request'), 'requests are logged')
  for (const secret of SECRETS) t.notOk(logged.includes(secret), `${secret.slice(0, 12)}… is not in the log`)
  const incoming = lines.map(l => JSON.parse(l) as { msg: string, req?: { url: string, method: string } }).filter(l => l.msg === 'incoming request').map(l => l.req?.url)
  t.same(incoming, [
    '/pay/[redacted]',
    '/pay/[redacted]/setup',
    '/embedded/autotask/invoice?tenant=cobalt&id=42&exp=1900000000&sig=[redacted]',
    '/connect/quickbooks/callback?code=[redacted]&state=[redacted]&realmId=9130',
    '/connect/quickbooks/begin?state=[redacted]'
  ], 'what is not a secret stays readable')
})

t.test('redactUrl: every spelling of a secret parameter, and nothing else', async t => {
  t.equal(redactUrl('/embedded/autotask/company?SIG=abc&Sig=def'), '/embedded/autotask/company?SIG=[redacted]&Sig=[redacted]')
  t.equal(redactUrl('/x?token=abc&access_token=def&refresh_token=ghi&ok=1'), '/x?token=[redacted]&access_token=[redacted]&refresh_token=[redacted]&ok=1')
  t.equal(redactUrl('/pay/abc%2Fdef?x=1'), '/pay/[redacted]?x=1')
  t.equal(redactUrl('/health'), '/health')
  t.equal(redactUrl('/api/v1/invoices/0d9b6c1e-8c1c-4a5b-9a3e-111111111111'), '/api/v1/invoices/0d9b6c1e-8c1c-4a5b-9a3e-111111111111')
})

t.test('an unknown address under a pay link is answered and logged without its token', async t => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const app = Fastify({ logger: { ...loggerOptions('info', true), stream }, childLoggerFactory: requestLogger, routerOptions: { maxParamLength: 512 } })
  await app.register(errorsPlugin)
  t.teardown(async () => { await app.close() })
  const res = await app.inject({ method: 'GET', url: `/pay/${PAY_TOKEN}/no-such-page?state=oauthSTATE789` })
  t.equal(res.statusCode, 404)
  t.equal(res.json().error.code, 'ROUTE_NOT_FOUND')
  t.match(res.json().error.message, /\/pay\/\[redacted\]\/no-such-page/, 'the answer still says which address')
  const logged = lines.join('')
  t.ok(logged.length > 0, 'the refusal is logged')
  for (const secret of [PAY_TOKEN, 'oauthSTATE789']) t.notOk(logged.includes(secret), `${secret.slice(0, 12)}… is not in the log nor the answer`)
  t.notOk(res.body.includes(PAY_TOKEN), 'nor in the answer')
})
