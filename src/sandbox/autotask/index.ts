import { installFaultSwitch, isRestWrite, SANDBOX_FAULTS_PATH } from '../faults.js'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { AutotaskStore, WireRecord } from './store.js'

export { createAutotaskStore, type AutotaskStore, type AutotaskStoreOptions, type AutotaskFaults } from './store.js'

/** Demo credentials the stand-in accepts by default (never real ones). */
export const AUTOTASK_SANDBOX_CREDENTIALS = {
  apiUser: 'settle-demo-api@sandbox.autotask.test',
  secret: 'sandbox-secret-not-real',
  integrationCode: 'SETTLESANDBOXCODE'
} as const

export interface AutotaskSandboxOptions {
  store: AutotaskStore
  credentials?: { apiUser: string, secret: string, integrationCode: string }
  /** This server's public origin (`http://127.0.0.1:4010`); taken from the Host header when absent. */
  publicBase?: string
}

const MAX_RECORDS = 500
const ENTITIES = ['Companies', 'Invoices', 'BillingItems', 'CompanyNotes'] as const
type Entity = typeof ENTITIES[number]
const INVOICE_WRITABLE = new Set(['id', 'paidDate', 'webServiceDate', 'invoiceNumber'])

interface Query { filter: unknown[], IncludeFields?: string[], MaxRecords?: number }
type RouteHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
class WireError extends Error {
  constructor (readonly status: number, message: string) { super(message) }
}

/**
 * A wire-compatible Autotask REST stand-in: zone discovery, query (filters,
 * paging by `nextPageUrl`, GET or POST), count, get, PATCH Invoices, create
 * CompanyNotes, auth checks as Autotask answers them, and a fault switch.
 */
const autotaskSandbox: FastifyPluginAsync<AutotaskSandboxOptions> = async (app: FastifyInstance, opts) => {
  const store = opts.store
  const creds = opts.credentials ?? AUTOTASK_SANDBOX_CREDENTIALS
  const prefix = app.prefix

  app.setErrorHandler(async (error: Error & { statusCode?: number }, _request, reply) => {
    const status = error instanceof WireError ? error.status : (error.statusCode ?? 500)
    return await reply.code(status).send({ errors: [error.message] })
  })
  app.setNotFoundHandler(async (request, reply) => await reply.code(404).send({ errors: [`No route for ${request.method} ${request.url}`] }))

  installFaultSwitch(app, {
    faults: store.faults,
    seed: store.seed,
    onReseed: seed => { store.reseedFaults(seed) },
    isWrite: isRestWrite,
    badGateway: { contentType: 'text/html', body: '<html><head><title>502 - Web server received an invalid response while acting as a gateway or proxy server.</title></head><body><h1>Server Error</h1><h2>502 - Web server received an invalid response while acting as a gateway or proxy server.</h2></body></html>' },
    refusal: message => ({ errors: [message] })
  })

  // Fault switch and hourly limit first, as Autotask's gateway would, then auth.
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.url?.endsWith(SANDBOX_FAULTS_PATH) === true) return
    const waitSeconds = store.countCall()
    if (waitSeconds !== null) {
      return await reply.code(429).header('retry-after', String(waitSeconds)).send({ errors: ['Request limit exceeded: 10000 requests per hour.'] })
    }
    if (store.faults.burst429 > 0 || (store.faults.rate429 > 0 && store.nextFaultDraw() < store.faults.rate429)) {
      if (store.faults.burst429 > 0) store.faults.burst429--
      return await reply.code(429).header('retry-after', String(store.faults.retryAfterSeconds)).send({ errors: ['Too many requests. Please retry later.'] })
    }
    if (store.faults.latencyMs > 0) await new Promise(resolve => setTimeout(resolve, store.faults.latencyMs))
    if (store.faults.errorRate > 0 && store.nextFaultDraw() < store.faults.errorRate) {
      return await reply.code(503).send({ errors: ['The service is temporarily unavailable.'] })
    }
    if (/\/zoneInformation(\?|$)/i.test(request.url)) return
    const h = request.headers
    const user = header(h.username)
    const secret = header(h.secret)
    const code = header(h.apiintegrationcode)
    if (user === undefined || secret === undefined || code === undefined || user !== creds.apiUser || secret !== creds.secret) {
      return await reply.code(401).send({ errors: ['Unauthorized'] })
    }
    // Autotask answers a wrong integration code with HTTP 500, not 401.
    if (code !== creds.integrationCode) {
      return await reply.code(500).send({ errors: ['IntegrationCode is invalid. Please check the ApiIntegrationCode header.'] })
    }
  })

  // Autotask matches URL paths without regard to case (`atservicesrest/V1.0/invoices/1`), which fastify's
  // router (case-sensitive for the whole server) cannot do per plugin: this stand-in routes its own paths.
  const routes: Array<{ method: string, pattern: RegExp, handler: RouteHandler }> = []
  function route<R extends FastifyRequest<any>> (method: string, path: string, handler: (request: R, reply: FastifyReply) => Promise<unknown>): void {
    const pattern = new RegExp('^' + path.split('/').map(seg => seg.startsWith(':') ? `(?<${seg.slice(1)}>[^/]+)` : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('/') + '/?$', 'i')
    routes.push({ method, pattern, handler: handler as unknown as RouteHandler })
  }
  app.route({
    method: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'],
    url: '/*',
    handler: async (request, reply) => {
      const path = (request.url.split('?')[0] ?? '').slice(prefix.length)
      let otherMethod = false
      for (const r of routes) {
        const m = r.pattern.exec(decodePath(path))
        if (m === null) continue
        if (r.method !== request.method) { otherMethod = true; continue }
        ;(request as { params: unknown }).params = { ...m.groups }
        return await r.handler(request, reply)
      }
      // ASP.NET Web API's answer to a path that exists for other methods only.
      if (otherMethod) return await reply.code(405).send({ Message: `The requested resource does not support http method '${request.method}'.` })
      return await reply.code(404).send({ errors: [`No route for ${request.method} ${request.url}`] })
    }
  })

  const zoneBase = (request: FastifyRequest): string => {
    const origin = opts.publicBase ?? `${request.protocol}://${request.headers.host ?? '127.0.0.1'}`
    return `${origin.replace(/\/$/, '')}${prefix}/ATServicesRest/`
  }

  const zoneHandler = async (request: FastifyRequest<{ Querystring: { user?: string } }>): Promise<unknown> => {
    if (typeof request.query.user !== 'string' || request.query.user === '') throw new WireError(400, "The 'user' parameter is required.")
    return { zoneName: 'Sandbox', url: zoneBase(request), webUrl: `${zoneBase(request).replace(/ATServicesRest\/$/, '')}`, ci: 0 }
  }
  route('GET', '/ATServicesRest/V1.0/zoneInformation', zoneHandler)

  const v1 = '/ATServicesRest/V1.0'

  function entityOf (name: string): Entity {
    const found = ENTITIES.find(e => e.toLowerCase() === name.toLowerCase())
    if (found === undefined) throw new WireError(404, `Entity '${name}' is not available in this sandbox.`)
    return found
  }

  function runQuery (request: FastifyRequest, entity: Entity, query: Query, afterId: number): unknown {
    validateQuery(query)
    const pageSize = Math.min(MAX_RECORDS, query.MaxRecords ?? MAX_RECORDS)
    const items: WireRecord[] = []
    let more = false
    for (const record of candidates(store, entity, query.filter, afterId)) {
      if (!matchesAll(record, query.filter)) continue
      if (items.length === pageSize) { more = true; break }
      items.push(record)
    }
    const last = items[items.length - 1]
    const nextPageUrl = more && last !== undefined
      ? `${zoneBase(request)}V1.0/${entity}/query/next?paging=${encodeURIComponent(JSON.stringify({ pageSize, previousIds: [items[0]?.id], nextIds: [last.id] }))}&search=${encodeURIComponent(JSON.stringify(query))}`
      : null
    return {
      items: items.map(item => project(item, query.IncludeFields)),
      pageDetails: { count: items.length, requestCount: pageSize, prevPageUrl: null, nextPageUrl }
    }
  }

  route('POST', `${v1}/:entity/query`, async (request: FastifyRequest<{ Params: { entity: string }, Body: Query }>) => {
    return runQuery(request, entityOf(request.params.entity), asQuery(request.body), -Infinity)
  })

  // Autotask's next-page URL carries the query in `search`; it is POSTed with the original body (a GET answers 405).
  const nextHandler = async (request: FastifyRequest<{ Params: { entity: string }, Querystring: { paging?: string, search?: string } }>): Promise<unknown> => {
    const paging = parseJson(request.query.paging, 'paging') as { nextIds?: unknown[] }
    const after = Number(paging.nextIds?.[0])
    if (!Number.isFinite(after)) throw new WireError(400, 'Invalid paging parameter.')
    const query = request.body !== undefined && request.body !== null && typeof request.body === 'object' && Array.isArray((request.body as Query).filter)
      ? asQuery(request.body)
      : asQuery(parseJson(request.query.search, 'search'))
    return runQuery(request, entityOf(request.params.entity), query, after)
  }
  route('POST', `${v1}/:entity/query/next`, nextHandler)

  route('POST', `${v1}/:entity/query/count`, async (request: FastifyRequest<{ Params: { entity: string }, Body: Query }>) => {
    const entity = entityOf(request.params.entity)
    const query = asQuery(request.body)
    validateQuery(query)
    let queryCount = 0
    for (const record of candidates(store, entity, query.filter, -Infinity)) if (matchesAll(record, query.filter)) queryCount++
    return { queryCount }
  })

  route('GET', `${v1}/:entity/:id`, async (request: FastifyRequest<{ Params: { entity: string, id: string } }>) => {
    const entity = entityOf(request.params.entity)
    const id = Number(request.params.id)
    if (!Number.isInteger(id)) throw new WireError(400, `Invalid id '${request.params.id}'.`)
    // The live API answers 200 with a null item for a missing id (go-autotask's mock).
    return { item: byId(store, entity, id) }
  })

  route('PATCH', `${v1}/:entity`, async (request: FastifyRequest<{ Params: { entity: string }, Body: Record<string, unknown> }>) => {
    const entity = entityOf(request.params.entity)
    if (entity !== 'Invoices') throw new WireError(405, `Updating ${entity} is not supported by this sandbox.`)
    const body = request.body
    if (body === null || typeof body !== 'object' || typeof body.id !== 'number') throw new WireError(400, "Required field 'id' is missing.")
    const readOnly = Object.keys(body).filter(key => !INVOICE_WRITABLE.has(key))
    if (readOnly.length > 0) throw new WireError(400, `Field(s) ${readOnly.map(k => `'${k}'`).join(', ')} are read-only.`)
    if (store.invoice(body.id) === null) throw new WireError(404, `Invoice ${body.id} was not found.`)
    for (const key of ['paidDate', 'webServiceDate'] as const) {
      const value = body[key]
      if (value !== undefined && value !== null && (typeof value !== 'string' || Number.isNaN(Date.parse(value)))) throw new WireError(400, `Field '${key}' must be a datetime.`)
    }
    if (body.invoiceNumber !== undefined && (typeof body.invoiceNumber !== 'string' || body.invoiceNumber.length > 100)) throw new WireError(400, "Field 'invoiceNumber' must be a string of at most 100 characters.")
    store.touchInvoice(body.id, body as Parameters<AutotaskStore['touchInvoice']>[1])
    return { itemId: body.id }
  })

  const createNote = async (request: FastifyRequest<{ Params: { parentId?: string }, Body: Record<string, unknown> }>, reply: FastifyReply): Promise<unknown> => {
    const body = request.body
    if (body === null || typeof body !== 'object') throw new WireError(400, 'A JSON body is required.')
    const companyID = request.params.parentId !== undefined ? Number(request.params.parentId) : body.companyID
    if (typeof companyID !== 'number' || store.company(companyID) === null) throw new WireError(400, "Field 'companyID' must reference an existing company.")
    if (typeof body.actionType !== 'number') throw new WireError(500, "Required field 'actionType' is missing.")
    if (typeof body.name !== 'string' || body.name === '') throw new WireError(400, "Required field 'name' is missing.")
    const str = (v: unknown): string | null => typeof v === 'string' ? v : null
    const note = store.addNote({
      companyID,
      name: body.name.slice(0, 250),
      note: str(body.note) ?? '',
      actionType: body.actionType,
      assignedResourceID: typeof body.assignedResourceID === 'number' ? body.assignedResourceID : null,
      startDateTime: str(body.startDateTime),
      endDateTime: str(body.endDateTime),
      completedDateTime: str(body.completedDateTime)
    })
    return await reply.code(200).send({ itemId: note.id })
  }
  route('POST', `${v1}/Companies/:parentId/Notes`, createNote)
  route('POST', `${v1}/:entity`, async (request: FastifyRequest<{ Params: { entity: string }, Body: Record<string, unknown> }>, reply: FastifyReply) => {
    const entity = entityOf(request.params.entity)
    if (entity !== 'CompanyNotes') throw new WireError(405, `The requested resource does not support http method 'POST' for ${entity}.`)
    return await createNote(request as FastifyRequest<{ Params: { parentId?: string }, Body: Record<string, unknown> }>, reply)
  })
}

export default autotaskSandbox

function header (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function parseJson (text: string | undefined, name: string): unknown {
  try { return JSON.parse(text ?? '') } catch { throw new WireError(400, `Invalid ${name} parameter.`) }
}

function asQuery (body: unknown): Query {
  if (body === null || typeof body !== 'object') throw new WireError(400, 'A query body is required.')
  const raw = body as Record<string, unknown>
  // Autotask matches top-level keys case-insensitively in practice; accept both spellings.
  const get = (name: string): unknown => raw[name] ?? raw[name.toLowerCase()] ?? raw[name[0]?.toLowerCase() + name.slice(1)]
  return { filter: get('filter') as unknown[], IncludeFields: get('IncludeFields') as string[] | undefined, MaxRecords: get('MaxRecords') as number | undefined }
}

const OPS = new Set(['eq', 'noteq', 'gt', 'gte', 'lt', 'lte', 'beginswith', 'endswith', 'contains', 'exist', 'notexist', 'in', 'notin', 'and', 'or'])

function validateQuery (query: Query): void {
  if (!Array.isArray(query.filter) || query.filter.length === 0) throw new WireError(500, 'A filter is required: at least one filter condition must be supplied.')
  if (query.MaxRecords !== undefined && (!Number.isInteger(query.MaxRecords) || query.MaxRecords < 1 || query.MaxRecords > MAX_RECORDS)) throw new WireError(400, `MaxRecords must be between 1 and ${MAX_RECORDS}.`)
  const walk = (conditions: unknown[]): void => {
    for (const c of conditions) {
      if (c === null || typeof c !== 'object') throw new WireError(400, 'Invalid filter condition.')
      const cond = c as { op?: unknown, field?: unknown, items?: unknown, value?: unknown }
      const op = typeof cond.op === 'string' ? cond.op.toLowerCase() : ''
      if (!OPS.has(op)) throw new WireError(400, `Unknown filter operator '${String(cond.op)}'.`)
      if (op === 'and' || op === 'or') {
        if (!Array.isArray(cond.items)) throw new WireError(400, `Filter group '${op}' needs items.`)
        walk(cond.items)
      } else if (typeof cond.field !== 'string') throw new WireError(400, 'Filter condition needs a field.')
      else if ((op === 'in' || op === 'notin') && (!Array.isArray(cond.value) || cond.value.length > 500)) throw new WireError(400, `Operator '${op}' takes an array of at most 500 values.`)
    }
  }
  walk(query.filter)
}

function fieldOf (record: WireRecord, field: string): unknown {
  if (field in record) return record[field]
  const lower = field.toLowerCase()
  for (const key of Object.keys(record)) if (key.toLowerCase() === lower) return record[key]
  return undefined
}

const ISO = /^\d{4}-\d{2}-\d{2}(T|$)/

/** Compares like Autotask's SQL: datetimes as instants, strings case-insensitively. */
function compare (actual: unknown, expected: unknown): number | null {
  if (actual === null || actual === undefined) return null
  if (typeof actual === 'number') return actual - Number(expected)
  if (typeof actual === 'boolean') return Number(actual) - Number(expected === true || expected === 'true' || expected === 1)
  if (typeof actual === 'string') {
    if (ISO.test(actual) && typeof expected === 'string' && ISO.test(expected)) return Date.parse(zoned(actual)) - Date.parse(zoned(expected))
    return actual.toLowerCase().localeCompare(String(expected).toLowerCase())
  }
  return null
}

function zoned (value: string): string {
  return value.length === 10 ? `${value}T00:00:00Z` : /(?:[zZ]|[+-]\d{2}:?\d{2})$/.test(value) ? value : `${value}Z`
}

function matches (record: WireRecord, condition: unknown): boolean {
  const c = condition as { op: string, field?: string, value?: unknown, items?: unknown[] }
  const op = c.op.toLowerCase()
  if (op === 'and') return (c.items ?? []).every(item => matches(record, item))
  if (op === 'or') return (c.items ?? []).some(item => matches(record, item))
  const actual = fieldOf(record, c.field ?? '')
  switch (op) {
    case 'exist': return actual !== null && actual !== undefined && actual !== ''
    case 'notexist': return actual === null || actual === undefined || actual === ''
    case 'in': return (c.value as unknown[]).some(v => compare(actual, v) === 0)
    case 'notin': return !(c.value as unknown[]).some(v => compare(actual, v) === 0)
    case 'beginswith': return typeof actual === 'string' && actual.toLowerCase().startsWith(String(c.value).toLowerCase())
    case 'endswith': return typeof actual === 'string' && actual.toLowerCase().endsWith(String(c.value).toLowerCase())
    case 'contains': return typeof actual === 'string' && actual.toLowerCase().includes(String(c.value).toLowerCase())
  }
  const order = compare(actual, c.value)
  if (op === 'noteq') return order !== 0
  if (order === null || Number.isNaN(order)) return false
  switch (op) {
    case 'eq': return order === 0
    case 'gt': return order > 0
    case 'gte': return order >= 0
    case 'lt': return order < 0
    case 'lte': return order <= 0
  }
  return false
}

function matchesAll (record: WireRecord, filter: unknown[]): boolean {
  return filter.every(condition => matches(record, condition))
}

/** Invoice ids a top-level `invoiceID in/eq` names, so BillingItems queries do not scan every invoice. */
function invoiceIdsNamed (filter: unknown[]): number[] | null {
  for (const c of filter as Array<{ op?: string, field?: string, value?: unknown }>) {
    if (c.field?.toLowerCase() !== 'invoiceid') continue
    if (c.op?.toLowerCase() === 'in' && Array.isArray(c.value)) return c.value.map(Number).filter(Number.isInteger).sort((a, b) => a - b)
    if (c.op?.toLowerCase() === 'eq') return [Number(c.value)]
  }
  return null
}

/** Records in id order after `afterId`, built lazily so a page stops work early. */
function * candidates (store: AutotaskStore, entity: Entity, filter: unknown[], afterId: number): Generator<WireRecord> {
  if (entity === 'Companies') {
    for (const c of store.companies()) if ((c.id as number) > afterId) yield c
  } else if (entity === 'CompanyNotes') {
    for (const n of store.notes()) if (n.id > afterId) yield n as unknown as WireRecord
  } else if (entity === 'Invoices') {
    const ids = store.invoiceIds()
    for (let i = firstAfter(ids, afterId); i < ids.length; i++) {
      const inv = store.invoice(ids[i] as number)
      if (inv !== null) yield inv
    }
  } else {
    const named = invoiceIdsNamed(filter)
    const ids = named ?? store.invoiceIds()
    // Line ids are invoice id × 10 + n, so invoice order is line order.
    for (let i = firstAfter(ids, Math.floor(afterId / 10) - 1); i < ids.length; i++) {
      for (const line of store.billingItems(ids[i] as number)) if ((line.id as number) > afterId) yield line
    }
  }
}

function firstAfter (ids: readonly number[], afterId: number): number {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((ids[mid] as number) <= afterId) lo = mid + 1
    else hi = mid
  }
  return lo
}

function byId (store: AutotaskStore, entity: Entity, id: number): WireRecord | null {
  switch (entity) {
    case 'Companies': return store.company(id)
    case 'Invoices': return store.invoice(id)
    case 'BillingItems': return store.billingItem(id)
    case 'CompanyNotes': return (store.notes().find(n => n.id === id) as unknown as WireRecord | undefined) ?? null
  }
}

function project (record: WireRecord, fields: string[] | undefined): WireRecord {
  if (fields === undefined || fields.length === 0) return record
  const out: WireRecord = {}
  for (const name of fields) {
    const key = Object.keys(record).find(k => k.toLowerCase() === name.toLowerCase())
    if (key !== undefined) out[key] = record[key]
  }
  return out
}

function decodePath (path: string): string {
  try { return decodeURIComponent(path) } catch { return path }
}
