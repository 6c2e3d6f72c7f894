import t from 'tap'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { buildApp } from '../../src/app.js'
import { savePsaConnection } from '../../src/db/psa.js'
import { audit } from '../../src/db/audit.js'
import { RATE_LIMITS } from '../../src/plugins/rate-limits.js'

t.test('a refused ConnectWise sign-in writes a bounded, truncated record, whatever the stranger sent', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db)
  await savePsaConnection(db, tenant.id, 'connectwise', { site: 'https://api-na.myconnectwise.net', companyId: 'realco', publicKey: 'p', clientId: 'c' })
  const sign = async (memberid: string) => await app.inject({ method: 'POST', url: '/embedded/cw/session', payload: { tenant: tenant.slug, companyid: 'someoneelse', memberid, memberHash: 'h', memberContext: 'c' } })
  const rowsNow = async () => await db('audit_log').where({ tenant_id: tenant.id }).select('actor', 'subject', 'detail') as Array<{ actor: string, detail: unknown }>
  // Past what a ConnectWise member id can be: refused by the schema before anything is read or written.
  const huge = await sign('m'.repeat(900_000))
  t.equal(huge.statusCode, 400)
  t.equal(huge.json().error.code, 'VALIDATION_FAILED')
  t.equal((await rowsNow()).length, 0, 'a malformed claim writes nothing')
  // The longest member id the PSA could send, refused: recorded once, cut.
  const res = await sign('m'.repeat(512))
  t.equal(res.statusCode, 401)
  const rows = await rowsNow()
  t.equal(rows.length, 1, 'the refusal is recorded once')
  t.ok(rows[0]!.actor.length <= 200, `the claimed member is cut to at most 200 characters (${rows[0]!.actor.length})`)
  t.match(rows[0]!.actor, /^cw:m+…$/, 'and marked as cut')
  t.ok(JSON.stringify(rows[0]!.detail).length <= 2_000)
})

t.test('audit rows are bounded and storable whatever a caller passes', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  await audit(db, tenant.id, `cw:a\u0000b${'x'.repeat(5000)}`, 'test.bounded', 's'.repeat(5000), { note: `n\u0000${'y'.repeat(100_000)}`, nested: { list: Array.from({ length: 5000 }, (_, i) => i) } })
  const row = await db('audit_log').where({ tenant_id: tenant.id, action: 'test.bounded' }).first() as { actor: string, subject: string, detail: unknown }
  t.ok(row.actor.length <= 200)
  t.notOk(row.actor.includes('\u0000'), 'NUL, which PostgreSQL cannot store, is dropped')
  t.ok(row.subject.length <= 200)
  t.ok(JSON.stringify(row.detail).length <= 2_000, 'the detail is bounded')
  t.ok((row.detail as { note: string }).note.length <= 500, 'long strings are cut')
  await audit(db, tenant.id, 'x', 'test.wide', null, Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'v'.repeat(400)])))
  const wide = await db('audit_log').where({ tenant_id: tenant.id, action: 'test.wide' }).first() as { detail: unknown }
  t.ok(JSON.stringify(wide.detail).length <= 2_000)
  t.match(wide.detail, { truncated: true }, 'a wide detail is kept as a marked preview')
  await audit(db, tenant.id, 'api:ok', 'test.small', null, { amount: 100, via: 'embedded' })
  t.same((await db('audit_log').where({ tenant_id: tenant.id, action: 'test.small' }).first()).detail, { amount: 100, via: 'embedded' }, 'small details are kept as they are')
})

t.test('sign-in, session and pay routes are rate limited by IP and tenant, across processes sharing one database', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  // Two server processes: they share nothing but the database.
  const one = await buildApp(testConfig(), { db, keyring })
  const two = await buildApp(testConfig(), { db, keyring })
  t.teardown(async () => { await one.close(); await two.close() })
  const tenant = await makeTenant(db)
  const other = await makeTenant(db)
  const signIn = async (app: typeof one, slug: string, ip = '203.0.113.7'): Promise<{ statusCode: number, headers: Record<string, unknown>, json: () => any }> =>
    await app.inject({ method: 'POST', url: '/embedded/autotask/sign-in', remoteAddress: ip, payload: { tenant: slug, surface: 'invoice', id: '1', apiKey: 'settle_sk_wrong' } })
  const max = RATE_LIMITS.signIn.max
  for (let i = 0; i < max; i++) {
    const res = await signIn(i % 2 === 0 ? one : two, tenant.slug)
    t.equal(res.statusCode, 401, `attempt ${i + 1} is answered`)
  }
  const limited = await signIn(one, tenant.slug)
  t.equal(limited.statusCode, 429, 'the next one, to either process, is refused')
  t.equal(limited.json().error.code, 'RATE_LIMITED', 'in the catalogue format')
  t.match(limited.json().error.message, /try again/i)
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= RATE_LIMITS.signIn.timeWindow / 1000, `with Retry-After (${String(limited.headers['retry-after'])})`)
  t.equal((await signIn(two, tenant.slug)).statusCode, 429, 'the other process agrees')
  t.equal((await signIn(two, other.slug)).statusCode, 401, 'another tenant from the same address is not affected')
  t.equal((await signIn(one, tenant.slug, '198.51.100.9')).statusCode, 401, 'another address for the same tenant is not affected')

  const payMax = RATE_LIMITS.pay.max
  let payStatus = 0
  for (let i = 0; i <= payMax; i++) payStatus = (await (i % 2 === 0 ? one : two).inject({ method: 'GET', url: '/pay/not-a-token', remoteAddress: '192.0.2.1' })).statusCode
  t.equal(payStatus, 429, 'pay routes too')
  let renewStatus = 0
  for (let i = 0; i <= RATE_LIMITS.session.max; i++) renewStatus = (await one.inject({ method: 'POST', url: '/embedded/cw/session/renew', remoteAddress: '192.0.2.2', payload: {} })).statusCode
  t.equal(renewStatus, 429, 'and session renewals')
  t.equal((await one.inject({ method: 'GET', url: '/health', remoteAddress: '192.0.2.1' })).statusCode, 200, 'other routes are not limited')
  const keys = await db('rate_limit_hits').pluck('key') as string[]
  t.ok(keys.every(k => k.length <= 200), 'the limiter\'s own rows are bounded')
})
