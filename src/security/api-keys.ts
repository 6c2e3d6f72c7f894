import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Db } from '../db/knex.js'
import { isUuid, requireTenantId } from '../db/tenants.js'
import { AppError } from '../errors.js'

export const API_SCOPES = ['payments:read', 'payments:charge', 'payments:refund', 'autopay:approve', 'exceptions:resolve', 'accounting:connect', 'reconciliation:write'] as const
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
  const existing = await db('api_keys').where({ tenant_id: tenantId, name }).whereNull('revoked_at').first('id')
  if (existing !== undefined) throw new AppError('CONFLICT', `A key named "${name}" exists; revoke it first or choose another name.`)
  const [row] = await db('api_keys').insert({ tenant_id: tenantId, name, secret_hash: hash(secret), scopes: [...new Set(scopes)] }).returning('id') as Array<{ id: string }>
  const id = (row as { id: string }).id
  return { id, key: `${PREFIX}${id}_${secret}` }
}

export async function revokeApiKey (db: Db, tenantId: string, keyId: string): Promise<void> {
  const n = await db('api_keys').where({ tenant_id: requireTenantId(tenantId), id: keyId }).whereNull('revoked_at').update({ revoked_at: db.fn.now() })
  if (n === 0) throw new AppError('VALIDATION_FAILED', 'No active key with that id.')
}

/** The tenant and scopes behind a bearer key; one error for every way a key can be wrong. */
export async function authenticateApiKey (db: Db, presented: string | undefined): Promise<ApiPrincipal> {
  const refused = new AppError('UNAUTHENTICATED', 'Send a valid Settle API key as "Authorization: Bearer settle_sk_…".')
  const match = /^Bearer (settle_sk_([0-9a-f-]{36})_([\w-]{43}))$/.exec(presented ?? '')
  if (match === null || !isUuid(match[2])) throw refused
  const row = await db('api_keys').where({ id: match[2] }).whereNull('revoked_at').first('id', 'tenant_id', 'name', 'secret_hash', 'scopes') as { id: string, tenant_id: string, name: string, secret_hash: Buffer | Uint8Array, scopes: ApiScope[] } | undefined
  if (row === undefined || !timingSafeEqual(Buffer.from(row.secret_hash), hash(match[3] as string))) throw refused
  await db('api_keys').where({ id: row.id }).update({ last_used_at: db.fn.now() })
  return { tenantId: row.tenant_id, keyId: row.id, name: row.name, scopes: row.scopes }
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
