import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Db } from '../db/knex.js'
import { isUuid, requireTenantId } from '../db/tenants.js'
import { activeKeyById, activeKeyNamed, insertApiKey, listApiKeys, markKeyRevoked, noteKeyUsed, type ApiKeyListing } from '../db/api-keys.js'
import { AppError } from '../errors.js'

export const API_SCOPES = ['payments:read', 'payments:charge', 'payments:refund', 'paylinks:write', 'autopay:approve', 'exceptions:resolve', 'accounting:connect', 'reconciliation:write', 'api-keys:manage'] as const
export type ApiScope = typeof API_SCOPES[number]

export interface ApiPrincipal { tenantId: string, keyId: string, name: string, scopes: ApiScope[] }

declare module 'fastify' {
  interface FastifyRequest { principal?: ApiPrincipal }
}

const PREFIX = 'settle_sk_'
const hash = (secret: string): Buffer => createHash('sha256').update(secret).digest()

/**
 * Creates a key and returns it once: `settle_sk_<key id>_<secret>`. Only the
 * secret's hash is stored; a lost key is revoked and replaced, never shown
 * again.
 */
export async function createApiKey (db: Db, tenantId: string, name: string, scopes: readonly string[]): Promise<{ id: string, key: string }> {
  requireTenantId(tenantId)
  if (!/^[\w .-]{1,60}$/.test(name)) throw new AppError('VALIDATION_FAILED', 'Name the key with 1 to 60 letters, digits, spaces, dots or dashes.')
  const unknown = scopes.filter(s => !(API_SCOPES as readonly string[]).includes(s))
  if (scopes.length === 0 || unknown.length > 0) throw new AppError('VALIDATION_FAILED', `Scopes must be some of ${API_SCOPES.join(', ')}${unknown.length > 0 ? `; unknown: ${unknown.join(', ')}` : ''}.`)
  const secret = randomBytes(32).toString('base64url')
  if (await activeKeyNamed(db, tenantId, name) !== undefined) throw new AppError('CONFLICT', `A key named "${name}" exists; revoke it first or choose another name.`)
  const id = await insertApiKey(db, tenantId, name, hash(secret), [...new Set(scopes)])
  return { id, key: `${PREFIX}${id}_${secret}` }
}

export async function listKeys (db: Db, tenantId: string): Promise<ApiKeyListing[]> {
  return await listApiKeys(db, tenantId)
}

/** Revokes a key at once: the next request with it is refused. Returns the key's name. */
export async function revokeApiKey (db: Db, tenantId: string, keyId: unknown): Promise<string> {
  const name = isUuid(keyId) ? await markKeyRevoked(db, tenantId, keyId) : null
  if (name === null) throw new AppError('API_KEY_NOT_FOUND', 'No active key with that id in this tenant; list them with api-keys:list.')
  return name
}

/** Last use is a hint for people deciding what to revoke: minute precision is enough, and spares a write per request. */
const LAST_USED_EVERY_MS = 60_000
const lastNoted = new Map<string, number>()
const LAST_NOTED_MAX = 10_000

/** The tenant and scopes behind a bearer key; one error for every way a key can be wrong. Revocation is read on every call. */
export async function authenticateApiKey (db: Db, presented: string | undefined, now = new Date()): Promise<ApiPrincipal> {
  const refused = new AppError('UNAUTHENTICATED', 'Send a valid Settle API key as "Authorization: Bearer settle_sk_…".')
  const match = /^Bearer (settle_sk_([0-9a-f-]{36})_([\w-]{43}))$/.exec(presented ?? '')
  if (match === null || !isUuid(match[2])) throw refused
  const row = await activeKeyById(db, match[2])
  if (row === undefined || !timingSafeEqual(Buffer.from(row.secret_hash), hash(match[3] as string))) throw refused
  const noted = lastNoted.get(row.id)
  if (noted === undefined || now.getTime() - noted >= LAST_USED_EVERY_MS) {
    if (lastNoted.size >= LAST_NOTED_MAX) lastNoted.clear()
    lastNoted.set(row.id, now.getTime())
    await noteKeyUsed(db, row.id, now, LAST_USED_EVERY_MS)
  }
  return { tenantId: row.tenant_id, keyId: row.id, name: row.name, scopes: row.scopes as ApiScope[] }
}

export function requireScope (principal: ApiPrincipal, scope: ApiScope): void {
  if (!principal.scopes.includes(scope)) throw new AppError('FORBIDDEN', `This key may not do that: it needs the "${scope}" scope.`)
}

/**
 * Guards every route of an (encapsulated) admin API plugin with the bearer
 * key, and returns the per-route scope check and the audit actor name.
 */
export function guardWithApiKeys (app: FastifyInstance): { who: (request: FastifyRequest, scope: ApiScope) => ApiPrincipal, actor: (principal: ApiPrincipal) => string } {
  app.addHook('onRequest', async request => {
    request.principal = await authenticateApiKey(app.db, request.headers.authorization)
  })
  return {
    who: (request, scope) => {
      const principal = request.principal as ApiPrincipal
      requireScope(principal, scope)
      return principal
    },
    actor: principal => `api:${principal.name}`
  }
}
