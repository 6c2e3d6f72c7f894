import axios, { AxiosError, type AxiosInstance, type AxiosRequestConfig, type AxiosResponse } from 'axios'
import { backoffDelayMs } from '../jobs/backoff.js'
import type { CallBudget } from '../ports/psa.js'

export type UpstreamSystem = 'connectwise' | 'autotask' | 'stripe' | 'quickbooks' | 'smtp'

/**
 * Every failure talking to an outside system, typed the same way.
 * `code`: `http_<status>`, `timeout`, `network`, `malformed_response`,
 * `rate_limited`, or a vendor code when the body names one. `retryable`
 * says whether trying again later can help.
 */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError'
  constructor (
    readonly system: UpstreamSystem,
    readonly status: number | null,
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs: number | null = null,
    readonly body: unknown = undefined
  ) { super(`${system}: ${message}`) }
}

export interface RequesterOptions {
  system: UpstreamSystem
  baseURL: string
  /** Auth and version headers added to every call. */
  headers: Record<string, string>
  timeoutMs?: number
  /** Attempts for one call including the first (429, 5xx, timeouts, network). */
  attempts?: number
  /** Base and cap of the backoff between attempts when no Retry-After is given. */
  backoff?: { baseMs: number, capMs: number }
  /** Longest Retry-After we will sleep through inside one call; longer ones surface as retryable errors. */
  maxRetryAfterMs?: number
  budget?: CallBudget
  /** HTTP requests in flight at once through this requester (a retry's wait holds no slot); unbounded when absent. */
  maxInFlight?: number
  /** Pulls a readable message out of the vendor's error body. */
  describeError?: (body: unknown) => string | null
  sleep?: (ms: number) => Promise<void>
}

/** `attempts: 1` for a call that must not be repeated (a POST that creates). */
export type RequestConfig = AxiosRequestConfig & { attempts?: number }

export interface Requester {
  request: <T>(config: RequestConfig) => Promise<AxiosResponse<T>>
  calls: () => number
  readonly http: AxiosInstance
}

/** Retry-After is seconds or an HTTP date. */
export function parseRetryAfter (value: unknown, now = Date.now()): number | null {
  if (typeof value !== 'string' || value.trim() === '') return null
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000)
  const at = Date.parse(value)
  return Number.isNaN(at) ? null : Math.max(0, at - now)
}

/**
 * The one request function per adapter: adds auth headers, counts and
 * budgets calls, times out, retries 429/5xx/timeouts with backoff honouring
 * Retry-After, parses JSON strictly, and turns every failure into an
 * UpstreamError. Only idempotent calls should be retried; callers pass
 * `attempts: 1` in the request config for the rest.
 */
export function createRequester (options: RequesterOptions): Requester {
  const http = axios.create({
    baseURL: options.baseURL,
    timeout: options.timeoutMs ?? 30_000,
    headers: options.headers,
    // We parse ourselves so a malformed body becomes a typed error, not a string.
    responseType: 'text',
    transformResponse: [(data: unknown) => data],
    validateStatus: () => true,
    maxRedirects: 0
  })
  const sleep = options.sleep ?? (async (ms: number) => { await new Promise(resolve => setTimeout(resolve, ms)) })
  const backoff = options.backoff ?? { baseMs: 500, capMs: 10_000 }
  const limit = options.maxInFlight === undefined ? async <T>(fn: () => Promise<T>): Promise<T> => await fn() : createSemaphore(options.maxInFlight)
  let calls = 0

  const fail = (status: number | null, code: string, message: string, retryable: boolean, retryAfterMs: number | null = null, body?: unknown): UpstreamError =>
    new UpstreamError(options.system, status, code, message, retryable, retryAfterMs, body)

  async function once<T> (config: AxiosRequestConfig): Promise<AxiosResponse<T>> {
    await options.budget?.take(1)
    calls++
    let response: AxiosResponse<string>
    try {
      response = await limit(async () => await http.request<string>(config))
    } catch (error) {
      const e = error as AxiosError
      if (e.code === 'ECONNABORTED' || e.code === 'ETIMEDOUT') throw fail(null, 'timeout', `no answer within ${options.timeoutMs ?? 30_000} ms`, true)
      throw fail(null, 'network', e.message, true)
    }
    // Binary downloads (PDFs) come back as bytes; errors are still read as text.
    if (config.responseType === 'arraybuffer' && response.status >= 200 && response.status < 300) {
      return { ...response, data: Buffer.from(response.data as unknown as ArrayBuffer) as T }
    }
    const raw: unknown = response.data
    const text = typeof raw === 'string' ? raw : raw instanceof ArrayBuffer || Buffer.isBuffer(raw) ? Buffer.from(raw as ArrayBuffer).toString('utf8') : ''
    let body: unknown = text
    const isJson = /json/i.test(String(response.headers['content-type'] ?? '')) || /^\s*[[{]/.test(text)
    if (text !== '' && isJson) {
      try { body = JSON.parse(text) } catch {
        if (response.status < 400) throw fail(response.status, 'malformed_response', 'the response body is not valid JSON', false, null, text.slice(0, 500))
      }
    }
    if (response.status >= 200 && response.status < 300) return { ...response, data: body as T }
    const detail = options.describeError?.(body) ?? (typeof body === 'string' ? body.slice(0, 200) : `HTTP ${response.status}`)
    const retryAfter = parseRetryAfter(response.headers['retry-after'])
    if (response.status === 429) throw fail(429, 'rate_limited', detail, true, retryAfter, body)
    throw fail(response.status, `http_${response.status}`, detail, response.status >= 500 || response.status === 408, retryAfter, body)
  }

  async function request<T> (config: RequestConfig): Promise<AxiosResponse<T>> {
    const attempts = config.attempts ?? options.attempts ?? 4
    for (let attempt = 1; ; attempt++) {
      try {
        return await once<T>(config)
      } catch (error) {
        if (!(error instanceof UpstreamError) || !error.retryable || attempt >= attempts) throw error
        const wait = error.retryAfterMs ?? backoffDelayMs(attempt, backoff)
        if (wait > (options.maxRetryAfterMs ?? 60_000)) throw error
        await sleep(wait)
      }
    }
  }

  return { request, calls: () => calls, http }
}

/** At most `max` calls in flight; the rest wait in arrival order. */
export function createSemaphore (max: number): <T>(fn: () => Promise<T>) => Promise<T> {
  if (!Number.isInteger(max) || max < 1) throw new TypeError(`maxConcurrent must be a whole number of 1 or more; got ${String(max)}`)
  let active = 0
  const waiting: Array<() => void> = []
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= max) await new Promise<void>(resolve => waiting.push(resolve))
    else active++
    try {
      return await fn()
    } finally {
      // Hand the slot straight to the next waiter so a newcomer cannot jump the queue.
      const next = waiting.shift()
      if (next !== undefined) next()
      else active--
    }
  }
}
