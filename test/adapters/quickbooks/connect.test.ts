import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import quickbooksSandbox, { createQuickBooksStore, QUICKBOOKS_SANDBOX_PREFIX } from '../../../src/sandbox/quickbooks/index.js'
import quickbooksConnectRoutes from '../../../src/routes/connect/quickbooks.js'
import errorsPlugin from '../../../src/plugins/errors.js'
import { testDb } from '../../helpers/db.js'
import { makeTenant, testKeyring } from '../../helpers/fixtures.js'
import { createApiKey } from '../../../src/security/api-keys.js'
import { getAccountingConnection, getAccountingSettings } from '../../../src/services/accounting-connections.js'
import { getSecret } from '../../../src/db/secrets.js'

const REALM = '9341453050298761'

t.test('OAuth connect: API key → Intuit (stand-in) → signed-state callback → tokens sealed, settings discovered; disconnect', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  const tenant = await makeTenant(db)
  const store = createQuickBooksStore({ seed: 1, realmId: REALM })
  const app = Fastify()
  app.decorate('db', db)
  app.decorate('keyring', keyring)
  let origin = ''
  await app.register(quickbooksSandbox, { prefix: QUICKBOOKS_SANDBOX_PREFIX, store })
  await app.register(quickbooksConnectRoutes, { publicUrl: 'https://settle.example', sandboxOrigin: () => origin, intuitApp: null })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const noKey = await app.inject({ url: '/connect/quickbooks?sandbox=1' })
  t.ok(noKey.statusCode >= 400, 'an API key is required')
  const wrongScope = await createApiKey(db, tenant.id, 'reader', ['payments:read'])
  t.ok((await app.inject({ url: '/connect/quickbooks?sandbox=1', headers: { authorization: `Bearer ${wrongScope.key}` } })).statusCode >= 400)

  const key = await createApiKey(db, tenant.id, 'admin', ['accounting:connect'])
  const start = await app.inject({ url: '/connect/quickbooks?sandbox=1', headers: { authorization: `Bearer ${key.key}` } })
  t.equal(start.statusCode, 302)
  const begin = new URL(String(start.headers.location))
  t.equal(begin.pathname, '/connect/quickbooks/begin', 'the person opens Settle\'s begin link in their browser')
  const opened = await app.inject({ url: begin.pathname + begin.search })
  const cookie = String(opened.headers['set-cookie']).split(';')[0]!
  const authorize = new URL(String(opened.headers.location))
  t.equal(authorize.searchParams.get('redirect_uri'), 'https://settle.example/connect/quickbooks/callback')
  const consent = await app.inject({ url: authorize.pathname + authorize.search })
  t.equal(consent.statusCode, 302)
  const back = new URL(String(consent.headers.location))
  const tampered = await app.inject({ url: `/connect/quickbooks/callback?code=${back.searchParams.get('code') ?? ''}&realmId=${REALM}&state=x${back.searchParams.get('state') ?? ''}`, headers: { cookie } })
  t.ok(tampered.statusCode >= 400, 'a forged state is refused')
  const done = await app.inject({ url: back.pathname + back.search, headers: { cookie } })
  t.equal(done.statusCode, 200, done.body)
  t.equal(done.json().realmId, REALM)
  const c = await getAccountingConnection(db, tenant.id)
  t.equal(c?.status, 'active')
  t.ok((await getSecret(db, keyring, tenant.id, 'quickbooks.refresh_token'))?.length)
  t.notMatch(done.body, String(await getSecret(db, keyring, tenant.id, 'quickbooks.access_token')), 'no token in the answer')
  t.ok((await getAccountingSettings(db, tenant.id)).undepositedFundsAccountId)

  const off = await app.inject({ method: 'POST', url: '/connect/quickbooks/disconnect', headers: { authorization: `Bearer ${key.key}` } })
  t.equal(off.statusCode, 200)
  t.equal((await getAccountingConnection(db, tenant.id))?.status, 'disconnected')
})

async function connectWorld (t: { teardown: (fn: () => Promise<void> | void) => void }): Promise<{ app: FastifyInstance, db: Knex, start: (key: string, query?: string) => Promise<{ begin: string }>, open: (begin: string) => Promise<{ cookie: string, callback: string }> }> {
  const db = await testDb(t)
  const app = Fastify()
  app.decorate('db', db)
  app.decorate('keyring', testKeyring())
  let origin = ''
  await app.register(errorsPlugin)
  await app.register(quickbooksSandbox, { prefix: QUICKBOOKS_SANDBOX_PREFIX, store: createQuickBooksStore({ seed: 1, realmId: REALM }) })
  await app.register(quickbooksConnectRoutes, { publicUrl: 'https://settle.example', sandboxOrigin: () => origin, intuitApp: null })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  return {
    app,
    db,
    start: async (key, query = '') => {
      const res = await app.inject({ url: `/connect/quickbooks?sandbox=1${query}`, headers: { authorization: `Bearer ${key}` } })
      const begin = new URL(String(res.headers.location))
      return { begin: begin.pathname + begin.search }
    },
    open: async begin => {
      const opened = await app.inject({ url: begin })
      const authorize = new URL(String(opened.headers.location))
      const consent = await app.inject({ url: authorize.pathname + authorize.search })
      const back = new URL(String(consent.headers.location))
      return { cookie: String(opened.headers['set-cookie']).split(';')[0]!, callback: back.pathname + back.search }
    }
  }
}

t.test('the OAuth state is single-use and bound to the browser that began the flow', async t => {
  const w = await connectWorld(t)
  const tenant = await makeTenant(w.db)
  const key = await createApiKey(w.db, tenant.id, 'admin', ['accounting:connect'])
  const { begin } = await w.start(key.key)
  const { cookie, callback } = await w.open(begin)
  t.match(cookie, /^settle_qbo_oauth=[\w-]{43}$/)
  const reopened = await w.app.inject({ url: begin })
  t.equal(reopened.statusCode, 400, 'the begin link binds one browser only')

  const stranger = await w.app.inject({ url: callback })
  t.equal(stranger.statusCode, 403, 'no cookie: not the browser that started')
  t.equal(stranger.json().error.code, 'FORBIDDEN')
  const otherBrowser = await w.app.inject({ url: callback, headers: { cookie: 'settle_qbo_oauth=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } })
  t.equal(otherBrowser.statusCode, 403, 'another browser\'s cookie')
  t.equal(await getAccountingConnection(w.db, tenant.id), null, 'nothing connected by a refused callback')

  const [first, second] = await Promise.all([w.app.inject({ url: callback, headers: { cookie } }), w.app.inject({ url: callback, headers: { cookie } })])
  t.same([first!.statusCode, second!.statusCode].sort(), [200, 400], 'two callbacks at once: exactly one is accepted')
  const replay = await w.app.inject({ url: callback, headers: { cookie } })
  t.equal(replay.statusCode, 400, 'a used state is refused')
  t.match(replay.json().error.message, /already used|start connecting again/)
  t.match(String(first!.headers['set-cookie'] ?? second!.headers['set-cookie']), /settle_qbo_oauth=; .*Max-Age=0/, 'the cookie is cleared')

  const late = await w.start(key.key)
  const lateFlow = await w.open(late.begin)
  await w.db('oauth_states').whereNull('used_at').update({ expires_at: new Date(Date.now() - 1000) })
  t.equal((await w.app.inject({ url: lateFlow.callback, headers: { cookie: lateFlow.cookie } })).statusCode, 400, 'an expired state is refused')
})

t.test('one QuickBooks company, one tenant, unless the move is asked for when starting (audited)', async t => {
  const w = await connectWorld(t)
  const first = await makeTenant(w.db, 'First MSP')
  const second = await makeTenant(w.db, 'Second MSP')
  const firstKey = await createApiKey(w.db, first.id, 'admin', ['accounting:connect'])
  const secondKey = await createApiKey(w.db, second.id, 'admin', ['accounting:connect'])
  const connect = async (key: string, query = ''): Promise<{ statusCode: number, json: () => any }> => {
    const flow = await w.open((await w.start(key, query)).begin)
    return await w.app.inject({ url: flow.callback, headers: { cookie: flow.cookie } })
  }
  t.equal((await connect(firstKey.key)).statusCode, 200)
  const taken = await connect(secondKey.key)
  t.equal(taken.statusCode, 409, 'the company is connected to another tenant')
  t.equal(taken.json().error.code, 'ACCOUNTING_REALM_TAKEN')
  t.equal(await getAccountingConnection(w.db, second.id), null)
  t.equal((await getAccountingConnection(w.db, first.id))?.status, 'active', 'the first tenant keeps its books')
  t.equal((await connect(firstKey.key)).statusCode, 200, 'reconnecting the same tenant is fine')

  const moved = await connect(secondKey.key, '&move=1')
  t.equal(moved.statusCode, 200, 'moved when asked for')
  t.equal((await getAccountingConnection(w.db, second.id))?.status, 'active')
  const old = await getAccountingConnection(w.db, first.id)
  t.equal(old?.status, 'disconnected')
  t.match(old?.lastError, /moved to another Settle account/)
  t.equal(await getSecret(w.db, testKeyring(), first.id, 'quickbooks.refresh_token').catch(() => 'unreadable'), null, 'the old tenant holds no tokens for it')
  t.ok(await w.db('audit_log').where({ tenant_id: first.id, action: 'quickbooks.realm_moved_away', subject: REALM }).first(), 'audited where it left')
  t.ok(await w.db('audit_log').where({ tenant_id: second.id, action: 'quickbooks.realm_moved_here', actor: 'api:admin' }).first(), 'and where it arrived, with who')
  t.ok(await w.db('audit_log').where({ tenant_id: second.id, action: 'quickbooks.connect_started' }).whereRaw("detail->>'moveRealm' = 'true'").first(), 'the start records the move flag')
})
