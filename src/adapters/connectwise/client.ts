import type { AxiosResponse } from 'axios'
import { createRequester, UpstreamError, type Requester, type RequestConfig } from '../http.js'
import type { CallBudget } from '../../ports/psa.js'
import type { Condition } from './conditions.js'

export interface ConnectWiseClientOptions {
  /** Origin (and optional path) of the tenant's API host, e.g. https://api-na.myconnectwise.net. */
  site: string
  companyId: string
  publicKey: string
  privateKey: string
  /** The integration's clientId GUID from developer.connectwise.com. */
  clientId: string
  /** e.g. "v4_6_release/"; discovered via /login/companyinfo when absent. */
  codebase?: string
  /** false: never call /login/companyinfo, use "v4_6_release/" when no codebase is given. */
  fetchCodebase?: boolean
  /** Accept header version; default 2025.1 (the contract's API version). */
  apiVersion?: string
  pageSize?: number
  timeoutMs?: number
  attempts?: number
  budget?: CallBudget
  /** HTTP requests in flight at once through this client; default 10, well inside what Cloudflare lets through before it answers 429. */
  maxInFlight?: number
  sleep?: (ms: number) => Promise<void>
}

export type QueryValue = string | number | boolean | Condition | undefined
export type Query = Record<string, QueryValue>

export interface ConnectWiseClient {
  /** `extra` for the odd call that differs (a binary PDF download). */
  get: <T>(path: string, query?: Query, extra?: RequestConfig) => Promise<AxiosResponse<T>>
  /** Forward-only pages of a list endpoint, following `Link: <…>; rel="next"`. */
  pages: <T>(path: string, query?: Query) => AsyncGenerator<T[]>
  /** Not retried: a repeat could write twice. */
  post: <T>(path: string, body: unknown) => Promise<AxiosResponse<T>>
  put: <T>(path: string, body: unknown) => Promise<AxiosResponse<T>>
  delete: (path: string) => Promise<void>
  /** The tenant's codebase ("v4_6_release/"), discovered once per instance. */
  codebase: () => Promise<string>
  calls: () => number
}

export const DEFAULT_CODEBASE = 'v4_6_release/'
export const DEFAULT_MAX_IN_FLIGHT = 10
const MAX_PAGE_SIZE = 1000

/** `{"code","message","errors":[{message}]}` → one readable line. */
export function describeConnectWiseError (body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null
  const b = body as { code?: unknown, message?: unknown, errors?: unknown }
  const parts: string[] = []
  if (typeof b.code === 'string') parts.push(b.code)
  if (typeof b.message === 'string') parts.push(b.message)
  if (Array.isArray(b.errors)) {
    for (const e of b.errors) {
      if (typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string') parts.push((e as { message: string }).message)
    }
  }
  return parts.length === 0 ? null : parts.join(': ')
}

/** The URL of `rel="next"` in a Link header, or null. */
export function parseNextLink (header: unknown): string | null {
  if (typeof header !== 'string') return null
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part)
    if (match !== null && /(^|;)\s*rel="?next"?\s*(;|$)/i.test(match[2] ?? '')) return match[1] ?? null
  }
  return null
}

export function normaliseCodebase (codebase: string): string {
  const trimmed = codebase.trim().replace(/^\/+/, '').replace(/\/+$/, '')
  if (!/^[A-Za-z0-9_.-]+$/.test(trimmed)) throw new TypeError(`Not a ConnectWise codebase: ${JSON.stringify(codebase)}`)
  return `${trimmed}/`
}

export function queryString (query: Query = {}): string {
  const parts: string[] = []
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue
    // %20 rather than '+': unambiguous for every server, and conditions contain spaces.
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`)
  }
  return parts.length === 0 ? '' : `?${parts.join('&')}`
}

export function createConnectWiseClient (options: ConnectWiseClientOptions): ConnectWiseClient {
  const site = options.site.replace(/\/+$/, '')
  const siteOrigin = new URL(site).origin
  const pageSize = Math.min(options.pageSize ?? MAX_PAGE_SIZE, MAX_PAGE_SIZE)
  const auth = Buffer.from(`${options.companyId}+${options.publicKey}:${options.privateKey}`).toString('base64')
  const requester: Requester = createRequester({
    system: 'connectwise',
    baseURL: site,
    headers: {
      Authorization: `Basic ${auth}`,
      clientId: options.clientId,
      Accept: `application/vnd.connectwise.com+json; version=${options.apiVersion ?? '2025.1'}`
    },
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.attempts !== undefined ? { attempts: options.attempts } : {}),
    ...(options.budget !== undefined ? { budget: options.budget } : {}),
    ...(options.sleep !== undefined ? { sleep: options.sleep } : {}),
    maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
    describeError: describeConnectWiseError
  })

  const request = async <T>(config: RequestConfig): Promise<AxiosResponse<T>> => await requester.request<T>(config)

  let codebasePromise: Promise<string> | null = options.codebase !== undefined
    ? Promise.resolve(normaliseCodebase(options.codebase))
    : options.fetchCodebase === false ? Promise.resolve(DEFAULT_CODEBASE) : null

  async function discoverCodebase (): Promise<string> {
    const response = await request<unknown>({ method: 'GET', url: `/login/companyinfo/${encodeURIComponent(options.companyId)}` })
    const body = response.data as { Codebase?: unknown } | null
    if (typeof body !== 'object' || body === null || typeof body.Codebase !== 'string' || body.Codebase === '') {
      throw new UpstreamError('connectwise', response.status, 'malformed_response', 'companyinfo did not name a Codebase', false, null, body)
    }
    try { return normaliseCodebase(body.Codebase) } catch {
      throw new UpstreamError('connectwise', response.status, 'malformed_response', 'companyinfo named an unusable Codebase', false, null, body)
    }
  }

  function codebase (): Promise<string> {
    if (codebasePromise === null) {
      // Cache the promise so concurrent first calls discover once; forget failures so a later call can retry.
      codebasePromise = discoverCodebase().catch((error: unknown) => { codebasePromise = null; throw error })
    }
    return codebasePromise
  }

  async function apiPath (path: string): Promise<string> {
    return `/${await codebase()}apis/3.0${path}`
  }

  function sameSite (url: string): string {
    let resolved: URL
    try { resolved = new URL(url, `${site}/`) } catch {
      throw new UpstreamError('connectwise', null, 'malformed_response', 'the Link header is not a URL', false)
    }
    // Never send our credentials to another host, whatever a Link header says.
    if (resolved.origin !== siteOrigin) {
      throw new UpstreamError('connectwise', null, 'malformed_response', `the next-page link points off-site (${resolved.origin})`, false)
    }
    return resolved.toString()
  }

  async function * pages<T> (path: string, query: Query = {}): AsyncGenerator<T[]> {
    let url: string | null = `${await apiPath(path)}${queryString({ ...query, pageSize })}`
    while (url !== null) {
      const response: AxiosResponse<unknown> = await request<unknown>({ method: 'GET', url, headers: { 'pagination-type': 'forward-only' } })
      if (!Array.isArray(response.data)) {
        throw new UpstreamError('connectwise', response.status, 'malformed_response', `${path} did not return a list`, false, null, response.data)
      }
      yield response.data as T[]
      const next = parseNextLink(response.headers.link)
      url = next === null ? null : sameSite(next)
    }
  }

  return {
    get: async <T>(path: string, query?: Query, extra: RequestConfig = {}) => await request<T>({ ...extra, method: 'GET', url: `${await apiPath(path)}${queryString(query)}` }),
    pages,
    post: async <T>(path: string, body: unknown) => await request<T>({ method: 'POST', url: await apiPath(path), data: body, headers: { 'Content-Type': 'application/json' }, attempts: 1 }),
    put: async <T>(path: string, body: unknown) => await request<T>({ method: 'PUT', url: await apiPath(path), data: body, headers: { 'Content-Type': 'application/json' } }),
    delete: async (path: string) => { await request<unknown>({ method: 'DELETE', url: await apiPath(path) }) },
    codebase,
    calls: () => requester.calls()
  }
}
