import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyRequest, RouteOptions } from 'fastify'
import { AppError } from '../errors.js'
import { postgresRateLimitStore } from '../db/rate-limits.js'
import { isUuid } from '../db/tenants.js'
import { SESSION_HEADER } from '../security/embedded-sessions.js'

/**
 * Requests a stranger can send without credentials, or to guess them, per
 * client address and tenant per minute. An MSP's office is often one address
 * for all its technicians, and every ConnectWise pod on a screen signs in on
 * load (three or four a screen), so sign-in and session limits leave room
 * for a busy office; a script hammering one tenant still meets them. The
 * credentials themselves (256-bit keys, HMAC links, ConnectWise's own check)
 * are not guessable at any rate: these limits bound load and writes.
 */
export const RATE_LIMITS = {
  signIn: { max: 120, timeWindow: 60_000 },
  session: { max: 120, timeWindow: 60_000 },
  pay: { max: 60, timeWindow: 60_000 }
} as const

type LimitName = keyof typeof RATE_LIMITS

/** Which routes are limited, in one place for review. */
function limitFor (route: Pick<RouteOptions, 'url' | 'method'>): LimitName | null {
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  if (methods.includes('POST') && (route.url === '/embedded/cw/session' || route.url === '/embedded/autotask/sign-in')) return 'signIn'
  if (route.url === '/embedded/:psa/session/renew') return 'session'
  // Opening a signed LiveLink issues a session.
  if (methods.includes('GET') && route.url === '/embedded/autotask/:surface') return 'session'
  if (route.url.startsWith('/pay/')) return 'pay'
  return null
}

const SLUG = /^[a-z0-9-]{1,64}$/

/** The tenant a request claims (unverified: it only picks the counter), or '-' when it names none in a usable form. */
function claimedTenant (request: FastifyRequest): string {
  const query = request.query as Record<string, unknown> | undefined
  const body = request.body as Record<string, unknown> | undefined
  const slug = query?.tenant ?? (typeof body === 'object' && body !== null ? body.tenant : undefined)
  if (typeof slug === 'string' && SLUG.test(slug)) return slug
  // Pay tokens and session tokens carry the tenant id in their (signed) payload.
  const token = (request.params as Record<string, unknown> | undefined)?.token ?? request.headers[SESSION_HEADER]
  if (typeof token === 'string') {
    try {
      const t = (JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { t?: unknown }).t
      if (isUuid(t)) return t
    } catch { /* not a session token: keyed by address instead */ }
  }
  return '-'
}

export default fp(async app => {
  app.addHook('onRoute', route => {
    const name = limitFor(route)
    if (name === null || route.config?.rateLimit !== undefined) return
    route.config = { ...(route.config ?? {}), rateLimit: { ...RATE_LIMITS[name], groupId: name } }
  })
  await app.register(rateLimit, {
    global: false,
    // After parsing: sign-in forms name their tenant in the body.
    hook: 'preHandler',
    store: postgresRateLimitStore(app.db) as never,
    keyGenerator: request => `${request.ip}|${claimedTenant(request)}`,
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    errorResponseBuilder: (_request, context) => new AppError('RATE_LIMITED', `Too many attempts from your address. Wait ${context.after} and try again.`)
  })
}, { name: 'settle-rate-limits', dependencies: ['settle-db'] })
