import t from 'tap'
import { renderProgress, syncFraction } from '../src/cli/progress.js'
import type { SyncProgress } from '../src/services/sync.js'
import { runTenantCommand } from '../src/cli/commands.js'
import { testDb } from './helpers/db.js'
import { makeTenant, testKeyring } from './helpers/fixtures.js'

const progress = (over: Partial<SyncProgress>): SyncProgress => ({
  pages: 1, invoicesSeen: 1000, created: 900, changed: 100, voided: 0, unchanged: 0, linesFetched: 2500, calls: 12,
  phase: 'invoices', invoicesPerSecond: 1500, since: new Date('2026-01-01T00:00:00Z'), reachedAt: new Date('2026-07-02T12:00:00Z'), ...over
})

t.test('the sync progress bar shows how far through the change window the sync is', async t => {
  const now = new Date('2027-01-01T00:00:00Z')
  t.equal(Math.round((syncFraction(progress({}), now) ?? 0) * 100), 50)
  t.equal(syncFraction(progress({ since: null }), now), null, 'unknown before the first page')
  t.equal(syncFraction(progress({ reachedAt: new Date('2028-01-01T00:00:00Z') }), now), 1, 'never past the end')
  const line = renderProgress(progress({}), 0.5)
  t.match(line, /^\[█{14}░{14}\] {2}50% {2}1,000 invoices · 1,500\/s · 900 new · 100 changed · 12 calls$/)
  t.match(renderProgress(progress({ phase: 'open-recheck' }), null), /\[░{28}\] {3}… {2}.* re-checking open invoices$/)
})

t.test('tenants:surcharge sets, shows and refuses', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const deps = { db, keyring: testKeyring(), publicUrl: 'http://127.0.0.1:3000' }
  const printed: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  const run = async (...args: string[]): Promise<number> => {
    // Capture the command's output so it does not land in the TAP stream.
    process.stdout.write = ((chunk: string) => { printed.push(String(chunk)); return true }) as typeof process.stdout.write
    try { return await runTenantCommand('tenants:surcharge', ['--tenant', tenant.slug, ...args], deps) } finally { process.stdout.write = write }
  }
  const stored = async (): Promise<unknown[]> => {
    const row = await db('tenants').where({ id: tenant.id }).first('surcharge_rate_bp', 'surcharge_blocked_states')
    return [row.surcharge_rate_bp, row.surcharge_blocked_states]
  }

  t.equal(await run('--rate', '2.5', '--block', 'ct, ma'), 0)
  t.same(await stored(), [250, ['CT', 'MA']])
  t.match(printed.at(-1), /2\.5% on credit cards; none for clients billed in CT, MA/)
  t.equal(await run('--rate', '3'), 0, 'the states are kept when --block is left out')
  t.same(await stored(), [300, ['CT', 'MA']])
  await t.rejects(run('--rate', '3.5'), { code: 'VALIDATION_FAILED', message: /3%/ })
  await t.rejects(run('--rate', 'two'), { code: 'VALIDATION_FAILED', message: /--rate takes a percentage/ })
  await t.rejects(run('--block', 'CT,Mass'), { code: 'VALIDATION_FAILED', message: /"MASS"/ })
  t.same(await stored(), [300, ['CT', 'MA']], 'refused input changed nothing')
  t.equal(await run(), 0)
  t.match(printed.at(-1), /3% on credit cards/, 'no options: shows the settings')
  t.equal(await run('--rate', 'off', '--block', ''), 0)
  t.same(await stored(), [0, []])
  t.match(printed.at(-1), /: off\./)
})

t.test('connect stripe, tenants:brand, tenants:installments and api-keys:create', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const keyring = testKeyring()
  const deps = { db, keyring, publicUrl: 'https://settle.example' }
  const printed: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  const run = async (command: string, ...args: string[]): Promise<number> => {
    process.stdout.write = ((chunk: string) => { printed.push(String(chunk)); return true }) as typeof process.stdout.write
    try { return await runTenantCommand(command, [...(command === 'connect' ? ['stripe'] : []), '--tenant', tenant.slug, ...args], deps) } finally { process.stdout.write = write }
  }
  const { getSecret } = await import('../src/db/secrets.js')

  process.env.SETTLE_STRIPE_SECRET_KEY = 'sk_test_abc123'
  process.env.SETTLE_STRIPE_WEBHOOK_SECRET = 'whsec_abc'
  t.teardown(() => { delete process.env.SETTLE_STRIPE_SECRET_KEY; delete process.env.SETTLE_STRIPE_WEBHOOK_SECRET })
  await t.rejects(run('connect', '--publishable-key', 'pk_live_abc'), { code: 'VALIDATION_FAILED', message: /both be live or both be test/ })
  t.equal(await getSecret(db, keyring, tenant.id, 'stripe.secret_key'), null, 'a refusal stores nothing')
  t.equal(await run('connect', '--publishable-key', 'pk_test_abc'), 0)
  t.equal(await getSecret(db, keyring, tenant.id, 'stripe.secret_key'), 'sk_test_abc123')
  t.equal(await getSecret(db, keyring, tenant.id, 'stripe.publishable_key'), 'pk_test_abc')
  t.match(printed.at(-1), /https:\/\/settle\.example\/webhooks\/stripe\//)
  t.notMatch(printed.join(''), /sk_test_abc123|whsec_abc/, 'secrets are never printed')

  t.equal(await run('tenants:brand', '--name', 'Brightline IT', '--accent', '#1D4ED8', '--support-email', 'billing@brightline.example'), 0)
  t.match(printed.at(-1), /Brightline IT, accent #1d4ed8, no logo, support billing@brightline\.example/)
  await t.rejects(run('tenants:brand', '--logo', 'logo.gif'), { code: 'VALIDATION_FAILED' })

  t.equal(await run('tenants:installments', '--min-amount', '1000', '--max-parts', '4'), 0)
  t.match(await db('tenants').where({ id: tenant.id }).first('installments_min_amount', 'installments_max_parts'), { installments_min_amount: '100000', installments_max_parts: 4 })
  await t.rejects(run('tenants:installments', '--min-amount', 'lots'), { code: 'VALIDATION_FAILED' })
  t.equal(await run('tenants:installments', '--min-amount', 'off'), 0)
  t.match(printed.at(-1), /off/)

  t.equal(await run('tenants:time-zone', '--zone', 'America/Chicago'), 0)
  t.equal((await db('tenants').where({ id: tenant.id }).first('time_zone')).time_zone, 'America/Chicago')
  await t.rejects(run('tenants:time-zone', '--zone', 'Central'), { code: 'VALIDATION_FAILED' })

  t.equal(await run('api-keys:create', '--name', 'back office', '--scopes', 'payments:read,payments:charge'), 0)
  t.match(printed.at(-1), /settle_sk_[0-9a-f-]{36}_[\w-]{43}/, 'the key is shown once')
  await t.rejects(run('api-keys:create', '--name', 'bad', '--scopes', 'everything'), { code: 'VALIDATION_FAILED' })
})

t.test('members:grant, members:revoke, members:list, livelinks and livelinks:sign', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const keyring = testKeyring()
  const deps = { db, keyring, publicUrl: 'https://settle.example/' }
  const printed: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  const run = async (command: string, ...args: string[]): Promise<number> => {
    process.stdout.write = ((chunk: string) => { printed.push(String(chunk)); return true }) as typeof process.stdout.write
    try { return await runTenantCommand(command, ['--tenant', tenant.slug, ...args], deps) } finally { process.stdout.write = write }
  }
  const { memberPermissions, liveLinkKey } = await import('../src/services/embedded.js')
  const { liveLinkValid } = await import('../src/security/embedded-sessions.js')

  t.equal(await run('members:list'), 0)
  t.match(printed.at(-1), /No one .* may charge or sync yet; everyone may view/)
  t.equal(await run('members:grant', '--system', 'connectwise', '--member', 'jsmith', '--permissions', 'charge,sync'), 0)
  t.equal(await run('members:grant', '--system', 'connectwise', '--member', 'jsmith', '--permissions', 'charge'), 0, 'granting again is harmless')
  t.equal(await run('members:grant', '--system', 'autotask', '--member', 'livelink', '--permissions', 'charge'), 0)
  t.same(await memberPermissions(db, tenant.id, 'connectwise', ['jsmith']), ['view', 'charge', 'sync'])
  t.same(await memberPermissions(db, tenant.id, 'connectwise', ['someone']), ['view'], 'others only view')
  t.same(await memberPermissions(db, tenant.id, 'autotask', ['jsmith']), ['view'], 'a grant is per PSA')
  t.equal(await run('members:list'), 0)
  t.equal(printed.at(-1), 'autotask livelink: charge\nconnectwise jsmith: charge, sync\n')
  t.equal(await run('members:revoke', '--system', 'connectwise', '--member', 'jsmith', '--permissions', 'charge'), 0)
  t.match(printed.at(-1), /Removed 1 grant: jsmith in connectwise may no longer charge/)
  t.same(await memberPermissions(db, tenant.id, 'connectwise', ['jsmith']), ['view', 'sync'])
  await t.rejects(run('members:grant', '--system', 'connectwise', '--member', 'jsmith', '--permissions', 'view,refund'), { code: 'VALIDATION_FAILED', message: /not view, refund/ })
  await t.rejects(run('members:grant', '--system', 'halo', '--member', 'jsmith', '--permissions', 'charge'), { code: 'VALIDATION_FAILED', message: /--system/ })
  await t.rejects(run('members:grant', '--system', 'connectwise', '--member', "x' or 1=1", '--permissions', 'charge'), { code: 'VALIDATION_FAILED', message: /not a member/ })
  t.same(await memberPermissions(db, tenant.id, 'connectwise', ['jsmith']), ['view', 'sync'], 'refused input changed nothing')

  t.equal(await run('livelinks'), 0)
  t.match(printed.at(-1), `Invoice: https://settle.example/embedded/autotask/invoice?tenant=${tenant.slug}&id=<Invoice ID>`)
  t.match(printed.at(-1), `Account: https://settle.example/embedded/autotask/company?tenant=${tenant.slug}&id=<Account ID>`)
  const key = await liveLinkKey(db, keyring, tenant.id)

  t.equal(await run('livelinks:sign', '--kind', 'invoice', '--id', '4711', '--days', '3'), 0)
  const url = new URL(String(printed.at(-1)).trim().split('\n').at(-1)!)
  t.equal(url.pathname, '/embedded/autotask/invoice')
  const params = { tenantSlug: tenant.slug, kind: 'invoice', recordId: '4711', exp: url.searchParams.get('exp'), sig: url.searchParams.get('sig') }
  t.ok(liveLinkValid(key, params), 'the link is signed with the tenant\'s LiveLink key')
  t.ok(Math.abs(Number(params.exp) * 1000 - (Date.now() + 3 * 86_400_000)) < 60_000, 'valid for the days asked')
  t.notOk(liveLinkValid(key, { ...params, recordId: '4712' }), 'only for its record')
  await t.rejects(run('livelinks:sign', '--kind', 'ticket', '--id', '1'), { code: 'VALIDATION_FAILED', message: /--kind/ })
  await t.rejects(run('livelinks:sign', '--kind', 'company', '--id', '1', '--days', '365'), { code: 'VALIDATION_FAILED', message: /1 to 90/ })
  await t.rejects(run('livelinks:sign', '--kind', 'company', '--id', 'abc'), { code: 'VALIDATION_FAILED', message: /number/ })

  t.equal(await run('livelinks', '--rotate-key'), 0)
  t.match(printed.at(-1), /rotated: signed links made before now no longer open/)
  t.notOk(liveLinkValid(await liveLinkKey(db, keyring, tenant.id), params), 'after rotating, old signed links are refused')
})

t.test('connect quickbooks: proves the refresh token at Intuit, keeps the rotated one, proposes settings; a refused token stores nothing', async t => {
  const nock = (await import('nock')).default
  const { createQuickBooksStore } = await import('../src/sandbox/quickbooks/index.js')
  const { getSecret } = await import('../src/db/secrets.js')
  const { getAccountingConnection, getAccountingSettings } = await import('../src/services/accounting-connections.js')
  nock.disableNetConnect()
  nock.enableNetConnect('127.0.0.1')
  t.teardown(() => { nock.cleanAll(); nock.enableNetConnect() })
  const REALM = '4620816365171234567'
  const store = createQuickBooksStore({ seed: 3, realmId: REALM, clientId: 'ABintuitapp', clientSecret: 'app-secret' })
  const issued = store.issueTokens(REALM)
  const db = await testDb(t)
  const keyring = testKeyring()
  const deps = { db, keyring, publicUrl: 'https://settle.example' }
  const tenant = await makeTenant(db)
  const env = { SETTLE_QBO_CLIENT_ID: 'ABintuitapp', SETTLE_QBO_CLIENT_SECRET: 'app-secret', SETTLE_QBO_REFRESH_TOKEN: issued.refresh_token }
  Object.assign(process.env, env)
  t.teardown(() => { for (const k of Object.keys(env)) delete process.env[k] })
  const printed: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  const run = async (slug: string, realm = REALM): Promise<number> => {
    process.stdout.write = ((chunk: string) => { printed.push(String(chunk)); return true }) as typeof process.stdout.write
    try { return await runTenantCommand('connect', ['quickbooks', '--tenant', slug, '--realm', realm], deps) } finally { process.stdout.write = write }
  }

  // Intuit's production endpoints, answered by the stand-in's store in QBO's own shapes.
  const basic = `Basic ${Buffer.from('ABintuitapp:app-secret').toString('base64')}`
  nock('https://oauth.platform.intuit.com').persist().matchHeader('authorization', basic)
    .post('/oauth2/v1/tokens/bearer').reply((_uri, body) => {
      const form = new URLSearchParams(String(body))
      if (form.get('grant_type') !== 'refresh_token') return [400, { error: 'unsupported_grant_type' }]
      try { return [200, store.refresh(form.get('refresh_token') ?? '')] } catch { return [400, { error: 'invalid_grant' }] }
    })
  let apiCalls = 0
  nock('https://quickbooks.api.intuit.com').persist().get(new RegExp(`^/v3/company/${REALM}/query`)).reply(function (uri) {
    apiCalls++
    const token = String(this.req.headers.authorization ?? '').replace(/^Bearer /, '')
    if (store.checkAccess(token, REALM) !== 'ok') return [401, { Fault: { Error: [{ Message: 'AuthenticationFailed', code: '3200' }], type: 'AUTHENTICATION' } }]
    return [200, { QueryResponse: store.query(REALM, new URL(uri, 'https://quickbooks.api.intuit.com').searchParams.get('query') ?? ''), time: new Date().toISOString() }]
  })

  t.equal(await run(tenant.slug), 0)
  t.match(printed.at(-1), `Connected ${tenant.slug} to QuickBooks company ${REALM}`)
  const stored = await getSecret(db, keyring, tenant.id, 'quickbooks.refresh_token')
  t.ok(stored !== null && stored !== issued.refresh_token, 'the rotated refresh token is kept, not the one given')
  t.equal((await getAccountingConnection(db, tenant.id))?.status, 'active')
  t.ok(apiCalls > 0, 'settings were read from the company\'s chart of accounts')
  const settings = await getAccountingSettings(db, tenant.id)
  t.ok(settings.undepositedFundsAccountId !== null && settings.bankAccountId !== null, 'Undeposited Funds and the bank account proposed')

  const other = await makeTenant(db, 'Refused MSP')
  await t.rejects(run(other.slug), { code: 'ACCOUNTING_REALM_TAKEN' }, 'a company connected to another tenant is refused before any token is used')
  process.env.SETTLE_QBO_REFRESH_TOKEN = 'RT1-not-a-token'
  await t.rejects(run(other.slug, '9130000000000777'), { code: 'ACCOUNTING_RECONNECT_REQUIRED', message: /invalid_grant/ })
  t.equal(await getAccountingConnection(db, other.id), null, 'a refused token stores nothing')
  t.notMatch(printed.join(''), 'RT1-not-a-token', 'the token is never printed')
})
