import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { configTableMarkdown, ConfigProblems, envExample, loadConfig, SETTINGS } from '../src/config.js'
import { Keyring } from '../src/security/keyring.js'

const problemsOf = (env: Record<string, string>): string[] => {
  try { loadConfig(env); return [] } catch (error) {
    if (error instanceof ConfigProblems) return error.problems.map(p => p.message)
    throw error
  }
}

t.test('nothing configured is a valid embedded default', async t => {
  const config = loadConfig({})
  t.equal(config.host, '127.0.0.1')
  t.equal(config.port, 3000)
  t.equal(config.databaseUrl, null)
  t.equal(config.encryptionKeys, null, 'no key: the embedded default generates its own in DATA_DIR, never a constant')
  t.equal(config.demo, true)
  t.equal(config.publicUrl, 'http://127.0.0.1:3000')
  t.same([config.stripeApiBase, config.quickbooksApiBase, config.quickbooksOauthBase, config.autotaskZoneUrl], [null, null, null, null], 'the adapters talk to the real services')
  t.same([config.sandboxHost, config.sandboxPort], ['127.0.0.1', 4010], 'npm run sandbox listens on 4010')
})

t.test('the outside base URLs are read without a trailing slash', async t => {
  const config = loadConfig({ STRIPE_API_BASE: 'http://127.0.0.1:4010/', QUICKBOOKS_API_BASE: 'http://127.0.0.1:4010/sandbox/quickbooks/' })
  t.equal(config.stripeApiBase, 'http://127.0.0.1:4010')
  t.equal(config.quickbooksApiBase, 'http://127.0.0.1:4010/sandbox/quickbooks')
})

t.test('every malformed variable gives its own line naming it and what it expects', async t => {
  const bad: Record<string, string> = {
    NODE_ENV: 'staging',
    HOST: 'not a host!',
    PORT: 'eighty',
    PUBLIC_URL: 'ftp://example.com',
    DATABASE_URL: 'mysql://localhost/settle',
    DATA_DIR: '',
    SETTLE_ENCRYPTION_KEYS: 'k1:tooshort',
    LOG_LEVEL: 'loud',
    BODY_LIMIT_BYTES: '10',
    TRUST_PROXY: 'maybe',
    SETTLE_DEMO: 'sometimes',
    WORKER_ENABLED: 'perhaps',
    WORKER_CONCURRENCY: '0',
    WORKER_POLL_MS: '-5',
    SYNC_INTERVAL_MINUTES: '0',
    SHUTDOWN_GRACE_MS: '1.5',
    PAY_LINK_DAYS: '0',
    STRIPE_API_BASE: 'api.stripe.com',
    QUICKBOOKS_API_BASE: 'file:///etc',
    QUICKBOOKS_OAUTH_BASE: 'nope',
    AUTOTASK_ZONE_URL: 'webservices.autotask.net/zoneInformation',
    // Any text is a valid key: these have no malformed value.
    SETTLE_QBO_CLIENT_ID: '',
    SETTLE_QBO_CLIENT_SECRET: '',
    SETTLE_QBO_WEBHOOK_VERIFIER: '',
    SANDBOX_HOST: 'two words',
    SANDBOX_PORT: '70000'
  }
  for (const setting of Object.values(SETTINGS)) {
    const value = bad[setting.variable]
    if (value === undefined) { t.fail(`no bad value listed for ${setting.variable}`); continue }
    if (value === '') continue // empty means unset: DATA_DIR falls back to ./data
    // With DATABASE_URL set, the encryption keys become required: supply them so only the bad URL speaks.
    const companions: Record<string, string> = setting.variable === 'DATABASE_URL' ? { SETTLE_ENCRYPTION_KEYS: Keyring.generateEntry('k1') } : {}
    const problems = problemsOf({ ...companions, [setting.variable]: value })
    t.equal(problems.length, 1, `${setting.variable}=${value} gives exactly one problem`)
    t.match(problems[0], new RegExp(`^${setting.variable}: expected `), `${setting.variable} is named first`)
    t.notMatch(problems[0], /\n/, 'one line')
  }
  t.equal(problemsOf(bad).length, Object.values(bad).filter(v => v !== '').length, 'all problems reported at once (the bad key list stands in for the missing one)')
})

t.test('a required variable that is missing says why it is required', async t => {
  const [problem] = problemsOf({ DATABASE_URL: 'postgres://settle@db/settle' })
  t.match(problem, /^SETTLE_ENCRYPTION_KEYS: expected .* because DATABASE_URL is set; got nothing$/)
  t.same(problemsOf({ DATABASE_URL: 'postgres://settle@db/settle', SETTLE_ENCRYPTION_KEYS: Keyring.generateEntry('k1') }), [])
})

t.test('a bad secret is never echoed in full', async t => {
  const secret = 'k1:' + 'A'.repeat(40)
  const [problem] = problemsOf({ SETTLE_ENCRYPTION_KEYS: secret })
  t.notOk(problem?.includes('A'.repeat(10)))
  t.match(problem, /characters\)/)
  const dupe = Keyring.generateEntry('same')
  t.equal(problemsOf({ SETTLE_ENCRYPTION_KEYS: `${dupe},${dupe}` }).length, 1, 'duplicate key ids are refused')
})

t.test('values are parsed, not just checked', async t => {
  const config = loadConfig({ PORT: '8080', TRUST_PROXY: 'yes', SETTLE_DEMO: 'off', WORKER_CONCURRENCY: '12', DATABASE_URL: 'postgresql://u@h:5433/db/', SETTLE_ENCRYPTION_KEYS: Keyring.generateEntry('k1') })
  t.equal(config.port, 8080)
  t.equal(config.trustProxy, true)
  t.equal(config.demo, false)
  t.equal(config.workerConcurrency, 12)
  t.equal(config.databaseUrl, 'postgresql://u@h:5433/db', 'trailing slash dropped')
})

t.test('the server refuses to boot on bad config, with one line per problem', async t => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { PATH: process.env.PATH, PORT: 'eighty', LOG_LEVEL: 'loud' }, encoding: 'utf8', timeout: 30_000
  })
  t.equal(result.status, 78, 'exit code EX_CONFIG')
  t.match(result.stderr, /PORT: expected a whole number from 0 to 65535; got "eighty"/)
  t.match(result.stderr, /LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent; got "loud"/)
  t.notMatch(result.stderr, /at .*\.ts:\d+/, 'no stack trace')
})

t.test('the README configuration table is the one the code checks', async t => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  t.ok(readme.includes(configTableMarkdown()), 'README contains configTableMarkdown() verbatim (regenerate with npx settle config:table)')
})

t.test('.env.example lists every setting the code checks, with no values filled in', async t => {
  const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8')
  t.equal(example, envExample(), '.env.example is current (regenerate with npm run env:example)')
  for (const s of Object.values(SETTINGS)) t.match(example, new RegExp(`^# ${s.variable}=$`, 'm'), `${s.variable} is listed`)
  t.match(example, /REQUIRED with DATABASE_URL[^\n]*\n# SETTLE_ENCRYPTION_KEYS=$/m, 'the key a PostgreSQL deployment must supply is marked required')
  t.notMatch(example, /^[A-Z_]+=\S/m, 'no variable is set, so no secret can be')
})

t.test('the Intuit app keys and webhook verifier are settings like the others, unset when empty', async t => {
  const config = loadConfig({ SETTLE_QBO_CLIENT_ID: ' ABapp ', SETTLE_QBO_CLIENT_SECRET: 'app-secret', SETTLE_QBO_WEBHOOK_VERIFIER: 'verifier' })
  t.same([config.quickbooksClientId, config.quickbooksClientSecret, config.quickbooksWebhookVerifier], ['ABapp', 'app-secret', 'verifier'])
  const unset = loadConfig({ SETTLE_QBO_CLIENT_ID: '', SETTLE_QBO_WEBHOOK_VERIFIER: ' ' })
  t.same([unset.quickbooksClientId, unset.quickbooksClientSecret, unset.quickbooksWebhookVerifier], [null, null, null])
})
