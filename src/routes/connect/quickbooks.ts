import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Knex } from 'knex'
import { MAIN_LAYOUT } from '../../plugins/view.js'
import { AppError } from '../../errors.js'
import { audit } from '../../db/audit.js'
import { authenticateApiKey, requireScope } from '../../security/api-keys.js'
import { QUICKBOOKS_SANDBOX_CREDENTIALS } from '../../sandbox/quickbooks/index.js'
import { QBO_PRODUCTION, assertRealmFree, connectQuickBooks, createAccountingFactory, disconnectQuickBooks, discoverSettings, saveAccountingSettings, sandboxEndpoints, tokenRequest, type QboAppCredentials, type QboEndpoints } from '../../services/accounting-connections.js'
import { BROWSER_COOKIE, STATE_TTL_MS, bindBrowser, consumeState, cookieOf, startConnect } from '../../services/quickbooks-connect.js'

export interface QuickBooksConnectOptions { publicUrl: string, sandboxOrigin: () => string | null, endpoints?: QboEndpoints, intuitApp: QboAppCredentials | null }

/**
 * Starts connecting (or reconnecting) a tenant's company: a single-use state
 * is stored, and the link to open in the browser is Settle's begin page,
 * which binds the state to that browser and goes on to Intuit.
 */
export async function startQuickBooksConnect (db: Knex, options: QuickBooksConnectOptions, input: { tenantId: string, sandbox: boolean, moveRealm: boolean, startedBy: string }): Promise<string> {
  connectTarget(options, input.sandbox)
  const state = await startConnect(db, input)
  return `${options.publicUrl.replace(/\/+$/, '')}/connect/quickbooks/begin?state=${state}`
}

function authorizeUrl (options: QuickBooksConnectOptions, sandbox: boolean, state: string): string {
  const { endpoints, creds } = connectTarget(options, sandbox)
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
  const creds = options.intuitApp
  if (creds === null) throw new AppError('VALIDATION_FAILED', 'Set SETTLE_QBO_CLIENT_ID and SETTLE_QBO_CLIENT_SECRET (the Intuit app keys) to connect QuickBooks.')
  return { endpoints: options.endpoints ?? QBO_PRODUCTION, creds }
}

/**
 * OAuth 2.0 code flow: /connect/quickbooks (admin API key with the
 * accounting:connect scope; ?sandbox=1 for the demo's stand-in, ?move=1 to
 * take a company connected to another tenant) answers with the begin link;
 * opened in a browser it sets the flow's cookie and redirects to Intuit; the
 * callback is accepted once, from that browser, within ten minutes.
 */
export default async function quickbooksConnectRoutes (app: FastifyInstance, options: QuickBooksConnectOptions): Promise<void> {
  const redirectUri = redirectUriOf(options)

  const secureCookie = options.publicUrl.startsWith('https:')
  const setFlowCookie = (reply: FastifyReply, value: string, maxAgeMs: number): void => {
    reply.header('set-cookie', `${BROWSER_COOKIE}=${value}; Path=/connect/quickbooks; Max-Age=${Math.floor(maxAgeMs / 1000)}; HttpOnly; SameSite=Lax${secureCookie ? '; Secure' : ''}`)
  }

  app.get('/connect/quickbooks', async (req, reply) => {
    const principal = await authenticateApiKey(app.db, req.headers.authorization)
    requireScope(principal, 'accounting:connect')
    const q = req.query as { sandbox?: string, move?: string }
    const moveRealm = q.move === '1'
    const url = await startQuickBooksConnect(app.db, options, { tenantId: principal.tenantId, sandbox: q.sandbox === '1', moveRealm, startedBy: `api:${principal.name}` })
    await audit(app.db, principal.tenantId, `api:${principal.name}`, 'quickbooks.connect_started', null, { via: 'api', moveRealm })
    return await reply.redirect(url)
  })

  app.get('/connect/quickbooks/begin', async (req, reply) => {
    const { cookie, flow } = await bindBrowser(app.db, (req.query as { state?: unknown }).state)
    setFlowCookie(reply, cookie, STATE_TTL_MS)
    reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer')
    return await reply.redirect(authorizeUrl(options, flow.sandbox, String((req.query as { state: string }).state)))
  })

  app.get('/connect/quickbooks/callback', async (req, reply) => {
    const q = req.query as { code?: unknown, state?: unknown, realmId?: unknown, error?: unknown }
    if (q.error !== undefined) throw new AppError('VALIDATION_FAILED', `QuickBooks did not connect: ${String(q.error).slice(0, 100)}.`)
    if (typeof q.code !== 'string' || typeof q.state !== 'string' || typeof q.realmId !== 'string' || !/^\d{1,30}$/.test(q.realmId)) throw new AppError('VALIDATION_FAILED', 'The QuickBooks callback needs code, state and realmId.')
    const flow = await consumeState(app.db, q.state, cookieOf(req.headers.cookie))
    setFlowCookie(reply, '', 0)
    const { tenantId, sandbox, moveRealm, startedBy } = flow
    await assertRealmFree(app.db, tenantId, q.realmId, moveRealm)
    const { endpoints, creds } = connectTarget(options, sandbox)
    const tokens = await tokenRequest(endpoints, creds, { grant_type: 'authorization_code', code: q.code, redirect_uri: redirectUri })
    const connection = await connectQuickBooks(app.db, app.keyring, { tenantId, realmId: q.realmId, sandbox, tokens, moveRealm, actor: startedBy })
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
