import { createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { MAIN_LAYOUT } from '../../plugins/view.js'
import { AppError } from '../../errors.js'
import type { Keyring } from '../../security/keyring.js'
import { authenticateApiKey, requireScope } from '../../security/api-keys.js'
import { QUICKBOOKS_SANDBOX_CREDENTIALS } from '../../sandbox/quickbooks/index.js'
import { QBO_PRODUCTION, connectQuickBooks, createAccountingFactory, disconnectQuickBooks, discoverSettings, saveAccountingSettings, sandboxEndpoints, tokenRequest, type QboAppCredentials, type QboEndpoints } from '../../services/accounting-connections.js'

/** Ten minutes to come back from Intuit's consent screen. */
const STATE_TTL_MS = 10 * 60_000
const stateKey = (keyring: Keyring, keyId: string): Buffer => keyring.derivedKey(keyId, 'qbo-oauth-state v1')

/** The OAuth `state`: tenant, expiry and sandbox flag under an HMAC derived from the key ring, so the callback needs no session. */
export function signConnectState (keyring: Keyring, input: { tenantId: string, sandbox: boolean, expiresAt: Date }): string {
  const payload = Buffer.from(JSON.stringify({ t: input.tenantId, s: input.sandbox ? 1 : 0, e: Math.floor(input.expiresAt.getTime() / 1000) }))
  const mac = createHmac('sha256', stateKey(keyring, keyring.activeKeyId)).update(payload).digest()
  return `${payload.toString('base64url')}.${keyring.activeKeyId}.${mac.toString('base64url')}`
}

export function verifyConnectState (keyring: Keyring, state: string, now = new Date()): { tenantId: string, sandbox: boolean } {
  const invalid = new AppError('VALIDATION_FAILED', 'This QuickBooks connection link is not valid or has expired; start connecting again.')
  const [p, keyId, m] = state.split('.')
  if (p === undefined || keyId === undefined || m === undefined || !keyring.hasKey(keyId)) throw invalid
  const payload = Buffer.from(p, 'base64url')
  const expected = createHmac('sha256', stateKey(keyring, keyId)).update(payload).digest()
  const given = Buffer.from(m, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid
  let parsed: { t?: unknown, s?: unknown, e?: unknown }
  try { parsed = JSON.parse(payload.toString('utf8')) as typeof parsed } catch { throw invalid }
  if (typeof parsed.t !== 'string' || typeof parsed.e !== 'number' || parsed.e * 1000 <= now.getTime()) throw invalid
  return { tenantId: parsed.t, sandbox: parsed.s === 1 }
}

export interface QuickBooksConnectOptions { publicUrl: string, sandboxOrigin: () => string | null, endpoints?: QboEndpoints }

/** Where a person signs in to Intuit to connect (or reconnect) a tenant's company; the state is signed and expires. */
export function quickbooksAuthorizeUrl (keyring: Keyring, options: QuickBooksConnectOptions, tenantId: string, sandbox: boolean): string {
  const { endpoints, creds } = connectTarget(options, sandbox)
  const state = signConnectState(keyring, { tenantId, sandbox, expiresAt: new Date(Date.now() + STATE_TTL_MS) })
  const url = new URL(endpoints.authorizeUrl)
  url.search = new URLSearchParams({ client_id: creds.clientId, response_type: 'code', scope: 'com.intuit.quickbooks.accounting', redirect_uri: redirectUriOf(options), state }).toString()
  return url.toString()
}

const redirectUriOf = (options: QuickBooksConnectOptions): string => `${options.publicUrl.replace(/\/+$/, '')}/connect/quickbooks/callback`

function connectTarget (options: QuickBooksConnectOptions, sandbox: boolean): { endpoints: QboEndpoints, creds: QboAppCredentials } {
  if (sandbox) {
    const origin = options.sandboxOrigin()
    if (origin === null) throw new AppError('VALIDATION_FAILED', 'The built-in QuickBooks stand-in only runs in the demo.')
    return { endpoints: sandboxEndpoints(origin), creds: QUICKBOOKS_SANDBOX_CREDENTIALS }
  }
  const creds = { clientId: process.env.SETTLE_QBO_CLIENT_ID ?? '', clientSecret: process.env.SETTLE_QBO_CLIENT_SECRET ?? '' }
  if (creds.clientId === '' || creds.clientSecret === '') throw new AppError('VALIDATION_FAILED', 'Set SETTLE_QBO_CLIENT_ID and SETTLE_QBO_CLIENT_SECRET (the Intuit app keys) to connect QuickBooks.')
  return { endpoints: options.endpoints ?? QBO_PRODUCTION, creds }
}

/**
 * OAuth 2.0 code flow: /connect/quickbooks (admin API key with the
 * accounting:connect scope) redirects to Intuit; the callback is trusted
 * through the signed state only. ?sandbox=1 uses the built-in stand-in (demo).
 */
export default async function quickbooksConnectRoutes (app: FastifyInstance, options: QuickBooksConnectOptions): Promise<void> {
  const redirectUri = redirectUriOf(options)

  app.get('/connect/quickbooks', async (req, reply) => {
    const principal = await authenticateApiKey(app.db, req.headers.authorization)
    requireScope(principal, 'accounting:connect')
    const sandbox = (req.query as { sandbox?: string }).sandbox === '1'
    return await reply.redirect(quickbooksAuthorizeUrl(app.keyring, options, principal.tenantId, sandbox))
  })

  app.get('/connect/quickbooks/callback', async (req, reply) => {
    const q = req.query as { code?: string, state?: string, realmId?: string, error?: string }
    if (q.error !== undefined) throw new AppError('VALIDATION_FAILED', `QuickBooks did not connect: ${q.error}.`)
    if (q.code === undefined || q.state === undefined || q.realmId === undefined) throw new AppError('VALIDATION_FAILED', 'The QuickBooks callback needs code, state and realmId.')
    const { tenantId, sandbox } = verifyConnectState(app.keyring, q.state)
    const { endpoints, creds } = connectTarget(options, sandbox)
    const tokens = await tokenRequest(endpoints, creds, { grant_type: 'authorization_code', code: q.code, redirect_uri: redirectUri })
    const connection = await connectQuickBooks(app.db, app.keyring, { tenantId, realmId: q.realmId, sandbox, tokens })
    const port = await createAccountingFactory({ db: app.db, keyring: app.keyring, sandboxOrigin: options.sandboxOrigin, endpoints, app: creds })(tenantId)
    const settings = port === null ? null : await saveAccountingSettings(app.db, tenantId, await discoverSettings(port))
    const answer = { connected: true, realmId: connection.realmId, status: connection.status, proposedSettings: settings }
    // A person arrives here in a browser window (from Settle or a PSA pod); a script asked for JSON.
    if (!String(req.headers.accept ?? '').includes('text/html')) return answer
    return await reply.view('connect-done', { title: 'QuickBooks connected · Settle', realmId: connection.realmId, proposedSettings: settings !== null }, MAIN_LAYOUT)
  })

  app.post('/connect/quickbooks/disconnect', async req => {
    const principal = await authenticateApiKey(app.db, req.headers.authorization)
    requireScope(principal, 'accounting:connect')
    const [row] = await app.db('accounting_connections').where({ tenant_id: principal.tenantId, system: 'quickbooks' }).select('settings') as Array<{ settings: Record<string, unknown> }>
    const { endpoints, creds } = connectTarget(options, row?.settings?.site === 'sandbox')
    await disconnectQuickBooks(app.db, app.keyring, principal.tenantId, endpoints, creds)
    return { disconnected: true }
  })
}
