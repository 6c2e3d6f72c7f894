import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import quickbooksSandbox, { createQuickBooksStore, QUICKBOOKS_SANDBOX_PREFIX } from '../../../src/sandbox/quickbooks/index.js'
import quickbooksConnectRoutes, { signConnectState, verifyConnectState } from '../../../src/routes/connect/quickbooks.js'
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
  await app.register(quickbooksConnectRoutes, { publicUrl: 'https://settle.example', sandboxOrigin: () => origin })
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
  const authorize = new URL(String(start.headers.location))
  t.equal(authorize.searchParams.get('redirect_uri'), 'https://settle.example/connect/quickbooks/callback')
  const consent = await app.inject({ url: authorize.pathname + authorize.search })
  t.equal(consent.statusCode, 302)
  const back = new URL(String(consent.headers.location))
  const tampered = await app.inject({ url: `/connect/quickbooks/callback?code=${back.searchParams.get('code') ?? ''}&realmId=${REALM}&state=x${back.searchParams.get('state') ?? ''}` })
  t.ok(tampered.statusCode >= 400, 'a forged state is refused')
  const done = await app.inject({ url: back.pathname + back.search })
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

t.test('state: expires and binds the tenant', async t => {
  const keyring = testKeyring()
  const s = signConnectState(keyring, { tenantId: '00000000-0000-4000-8000-000000000001', sandbox: false, expiresAt: new Date(Date.now() + 60_000) })
  t.same(verifyConnectState(keyring, s), { tenantId: '00000000-0000-4000-8000-000000000001', sandbox: false })
  t.throws(() => verifyConnectState(keyring, s, new Date(Date.now() + 120_000)))
  t.throws(() => verifyConnectState(testKeyring(), s))
})
