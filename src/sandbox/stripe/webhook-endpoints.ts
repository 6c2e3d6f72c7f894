import { randomBytes } from 'node:crypto'
import { StripeApiError, type DeliveryEndpoint } from './store.js'
import { listPage } from './lists.js'

type Obj = Record<string, unknown>
type Params = Record<string, unknown>

/** Event types an endpoint may enable: what this stand-in emits, and `*` for all. */
export const WEBHOOK_EVENT_TYPES: readonly string[] = [
  'charge.dispute.closed', 'charge.dispute.created', 'charge.dispute.funds_reinstated', 'charge.dispute.funds_withdrawn', 'charge.failed', 'charge.pending',
  'charge.refunded', 'charge.succeeded', 'payment_intent.canceled', 'payment_intent.created', 'payment_intent.payment_failed', 'payment_intent.processing',
  'payment_intent.requires_action', 'payment_intent.succeeded', 'payout.created', 'payout.failed', 'payout.paid', 'payout.updated', 'refund.created',
  'setup_intent.setup_failed', 'setup_intent.succeeded'
]

interface Endpoint { id: string, created: number, url: string, secret: string, enabledEvents: string[], description: string | null, metadata: Record<string, string>, status: 'enabled' | 'disabled' }

const invalid = (message: string, param?: string): StripeApiError => new StripeApiError(400, { type: 'invalid_request_error', message, ...(param === undefined ? {} : { param }) })
const PARAMS = ['url', 'enabled_events', 'description', 'metadata', 'api_version', 'connect', 'disabled', 'expand']

/**
 * Webhook endpoint management as Stripe has it, so connecting Stripe can
 * register Settle's endpoint itself: create (the only answer carrying the
 * signing `secret`), retrieve, update, list, delete. Events then go to every
 * enabled endpoint that enabled their type, signed with its secret.
 */
export function createWebhookEndpoints (now: () => number): {
  deliveryTargets: () => DeliveryEndpoint[]
  create: (p: Params) => Obj
  retrieve: (id: string) => Obj
  update: (id: string, p: Params) => Obj
  list: (p: Params) => Obj
  remove: (id: string) => Obj
} {
  const endpoints = new Map<string, Endpoint>()
  const wire = (e: Endpoint): Obj => ({
    id: e.id, object: 'webhook_endpoint', api_version: null, application: null, created: e.created, description: e.description,
    enabled_events: [...e.enabledEvents], livemode: false, metadata: { ...e.metadata }, status: e.status, url: e.url
  })
  const get = (id: string): Endpoint => {
    const e = endpoints.get(id)
    if (e === undefined) throw new StripeApiError(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'id', message: `No such webhook endpoint: '${id}'` })
    return e
  }
  const check = (p: Params, creating: boolean): void => {
    const extra = Object.keys(p).find(k => !PARAMS.includes(k))
    if (extra !== undefined) throw new StripeApiError(400, { type: 'invalid_request_error', code: 'parameter_unknown', param: extra, message: `Received unknown parameter: ${extra}` })
    if (creating && p.url === undefined) throw invalid('Missing required param: url.', 'url')
    if (p.url !== undefined) {
      let ok = false
      try { ok = typeof p.url === 'string' && ['http:', 'https:'].includes(new URL(p.url).protocol) } catch { ok = false }
      if (!ok) throw invalid(`Invalid URL: ${String(p.url)}. URLs must begin with http:// or https://.`, 'url')
    }
    if (creating && p.enabled_events === undefined) throw invalid('Missing required param: enabled_events.', 'enabled_events')
    if (p.enabled_events !== undefined) {
      const ev = p.enabled_events
      if (!Array.isArray(ev) || ev.length === 0 || !ev.every(x => typeof x === 'string')) throw invalid('Invalid array: enabled_events', 'enabled_events')
      const bad = (ev as string[]).find(x => x !== '*' && !WEBHOOK_EVENT_TYPES.includes(x))
      if (bad !== undefined) throw invalid(`Invalid enabled_events[]: ${bad} is not a valid event type`, 'enabled_events')
    }
    if (p.description !== undefined && typeof p.description !== 'string') throw invalid('Invalid string: description', 'description')
    if (p.disabled !== undefined && p.disabled !== 'true' && p.disabled !== 'false') throw invalid('Invalid boolean: disabled', 'disabled')
    if (p.metadata !== undefined && (typeof p.metadata !== 'object' || p.metadata === null || Array.isArray(p.metadata))) throw invalid('Invalid object', 'metadata')
  }
  const apply = (e: Endpoint, p: Params): void => {
    if (typeof p.url === 'string') e.url = p.url
    if (Array.isArray(p.enabled_events)) e.enabledEvents = [...new Set(p.enabled_events as string[])]
    if (typeof p.description === 'string') e.description = p.description === '' ? null : p.description
    if (p.disabled !== undefined) e.status = p.disabled === 'true' ? 'disabled' : 'enabled'
    if (p.metadata !== undefined) e.metadata = { ...e.metadata, ...(p.metadata as Record<string, string>) }
  }
  return {
    deliveryTargets: () => [...endpoints.values()].filter(e => e.status === 'enabled').map(e => ({ url: e.url, secret: e.secret, enabledEvents: e.enabledEvents })),
    create (p) {
      check(p, true)
      const e: Endpoint = { id: `we_${randomBytes(12).toString('hex')}`, created: Math.floor(now() / 1000), url: '', secret: `whsec_${randomBytes(24).toString('base64url')}`, enabledEvents: [], description: null, metadata: {}, status: 'enabled' }
      apply(e, p)
      endpoints.set(e.id, e)
      // Only the creation answer carries the signing secret, as on Stripe.
      return { ...wire(e), secret: e.secret }
    },
    retrieve: id => wire(get(id)),
    update (id, p) { const e = get(id); check(p, false); apply(e, p); return wire(e) },
    list (p) {
      const extra = Object.keys(p).find(k => !['limit', 'starting_after', 'ending_before', 'expand'].includes(k))
      if (extra !== undefined) throw new StripeApiError(400, { type: 'invalid_request_error', code: 'parameter_unknown', param: extra, message: `Received unknown parameter: ${extra}` })
      return listPage([...endpoints.values()], p, '/v1/webhook_endpoints', id => endpoints.has(id) ? wire(get(id)) : null, 'webhook endpoint')
    },
    remove (id) { get(id); endpoints.delete(id); return { id, object: 'webhook_endpoint', deleted: true } }
  }
}
