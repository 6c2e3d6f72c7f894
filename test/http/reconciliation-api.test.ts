import t from 'tap'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { buildApp } from '../../src/app.js'
import { syncInvoices } from '../../src/services/sync.js'
import { createApiKey } from '../../src/security/api-keys.js'

t.test('reconciliation on the admin API: scopes, upload, actions, tenant isolation', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Brightline Managed IT')
  const other = await makeTenant(db, 'Other MSP')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.put('1', { company: '1', total: 45_000, number: 'INV-7001' })
  psa.put('2', { company: '1', total: 45_000, number: 'INV-7002' })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })

  const writer = await createApiKey(db, tenant.id, 'ops', ['payments:read', 'reconciliation:write'])
  const reader = await createApiKey(db, tenant.id, 'reports', ['payments:read'])
  const foreign = await createApiKey(db, other.id, 'theirs', ['payments:read', 'reconciliation:write'])
  const call = async (key: string, method: 'GET' | 'POST', url: string, payload?: object): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload !== undefined ? { payload } : {}) })
  const text = 'Date,Description,Payee,Amount\n2026-11-21,DEPOSIT,Harbor Dental,450.00'

  t.equal((await app.inject({ method: 'GET', url: '/api/v1/reconciliation/exceptions' })).statusCode, 401)
  const denied = await call(reader.key, 'POST', '/api/v1/reconciliation/statements', { text, currency: 'USD' })
  t.equal(denied.statusCode, 403)
  t.match(denied.json().error.message, /reconciliation:write/)
  t.equal((await call(writer.key, 'POST', '/api/v1/reconciliation/statements', { text: 'garbage', currency: 'USD' })).statusCode, 400)

  const up = await call(writer.key, 'POST', '/api/v1/reconciliation/statements', { text, currency: 'USD', format: 'csv' })
  t.equal(up.statusCode, 201)
  t.same(up.json(), { imported: 1, duplicates: 0, autoApplied: 0, exceptions: 1 })

  const list = await call(reader.key, 'GET', '/api/v1/reconciliation/exceptions?status=open&kind=ambiguous_match')
  t.equal(list.statusCode, 200)
  const [exc] = list.json().exceptions
  t.equal(exc.suggestions.length, 2)
  t.equal((await call(foreign.key, 'GET', '/api/v1/reconciliation/exceptions')).json().exceptions.length, 0, 'another tenant sees none')
  t.equal((await call(foreign.key, 'POST', `/api/v1/reconciliation/exceptions/${exc.id as string}/accept`, { rank: 1 })).statusCode, 404, 'nor can act on it')
  t.equal((await call(writer.key, 'POST', `/api/v1/reconciliation/exceptions/${exc.id as string}/accept`, { rank: 9 })).statusCode, 400)
  t.equal((await call(writer.key, 'POST', `/api/v1/reconciliation/exceptions/${exc.id as string}/accept`, { rank: 1 })).statusCode, 200)
  const again = await call(writer.key, 'POST', `/api/v1/reconciliation/exceptions/${exc.id as string}/dismiss`, { reason: 'late' })
  t.equal(again.statusCode, 409)
  t.equal(again.json().error.code, 'EXCEPTION_CLOSED')
  const audits = await db('audit_log').where({ tenant_id: tenant.id, action: 'reconciliation.suggestion_accepted' })
  t.equal(audits[0]?.actor, 'api:ops')
  t.equal((await call(reader.key, 'GET', '/api/v1/reconciliation/exceptions?status=bogus')).statusCode, 400)
})
