import t from 'tap'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { syncInvoices } from '../../src/services/sync.js'
import { buildApp } from '../../src/app.js'
import { createApiKey } from '../../src/security/api-keys.js'
import { issueSession } from '../../src/security/embedded-sessions.js'
import { grantMember, memberPermissions } from '../../src/services/embedded.js'
import { down, up } from '../../migrations/20261208010000_paylink_scope.js'

t.test('minting a pay link is a write: paylinks:write for keys, "paylink" inside the PSA', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  const app = await buildApp(testConfig({ PUBLIC_URL: 'https://pay.example' }), { db, keyring })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db)
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.put('501', { company: '1', total: 10_000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoice = (await invoicesByPsaIds(db, tenant.id, 'connectwise', ['501'])).get('501')
  const readOnly = await createApiKey(db, tenant.id, 'reports', ['payments:read'])
  const minter = await createApiKey(db, tenant.id, 'dunning', ['paylinks:write'])
  const mint = async (key: string): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'POST', url: `/api/v1/invoices/${invoice!.id}/pay-link`, headers: { authorization: `Bearer ${key}` } })

  const refused = await mint(readOnly.key)
  t.equal(refused.statusCode, 403, 'a read-only key mints no link')
  t.equal(refused.json().error.code, 'FORBIDDEN')
  t.match(refused.json().error.message, 'paylinks:write')
  const minted = await mint(minter.key)
  t.equal(minted.statusCode, 200)
  t.match(minted.json().url, /^https:\/\/pay\.example\/pay\//)

  // Inside the PSA: a member who may only view gets no link; one granted "paylink" does.
  const pod = async (permissions: Array<'view' | 'charge' | 'sync' | 'paylink'>): Promise<number> => {
    const s = issueSession(keyring, { tenantId: tenant.id, system: 'connectwise', member: 'cw:viewer', permissions })
    return (await app.inject({ method: 'POST', url: '/embedded/cw/invoice/pay-link', headers: { 'x-settle-session': s.token, 'x-csrf-token': s.csrf }, payload: { invoiceId: invoice!.id } })).statusCode
  }
  t.equal(await pod(['view']), 403, 'view alone mints nothing')
  t.equal(await pod(['view', 'paylink']), 200)
  t.same(await memberPermissions(db, tenant.id, 'connectwise', ['viewer']), ['view'])
  await grantMember(db, tenant.id, 'connectwise', 'viewer', ['paylink'])
  t.same(await memberPermissions(db, tenant.id, 'connectwise', ['viewer']), ['view', 'paylink'], 'paylink can be granted like charge and sync')
  const log = await db('audit_log').where({ tenant_id: tenant.id, action: 'pay_link.create' }).pluck('actor')
  t.same(log.sort(), ['api:dunning', 'cw:viewer'], 'only the allowed mints happened, each audited')
})

t.test('the migration: whoever could charge keeps sending links; read-only keys lose it', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  await down(db)
  const charger = await createApiKey(db, tenant.id, 'charger', ['payments:read', 'payments:charge'])
  const reader = await createApiKey(db, tenant.id, 'reader', ['payments:read'])
  await db('embedded_member_permissions').insert([
    { tenant_id: tenant.id, psa_system: 'connectwise', member_ref: 'jo', permission: 'charge' },
    { tenant_id: tenant.id, psa_system: 'autotask', member_ref: 'livelink', permission: 'view' }
  ])
  await up(db)
  const scopes = async (id: string): Promise<string[]> => (await db('api_keys').where({ id }).first('scopes')).scopes as string[]
  t.same(await scopes(charger.id), ['payments:read', 'payments:charge', 'paylinks:write'], 'a key that may charge may still send a link')
  t.same(await scopes(reader.id), ['payments:read'], 'a read-only key may not')
  t.same(await memberPermissions(db, tenant.id, 'connectwise', ['jo']), ['view', 'charge', 'paylink'], 'a member who may charge may send a link')
  t.same(await memberPermissions(db, tenant.id, 'autotask', ['livelink']), ['view'])
  await down(db)
  t.same(await scopes(charger.id), ['payments:read', 'payments:charge'], 'down takes the scope back out')
  await up(db)
})
