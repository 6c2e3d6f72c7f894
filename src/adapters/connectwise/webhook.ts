import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { createRequester, UpstreamError, type Requester } from '../http.js'

/** A callback we refuse: bad shape, or a key URL that is not ConnectWise's. */
export class ConnectWiseCallbackError extends Error {
  override readonly name = 'ConnectWiseCallbackError'
  constructor (readonly code: 'invalid_callback' | 'key_url_not_allowed' | 'signing_key_unavailable', message: string) { super(message) }
}

/**
 * `x-content-signature` = base64(HMAC-SHA256(key = SHA-256 digest bytes of
 * the signing key, message = the raw body)). Compared in constant time.
 */
export function verifyConnectWiseSignature ({ rawBody, signature, signingKey }: { rawBody: Buffer, signature: string | undefined, signingKey: string }): boolean {
  if (typeof signature !== 'string' || signature === '' || signingKey === '') return false
  const key = createHash('sha256').update(signingKey, 'utf8').digest()
  const expected = Buffer.from(createHmac('sha256', key).update(rawBody).digest('base64'), 'utf8')
  const given = Buffer.from(signature.trim(), 'utf8')
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** The signature a ConnectWise server would send (stand-in and tests). */
export function signConnectWiseBody (rawBody: Buffer | string, signingKey: string): string {
  const key = createHash('sha256').update(signingKey, 'utf8').digest()
  return createHmac('sha256', key).update(rawBody).digest('base64')
}

export interface ConnectWiseCallback {
  action: string
  companyId: string
  entityId: number
  /** The record as ConnectWise sent it (Entity is a JSON string); null when absent or unreadable. */
  entity: unknown
  keyUrl: string
  type: string | null
  memberId: string | null
}

/** Delivery body `{Action, CompanyId, Entity, FromUrl, ID, MemberId, Metadata:{key_url}, Type}`. */
export function parseCallback (rawBody: Buffer | string): ConnectWiseCallback {
  let body: unknown
  try { body = JSON.parse(rawBody.toString()) } catch {
    throw new ConnectWiseCallbackError('invalid_callback', 'The callback body is not JSON.')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ConnectWiseCallbackError('invalid_callback', 'The callback body is not an object.')
  const b = body as Record<string, unknown>
  const text = (name: string): string => {
    const value = b[name]
    if (typeof value === 'string' && value !== '') return value
    if (typeof value === 'number' && Number.isFinite(value)) return String(value)
    throw new ConnectWiseCallbackError('invalid_callback', `The callback has no ${name}.`)
  }
  const action = text('Action')
  const companyId = text('CompanyId')
  const entityId = Number(text('ID'))
  if (!Number.isSafeInteger(entityId) || entityId <= 0) throw new ConnectWiseCallbackError('invalid_callback', 'The callback ID is not a record id.')
  const metadata = b.Metadata
  const keyUrl = typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>).key_url : undefined
  if (typeof keyUrl !== 'string' || keyUrl === '') throw new ConnectWiseCallbackError('invalid_callback', 'The callback has no Metadata.key_url.')
  let entity: unknown = null
  if (typeof b.Entity === 'string' && b.Entity !== '') {
    try { entity = JSON.parse(b.Entity) } catch { entity = null }
  } else if (typeof b.Entity === 'object' && b.Entity !== null) {
    entity = b.Entity
  }
  return {
    action,
    companyId,
    entityId,
    entity,
    keyUrl,
    type: typeof b.Type === 'string' ? b.Type : null,
    memberId: typeof b.MemberId === 'string' || typeof b.MemberId === 'number' ? String(b.MemberId) : null
  }
}

export const CONNECTWISE_HOST_SUFFIXES = ['.myconnectwise.net', '.connectwisedev.com'] as const

export interface SigningKeyFetcherOptions {
  /** Hosts ending in one of these (https only) may serve keys. Default: ConnectWise cloud and staging. */
  allowedHostSuffixes?: readonly string[]
  /** Exact origins also allowed, e.g. the sandbox stand-in's http://127.0.0.1:PORT. */
  extraAllowedOrigins?: readonly string[]
  ttlMs?: number
  timeoutMs?: number
  now?: () => number
  sleep?: (ms: number) => Promise<void>
}

export interface SigningKeyFetcher {
  isAllowed: (keyUrl: string) => boolean
  /** The signing key behind `keyUrl`, cached per URL for ttlMs. */
  getSigningKey: (keyUrl: string) => Promise<string>
  calls: () => number
}

/**
 * Fetches `Metadata.key_url` only from ConnectWise: the URL arrives in an
 * unauthenticated body, so fetching anywhere else would let a caller pick
 * the key that "verifies" its own forgery (and probe our network).
 */
export function createSigningKeyFetcher (options: SigningKeyFetcherOptions = {}): SigningKeyFetcher {
  const suffixes = (options.allowedHostSuffixes ?? CONNECTWISE_HOST_SUFFIXES).map(s => s.toLowerCase())
  const origins = new Set((options.extraAllowedOrigins ?? []).map(o => new URL(o).origin))
  const ttlMs = options.ttlMs ?? 60 * 60_000
  const now = options.now ?? Date.now
  const cache = new Map<string, { key: Promise<string>, expires: number }>()
  const requester: Requester = createRequester({
    system: 'connectwise',
    baseURL: '',
    headers: { Accept: 'application/json' },
    timeoutMs: options.timeoutMs ?? 10_000,
    attempts: 2,
    ...(options.sleep !== undefined ? { sleep: options.sleep } : {})
  })

  function isAllowed (keyUrl: string): boolean {
    let url: URL
    try { url = new URL(keyUrl) } catch { return false }
    if (url.username !== '' || url.password !== '') return false
    if (origins.has(url.origin)) return true
    if (url.protocol !== 'https:' || url.port !== '') return false
    const host = url.hostname.toLowerCase()
    return suffixes.some(suffix => suffix.startsWith('.') && host.endsWith(suffix) && host.length > suffix.length)
  }

  async function fetchKey (keyUrl: string): Promise<string> {
    let response
    try { response = await requester.request<unknown>({ method: 'GET', url: keyUrl }) } catch (error) {
      if (error instanceof UpstreamError) throw new ConnectWiseCallbackError('signing_key_unavailable', `Could not fetch the signing key: ${error.message}`)
      throw error
    }
    const key = (response.data as { signing_key?: unknown } | null)?.signing_key
    if (typeof key !== 'string' || key === '') throw new ConnectWiseCallbackError('signing_key_unavailable', 'The key URL did not return a signing_key.')
    return key
  }

  async function getSigningKey (keyUrl: string): Promise<string> {
    if (!isAllowed(keyUrl)) throw new ConnectWiseCallbackError('key_url_not_allowed', 'The callback key URL is not on a ConnectWise host.')
    const hit = cache.get(keyUrl)
    if (hit !== undefined && hit.expires > now()) return await hit.key
    const key = fetchKey(keyUrl)
    cache.set(keyUrl, { key, expires: now() + ttlMs })
    // A failed fetch must not be cached.
    key.catch(() => { if (cache.get(keyUrl)?.key === key) cache.delete(keyUrl) })
    return await key
  }

  return { isAllowed, getSigningKey, calls: () => requester.calls() }
}
