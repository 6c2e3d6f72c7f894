import axios from 'axios'
import type { Knex } from 'knex'
import { AppError } from '../errors.js'
import { dbCallBudget } from '../db/call-budget.js'
import { deleteSecret, getSecret, putSecret } from '../db/secrets.js'
import { audit } from '../db/audit.js'
import { requireTenantId } from '../db/tenants.js'
import type { Keyring } from '../security/keyring.js'
import type { AccountingFactory, AccountingPort, AccountingSettings } from '../ports/accounting.js'
import { createQboClient } from '../adapters/quickbooks/client.js'
import { createQuickBooksAccounting } from '../adapters/quickbooks/accounting.js'
import { QUICKBOOKS_SANDBOX_CREDENTIALS } from '../sandbox/quickbooks/index.js'

/** Intuit production endpoints; a connection with settings.site = 'sandbox' uses the stand-in under sandboxOrigin instead. */
export const QBO_PRODUCTION = {
  apiBase: 'https://quickbooks.api.intuit.com/v3/company/',
  tokenUrl: 'https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer',
  revokeUrl: 'https://developer.api.intuit.com/v2/oauth2/tokens/revoke',
  authorizeUrl: 'https://appcenter.intuit.com/connect/oauth2'
}
export interface QboEndpoints { apiBase: string, tokenUrl: string, revokeUrl: string, authorizeUrl: string }

/** Intuit's endpoints, or the ones QUICKBOOKS_API_BASE and QUICKBOOKS_OAUTH_BASE point at (laid out as the stand-in serves them). */
export function qboEndpoints (bases: { quickbooksApiBase: string | null, quickbooksOauthBase: string | null }): QboEndpoints {
  const oauth = bases.quickbooksOauthBase
  return {
    apiBase: bases.quickbooksApiBase === null ? QBO_PRODUCTION.apiBase : `${bases.quickbooksApiBase}/v3/company/`,
    ...(oauth === null
      ? { tokenUrl: QBO_PRODUCTION.tokenUrl, revokeUrl: QBO_PRODUCTION.revokeUrl, authorizeUrl: QBO_PRODUCTION.authorizeUrl }
      : { tokenUrl: `${oauth}/oauth2/v1/tokens/bearer`, revokeUrl: `${oauth}/oauth2/v1/tokens/revoke`, authorizeUrl: `${oauth}/connect/oauth2` })
  }
}
export interface QboAppCredentials { clientId: string, clientSecret: string }

/** The Intuit app's keys from SETTLE_QBO_CLIENT_ID and SETTLE_QBO_CLIENT_SECRET, or null when either is unset. */
export function qboApp (keys: { quickbooksClientId: string | null, quickbooksClientSecret: string | null }): QboAppCredentials | null {
  return keys.quickbooksClientId === null || keys.quickbooksClientSecret === null ? null : { clientId: keys.quickbooksClientId, clientSecret: keys.quickbooksClientSecret }
}

/** Refresh when less than this is left on the access token. */
const REFRESH_MARGIN_MS = 5 * 60_000

export interface AccountingConnection {
  tenantId: string
  realmId: string
  companyName: string | null
  status: 'active' | 'reconnect_required' | 'disconnected'
  settings: Record<string, unknown>
  accessExpiresAt: Date | null
  refreshExpiresAt: Date | null
  lastError: string | null
}

export const DEFAULT_ACCOUNTING_SETTINGS: AccountingSettings = {
  undepositedFundsAccountId: null, bankAccountId: null, feesAccountId: null, writeOffAccountId: null, receivableAccountId: null,
  cardPaymentMethodId: null, achPaymentMethodId: null, surchargeItemId: null, invoiceMatch: 'doc_number', docNumberPrefix: ''
}

type Row = Record<string, any>
const toConnection = (r: Row): AccountingConnection => ({
  tenantId: r.tenant_id, realmId: r.realm_id, companyName: r.company_name ?? null, status: r.status,
  settings: (typeof r.settings === 'string' ? JSON.parse(r.settings) : r.settings) ?? {},
  accessExpiresAt: r.access_expires_at === null ? null : new Date(r.access_expires_at),
  refreshExpiresAt: r.refresh_expires_at === null ? null : new Date(r.refresh_expires_at),
  lastError: r.last_error ?? null
})

export async function getAccountingConnection (db: Knex | Knex.Transaction, tenantId: string): Promise<AccountingConnection | null> {
  requireTenantId(tenantId)
  const [row] = await db('accounting_connections').where({ tenant_id: tenantId, system: 'quickbooks' }) as Row[]
  return row === undefined ? null : toConnection(row)
}

export async function getAccountingSettings (db: Knex | Knex.Transaction, tenantId: string): Promise<AccountingSettings> {
  const c = await getAccountingConnection(db, tenantId)
  const s = (c?.settings.accounting ?? {}) as Partial<AccountingSettings>
  return { ...DEFAULT_ACCOUNTING_SETTINGS, ...s }
}

export async function saveAccountingSettings (db: Knex | Knex.Transaction, tenantId: string, settings: Partial<AccountingSettings>): Promise<AccountingSettings> {
  const c = await getAccountingConnection(db, tenantId)
  if (c === null) throw new AppError('ACCOUNTING_NOT_CONNECTED', 'QuickBooks is not connected for this tenant; connect it first.')
  const next = { ...DEFAULT_ACCOUNTING_SETTINGS, ...(c.settings.accounting ?? {}) as Partial<AccountingSettings>, ...settings }
  await db('accounting_connections').where({ tenant_id: tenantId, system: 'quickbooks' })
    .update({ settings: JSON.stringify({ ...c.settings, accounting: next }), updated_at: db.fn.now() })
  return next
}

interface TokenAnswer { access_token: string, refresh_token: string, expires_in: number, x_refresh_token_expires_in: number }

/** The OAuth token endpoint (authorization_code or refresh_token grant); the tokens never reach a log line. */
export async function tokenRequest (endpoints: QboEndpoints, app: QboAppCredentials, form: Record<string, string>): Promise<TokenAnswer> {
  const res = await axios.post(endpoints.tokenUrl, new URLSearchParams(form).toString(), {
    headers: { authorization: `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    timeout: 30_000,
    validateStatus: () => true
  })
  if (res.status !== 200 || typeof res.data?.access_token !== 'string') {
    // Only the OAuth error code, never the body (it may echo a token).
    throw new AppError('ACCOUNTING_RECONNECT_REQUIRED', `QuickBooks needs reconnecting: the token endpoint answered ${res.status}${typeof res.data?.error === 'string' ? ` ${res.data.error as string}` : ''}.`)
  }
  return res.data as TokenAnswer
}

async function storeTokens (db: Knex | Knex.Transaction, keyring: Keyring, tenantId: string, t: TokenAnswer, now: number): Promise<void> {
  await putSecret(db, keyring, tenantId, 'quickbooks.access_token', t.access_token)
  // Intuit rotates refresh tokens: always keep the newest one.
  await putSecret(db, keyring, tenantId, 'quickbooks.refresh_token', t.refresh_token)
  await db('accounting_connections').where({ tenant_id: tenantId, system: 'quickbooks' }).update({
    access_expires_at: new Date(now + t.expires_in * 1000), refresh_expires_at: new Date(now + t.x_refresh_token_expires_in * 1000),
    status: 'active', last_error: null, updated_at: db.fn.now()
  })
}

export interface ConnectQuickBooksInput {
  tenantId: string, realmId: string, companyName?: string | null, sandbox?: boolean, tokens: TokenAnswer
  /** Take the company from another tenant it is connected to (asked for when the flow was started; audited in both). */
  moveRealm?: boolean
  /** Who connected, for the audit of a move. */
  actor?: string
}

/** Other tenants this QuickBooks company is connected to (disconnected ones do not count). */
async function realmHolders (db: Knex | Knex.Transaction, tenantId: string, realmId: string): Promise<string[]> {
  return await db('accounting_connections').where({ system: 'quickbooks', realm_id: realmId }).whereNot('tenant_id', tenantId).whereNot('status', 'disconnected').pluck('tenant_id') as string[]
}

const realmTaken = (): AppError => new AppError('ACCOUNTING_REALM_TAKEN', 'This QuickBooks company is already connected to another Settle account. Disconnect it there, or start connecting again and choose to move it here.')

/** Refuses early (before any token is fetched) a company connected to another tenant, unless a move was asked for. */
export async function assertRealmFree (db: Knex, tenantId: string, realmId: string, moveRealm: boolean): Promise<void> {
  if (!moveRealm && (await realmHolders(db, tenantId, realmId)).length > 0) throw realmTaken()
}

/** Saves a connection from tokens (an OAuth callback's exchange or the CLI's refresh token), sealed in tenant_secrets. */
export async function connectQuickBooks (db: Knex, keyring: Keyring, input: ConnectQuickBooksInput, now = Date.now()): Promise<AccountingConnection> {
  requireTenantId(input.tenantId)
  await db.transaction(async trx => {
    // One company, one tenant: connections of the same realm wait for each other here.
    await trx.raw('select pg_advisory_xact_lock(hashtext(?))', [`quickbooks-realm:${input.realmId}`])
    const holders = await realmHolders(trx, input.tenantId, input.realmId)
    if (holders.length > 0 && input.moveRealm !== true) throw realmTaken()
    for (const other of holders) {
      await trx('accounting_connections').where({ tenant_id: other, system: 'quickbooks' }).update({ status: 'disconnected', last_error: 'This QuickBooks company was moved to another Settle account.', updated_at: trx.fn.now() })
      await deleteSecret(trx, other, 'quickbooks.access_token')
      await deleteSecret(trx, other, 'quickbooks.refresh_token')
      await audit(trx, other, input.actor ?? 'system', 'quickbooks.realm_moved_away', input.realmId, { toTenant: input.tenantId })
    }
    if (holders.length > 0) await audit(trx, input.tenantId, input.actor ?? 'system', 'quickbooks.realm_moved_here', input.realmId, { fromTenants: holders })
    const existing = await getAccountingConnection(trx, input.tenantId)
    const settings = { ...(existing?.settings ?? {}), ...(input.sandbox === true ? { site: 'sandbox' } : {}) }
    await trx('accounting_connections').insert({ tenant_id: input.tenantId, system: 'quickbooks', realm_id: input.realmId, company_name: input.companyName ?? null, status: 'active', settings: JSON.stringify(settings) })
      .onConflict(['tenant_id', 'system']).merge({ realm_id: input.realmId, company_name: input.companyName ?? null, status: 'active', settings: JSON.stringify(settings), last_error: null, connected_at: trx.fn.now() })
    await storeTokens(trx, keyring, input.tenantId, input.tokens, now)
  })
  return (await getAccountingConnection(db, input.tenantId)) as AccountingConnection
}

/** Revokes the refresh token at Intuit (best effort) and marks the connection disconnected. */
export async function disconnectQuickBooks (db: Knex, keyring: Keyring, tenantId: string, endpoints: QboEndpoints, app: QboAppCredentials): Promise<void> {
  const token = await getSecret(db, keyring, tenantId, 'quickbooks.refresh_token')
  if (token !== null) {
    await axios.post(endpoints.revokeUrl, { token }, {
      headers: { authorization: `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString('base64')}`, accept: 'application/json' }, timeout: 15_000, validateStatus: () => true
    }).catch(() => undefined)
  }
  await db('accounting_connections').where({ tenant_id: tenantId, system: 'quickbooks' }).update({ status: 'disconnected', updated_at: db.fn.now() })
}

export interface TokenSourceOptions { db: Knex, keyring: Keyring, tenantId: string, endpoints: QboEndpoints, app: QboAppCredentials, now?: () => number }

/**
 * The access token for a connection, refreshed when < 5 min are left (or
 * when forced after an auth fault). The refresh runs under a row lock on the
 * connection, re-checking expiry once the lock is held, so two processes
 * never spend one refresh token; a failed refresh marks the connection
 * reconnect_required.
 */
export function tokenSource (o: TokenSourceOptions): { accessToken: () => Promise<string>, refresh: () => Promise<void> } {
  const now = o.now ?? Date.now
  async function refresh (force: boolean, seen: string | null): Promise<void> {
    let failure: AppError | null = null
    await o.db.transaction(async trx => {
      const [row] = await trx('accounting_connections').where({ tenant_id: o.tenantId, system: 'quickbooks' }).forUpdate() as Row[]
      if (row === undefined) throw new AppError('ACCOUNTING_NOT_CONNECTED', 'QuickBooks is not connected for this tenant.')
      const c = toConnection(row)
      const current = await getSecret(trx, o.keyring, o.tenantId, 'quickbooks.access_token')
      // Someone else refreshed while we waited for the lock.
      const fresh = c.accessExpiresAt !== null && c.accessExpiresAt.getTime() - now() > REFRESH_MARGIN_MS
      if (fresh && (!force || current !== seen)) return
      const refreshToken = await getSecret(trx, o.keyring, o.tenantId, 'quickbooks.refresh_token')
      try {
        if (refreshToken === null) throw new AppError('ACCOUNTING_RECONNECT_REQUIRED', 'QuickBooks needs reconnecting: no refresh token is stored.')
        const t = await tokenRequest(o.endpoints, o.app, { grant_type: 'refresh_token', refresh_token: refreshToken })
        await storeTokens(trx, o.keyring, o.tenantId, t, now())
      } catch (e) {
        failure = e instanceof AppError ? e : new AppError('ACCOUNTING_RECONNECT_REQUIRED', `QuickBooks needs reconnecting: ${(e as Error).message}`)
      }
    })
    if (failure !== null) {
      const f = failure as AppError
      await o.db('accounting_connections').where({ tenant_id: o.tenantId, system: 'quickbooks' }).update({ status: 'reconnect_required', last_error: f.message, updated_at: o.db.fn.now() })
      throw f
    }
  }
  return {
    async accessToken () {
      const c = await getAccountingConnection(o.db, o.tenantId)
      if (c === null || c.status === 'disconnected') throw new AppError('ACCOUNTING_NOT_CONNECTED', 'QuickBooks is not connected for this tenant.')
      if (c.status === 'reconnect_required') throw new AppError('ACCOUNTING_RECONNECT_REQUIRED', `QuickBooks needs reconnecting: ${c.lastError ?? 'the connection was refused'}`)
      if (c.accessExpiresAt === null || c.accessExpiresAt.getTime() - now() < REFRESH_MARGIN_MS) await refresh(false, null)
      const token = await getSecret(o.db, o.keyring, o.tenantId, 'quickbooks.access_token')
      if (token === null) throw new AppError('ACCOUNTING_RECONNECT_REQUIRED', 'QuickBooks needs reconnecting: no access token is stored.')
      return token
    },
    async refresh () { await refresh(true, await getSecret(o.db, o.keyring, o.tenantId, 'quickbooks.access_token')) }
  }
}

/**
 * QBO allows 500 requests/min and 10/s per realm: a bucket of 10 (the burst)
 * refilled at 490/min, a little under the limit as headroom for Intuit's
 * window not lining up with ours. Kept in PostgreSQL (psa_call_budget) so
 * every process of a tenant draws from the one bucket.
 */
export const QBO_CALL_BURST = 10
export const QBO_CALLS_PER_MINUTE = 490

export interface AccountingFactoryOptions {
  db: Knex
  keyring: Keyring
  /** Origin of the built-in stand-in (demo), for connections with settings.site = 'sandbox'. */
  sandboxOrigin?: () => string | null
  /** Where connections other than the built-in stand-in go; default Intuit's (see qboEndpoints). */
  endpoints?: QboEndpoints
  /** Overrides the app keys for every connection, the stand-in's included. */
  app?: QboAppCredentials
  /** The Intuit app's keys (qboApp), for connections other than the built-in stand-in. */
  intuitApp?: QboAppCredentials | null
  now?: () => number
}

export function sandboxEndpoints (origin: string): QboEndpoints {
  const base = `${origin.replace(/\/+$/, '')}/sandbox/quickbooks`
  return { apiBase: `${base}/v3/company/`, tokenUrl: `${base}/oauth2/v1/tokens/bearer`, revokeUrl: `${base}/oauth2/v1/tokens/revoke`, authorizeUrl: `${base}/connect/oauth2` }
}

/** tenantId → the tenant's AccountingPort, or null when QuickBooks is not connected (or disconnected). */
export function createAccountingFactory (options: AccountingFactoryOptions): AccountingFactory {
  return async (tenantId: string): Promise<AccountingPort | null> => {
    const c = await getAccountingConnection(options.db, tenantId)
    if (c === null || c.status === 'disconnected') return null
    let endpoints = options.endpoints ?? QBO_PRODUCTION
    let app = options.app ?? options.intuitApp ?? { clientId: '', clientSecret: '' }
    if (c.settings.site === 'sandbox') {
      const origin = options.sandboxOrigin?.() ?? null
      if (origin === null) throw new AppError('ACCOUNTING_NOT_CONNECTED', 'This QuickBooks connection uses the built-in stand-in, which only runs in the demo once the server is listening.')
      endpoints = sandboxEndpoints(origin)
      app = options.app ?? QUICKBOOKS_SANDBOX_CREDENTIALS
    }
    const tokens = tokenSource({ db: options.db, keyring: options.keyring, tenantId, endpoints, app, now: options.now })
    // Keyed by tenant: a tenant has one QuickBooks connection, so one realm.
    const budget = dbCallBudget(options.db, { tenantId, system: 'quickbooks', capacity: QBO_CALL_BURST, refillPerMinute: QBO_CALLS_PER_MINUTE })
    const client = createQboClient({ apiBase: endpoints.apiBase, realmId: c.realmId, accessToken: tokens.accessToken, onAuthFault: tokens.refresh, budget })
    return createQuickBooksAccounting({ client })
  }
}

/** Proposes settings from the chart of accounts, payment methods and items; a person confirms them. */
export async function discoverSettings (port: AccountingPort): Promise<AccountingSettings> {
  const [accounts, methods, items] = await Promise.all([port.listAccounts(), port.listPaymentMethods(), port.listItems()])
  const active = accounts.filter(a => a.active)
  const expense = active.filter(a => /expense/i.test(a.type))
  const pick = <T>(...tries: Array<T | undefined>): T | undefined => tries.find(x => x !== undefined)
  const m = methods.filter(x => x.active)
  return {
    ...DEFAULT_ACCOUNTING_SETTINGS,
    undepositedFundsAccountId: active.find(a => a.subType === 'UndepositedFunds')?.id ?? null,
    bankAccountId: pick(active.find(a => a.type === 'Bank' && a.subType === 'Checking'), active.find(a => a.type === 'Bank'))?.id ?? null,
    feesAccountId: pick(expense.find(a => a.subType === 'BankCharges'), expense.find(a => /fee/i.test(a.name)))?.id ?? null,
    writeOffAccountId: pick(expense.find(a => a.subType === 'BadDebts'), expense.find(a => /write.?off|bad debt/i.test(a.name)))?.id ?? null,
    receivableAccountId: active.find(a => a.type === 'Accounts Receivable')?.id ?? null,
    cardPaymentMethodId: pick(m.find(x => x.type === 'CREDIT_CARD' && /card|credit|visa/i.test(x.name)), m.find(x => x.type === 'CREDIT_CARD'))?.id ?? null,
    achPaymentMethodId: pick(m.find(x => /ach|bank|eft|transfer/i.test(x.name) && x.type !== 'CREDIT_CARD'))?.id ?? null,
    surchargeItemId: items.find(i => i.active && /surcharge/i.test(i.name))?.id ?? null
  }
}
