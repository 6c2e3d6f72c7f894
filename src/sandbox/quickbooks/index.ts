import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { entityName, QboFault, qboTime, type Obj, type QuickBooksStore } from './store.js'
import { validateEntityBody } from './validate.js'
import { installFaultSwitch, isRestWrite } from '../faults.js'

export { createQuickBooksStore, QboFault, ENTITIES } from './store.js'
export type { QuickBooksStore, QuickBooksStoreOptions, QuickBooksFaults, SeedCustomer, SeedInvoice, SeedPayment, TokenPair, EntityName } from './store.js'
export { seedFromConnectWise } from './from-connectwise.js'
export type { TieOutDifferences } from './from-connectwise.js'

export const QUICKBOOKS_SANDBOX_PREFIX = '/sandbox/quickbooks'
export const QUICKBOOKS_SANDBOX_REALM_ID = '9341453050298761'
/** Demo OAuth client; not secrets (the stand-in holds no real data). */
export const QUICKBOOKS_SANDBOX_CREDENTIALS = {
  clientId: 'ABsandboxClientIdSettleDemo0000000000000000000000',
  clientSecret: 'sandboxClientSecretSettleDemo000000000000'
} as const

/** The demo app's webhook verifier token: sign a notification with it to play Intuit at /webhooks/quickbooks. */
export const QUICKBOOKS_SANDBOX_WEBHOOK_VERIFIER = 'sandbox-webhook-verifier-settle-demo'

/** Always accepted by a store created with `demoRefreshToken` (the mounted demo one is); rotation still hands out fresh pairs. */
export const QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN = 'RT1-sandbox-settle-demo-refresh-token'

/** Paths under the prefix, for node-quickbooks (V3_ENDPOINT_BASE_URL, TOKEN_URL, REVOKE_URL) and intuit-oauth. */
export function quickbooksSandboxUrls (origin: string, prefix = QUICKBOOKS_SANDBOX_PREFIX): { baseUrl: string, apiBase: string, tokenUrl: string, revokeUrl: string, authorizeUrl: string } {
  const base = `${origin.replace(/\/+$/, '')}${prefix}`
  return { baseUrl: base, apiBase: `${base}/v3/company/`, tokenUrl: `${base}/oauth2/v1/tokens/bearer`, revokeUrl: `${base}/oauth2/v1/tokens/revoke`, authorizeUrl: `${base}/connect/oauth2` }
}

export interface QuickBooksSandboxOptions { store: QuickBooksStore, prefix?: string }

const FORM = 'application/x-www-form-urlencoded'
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export default async function quickbooksSandbox (app: FastifyInstance, { store }: QuickBooksSandboxOptions): Promise<void> {
  // Scoped to this plugin: the token endpoint takes forms, QBO's query endpoint also takes POST application/text.
  if (app.hasContentTypeParser(FORM)) app.removeContentTypeParser(FORM)
  app.addContentTypeParser(FORM, { parseAs: 'string' }, (_req, body, done) => { done(null, Object.fromEntries(new URLSearchParams(body as string))) })
  app.addContentTypeParser(['application/text', 'text/plain'], { parseAs: 'string' }, (_req, body, done) => { done(null, body) })
  // Malformed JSON is answered as QBO answers it, in a Fault body, never in the host's error format.
  if (app.hasContentTypeParser('application/json')) app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body)
    if (text.trim() === '') { done(null, undefined); return }
    try { done(null, JSON.parse(text)) } catch (err) {
      done(new QboFault(400, '2010', 'Request has invalid or unsupported property', `Property Name:Failed to parse JSON: ${(err as Error).message} specified value is not supported`), undefined)
    }
  })
  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    if (err instanceof QboFault) return fault(reply, err)
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    // A body QBO cannot read (too large, wrong content type) is a 500-series "unsupported operation" in its catalogue.
    if (status < 500) return fault(reply, new QboFault(status, '500', 'Unsupported Operation', `Operation could not be read: ${err.message}`))
    return reply.code(500).send({ Fault: { Error: [{ Message: 'An application error has occurred while processing your request', Detail: 'System Failure Error: An unexpected error occurred', code: '10000', element: '' }], type: 'SystemFault' }, time: time() })
  })

  const time = (): string => qboTime(store.now(), true)
  const fault = (reply: FastifyReply, f: QboFault): FastifyReply => {
    const status = store.faults.faultsAs200 && f.type === 'ValidationFault' ? 200 : f.status
    return reply.code(status).send({ Fault: f.wire(), time: time() })
  }
  const authFault = (reply: FastifyReply, detail: string): FastifyReply => reply.code(401).header('www-authenticate', 'Bearer realm="Intuit", error="invalid_token"').send({
    fault: { error: [{ message: 'message=AuthenticationFailed; errorCode=003200; statusCode=401', detail, code: '3200' }], type: 'AUTHENTICATION' }, time: time()
  })

  const throttled = (reply: FastifyReply, retryAfterSeconds: number): FastifyReply => reply.code(429).header('retry-after', String(retryAfterSeconds)).send({ Fault: { Error: [{ Message: 'message=ThrottleExceeded; errorCode=003001; statusCode=429', Detail: 'The request limit was reached.', code: '3001', element: '' }], type: 'ThrottleExceeded' }, time: time() })

  const { errorDraw } = installFaultSwitch(app, {
    faults: store.faults,
    seed: 1,
    isWrite: req => isRestWrite(req) && !req.url.includes('/oauth2/') && !req.url.includes('/connect/'),
    badGateway: { contentType: 'text/html', body: '<html><body><h1>502 Bad Gateway</h1></body></html>' },
    refusal: message => ({ Fault: { Error: [{ Message: 'Request has invalid or unsupported property', Detail: message, code: '2010', element: '' }], type: 'ValidationFault' }, time: time() })
  })

  // ---- OAuth 2.0 (appcenter / oauth.platform / developer.api on the real thing) ----
  const clientOk = (req: FastifyRequest): boolean => {
    const h = req.headers.authorization ?? ''
    if (!h.startsWith('Basic ')) return false
    const [id, secret] = Buffer.from(h.slice(6), 'base64').toString('utf8').split(':')
    return id === store.clientId && secret === store.clientSecret
  }

  app.get('/connect/oauth2', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>
    if (q.client_id !== store.clientId || q.redirect_uri === undefined || q.response_type !== 'code') return reply.code(400).send({ error: 'invalid_request', error_description: 'client_id, redirect_uri and response_type=code are required' })
    // Auto-approves for the demo: the real page asks a person to pick a company.
    const code = store.authorizationCode(store.realmId, q.redirect_uri)
    const url = new URL(q.redirect_uri)
    url.searchParams.set('code', code)
    if (q.state !== undefined) url.searchParams.set('state', q.state)
    url.searchParams.set('realmId', store.realmId)
    return reply.redirect(url.toString(), 302)
  })

  app.post('/oauth2/v1/tokens/bearer', async (req, reply) => {
    if (!clientOk(req)) return reply.code(401).send({ error: 'invalid_client' })
    const b = (req.body ?? {}) as Record<string, string | undefined>
    try {
      if (b.grant_type === 'authorization_code') return reply.send(withoutRealm(store.exchangeCode(b.code ?? '', b.redirect_uri ?? '')))
      if (b.grant_type === 'refresh_token') return reply.send(withoutRealm(store.refresh(b.refresh_token ?? '')))
      return reply.code(400).send({ error: 'unsupported_grant_type' })
    } catch (err) {
      if ((err as { oauthError?: string }).oauthError === 'invalid_grant') return reply.code(400).send({ error: 'invalid_grant' })
      throw err
    }
  })
  const revoke = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    if (!clientOk(req)) return reply.code(401).send({ error: 'invalid_client' })
    const b = (req.body ?? {}) as Record<string, string | undefined>
    store.revoke(b.token ?? '')
    return reply.code(200).send('')
  }
  app.post('/oauth2/v1/tokens/revoke', revoke)
  app.post('/v2/oauth2/tokens/revoke', revoke)

  // ---- Accounting API v3 ----
  app.register(async api => {
    api.addHook('onRequest', async (req, reply) => {
      const realm = (req.params as { realm?: string }).realm ?? ''
      const h = req.headers.authorization ?? ''
      if (!h.startsWith('Bearer ')) return authFault(reply, 'Token validation failed: no bearer token')
      const state = store.checkAccess(h.slice(7), realm)
      if (state === 'expired') return authFault(reply, 'Token expired: the access token has expired; refresh it')
      if (state === 'unknown') return authFault(reply, 'Token validation failed: unknown or revoked access token')
      const f = store.faults
      if (f.latencyMs > 0) await sleep(f.latencyMs)
      if (f.burst429 > 0 || !store.admit(realm)) {
        if (f.burst429 > 0) f.burst429--
        return throttled(reply, 1)
      }
      if (req.method === 'POST' && /\/batch(\?|$)/.test(req.url)) {
        // QBO throttles batch separately: 40 batch requests per minute per realm.
        const wait = store.admitBatch(realm)
        if (wait !== null) return throttled(reply, wait)
      }
      if (f.burst5xx > 0 || (f.errorRate > 0 && errorDraw() < f.errorRate)) {
        if (f.burst5xx > 0) f.burst5xx--
        return reply.code(503).header('content-type', 'text/html').send('<html><body><h1>503 Service Unavailable</h1></body></html>')
      }
    })

    const runQuery = (realm: string, statement: string): Obj => ({ QueryResponse: store.query(realm, statement), time: time() })

    api.get('/v3/company/:realm/query', async (req, reply) => {
      const { realm } = req.params as { realm: string }
      const q = (req.query as { query?: string }).query
      if (q === undefined) return fault(reply, new QboFault(400, '4000', 'Error parsing query', 'QueryParserError: query parameter is missing'))
      try { return runQuery(realm, q) } catch (err) { if (err instanceof QboFault) return fault(reply, err); throw err }
    })
    api.post('/v3/company/:realm/query', async (req, reply) => {
      const { realm } = req.params as { realm: string }
      try { return runQuery(realm, String(req.body ?? '')) } catch (err) { if (err instanceof QboFault) return fault(reply, err); throw err }
    })

    api.get('/v3/company/:realm/cdc', async (req, reply) => {
      const { realm } = req.params as { realm: string }
      const q = req.query as { entities?: string, changedSince?: string }
      const since = Date.parse(q.changedSince ?? '')
      if (q.entities === undefined || Number.isNaN(since)) return fault(reply, new QboFault(400, '2020', 'Required param missing, need to supply the required value for the API', 'Required parameter entities and changedSince (ISO date-time) are missing or invalid'))
      if (since < store.now() - 30 * 86_400_000) return fault(reply, new QboFault(400, '6000', 'A business validation error has occurred while processing your request', 'Business Validation Error: changedSince may be at most 30 days ago'))
      try { return { ...store.cdc(realm, q.entities.split(',').map(s => s.trim()).filter(s => s !== ''), since), time: time() } } catch (err) { if (err instanceof QboFault) return fault(reply, err); throw err }
    })

    api.post('/v3/company/:realm/batch', async (req, reply) => {
      const { realm } = req.params as { realm: string }
      const rid = (req.query as { requestid?: string }).requestid
      if (rid !== undefined) { const seen = store.replay(realm, `batch:${rid}`); if (seen !== undefined) return reply.code(seen.status).send(seen.body) }
      const items = (req.body as { BatchItemRequest?: Obj[] } | null)?.BatchItemRequest
      if (!Array.isArray(items) || items.length === 0) return fault(reply, new QboFault(400, '2020', 'Required param missing, need to supply the required value for the API', 'BatchItemRequest is required'))
      if (items.length > 30) return fault(reply, new QboFault(400, '6000', 'A business validation error has occurred while processing your request', 'Business Validation Error: a batch request may hold at most 30 items'))
      const out: Obj[] = []
      for (const item of items) {
        const bId = item.bId
        try {
          if (typeof item.Query === 'string') { out.push({ bId, QueryResponse: store.query(realm, item.Query) }); continue }
          const key = Object.keys(item).find(k => entityName(k) !== undefined)
          const entity = key === undefined ? undefined : entityName(key)
          if (key === undefined || entity === undefined) throw new QboFault(400, '2020', 'Required param missing, need to supply the required value for the API', 'A batch item needs an entity or a Query')
          const op = (item.operation ?? 'create') as 'create' | 'update' | 'delete'
          if (!['create', 'update', 'delete'].includes(op)) throw new QboFault(400, '500', 'Unsupported Operation', `Operation ${String(op)} is not supported here`)
          validateEntityBody(entity, item[key])
          out.push({ bId, [entity]: op === 'update' && item.optionsData === 'void' ? store.voidTxn(realm, entity, item[key]) : store.write(realm, entity, op, item[key]) })
        } catch (err) {
          if (!(err instanceof QboFault)) throw err
          out.push({ bId, Fault: err.wire() })
        }
      }
      const body = { BatchItemResponse: out, time: time() }
      if (rid !== undefined) store.remember(realm, `batch:${rid}`, { status: 200, body })
      return body
    })

    api.get('/v3/company/:realm/:entity/:id', async (req, reply) => {
      const p = req.params as { realm: string, entity: string, id: string }
      const entity = entityName(p.entity)
      if (entity === undefined) return fault(reply, new QboFault(400, '500', 'Unsupported Operation', `Operation ${p.entity} is not supported`))
      try { return { [entity]: store.read(p.realm, entity, p.id), time: time() } } catch (err) { if (err instanceof QboFault) return fault(reply, err); throw err }
    })

    api.post('/v3/company/:realm/:entity', async (req, reply) => {
      const p = req.params as { realm: string, entity: string }
      const q = req.query as { requestid?: string, operation?: string, include?: string }
      const entity = entityName(p.entity)
      if (entity === undefined) return fault(reply, new QboFault(400, '500', 'Unsupported Operation', `Operation ${p.entity} is not supported`))
      // requestid: the same id gets the first answer again and nothing is written twice.
      const key = q.requestid === undefined ? undefined : `${entity}:${q.requestid}`
      if (key !== undefined) { const seen = store.replay(p.realm, key); if (seen !== undefined) return reply.code(seen.status).send(seen.body) }
      const op = q.operation === undefined ? 'create' : q.operation
      let status = 200
      let body: Obj
      try {
        const voiding = op === 'void' || (op === 'update' && q.include === 'void')
        if (!voiding && op !== 'create' && op !== 'update' && op !== 'delete') throw new QboFault(400, '500', 'Unsupported Operation', `Operation ${op} is not supported by the stand-in`)
        validateEntityBody(entity, req.body)
        const result = voiding ? store.voidTxn(p.realm, entity, req.body as Obj) : store.write(p.realm, entity, op as 'create' | 'update' | 'delete', req.body as Obj)
        body = { [entity]: result, time: time() }
      } catch (err) {
        if (!(err instanceof QboFault)) throw err
        status = store.faults.faultsAs200 && err.type === 'ValidationFault' ? 200 : err.status
        body = { Fault: err.wire(), time: time() }
      }
      if (key !== undefined) store.remember(p.realm, key, { status, body })
      return reply.code(status).send(body)
    })
  })
}

function withoutRealm (t: ReturnType<QuickBooksStore['issueTokens']>): Obj {
  const { realmId: _r, ...rest } = t
  return rest
}
