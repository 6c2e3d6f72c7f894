import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'

export interface ApiKeyRow { id: string, tenant_id: string, name: string, secret_hash: Buffer | Uint8Array, scopes: string[] }
export interface ApiKeyListing { id: string, name: string, scopes: string[], createdAt: Date, lastUsedAt: Date | null, revokedAt: Date | null }

export async function activeKeyNamed (db: Db, tenantId: string, name: string): Promise<{ id: string, scopes: string[] } | undefined> {
  return await db('api_keys').where({ tenant_id: requireTenantId(tenantId), name }).whereNull('revoked_at').first('id', 'scopes') as { id: string, scopes: string[] } | undefined
}

export async function insertApiKey (db: Db, tenantId: string, name: string, secretHash: Buffer, scopes: readonly string[]): Promise<string> {
  const [row] = await db('api_keys').insert({ tenant_id: requireTenantId(tenantId), name, secret_hash: secretHash, scopes: [...scopes] }).returning('id') as Array<{ id: string }>
  return (row as { id: string }).id
}

/** An active key by id, with what authentication needs; a revoked key is not found. */
export async function activeKeyById (db: Db, id: string): Promise<ApiKeyRow | undefined> {
  return await db('api_keys').where({ id }).whereNull('revoked_at').first('id', 'tenant_id', 'name', 'secret_hash', 'scopes') as ApiKeyRow | undefined
}

/** Notes a use unless one was noted within the last `everyMs` (so a busy key is not a write per request, in any process). */
export async function noteKeyUsed (db: Db, id: string, now: Date, everyMs: number): Promise<void> {
  await db('api_keys').where({ id }).where(q => { void q.whereNull('last_used_at').orWhere('last_used_at', '<', new Date(now.getTime() - everyMs)) }).update({ last_used_at: now })
}

export async function listApiKeys (db: Db, tenantId: string): Promise<ApiKeyListing[]> {
  const rows = await db('api_keys').where({ tenant_id: requireTenantId(tenantId) }).orderBy([{ column: 'revoked_at', order: 'desc', nulls: 'first' }, 'name'])
    .select('id', 'name', 'scopes', 'created_at', 'last_used_at', 'revoked_at') as Array<{ id: string, name: string, scopes: string[], created_at: Date, last_used_at: Date | null, revoked_at: Date | null }>
  return rows.map(r => ({ id: r.id, name: r.name, scopes: r.scopes, createdAt: r.created_at, lastUsedAt: r.last_used_at, revokedAt: r.revoked_at }))
}

/** Revokes an active key of the tenant; its name, or null when there is none. */
export async function markKeyRevoked (db: Db, tenantId: string, id: string): Promise<string | null> {
  const [row] = await db('api_keys').where({ tenant_id: requireTenantId(tenantId), id }).whereNull('revoked_at').update({ revoked_at: db.fn.now() }).returning('name') as Array<{ name: string }>
  return row?.name ?? null
}
