import { existsSync } from 'node:fs'

/**
 * Every setting comes from the environment (and an optional `.env`), is
 * checked here at boot, and a bad value stops the server with one line that
 * names the variable and what it expects. There are no fallback secrets: the
 * embedded default generates its own encryption key in DATA_DIR (see
 * `src/security/keyring.ts`), and a PostgreSQL deployment must supply one.
 */
export interface Config {
  nodeEnv: 'development' | 'production' | 'test'
  host: string
  port: number
  publicUrl: string
  databaseUrl: string | null
  dataDir: string
  encryptionKeys: string | null
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  bodyLimitBytes: number
  trustProxy: boolean
  demo: boolean
  workerEnabled: boolean
  workerConcurrency: number
  workerPollMs: number
  syncIntervalMinutes: number
  shutdownGraceMs: number
  payLinkDays: number
  /** Where the adapters send their calls; null is the real service. */
  stripeApiBase: string | null
  quickbooksApiBase: string | null
  quickbooksOauthBase: string | null
  autotaskZoneUrl: string | null
  /** The Intuit app's keys (null: QuickBooks can only be connected to the built-in stand-in). */
  quickbooksClientId: string | null
  quickbooksClientSecret: string | null
  /** Checks QuickBooks webhook signatures; null refuses every delivery (the demo uses the stand-in's). */
  quickbooksWebhookVerifier: string | null
  /** The stand-ins' own server (`npm run sandbox`). */
  sandboxHost: string
  sandboxPort: number
}

export class ConfigError extends Error {
  constructor (readonly variable: string, expected: string, got: string | undefined) {
    super(`${variable}: expected ${expected}; got ${got === undefined ? 'nothing' : JSON.stringify(redactForMessage(variable, got))}`)
    this.name = 'ConfigError'
  }
}

function redactForMessage (variable: string, value: string): string {
  return /KEY|SECRET|TOKEN|PASSWORD|VERIFIER|DATABASE_URL/.test(variable) ? `${value.slice(0, 3)}… (${value.length} characters)` : value
}

type Env = Record<string, string | undefined>

interface Setting<T> {
  variable: string
  /** Shown in the README table and in error messages. */
  expected: string
  description: string
  /** Default as written in docs; `null` when there is none. */
  defaultText: string | null
  /** When the variable must be set, e.g. `with DATABASE_URL`. */
  requiredWhen?: string
  read: (raw: string | undefined, env: Env) => T
}

const text = (value: string | undefined): string | undefined => (value === undefined || value.trim() === '' ? undefined : value.trim())

function oneOf<const T extends string> (variable: string, choices: readonly T[], fallback: T, description: string): Setting<T> {
  return {
    variable,
    expected: `one of ${choices.join(', ')}`,
    description,
    defaultText: fallback,
    read: raw => {
      const value = text(raw) ?? fallback
      if (!(choices as readonly string[]).includes(value)) throw new ConfigError(variable, `one of ${choices.join(', ')}`, raw)
      return value as T
    }
  }
}

function integer (variable: string, min: number, max: number, fallback: number, description: string): Setting<number> {
  const expected = `a whole number from ${min} to ${max}`
  return {
    variable,
    expected,
    description,
    defaultText: String(fallback),
    read: raw => {
      const value = text(raw)
      if (value === undefined) return fallback
      if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new ConfigError(variable, expected, raw)
      return Number(value)
    }
  }
}

function flag (variable: string, fallback: (env: Env) => boolean, defaultText: string, description: string): Setting<boolean> {
  return {
    variable,
    expected: 'true or false',
    description,
    defaultText,
    read: (raw, env) => {
      const value = text(raw)?.toLowerCase()
      if (value === undefined) return fallback(env)
      if (['true', '1', 'yes', 'on'].includes(value)) return true
      if (['false', '0', 'no', 'off'].includes(value)) return false
      throw new ConfigError(variable, 'true or false', raw)
    }
  }
}

function url (variable: string, protocols: readonly string[], description: string, fallback: (env: Env) => string | null, defaultText: string | null): Setting<string | null> {
  const expected = `a URL starting with ${protocols.map(p => `${p}//`).join(' or ')}`
  return {
    variable,
    expected,
    description,
    defaultText,
    read: (raw, env) => {
      const value = text(raw)
      if (value === undefined) return fallback(env)
      let parsed: URL
      try { parsed = new URL(value) } catch { throw new ConfigError(variable, expected, raw) }
      if (!protocols.includes(parsed.protocol)) throw new ConfigError(variable, expected, raw)
      return value.replace(/\/+$/, '')
    }
  }
}

/** A value only this deployment knows (an app key, a webhook token): no default, never shown. */
function secret (variable: string, description: string): Setting<string | null> {
  return { variable, expected: 'the value from the vendor\'s developer console', description, defaultText: null, read: raw => text(raw) ?? null }
}

const KEY_ENTRY = /^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=$/

export const SETTINGS = {
  nodeEnv: oneOf('NODE_ENV', ['development', 'production', 'test'] as const, 'development', 'Runtime mode; `production` caches compiled templates.'),
  host: {
    variable: 'HOST',
    expected: 'a host name or IP address to listen on',
    description: 'Interface the HTTP server listens on.',
    defaultText: '127.0.0.1',
    read: raw => {
      const value = text(raw) ?? '127.0.0.1'
      if (!/^[A-Za-z0-9.:[\]-]+$/.test(value)) throw new ConfigError('HOST', 'a host name or IP address to listen on', raw)
      return value
    }
  } satisfies Setting<string>,
  port: integer('PORT', 0, 65535, 3000, 'TCP port the HTTP server listens on (0 picks a free one).'),
  publicUrl: url('PUBLIC_URL', ['http:', 'https:'], 'Address people and PSAs reach Settle at; used in pay links and manifests.',
    env => `http://${text(env.HOST) ?? '127.0.0.1'}:${text(env.PORT) ?? '3000'}`, 'http://HOST:PORT'),
  databaseUrl: url('DATABASE_URL', ['postgres:', 'postgresql:'], 'PostgreSQL connection string. Unset: the embedded PGlite database in DATA_DIR.', () => null, null),
  dataDir: {
    variable: 'DATA_DIR',
    expected: 'a directory path',
    description: 'Where the embedded default keeps its PGlite database and generated encryption key.',
    defaultText: './data',
    read: raw => text(raw) ?? './data'
  } satisfies Setting<string>,
  encryptionKeys: {
    variable: 'SETTLE_ENCRYPTION_KEYS',
    expected: 'a comma-separated list of keyId:base64 entries, each a 32-byte AES-256 key (the first encrypts; the rest only decrypt)',
    description: 'Keys that encrypt tenant secrets at rest. Required with DATABASE_URL; the embedded default generates one in DATA_DIR. Make one with `npx settle keys:generate`; rotate by putting a new key first and running `npx settle keys:reseal`.',
    defaultText: null,
    requiredWhen: 'with DATABASE_URL',
    read: (raw, env) => {
      const value = text(raw)
      const expected = 'a comma-separated list of keyId:base64 entries, each a 32-byte AES-256 key (the first encrypts; the rest only decrypt)'
      if (value === undefined) {
        if (text(env.DATABASE_URL) !== undefined) throw new ConfigError('SETTLE_ENCRYPTION_KEYS', `${expected}, because DATABASE_URL is set`, raw)
        return null
      }
      const entries = value.split(',').map(s => s.trim())
      const ids = entries.map(e => e.split(':')[0])
      if (!entries.every(e => KEY_ENTRY.test(e) && Buffer.from(e.split(':')[1] ?? '', 'base64').length === 32) || new Set(ids).size !== ids.length) {
        throw new ConfigError('SETTLE_ENCRYPTION_KEYS', `${expected}, with unique key ids`, raw)
      }
      return value
    }
  } satisfies Setting<string | null>,
  logLevel: oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info', 'Log verbosity (pino). Secrets and card/bank fields are always redacted.'),
  bodyLimitBytes: integer('BODY_LIMIT_BYTES', 1024, 50 * 1024 * 1024, 1024 * 1024, 'Largest request body accepted; larger requests get 413 PAYLOAD_TOO_LARGE.'),
  trustProxy: flag('TRUST_PROXY', () => false, 'false', 'Trust X-Forwarded-* headers (set when behind a reverse proxy that sets them).'),
  demo: flag('SETTLE_DEMO', env => text(env.DATABASE_URL) === undefined, 'true without DATABASE_URL', 'Seed and show the demo tenant on the home page.'),
  workerEnabled: flag('WORKER_ENABLED', () => true, 'true', 'Run the job/outbox worker in this process. Every process may run one; jobs are claimed through the database.'),
  workerConcurrency: integer('WORKER_CONCURRENCY', 1, 64, 4, 'Jobs one worker runs at the same time.'),
  workerPollMs: integer('WORKER_POLL_MS', 50, 60_000, 1000, 'How often an idle worker looks for due jobs.'),
  syncIntervalMinutes: integer('SYNC_INTERVAL_MINUTES', 1, 1440, 15, 'How often each PSA connection is polled for changed invoices (ConnectWise callbacks also re-sync single invoices at once).'),
  shutdownGraceMs: integer('SHUTDOWN_GRACE_MS', 100, 120_000, 10_000, 'How long a stopping server waits for requests and jobs in flight.'),
  payLinkDays: integer('PAY_LINK_DAYS', 1, 90, 14, 'How many days a pay link stays valid: every link Settle makes (pods, API, emails, the demo overview) and the validity they show.'),
  stripeApiBase: url('STRIPE_API_BASE', ['http:', 'https:'], "Where the Stripe adapter sends its calls, for every tenant's key (the stand-ins' server: `http://127.0.0.1:4010`).", () => null, 'https://api.stripe.com'),
  quickbooksApiBase: url('QUICKBOOKS_API_BASE', ['http:', 'https:'], 'Where QuickBooks Online API calls go; `/v3/company/…` is appended (the stand-ins\' server: `http://127.0.0.1:4010/sandbox/quickbooks`).', () => null, 'https://quickbooks.api.intuit.com'),
  quickbooksOauthBase: url('QUICKBOOKS_OAUTH_BASE', ['http:', 'https:'], "Where QuickBooks sign-in and tokens go: `/connect/oauth2`, `/oauth2/v1/tokens/bearer` and `/oauth2/v1/tokens/revoke` under it. Unset: Intuit's own three hosts.", () => null, null),
  autotaskZoneUrl: url('AUTOTASK_ZONE_URL', ['http:', 'https:'], "Autotask's zone-information URL, which tells each API user its zone (the stand-ins' server: `http://127.0.0.1:4010/sandbox/autotask/ATServicesRest/V1.0/zoneInformation`).", () => null, 'https://webservices.autotask.net/ATServicesRest/V1.0/zoneInformation'),
  quickbooksClientId: secret('SETTLE_QBO_CLIENT_ID', 'Client ID of your Intuit app (developer.intuit.com, Keys & credentials); needed to connect a real QuickBooks company.'),
  quickbooksClientSecret: secret('SETTLE_QBO_CLIENT_SECRET', 'Client secret of the same Intuit app.'),
  quickbooksWebhookVerifier: secret('SETTLE_QBO_WEBHOOK_VERIFIER', "Verifier token of the Intuit app's webhook; deliveries whose signature does not match it are refused."),
  sandboxHost: {
    variable: 'SANDBOX_HOST',
    expected: 'a host name or IP address to listen on',
    description: 'Interface `npm run sandbox` (the stand-ins on their own server) listens on.',
    defaultText: '127.0.0.1',
    read: raw => {
      const value = text(raw) ?? '127.0.0.1'
      if (!/^[A-Za-z0-9.:[\]-]+$/.test(value)) throw new ConfigError('SANDBOX_HOST', 'a host name or IP address to listen on', raw)
      return value
    }
  } satisfies Setting<string>,
  sandboxPort: integer('SANDBOX_PORT', 0, 65535, 4010, 'TCP port `npm run sandbox` listens on (0 picks a free one).')
} as const

type Settings = typeof SETTINGS

/**
 * Reads every setting, collecting all problems so one boot shows them all,
 * each on its own line.
 */
export function loadConfig (env: Env = process.env): Config {
  const problems: ConfigError[] = []
  const out: Record<string, unknown> = {}
  for (const [name, setting] of Object.entries(SETTINGS) as Array<[keyof Settings, Setting<unknown>]>) {
    try {
      out[name] = setting.read(env[setting.variable], env)
    } catch (error) {
      if (error instanceof ConfigError) problems.push(error)
      else throw error
    }
  }
  if (problems.length > 0) throw new ConfigProblems(problems)
  return out as unknown as Config
}

export class ConfigProblems extends Error {
  constructor (readonly problems: ConfigError[]) {
    super(problems.map(p => p.message).join('\n'))
    this.name = 'ConfigProblems'
  }
}

/** Loads `.env` from the working directory when present; real environment variables win. */
export function loadDotEnv (path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path)
}

/**
 * A secret an operator command takes from the environment (never from its
 * arguments, which other users of the machine can see); undefined when unset.
 */
export function commandSecret (variable: string, env: Env = process.env): string | undefined {
  return text(env[variable])
}

/**
 * For a process's entry point: `.env`, then every setting; a bad value stops
 * the process here with one line per problem, naming `what` could not start.
 */
export function loadConfigOrExit (what: string): Config {
  loadDotEnv()
  try {
    return loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigProblems)) throw error
    process.stderr.write(`${what} cannot start; fix these settings:\n${error.problems.map(p => `  ${p.message}`).join('\n')}\n`)
    process.exit(78) // EX_CONFIG
  }
}

/** The README's configuration table, generated from the same table the checks use. */
export function configTableMarkdown (): string {
  const rows = Object.values(SETTINGS).map((s: Setting<unknown>) =>
    `| \`${s.variable}\` | ${s.defaultText === null ? '(none)' : `\`${s.defaultText}\``} | ${s.description} |`)
  return ['| variable | default | what it does |', '| --- | --- | --- |', ...rows].join('\n')
}

/**
 * `.env.example`, generated from the same table: every variable commented
 * out with what it does, what it expects and its default, so a copy to `.env`
 * changes nothing until a line is filled in. No values, hence no secrets.
 */
export function envExample (): string {
  const blocks = Object.values(SETTINGS).map((s: Setting<unknown>) => [
    `# ${s.description.replace(/`/g, '')}`,
    `# Expects ${s.expected}; default: ${s.defaultText ?? 'none'}.${s.requiredWhen === undefined ? '' : ` REQUIRED ${s.requiredWhen}.`}`,
    `# ${s.variable}=`
  ].join('\n'))
  return ['# Settle settings: copy to .env and uncomment what you change. Real environment variables win.', '# Generated from src/config.ts by `npm run env:example`; do not edit by hand.', '', blocks.join('\n\n'), ''].join('\n')
}
