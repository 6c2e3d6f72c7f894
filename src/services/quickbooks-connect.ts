import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Knex } from 'knex'
import { AppError } from '../errors.js'
import { bindOAuthState, insertOAuthState, lockOAuthState, markOAuthStateUsed, type OAuthStateRow } from '../db/oauth-states.js'

/**
 * The QuickBooks OAuth `state`, single-use and bound to whoever started the
 * flow. Starting (an admin key or a PSA session) stores the state's hash;
 * the person then opens the begin link in their browser, which binds the
 * state to a random cookie and goes on to Intuit. The callback is accepted
 * once, within ten minutes, and only with that cookie: a state lifted from a
 * URL or log is useless elsewhere and after its first use.
 */
export const STATE_TTL_MS = 10 * 60_000
export const BROWSER_COOKIE = 'settle_qbo_oauth'

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex')
const invalid = (): AppError => new AppError('VALIDATION_FAILED', 'This QuickBooks connection link is not valid, was already used or has expired; start connecting again from Settle.')

export async function startConnect (db: Knex, input: { tenantId: string, sandbox: boolean, moveRealm: boolean, startedBy: string }, now = new Date()): Promise<string> {
  const state = randomBytes(32).toString('base64url')
  await insertOAuthState(db, { ...input, stateHash: sha256(state), expiresAt: new Date(now.getTime() + STATE_TTL_MS) })
  return state
}

/** The begin link, opened in the browser that will come back: returns the cookie to set, and the flow's target. */
export async function bindBrowser (db: Knex, state: unknown, now = new Date()): Promise<{ cookie: string, flow: OAuthStateRow }> {
  if (typeof state !== 'string' || state.length > 100) throw invalid()
  const cookie = randomBytes(32).toString('base64url')
  const flow = await bindOAuthState(db, sha256(state), sha256(cookie), now)
  if (flow === null) throw invalid()
  return { cookie, flow }
}

/**
 * Consumes the state in one transaction if the browser's cookie is the one
 * that began it; a wrong or missing cookie consumes nothing (the person who
 * started can still finish).
 */
export async function consumeState (db: Knex, state: unknown, cookie: string | undefined, now = new Date()): Promise<OAuthStateRow> {
  if (typeof state !== 'string' || state.length > 100) throw invalid()
  return await db.transaction(async trx => {
    const flow = await lockOAuthState(trx, sha256(state), now)
    if (flow === null) throw invalid()
    const expected = Buffer.from(flow.browserHash ?? '', 'hex')
    const given = Buffer.from(sha256(cookie ?? ''), 'hex')
    if (flow.browserHash === null || cookie === undefined || expected.length !== given.length || !timingSafeEqual(expected, given)) {
      throw new AppError('FORBIDDEN', 'This QuickBooks connection was started in another browser. Finish it there, or start connecting again here.')
    }
    await markOAuthStateUsed(trx, sha256(state))
    return flow
  })
}

/** The cookie from a Cookie header, if present. */
export function cookieOf (header: string | undefined, name = BROWSER_COOKIE): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === name) return v.join('=')
  }
  return undefined
}
