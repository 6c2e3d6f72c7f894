import { createRequester, createSemaphore, UpstreamError, type Requester, type RequestConfig } from '../http.js'
import type { CallBudget } from '../../ports/psa.js'
import { f, type AutotaskFilter } from './filter.js'

export { f, autotaskDateTime, type AutotaskFilter, type AutotaskCondition } from './filter.js'
export { createSemaphore } from '../http.js'

export const DEFAULT_ZONE_DISCOVERY_URL = 'https://webservices.autotask.net/ATServicesRest/V1.0/zoneInformation'
/** Autotask's page-size ceiling for one query call. */
export const MAX_RECORDS = 500

export interface AutotaskClientOptions {
  apiUser: string
  secret: string
  integrationCode: string
  zoneDiscoveryUrl?: string
  /** A zone base already known for this tenant (ends with '/', no version); skips discovery. */
  zoneUrl?: string
  /** Told once per instance when discovery found the zone, so the caller can persist it per tenant. */
  onZoneDiscovered?: (url: string) => void | Promise<void>
  /** Shared hourly budget (Autotask: 10,000 calls/hour per database); every attempt takes one. */
  budget?: CallBudget
  /** Requests in flight at once through this client (Autotask: 3 threads per endpoint per integration). */
  maxConcurrent?: number
  sleep?: (ms: number) => Promise<void>
  timeoutMs?: number
  attempts?: number
  impersonationResourceId?: number
}

export interface AutotaskQuery {
  filter: AutotaskFilter
  includeFields?: readonly string[]
  /** Page size, 1..500. */
  maxRecords?: number
}

export interface AutotaskPageDetails {
  count: number
  requestCount: number
  prevPageUrl: string | null
  nextPageUrl: string | null
}

export interface AutotaskClient {
  /** The zone base (`https://webservicesN.autotask.net/ATServicesRest/`), discovered once and cached. */
  zone: () => Promise<string>
  /** Pages of a query, following `nextPageUrl` until it is null. */
  query: <T = Record<string, unknown>>(entity: string, query: AutotaskQuery) => AsyncGenerator<T[], void, undefined>
  count: (entity: string, query: { filter: AutotaskFilter }) => Promise<number>
  /** null when Autotask answers 404 or `{"item": null}` (both are seen). */
  get: <T = Record<string, unknown>>(entity: string, id: number | string) => Promise<T | null>
  /** PATCH `{id, …changed fields}`; retried on 429/5xx since re-sending the same values is harmless. */
  update: (entity: string, body: Record<string, unknown>) => Promise<{ itemId: number }>
  /**
   * POST a new record. `path` may be a child path (`Companies/12/Notes`).
   * Sent once (not idempotent): a failure surfaces for the caller's own
   * look-up-then-retry.
   */
  create: (path: string, body: Record<string, unknown>) => Promise<{ itemId: number }>
  callsMade: () => number
}

/** Bodies Autotask sends with HTTP 500 when the user or integration code is wrong. */
const AUTH_MESSAGE = /integration ?code|api ?user|user ?name|unauthori[sz]ed|authenticat|credential|impersonat|secret|not authori/i
/**
 * The shared request function retries every 5xx. A 500 that is really an auth
 * failure must not be retried, so an interceptor re-labels it with this status
 * (below 500, not 408/429: never retried) before the requester sees it, and
 * `call` turns it back into `auth_failed` with the real status.
 */
const AUTH_SENTINEL_STATUS = 499

export function describeAutotaskError (body: unknown): string | null {
  if (body === null || typeof body !== 'object') return null
  const errors = (body as { errors?: unknown }).errors
  if (!Array.isArray(errors) || errors.length === 0) return null
  const messages = errors.map(item => {
    if (typeof item === 'string') return item
    if (item !== null && typeof item === 'object' && typeof (item as { message?: unknown }).message === 'string') return (item as { message: string }).message
    return JSON.stringify(item)
  })
  return messages.join('; ')
}

export function createAutotaskClient (options: AutotaskClientOptions): AutotaskClient {
  const limit = createSemaphore(options.maxConcurrent ?? 3)
  const headers: Record<string, string> = {
    ApiIntegrationcode: options.integrationCode,
    UserName: options.apiUser,
    Secret: options.secret,
    'Content-Type': 'application/json',
    Accept: 'application/json'
  }
  if (options.impersonationResourceId !== undefined) headers.ImpersonationResourceId = String(options.impersonationResourceId)
  const requester: Requester = createRequester({
    system: 'autotask',
    // Absolute URLs throughout: the zone is only known after discovery.
    baseURL: '',
    headers,
    timeoutMs: options.timeoutMs,
    attempts: options.attempts,
    budget: options.budget,
    describeError: describeAutotaskError,
    sleep: options.sleep
  })
  requester.http.interceptors.response.use(response => {
    if (response.status === 500 && typeof response.data === 'string' && AUTH_MESSAGE.test(response.data)) {
      response.status = AUTH_SENTINEL_STATUS
    }
    return response
  })

  let zoneUrl: string | null = options.zoneUrl === undefined ? null : withSlash(options.zoneUrl)
  let discovering: Promise<string> | null = null

  async function call<T> (config: RequestConfig): Promise<T> {
    try {
      const response = await limit(async () => await requester.request<T>(config))
      const data = response.data
      // go-autotask treats an `errors` array in a 2xx body as a failure; so do we.
      const inBody = describeAutotaskError(data)
      if (inBody !== null) throw new UpstreamError('autotask', response.status, 'upstream_error', inBody, false, null, data)
      return data
    } catch (error) {
      if (error instanceof UpstreamError && (error.status === AUTH_SENTINEL_STATUS || error.status === 401)) {
        const detail = describeAutotaskError(error.body) ?? 'authentication failed'
        throw new UpstreamError('autotask', error.status === AUTH_SENTINEL_STATUS ? 500 : 401, 'auth_failed', detail, false, null, error.body)
      }
      throw error
    }
  }

  async function zone (): Promise<string> {
    if (zoneUrl !== null) return zoneUrl
    discovering ??= (async () => {
      const body = await call<{ url?: unknown }>({ method: 'GET', url: options.zoneDiscoveryUrl ?? DEFAULT_ZONE_DISCOVERY_URL, params: { user: options.apiUser } })
      if (typeof body?.url !== 'string' || !/^https?:\/\//.test(body.url)) {
        throw new UpstreamError('autotask', 200, 'malformed_response', 'zoneInformation has no url', false, null, body)
      }
      zoneUrl = withSlash(body.url)
      await options.onZoneDiscovered?.(zoneUrl)
      return zoneUrl
    })().finally(() => { discovering = null })
    return await discovering
  }

  const entityUrl = async (path: string): Promise<string> => `${await zone()}V1.0/${path}`

  function queryBody (query: AutotaskQuery): Record<string, unknown> {
    const maxRecords = query.maxRecords ?? MAX_RECORDS
    if (!Number.isInteger(maxRecords) || maxRecords < 1 || maxRecords > MAX_RECORDS) throw new RangeError(`maxRecords must be 1..${MAX_RECORDS}`)
    const body: Record<string, unknown> = { filter: query.filter.length > 0 ? query.filter : f.all() }
    if (query.includeFields !== undefined && query.includeFields.length > 0) {
      // Paging past one page needs `id` among the fields (Autotask pages by id).
      body.IncludeFields = query.includeFields.some(x => x.toLowerCase() === 'id') ? [...query.includeFields] : ['id', ...query.includeFields]
    }
    body.MaxRecords = maxRecords
    return body
  }

  async function * query<T> (entity: string, q: AutotaskQuery): AsyncGenerator<T[], void, undefined> {
    const body = queryBody(q)
    const first = await entityUrl(`${entity}/query`)
    let page = asPage<T>(await call({ method: 'POST', url: first, data: body }))
    const seen = new Set<string>([first])
    for (;;) {
      yield page.items
      const next = page.pageDetails?.nextPageUrl
      if (typeof next !== 'string' || next === '') return
      // The next URL is followed verbatim, so make sure it cannot send our secret elsewhere or loop.
      if (new URL(next).origin !== new URL(first).origin) throw new UpstreamError('autotask', 200, 'malformed_response', `nextPageUrl points off the zone: ${new URL(next).origin}`, false)
      if (seen.has(next)) throw new UpstreamError('autotask', 200, 'malformed_response', 'nextPageUrl repeats a page already read', false)
      seen.add(next)
      page = asPage<T>(await nextPage(next, body))
    }
  }

  /** A next page is POSTed with the original body: Autotask answers a GET on a posted query's nextPageUrl with 405. */
  async function nextPage (url: string, body: Record<string, unknown>): Promise<unknown> {
    return await call({ method: 'POST', url, data: body })
  }

  async function count (entity: string, q: { filter: AutotaskFilter }): Promise<number> {
    const body = await call<{ queryCount?: unknown }>({ method: 'POST', url: await entityUrl(`${entity}/query/count`), data: { filter: q.filter.length > 0 ? q.filter : f.all() } })
    if (typeof body?.queryCount !== 'number') throw new UpstreamError('autotask', 200, 'malformed_response', 'count answer has no queryCount', false, null, body)
    return body.queryCount
  }

  async function get<T> (entity: string, id: number | string): Promise<T | null> {
    try {
      const body = await call<{ item?: T | null }>({ method: 'GET', url: await entityUrl(`${entity}/${encodeURIComponent(String(id))}`) })
      if (body === null || typeof body !== 'object' || !('item' in body)) throw new UpstreamError('autotask', 200, 'malformed_response', 'get answer has no item', false, null, body)
      return body.item ?? null
    } catch (error) {
      if (error instanceof UpstreamError && error.status === 404) return null
      throw error
    }
  }

  async function update (entity: string, body: Record<string, unknown>): Promise<{ itemId: number }> {
    return itemId(await call({ method: 'PATCH', url: await entityUrl(entity), data: body }))
  }

  async function create (path: string, body: Record<string, unknown>): Promise<{ itemId: number }> {
    return itemId(await call({ method: 'POST', url: await entityUrl(path), data: body, attempts: 1 }))
  }

  return { zone, query, count, get, update, create, callsMade: requester.calls }
}

function withSlash (url: string): string {
  return url.endsWith('/') ? url : `${url}/`
}

function asPage<T> (body: unknown): { items: T[], pageDetails: Partial<AutotaskPageDetails> | undefined } {
  if (body === null || typeof body !== 'object' || !Array.isArray((body as { items?: unknown }).items)) {
    throw new UpstreamError('autotask', 200, 'malformed_response', 'query answer has no items array', false, null, body)
  }
  const page = body as { items: T[], pageDetails?: Partial<AutotaskPageDetails> }
  return { items: page.items, pageDetails: page.pageDetails }
}

function itemId (body: unknown): { itemId: number } {
  const id = (body as { itemId?: unknown } | null)?.itemId
  if (typeof id !== 'number') throw new UpstreamError('autotask', 200, 'malformed_response', 'write answer has no itemId', false, null, body)
  return { itemId: id }
}
