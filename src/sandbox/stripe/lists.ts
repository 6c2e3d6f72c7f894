import { StripeApiError, type StripeStore } from './store.js'

type Obj = Record<string, unknown>
type Params = Record<string, unknown>

const invalid = (message: string, param?: string): StripeApiError => new StripeApiError(400, { type: 'invalid_request_error', message, ...(param === undefined ? {} : { param }) })

function only (p: Params, allowed: readonly string[]): void {
  const extra = Object.keys(p).find(k => !allowed.includes(k))
  if (extra !== undefined) throw new StripeApiError(400, { type: 'invalid_request_error', code: 'parameter_unknown', param: extra, message: `Received unknown parameter: ${extra}` })
}
const text = (p: Params, key: string): string | null => {
  const v = p[key]
  if (v === undefined) return null
  if (typeof v !== 'string') throw invalid(`Invalid string: ${key}`, key)
  return v
}

/** `created[gte]=…` and friends, or `created=…` exactly, as Stripe takes them. */
function createdFilter (p: Params): (created: number) => boolean {
  const v = p.created
  if (v === undefined) return () => true
  const num = (s: unknown, param: string): number => {
    if (typeof s !== 'string' || !/^\d+$/.test(s)) throw invalid(`Invalid integer: ${String(s)}`, param)
    return Number(s)
  }
  if (typeof v === 'string') { const at = num(v, 'created'); return c => c === at }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid('Invalid created: expected an integer or a hash of gt, gte, lt, lte', 'created')
  const bounds = v as Record<string, unknown>
  only(bounds, ['gt', 'gte', 'lt', 'lte'])
  const b = Object.fromEntries(Object.entries(bounds).map(([k, x]) => [k, num(x, `created[${k}]`)]))
  return c => (b.gt === undefined || c > b.gt) && (b.gte === undefined || c >= b.gte) && (b.lt === undefined || c < b.lt) && (b.lte === undefined || c <= b.lte)
}

/**
 * A page of Stripe's list object, newest first: `limit` 1–100 (default 10),
 * `starting_after` / `ending_before` an id in the list, `has_more`.
 */
export function listPage (rows: ReadonlyArray<{ id: string }>, p: Params, url: string, render: (id: string) => Obj | null, noun: string): Obj {
  const limitText = text(p, 'limit')
  const limit = limitText === null ? 10 : /^\d+$/.test(limitText) ? Number(limitText) : NaN
  if (!(limit >= 1 && limit <= 100)) throw invalid('This value must be between 1 and 100.', 'limit')
  let all = [...rows].reverse()
  const after = text(p, 'starting_after')
  const before = text(p, 'ending_before')
  if (after !== null && before !== null) throw invalid('You may only specify one of these parameters: ending_before, starting_after.')
  const data = (items: ReadonlyArray<{ id: string }>): Obj[] => items.map(r => render(r.id)).filter((o): o is Obj => o !== null)
  if (before !== null) {
    const k = all.findIndex(r => r.id === before)
    if (k < 0) throw invalid(`Invalid ending_before: no such ${noun} ${before} in this list.`, 'ending_before')
    return { object: 'list', data: data(all.slice(Math.max(0, k - limit), k)), has_more: k - limit > 0, url }
  }
  if (after !== null) {
    const k = all.findIndex(r => r.id === after)
    if (k < 0) throw invalid(`Invalid starting_after: no such ${noun} ${after} in this list.`, 'starting_after')
    all = all.slice(k + 1)
  }
  return { object: 'list', data: data(all.slice(0, limit)), has_more: all.length > limit, url }
}

const PAGING = ['limit', 'starting_after', 'ending_before', 'expand']

/** GET /v1/payment_methods: by `customer` and `type`. */
export function listPaymentMethods (store: StripeStore, p: Params): Obj {
  only(p, [...PAGING, 'customer', 'type'])
  const customer = text(p, 'customer')
  const type = text(p, 'type')
  if (customer !== null && !store.customers.has(customer)) throw new StripeApiError(400, { type: 'invalid_request_error', code: 'resource_missing', param: 'customer', message: `No such customer: '${customer}'` })
  if (type !== null && type !== 'card' && type !== 'us_bank_account') throw invalid(`Invalid type: must be one of card or us_bank_account in this stand-in; got ${type}`, 'type')
  const rows = [...store.paymentMethods.values()].filter(pm => (customer === null || pm.customer === customer) && (type === null || pm.spec.type === type))
  return listPage(rows, p, '/v1/payment_methods', store.render, 'payment method')
}

/** GET /v1/refunds: by `charge` or `payment_intent`, and `created`. */
export function listRefunds (store: StripeStore, p: Params): Obj {
  only(p, [...PAGING, 'charge', 'payment_intent', 'created'])
  const charge = text(p, 'charge')
  const intent = text(p, 'payment_intent')
  const created = createdFilter(p)
  const rows = [...store.refunds.values()].filter(r => (charge === null || r.charge === charge) && (intent === null || r.paymentIntent === intent) && created(r.created))
  return listPage(rows, p, '/v1/refunds', store.render, 'refund')
}

/** GET /v1/events: by `type` (a trailing `.*` matches a family), `types[]`, `created`. */
export function listEvents (store: StripeStore, p: Params): Obj {
  only(p, [...PAGING, 'type', 'types', 'created', 'delivery_success'])
  const type = text(p, 'type')
  const types = p.types
  if (types !== undefined && (!Array.isArray(types) || !types.every(x => typeof x === 'string'))) throw invalid('Invalid array: types', 'types')
  if (type !== null && types !== undefined) throw invalid('You may only specify one of these parameters: type, types.')
  const created = createdFilter(p)
  const wanted = (t: string): boolean => {
    if (type !== null) return type.endsWith('.*') ? t.startsWith(type.slice(0, -1)) : t === type
    return types === undefined || (types as string[]).includes(t)
  }
  const rows = [...store.events.values()].filter(e => wanted(e.type) && created(e.created))
  return listPage(rows, p, '/v1/events', store.render, 'event')
}
