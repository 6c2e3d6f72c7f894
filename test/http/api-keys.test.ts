import t from 'tap'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { buildApp } from '../../src/app.js'
import { runTenantCommand } from '../../src/cli/commands.js'
import { authenticateApiKey, createApiKey } from '../../src/security/api-keys.js'

t.test('API keys can be listed and revoked (CLI and admin API); a revoked key is refused at once', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  const app = await buildApp(testConfig(), { db, keyring })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Keys MSP')
  const other = await makeTenant(db, 'Other MSP')
  const admin = await createApiKey(db, tenant.id, 'key admin', ['api-keys:manage'])
  const scripts = await createApiKey(db, tenant.id, 'scripts', ['payments:read'])
  const theirs = await createApiKey(db, other.id, 'theirs', ['api-keys:manage', 'payments:read'])
  const call = async (key: string, method: 'GET' | 'DELETE', url: string): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method, url, headers: { authorization: `Bearer ${key}` } })

  t.equal((await call(scripts.key, 'GET', '/api/v1/api-keys')).statusCode, 403, 'listing keys needs its own scope')
  t.equal((await call(scripts.key, 'GET', '/api/v1/invoices/00000000-0000-4000-8000-000000000000')).statusCode, 404, 'the key works')
  const listed = await call(admin.key, 'GET', '/api/v1/api-keys')
  t.equal(listed.statusCode, 200)
  const keys = listed.json().keys as Array<Record<string, unknown>>
  t.same(keys.map(k => k.name).sort(), ['key admin', 'scripts'], 'only this tenant\'s keys')
  const row = keys.find(k => k.name === 'scripts')!
  t.equal(row.id, scripts.id)
  t.same(row.scopes, ['payments:read'])
  t.ok(row.lastUsedAt !== null, 'last use is recorded')
  t.equal(row.revokedAt, null)
  t.notOk(JSON.stringify(keys).includes(scripts.key.slice(-20)), 'no secret, no hash')
  t.notOk('secretHash' in row || 'secret_hash' in row)

  t.equal((await call(theirs.key, 'DELETE', `/api/v1/api-keys/${scripts.id}`)).statusCode, 404, 'another tenant cannot revoke it')
  t.equal((await call(admin.key, 'DELETE', '/api/v1/api-keys/not-a-uuid')).statusCode, 400)
  const revoked = await call(admin.key, 'DELETE', `/api/v1/api-keys/${scripts.id}`)
  t.equal(revoked.statusCode, 200)
  t.equal(revoked.json().revoked, true)
  const refused = await call(scripts.key, 'GET', '/api/v1/invoices/00000000-0000-4000-8000-000000000000')
  t.equal(refused.statusCode, 401, 'refused at the very next request')
  t.equal(refused.json().error.code, 'UNAUTHENTICATED')
  t.equal((await call(admin.key, 'DELETE', `/api/v1/api-keys/${scripts.id}`)).json().error.code, 'API_KEY_NOT_FOUND', 'revoking twice says so')
  const after = (await call(admin.key, 'GET', '/api/v1/api-keys')).json().keys as Array<Record<string, unknown>>
  t.ok(after.find(k => k.name === 'scripts')?.revokedAt, 'the list shows when it was revoked')
  t.ok(await db('audit_log').where({ tenant_id: tenant.id, action: 'api_key.revoke', subject: scripts.id }).first(), 'audited')

  // CLI: the same two operations for the operator.
  const printed: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  const run = async (command: string, ...args: string[]): Promise<number> => {
    process.stdout.write = ((chunk: string) => { printed.push(String(chunk)); return true }) as typeof process.stdout.write
    try { return await runTenantCommand(command, ['--tenant', tenant.slug, ...args], { db, keyring, publicUrl: 'http://127.0.0.1:3000' }) } finally { process.stdout.write = write }
  }
  const cliKey = await createApiKey(db, tenant.id, 'cli victim', ['payments:read'])
  t.equal(await run('api-keys:list'), 0)
  const listing = printed.join('')
  t.match(listing, cliKey.id)
  t.match(listing, /cli victim/)
  t.match(listing, /scripts .*revoked/)
  t.match(listing, /never used/)
  t.equal(await run('api-keys:revoke', '--id', cliKey.id), 0)
  t.match(printed.join(''), /Revoked "cli victim"/)
  await t.rejects(authenticateApiKey(db, `Bearer ${cliKey.key}`), { code: 'UNAUTHENTICATED' })
  await t.rejects(run('api-keys:revoke', '--id', theirs.id), { code: 'API_KEY_NOT_FOUND' }, 'the CLI revokes only in the named tenant')
})

t.test('last use is written at most once a minute per key, not on every request', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const key = await createApiKey(db, tenant.id, 'busy', ['payments:read'])
  const t0 = new Date('2026-12-08T10:00:00Z')
  await authenticateApiKey(db, `Bearer ${key.key}`, t0)
  const first = (await db('api_keys').where({ id: key.id }).first('last_used_at')).last_used_at as Date
  t.ok(first, 'the first use is recorded')
  await db('api_keys').where({ id: key.id }).update({ last_used_at: new Date('2026-12-08T09:59:30Z') })
  for (let i = 1; i <= 20; i++) await authenticateApiKey(db, `Bearer ${key.key}`, new Date(t0.getTime() + i * 1000))
  t.same((await db('api_keys').where({ id: key.id }).first('last_used_at')).last_used_at, new Date('2026-12-08T09:59:30Z'), 'twenty uses within the minute: no write')
  await authenticateApiKey(db, `Bearer ${key.key}`, new Date(t0.getTime() + 61_000))
  const later = (await db('api_keys').where({ id: key.id }).first('last_used_at')).last_used_at as Date
  t.ok(later > new Date('2026-12-08T09:59:30Z'), 'a use a minute later is recorded')
})
