import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { AppError } from '../errors.js'
import type { Keyring } from './keyring.js'

/**
 * Sessions for pages framed inside a PSA. Third-party iframes lose cookies
 * in most browsers (and Partitioned cookies are not universal), so the
 * session is a signed token: the server puts it in the page after the member
 * is verified, our script sends it as `X-Settle-Session` on every request.
 * It names tenant, PSA, member and permissions and expires in 15 minutes;
 * the HMAC key is derived from the key ring (HKDF), like pay links.
 *
 * CSRF: each state-changing request also carries `X-CSRF-Token`, an HMAC of
 * the session's nonce under a separate derived key, so a token lifted from
 * one session is useless in another and a forged form (which cannot set
 * headers) carries neither.
 */
export type EmbeddedPermission = 'view' | 'charge' | 'sync' | 'paylink'
export const EMBEDDED_PERMISSIONS: readonly EmbeddedPermission[] = ['view', 'charge', 'sync', 'paylink']
export type EmbeddedSystem = 'connectwise' | 'autotask'

/** What a signed LiveLink opened: one Autotask invoice, or one company and its invoices. */
export interface LinkScope { kind: 'invoice' | 'company', record: string }

export interface EmbeddedSession {
  tenantId: string
  system: EmbeddedSystem
  /** `cw:<member id>`, `at:livelink`, or `api:<key name>`. */
  member: string
  permissions: EmbeddedPermission[]
  expiresAt: Date
  /** When the member was last proven (handshake, signed link or sign-in); renewals keep it. */
  signedInAt: Date
  nonce: string
  /** Set for a session a signed LiveLink issued: it reaches only that record. Staff sessions reach the tenant. */
  scope?: LinkScope
  /** For a LiveLink session: which LiveLink key signed the link (a fingerprint), so a rotation ends its renewals. */
  linkKey?: string
}

export const SESSION_TTL_MS = 15 * 60_000
/** A page left open renews its session; after this long the member must be proven again. */
export const SIGN_IN_MAX_AGE_MS = 12 * 3_600_000
export const SESSION_HEADER = 'x-settle-session'
export const CSRF_HEADER = 'x-csrf-token'

const b64 = (buf: Buffer): string => buf.toString('base64url')

const equal = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b)

export function issueSession (keyring: Keyring, input: Omit<EmbeddedSession, 'expiresAt' | 'nonce' | 'signedInAt'> & { signedInAt?: Date }, now = new Date()): { token: string, csrf: string, session: EmbeddedSession } {
  const session: EmbeddedSession = { ...input, signedInAt: input.signedInAt ?? now, expiresAt: new Date(now.getTime() + SESSION_TTL_MS), nonce: b64(randomBytes(12)) }
  const payload = Buffer.from(JSON.stringify({
    t: session.tenantId, s: session.system, m: session.member, p: session.permissions, e: Math.floor(session.expiresAt.getTime() / 1000), a: Math.floor(session.signedInAt.getTime() / 1000), n: session.nonce,
    ...(session.scope !== undefined ? { r: [session.scope.kind, session.scope.record] } : {}), ...(session.linkKey !== undefined ? { k: session.linkKey } : {})
  }))
  const keyId = keyring.activeKeyId
  const mac = createHmac('sha256', keyring.derivedKey(keyId, 'embedded-sessions v1')).update(payload).digest()
  return { token: `${b64(payload)}.${keyId}.${b64(mac)}`, csrf: csrfFor(keyring, keyId, session.nonce), session }
}

function csrfFor (keyring: Keyring, keyId: string, nonce: string): string {
  return `${keyId}.${b64(createHmac('sha256', keyring.derivedKey(keyId, 'embedded-csrf v1')).update(nonce).digest())}`
}

/** The answer for any session that is missing, forged, expired or may not be renewed. */
export const sessionEnded = (): AppError => new AppError('UNAUTHENTICATED', 'Your session inside the PSA has ended. Reload the screen to sign in again.')

// A page sends the same token on every request for up to 15 minutes: its MAC is checked once per process.
const verifiedTokens = new WeakMap<Keyring, Map<string, EmbeddedSession>>()
const VERIFIED_TOKENS_MAX = 10_000

export function verifySession (keyring: Keyring, token: unknown, now = new Date()): EmbeddedSession {
  if (typeof token !== 'string') throw sessionEnded()
  let verified = verifiedTokens.get(keyring)
  if (verified === undefined) { verified = new Map(); verifiedTokens.set(keyring, verified) }
  const known = verified.get(token)
  if (known !== undefined) {
    if (known.expiresAt <= now) throw sessionEnded()
    return known
  }
  // Shared by every request that presents the token, so nobody may change it.
  const session = Object.freeze(checkSessionToken(keyring, token, now))
  Object.freeze(session.permissions)
  if (verified.size >= VERIFIED_TOKENS_MAX) verified.clear()
  verified.set(token, session)
  return session
}

function checkSessionToken (keyring: Keyring, token: string, now: Date): EmbeddedSession {
  const [payloadText, keyId, macText] = token.split('.')
  if (payloadText === undefined || keyId === undefined || macText === undefined || !keyring.hasKey(keyId)) throw sessionEnded()
  const payload = Buffer.from(payloadText, 'base64url')
  if (!equal(Buffer.from(macText, 'base64url'), createHmac('sha256', keyring.derivedKey(keyId, 'embedded-sessions v1')).update(payload).digest())) throw sessionEnded()
  let p: { t?: unknown, s?: unknown, m?: unknown, p?: unknown, e?: unknown, a?: unknown, n?: unknown, r?: unknown, k?: unknown }
  try { p = JSON.parse(payload.toString('utf8')) as typeof p } catch { throw sessionEnded() }
  if (typeof p.t !== 'string' || (p.s !== 'connectwise' && p.s !== 'autotask') || typeof p.m !== 'string' || !Array.isArray(p.p) || typeof p.e !== 'number' || typeof p.a !== 'number' || typeof p.n !== 'string') throw sessionEnded()
  const expiresAt = new Date(p.e * 1000)
  if (expiresAt <= now) throw sessionEnded()
  const scope = scopeOf(p.r)
  if (p.r !== undefined && scope === undefined) throw sessionEnded()
  return {
    tenantId: p.t, system: p.s, member: p.m, permissions: p.p.filter((x): x is EmbeddedPermission => (EMBEDDED_PERMISSIONS as readonly unknown[]).includes(x)), expiresAt, signedInAt: new Date(p.a * 1000), nonce: p.n,
    ...(scope !== undefined ? { scope } : {}), ...(typeof p.k === 'string' ? { linkKey: p.k } : {})
  }
}

function scopeOf (value: unknown): LinkScope | undefined {
  if (!Array.isArray(value) || value.length !== 2) return undefined
  const [kind, record] = value as unknown[]
  return (kind === 'invoice' || kind === 'company') && typeof record === 'string' ? { kind, record } : undefined
}

/** Throws FORBIDDEN unless the CSRF token belongs to this session. */
export function checkCsrf (keyring: Keyring, token: string, session: EmbeddedSession, presented: unknown): void {
  const keyId = token.split('.')[1] ?? ''
  if (typeof presented !== 'string' || !keyring.hasKey(keyId) || !equal(Buffer.from(presented), Buffer.from(csrfFor(keyring, keyId, session.nonce)))) {
    throw new AppError('FORBIDDEN', 'This request is missing its security token. Reload the screen and try again.')
  }
}

export function requirePermission (session: EmbeddedSession, permission: EmbeddedPermission): void {
  if (!session.permissions.includes(permission)) {
    throw new AppError('FORBIDDEN', permission === 'charge'
      ? 'You are not allowed to charge cards for this company. Ask a Settle admin to grant you "charge".'
      : permission === 'paylink'
        ? 'You are not allowed to create pay links. Ask a Settle admin to grant you "paylink".'
        : `You are not allowed to ${permission} here. Ask a Settle admin to grant you "${permission}".`)
  }
}

/**
 * LiveLinks: `exp` and `sig` in the query, an HMAC over tenant, kind, record
 * and expiry with the tenant's own LiveLink key (kept with putSecret).
 */
export function signLiveLink (key: string, input: { tenantSlug: string, kind: string, recordId: string, expiresAt: Date }): { exp: number, sig: string } {
  const exp = Math.floor(input.expiresAt.getTime() / 1000)
  return { exp, sig: b64(createHmac('sha256', key).update(`${input.tenantSlug}\n${input.kind}\n${input.recordId}\n${exp}`).digest()) }
}

/** Names a LiveLink key without revealing it: sessions carry it, renewals compare it with the current key. */
export function liveLinkKeyFingerprint (key: string): string {
  return b64(createHmac('sha256', key).update('livelink-session v1').digest().subarray(0, 12))
}

export function liveLinkValid (key: string, input: { tenantSlug: string, kind: string, recordId: string, exp: unknown, sig: unknown }, now = new Date()): boolean {
  const exp = Number(input.exp)
  if (!Number.isSafeInteger(exp) || exp * 1000 <= now.getTime() || typeof input.sig !== 'string') return false
  const expected = signLiveLink(key, { ...input, expiresAt: new Date(exp * 1000) }).sig
  return equal(Buffer.from(input.sig), Buffer.from(expected))
}
