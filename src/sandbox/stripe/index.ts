import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { FormError, parseForm } from './form.js'
import { API_VERSION, StripeApiError, type RequestContext, type StripeStore } from './store.js'
import { listEvents, listPaymentMethods, listRefunds } from './lists.js'
import { createWebhookEndpoints } from './webhook-endpoints.js'
import { installFaultSwitch, isRestWrite, LOST_ANSWER_DEFAULTS, SANDBOX_FAULTS_PATH, type LostAnswerFaults } from '../faults.js'

export { createStripeStore, cardFee, achFee, divRound, API_VERSION, DISPUTE_FEE, StripeApiError } from './store.js'
export type { StripeStore, StripeStoreOptions, DeliveryConfig, DeliveryResult, PendingDelivery } from './store.js'
export { TEST_PAYMENT_METHODS } from './testpms.js'

/** Demo key the stand-in accepts by default; not a secret (it unlocks nothing real). */
export const STRIPE_SANDBOX_API_KEY = 'sk_test_settle_sandbox'
/** The browser's key: opens only the confirm endpoints, and only with an object's client secret. */
export const STRIPE_SANDBOX_PUBLISHABLE_KEY = 'pk_test_settle_sandbox'

export interface StripeSandboxOptions {
  store: StripeStore
  /** Accepted secret keys; idempotency keys are scoped to each. */
  apiKeys?: string[]
  /** Accepted publishable keys (the browser's, as Stripe.js uses them). */
  publishableKeys?: string[]
  /** Where events are POSTed, signed with `secret` as Stripe does. */
  webhook?: { url: string, secret: string } | undefined
  /** delayMs unset: nothing moves until store.advance/settleAch/runAll/flushEvents (for tests). */
  events?: { delayMs?: number, shuffle?: boolean, duplicates?: number }
  prefix?: string
  /** The fault switch (also controllable at `/_sandbox/faults`); a fresh, quiet one when absent. */
  faults?: StripeFaults
}

export interface StripeFaults extends LostAnswerFaults {
  latencyMs: number
  /** Share of API requests (0..1) answered 500 api_error, drawn from the seeded generator. */
  errorRate: number
  /** The next N API requests get 429 rate_limit. */
  burst429: number
}
export const quietStripeFaults = (): StripeFaults => ({ latencyMs: 0, errorRate: 0, burst429: 0, ...LOST_ANSWER_DEFAULTS })

type Obj = Record<string, unknown>
type Handler = (params: Obj, ctx: RequestContext, req: FastifyRequest<{ Params: { id: string } }>) => Obj

const FORM = 'application/x-www-form-urlencoded'
const MAX_EXPAND_DEPTH = 4

function mask (key: string): string {
  return key.length <= 12 ? key : `${key.slice(0, 8)}${'*'.repeat(key.length - 12)}${key.slice(-4)}`
}

/** The key from `Authorization: Bearer sk_…` or Basic auth with the key as the user name. */
function apiKeyOf (header: string | undefined): string | null {
  if (header === undefined) return null
  const bearer = /^Bearer\s+(\S+)$/i.exec(header)
  if (bearer !== null) return bearer[1] ?? null
  const basic = /^Basic\s+(\S+)$/i.exec(header)
  if (basic === null) return null
  const user = Buffer.from(basic[1] ?? '', 'base64').toString('utf8').split(':')[0]
  return user === undefined || user === '' ? null : user
}

export default async function stripeSandbox (app: FastifyInstance, opts: StripeSandboxOptions): Promise<void> {
  const { store } = opts
  const keys = new Set(opts.apiKeys ?? [STRIPE_SANDBOX_API_KEY])
  const publishable = new Set(opts.publishableKeys ?? [STRIPE_SANDBOX_PUBLISHABLE_KEY])
  const endpoints = createWebhookEndpoints(store.now)
  store.configure({ webhook: opts.webhook, endpoints: endpoints.deliveryTargets, delayMs: opts.events?.delayMs, shuffle: opts.events?.shuffle, duplicates: opts.events?.duplicates })
  const faults = opts.faults ?? quietStripeFaults()
  const { errorDraw } = installFaultSwitch(app, {
    faults,
    seed: store.seed,
    isWrite: isRestWrite,
    badGateway: { contentType: 'text/html', body: '<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>' },
    refusal: message => ({ error: { type: 'invalid_request_error', message } })
  })
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.url?.endsWith(SANDBOX_FAULTS_PATH) === true) return
    if (faults.latencyMs > 0) await new Promise(resolve => setTimeout(resolve, faults.latencyMs))
    const requestId = store.requestId()
    if (faults.burst429 > 0) {
      faults.burst429--
      return send(reply.header('request-id', requestId), 429, errorBody({ status: 429, error: { type: 'invalid_request_error', code: 'rate_limit', message: 'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.' } }, requestId))
    }
    if (faults.errorRate > 0 && errorDraw() < faults.errorRate) {
      return send(reply.header('request-id', requestId), 500, errorBody({ status: 500, error: { type: 'api_error', message: 'An unknown error occurred' } }, requestId))
    }
  })
  app.addHook('onClose', async () => { store.close() })

  // Stripe's bracket syntax needs our parser; removing an inherited one only affects this scope
  if (app.hasContentTypeParser(FORM)) app.removeContentTypeParser(FORM)
  app.addContentTypeParser(FORM, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseForm(String(body)))
    } catch (err) {
      done(err as Error, undefined)
    }
  })

  function send (reply: FastifyReply, status: number, body: string): FastifyReply {
    return reply.code(status).header('content-type', 'application/json').send(body)
  }

  function errorBody (err: StripeApiError | { status: number, error: Obj }, requestId: string): string {
    const e: Obj = { ...err.error }
    const code = e.code
    if (typeof code === 'string' && e.doc_url === undefined) e.doc_url = `https://stripe.com/docs/error-codes/${code.replace(/_/g, '-')}`
    e.request_log_url = `https://dashboard.stripe.com/test/logs/${requestId}`
    return JSON.stringify({ error: e }, null, 2)
  }

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const requestId = String(reply.getHeader('request-id') ?? store.requestId())
    reply.header('request-id', requestId)
    const message = err instanceof FormError ? err.message : `Invalid request: ${err.message}`
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    const type = status === 500 ? 'api_error' : 'invalid_request_error'
    req.log.warn({ err }, 'stripe sandbox request failed')
    return send(reply, err instanceof FormError ? 400 : status, errorBody({ status, error: { type, message } }, requestId))
  })

  function expandInto (obj: Obj, segs: string[], full: string, depth: number): void {
    const [head, ...rest] = segs
    if (head === undefined) return
    if (depth > MAX_EXPAND_DEPTH) throw new StripeApiError(400, { type: 'invalid_request_error', param: 'expand', message: `You cannot expand more than ${MAX_EXPAND_DEPTH} levels of a property. Property: ${full}` })
    // lists expand per element with a `data.` prefix, as in Stripe
    if (head === 'data' && Array.isArray(obj.data)) {
      for (const el of obj.data) if (typeof el === 'object' && el !== null) expandInto(el as Obj, rest, full, depth + 1)
      return
    }
    let v = obj[head]
    if (v === null) return
    if (typeof v === 'string') {
      const r = store.render(v)
      if (r === null) throw new StripeApiError(400, { type: 'invalid_request_error', param: 'expand', message: `This property cannot be expanded (${full}).` })
      obj[head] = r
      v = r
    } else if (typeof v !== 'object' || v === undefined || rest.length === 0) {
      throw new StripeApiError(400, { type: 'invalid_request_error', param: 'expand', message: `This property cannot be expanded (${full}).` })
    }
    if (rest.length > 0) expandInto(v as Obj, rest, full, depth + 1)
  }

  function route (method: 'GET' | 'POST' | 'DELETE', url: string, handler: Handler, { browser = false }: { browser?: boolean } = {}): void {
    app.route<{ Params: { id: string } }>({
      method,
      url,
      handler: async (req, reply) => {
        const requestId = store.requestId()
        reply.header('request-id', requestId).header('stripe-version', API_VERSION)
        const fail = (err: StripeApiError): FastifyReply => send(reply, err.status, errorBody(err, requestId))

        const header = req.headers.authorization
        // Stripe.js sends the publishable key as the `key` form field.
        const bodyKey = browser && typeof req.body === 'object' && req.body !== null && typeof (req.body as Obj).key === 'string' ? (req.body as Obj).key as string : null
        const key = apiKeyOf(header) ?? bodyKey
        if (key === null) return fail(new StripeApiError(401, { type: 'invalid_request_error', message: "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')." }))
        const fromBrowser = browser && publishable.has(key)
        if (!keys.has(key) && !fromBrowser) {
          if (publishable.has(key)) return fail(new StripeApiError(401, { type: 'invalid_request_error', message: 'This API call cannot be made with a publishable API key. Please use a secret API key.' }))
          return fail(new StripeApiError(401, { type: 'invalid_request_error', message: `Invalid API Key provided: ${mask(key)}` }))
        }

        let params: Obj
        if (method === 'GET' || method === 'DELETE') {
          const q = req.raw.url?.split('?')[1] ?? ''
          try { params = parseForm(q) } catch (err) { return fail(new StripeApiError(400, { type: 'invalid_request_error', message: (err as Error).message })) }
        } else if (req.body === undefined || req.body === null || req.body === '') {
          params = {}
        } else if (typeof req.body === 'object' && (req.headers['content-type'] ?? '').startsWith(FORM)) {
          params = req.body as Obj
        } else {
          return fail(new StripeApiError(400, { type: 'invalid_request_error', message: `Invalid request: the Stripe API takes ${FORM} bodies.` }))
        }

        const expand = params.expand
        if (expand !== undefined && !(Array.isArray(expand) && expand.every(e => typeof e === 'string'))) {
          return fail(new StripeApiError(400, { type: 'invalid_request_error', param: 'expand', message: 'Invalid array: expand' }))
        }

        const rawKey = req.headers['idempotency-key']
        const idemKey = method === 'POST' && typeof rawKey === 'string' && rawKey !== '' ? rawKey : null
        const ctx: RequestContext = { requestId, idempotencyKey: idemKey, ...(fromBrowser ? { client: { ip: req.ip, userAgent: String(req.headers['user-agent'] ?? '') } } : {}) }
        const slot = idemKey === null ? null : `${key}\u0000${idemKey}`
        const fingerprint = `${method} ${req.routeOptions.url ?? url} ${JSON.stringify(req.params)} ${JSON.stringify(params)}`
        if (idemKey !== null && slot !== null) {
          if (idemKey.length > 255) return fail(new StripeApiError(400, { type: 'invalid_request_error', message: 'Invalid Idempotency-Key: the key must be 255 characters or fewer.' }))
          const saved = store.idempotency.get(slot)
          if (saved !== undefined) {
            if (saved.fingerprint !== fingerprint) {
              return fail(new StripeApiError(400, { type: 'idempotency_error', message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idemKey}' if you meant to execute a different request.` }))
            }
            reply.header('idempotent-replayed', 'true').header('original-request', saved.requestId).header('idempotency-key', idemKey)
            return send(reply, saved.status, saved.body)
          }
          reply.header('idempotency-key', idemKey)
        }

        let status = 200
        let body: string
        let keep = true
        try {
          const result = handler(params, ctx, req)
          for (const path of (expand as string[] | undefined) ?? []) expandInto(result, path.split('.'), path, 1)
          body = JSON.stringify(result, null, 2)
        } catch (err) {
          if (!(err instanceof StripeApiError)) throw err
          status = err.status
          body = errorBody(err, requestId)
          // Stripe saves a result only once the endpoint started executing: not for a request that failed validation
          keep = err.saved
        }
        if (slot !== null && keep) store.idempotency.set(slot, { fingerprint, status, body, requestId })
        return send(reply, status, body)
      }
    })
  }

  const id = (req: FastifyRequest<{ Params: { id: string } }>): string => req.params.id
  const noParams = (p: Obj): void => {
    const extra = Object.keys(p).find(k => k !== 'expand')
    if (extra !== undefined) throw new StripeApiError(400, { type: 'invalid_request_error', code: 'parameter_unknown', param: extra, message: `Received unknown parameter: ${extra}` })
  }

  route('POST', '/v1/customers', (p, ctx) => store.createCustomer(p, ctx))
  route('GET', '/v1/customers/:id', (p, _c, req) => { noParams(p); return store.retrieveCustomer(id(req)) })
  route('POST', '/v1/customers/:id', (p, _c, req) => store.updateCustomer(id(req), p))
  route('GET', '/v1/customers/:id/payment_methods', (p, _c, req) => store.listCustomerPaymentMethods(id(req), p))
  route('GET', '/v1/payment_methods/:id', (p, _c, req) => { noParams(p); return store.retrievePaymentMethod(id(req)) })
  route('POST', '/v1/payment_methods/:id/attach', (p, _c, req) => store.attachPaymentMethod(id(req), p))
  route('POST', '/v1/payment_methods/:id/detach', (p, _c, req) => { noParams(p); return store.detachPaymentMethod(id(req)) })
  route('POST', '/v1/setup_intents', (p, ctx) => store.createSetupIntent(p, ctx))
  route('GET', '/v1/setup_intents/:id', (p, _c, req) => { noParams(p); return store.retrieveSetupIntent(id(req)) })
  route('POST', '/v1/setup_intents/:id/confirm', (p, ctx, req) => store.confirmSetupIntent(id(req), p, ctx), { browser: true })
  // The stand-in's answer to a 3D Secure challenge (Stripe.js shows the bank's page instead).
  route('POST', '/v1/setup_intents/:id/sandbox_authenticate', (p, ctx, req) => store.authenticateSetupIntent(id(req), p, ctx), { browser: true })
  route('POST', '/v1/payment_intents', (p, ctx) => store.createPaymentIntent(p, ctx))
  route('GET', '/v1/payment_intents/search', p => store.searchPaymentIntents(p))
  route('GET', '/v1/payment_intents/:id', (p, _c, req) => { noParams(p); return store.retrievePaymentIntent(id(req)) })
  route('POST', '/v1/payment_intents/:id/confirm', (p, ctx, req) => store.confirmPaymentIntent(id(req), p, ctx))
  route('POST', '/v1/payment_intents/:id/cancel', (p, ctx, req) => store.cancelPaymentIntent(id(req), p, ctx))
  route('GET', '/v1/charges/:id', (p, _c, req) => { noParams(p); return store.retrieveCharge(id(req)) })
  route('GET', '/v1/balance_transactions/:id', (p, _c, req) => { noParams(p); return store.retrieveBalanceTransaction(id(req)) })
  route('POST', '/v1/refunds', (p, ctx) => store.createRefund(p, ctx))
  route('GET', '/v1/refunds/:id', (p, _c, req) => { noParams(p); return store.retrieveRefund(id(req)) })
  route('GET', '/v1/disputes/:id', (p, _c, req) => { noParams(p); return store.retrieveDispute(id(req)) })
  route('GET', '/v1/mandates/:id', (p, _c, req) => { noParams(p); return store.retrieveMandate(id(req)) })
  route('GET', '/v1/events/:id', (p, _c, req) => { noParams(p); return store.retrieveEvent(id(req)) })
  route('GET', '/v1/payouts/:id', (p, _c, req) => { noParams(p); return store.retrievePayout(id(req)) })
  route('GET', '/v1/balance_transactions', p => store.listBalanceTransactions(p))
  route('GET', '/v1/payment_methods', p => listPaymentMethods(store, p))
  route('GET', '/v1/refunds', p => listRefunds(store, p))
  route('GET', '/v1/events', p => listEvents(store, p))
  route('POST', '/v1/webhook_endpoints', p => endpoints.create(p))
  route('GET', '/v1/webhook_endpoints', p => endpoints.list(p))
  route('GET', '/v1/webhook_endpoints/:id', (p, _c, req) => { noParams(p); return endpoints.retrieve(id(req)) })
  route('POST', '/v1/webhook_endpoints/:id', (p, _c, req) => endpoints.update(id(req), p))
  route('DELETE', '/v1/webhook_endpoints/:id', (p, _c, req) => { noParams(p); return endpoints.remove(id(req)) })
  // Stand-in only (Stripe pays out on its own schedule): run the automatic payout now, or fail one.
  route('POST', '/v1/test_helpers/payouts/run', p => {
    const extra = Object.keys(p).find(k => !['include_pending', 'arrival_date', 'currency', 'status'].includes(k))
    if (extra !== undefined) throw new StripeApiError(400, { type: 'invalid_request_error', code: 'parameter_unknown', param: extra, message: `Received unknown parameter: ${extra}` })
    const status = p.status === 'in_transit' ? 'in_transit' as const : 'paid' as const
    const arrival = typeof p.arrival_date === 'string' && /^\d+$/.test(p.arrival_date) ? Number(p.arrival_date) : undefined
    const payout = store.runPayout({ includePending: p.include_pending === 'true', status, ...(arrival !== undefined ? { arrivalDate: arrival } : {}), ...(typeof p.currency === 'string' ? { currency: p.currency } : {}) })
    if (payout === null) throw new StripeApiError(400, { type: 'invalid_request_error', code: 'balance_insufficient', message: 'There is no available balance to pay out.' })
    return payout
  })
  route('POST', '/v1/test_helpers/payouts/:id/pay', (p, _c, req) => { noParams(p); return store.payPayout(id(req)) })
  route('POST', '/v1/test_helpers/payouts/:id/fail', (p, _c, req) => store.failPayout(id(req), typeof p.failure_code === 'string' ? p.failure_code : undefined))

  const unknown: Handler = (_p, _c, req) => {
    throw new StripeApiError(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${req.url.split('?')[0] ?? ''}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.` })
  }
  route('GET', '/v1/*', unknown)
  route('POST', '/v1/*', unknown)
  route('DELETE', '/v1/*', unknown)
}
