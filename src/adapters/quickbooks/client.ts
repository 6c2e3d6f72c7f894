import { createRequester, UpstreamError, type Requester } from '../http.js'
import { RetryLaterError } from '../../jobs/worker.js'
import { backoffDelayMs } from '../../jobs/backoff.js'
import type { CallBudget } from '../../ports/psa.js'

type Obj = Record<string, any>

/** Why a QBO call failed, from the Fault code: the caller's next step depends on it. */
export type QboFaultKind = 'auth' | 'stale' | 'duplicate' | 'validation' | 'throttle' | 'server' | 'other'

/**
 * One typed error for every QBO Fault, whether it came as an HTTP error,
 * an HTTP 200 with a `Fault` body, or the lower-case `fault.error` shape
 * the auth layer sends.
 */
export class QuickBooksError extends UpstreamError {
  constructor (
    status: number | null,
    readonly qboCode: string,
    readonly qboMessage: string,
    readonly detail: string,
    readonly kind: QboFaultKind,
    body: unknown
  ) {
    super('quickbooks', status, qboCode, `${qboMessage}${detail !== '' && detail !== qboMessage ? ` (${detail})` : ''} [${qboCode}]`, kind === 'server' || kind === 'throttle', null, body)
  }
}

/** Reads `Fault` / `fault` out of a body; null when there is none. */
export function faultOf (status: number | null, body: unknown): QuickBooksError | null {
  if (body === null || typeof body !== 'object') return null
  const b = body as Obj
  const fault = b.Fault ?? b.fault
  if (fault === undefined || fault === null) return null
  const errors = (fault.Error ?? fault.error ?? []) as Obj[]
  const first = errors[0] ?? {}
  const code = String(first.code ?? first.Code ?? '')
  const message = String(first.Message ?? first.message ?? fault.type ?? 'QuickBooks fault')
  const detail = String(first.Detail ?? first.detail ?? '')
  const type = String(fault.type ?? '')
  return new QuickBooksError(status, code, message, detail, kindOf(code, type, status), body)
}

function kindOf (code: string, type: string, status: number | null): QboFaultKind {
  if (code === '3200' || code === '120' || code === '3100' || /authentication/i.test(type) || status === 401) return 'auth'
  if (code === '5010') return 'stale'
  if (code === '6240' || code === '6140') return 'duplicate'
  if (code === '003001' || code === '3001' || status === 429) return 'throttle'
  if (code === '6210' || code === '610' || code === '2020' || code === '2050' || /validation/i.test(type)) return 'validation'
  if (status !== null && status >= 500) return 'server'
  return 'other'
}

export interface QboClientOptions {
  /** e.g. https://quickbooks.api.intuit.com/v3/company/ or the stand-in's apiBase. */
  apiBase: string
  realmId: string
  /** Current access token (refreshed by the connection service when near expiry). */
  accessToken: () => Promise<string>
  /** Forces a refresh after an auth fault; throws when the connection needs a person. */
  onAuthFault: () => Promise<void>
  budget?: CallBudget
  minorVersion?: number
  timeoutMs?: number
  attempts?: number
  sleep?: (ms: number) => Promise<void>
}

export interface QboClient {
  readonly realmId: string
  query: (statement: string) => Promise<Obj>
  read: (entity: string, id: string) => Promise<Obj>
  /** create or update (body has Id + SyncToken); requestId is sent on every attempt. */
  write: (entity: string, body: Obj, requestId: string) => Promise<Obj>
  batch: (items: Obj[], requestId: string) => Promise<Obj>
  cdc: (entities: readonly string[], since: Date) => Promise<Obj>
  calls: () => number
}

/**
 * The one request path for QuickBooks: a token from the realm's rate budget,
 * bearer auth, `requestid` on every write (the same one on every retry, so a
 * retry is answered from the first result), 429 → RetryLaterError(60 s),
 * 5xx/timeouts retried with backoff, an auth fault refreshes the token and
 * retries once, every Fault becomes a QuickBooksError.
 */
export function createQboClient (options: QboClientOptions): QboClient {
  const requester: Requester = createRequester({
    system: 'quickbooks',
    baseURL: `${options.apiBase.replace(/\/+$/, '')}/${encodeURIComponent(options.realmId)}`,
    headers: { accept: 'application/json' },
    timeoutMs: options.timeoutMs ?? 30_000,
    attempts: 1,
    budget: options.budget
  })
  const sleep = options.sleep ?? (async (ms: number) => { await new Promise(resolve => setTimeout(resolve, ms)) })
  const attempts = options.attempts ?? 4
  const minor = options.minorVersion ?? 75

  async function call (method: 'GET' | 'POST', url: string, params: Obj, data?: unknown, contentType = 'application/json'): Promise<Obj> {
    let refreshed = false
    for (let attempt = 1; ; attempt++) {
      const token = await options.accessToken()
      let status: number | null = null
      let body: unknown
      let error: unknown = null
      try {
        const res = await requester.request<Obj>({ method, url, params: { minorversion: minor, ...params }, data, headers: { authorization: `Bearer ${token}`, 'content-type': contentType } })
        status = res.status
        body = res.data
      } catch (e) {
        error = e
        if (e instanceof UpstreamError) { status = e.status; body = e.body }
      }
      const fault = faultOf(status, body) ?? (status === 401 ? new QuickBooksError(401, '3200', 'AuthenticationFailed', '', 'auth', body) : null)
      if (error === null && fault === null) return body as Obj
      if (status === 429 || fault?.kind === 'throttle') {
        // QBO says how long (the batch throttle frees within its minute); a blind minute otherwise.
        const waitMs = error instanceof UpstreamError && error.retryAfterMs !== null ? Math.min(60_000, Math.max(1000, error.retryAfterMs)) : 60_000
        throw new RetryLaterError(`QuickBooks rate limit reached for company ${options.realmId}; trying again in ${Math.ceil(waitMs / 1000)} s`, waitMs)
      }
      if (fault?.kind === 'auth' && !refreshed) {
        refreshed = true
        await options.onAuthFault()
        continue
      }
      const retryable = fault !== null ? fault.kind === 'server' : (error instanceof UpstreamError && error.retryable)
      if (retryable && attempt < attempts) { await sleep(backoffDelayMs(attempt, { baseMs: 500, capMs: 10_000 })); continue }
      throw fault ?? error
    }
  }

  return {
    realmId: options.realmId,
    async query (statement) { return await call('GET', '/query', { query: statement }) },
    async read (entity, id) { return await call('GET', `/${entity.toLowerCase()}/${encodeURIComponent(id)}`, {}) },
    async write (entity, body, requestId) { return await call('POST', `/${entity.toLowerCase()}`, { requestid: requestId }, body) },
    async batch (items, requestId) { return await call('POST', '/batch', { requestid: requestId }, { BatchItemRequest: items }) },
    async cdc (entities, since) { return await call('GET', '/cdc', { entities: entities.join(','), changedSince: since.toISOString() }) },
    calls: () => requester.calls()
  }
}
