import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'

export interface OAuthStateRow { tenantId: string, sandbox: boolean, moveRealm: boolean, startedBy: string, browserHash: string | null }

const toRow = (r: Record<string, any>): OAuthStateRow => ({ tenantId: r.tenant_id, sandbox: r.sandbox === true, moveRealm: r.move_realm === true, startedBy: r.started_by, browserHash: r.browser_hash ?? null })

export async function insertOAuthState (db: Db, input: { stateHash: string, tenantId: string, sandbox: boolean, moveRealm: boolean, startedBy: string, expiresAt: Date }): Promise<void> {
  await db('oauth_states').where('expires_at', '<', db.raw("now() - interval '1 day'")).delete()
  await db('oauth_states').insert({ state_hash: input.stateHash, tenant_id: requireTenantId(input.tenantId), sandbox: input.sandbox, move_realm: input.moveRealm, started_by: input.startedBy, expires_at: input.expiresAt })
}

/** Binds an unused, unexpired state to the first browser that opens it; null when there is no such state. */
export async function bindOAuthState (db: Db, stateHash: string, browserHash: string, now: Date): Promise<OAuthStateRow | null> {
  const [row] = await db('oauth_states').where({ state_hash: stateHash }).whereNull('browser_hash').whereNull('used_at').where('expires_at', '>', now)
    .update({ browser_hash: browserHash }).returning('*') as Array<Record<string, any>>
  return row === undefined ? null : toRow(row)
}

/** Locks an unused, unexpired state for the transaction that may consume it. */
export async function lockOAuthState (trx: Db, stateHash: string, now: Date): Promise<OAuthStateRow | null> {
  const row = await trx('oauth_states').where({ state_hash: stateHash }).whereNull('used_at').where('expires_at', '>', now).forUpdate().first() as Record<string, any> | undefined
  return row === undefined ? null : toRow(row)
}

export async function markOAuthStateUsed (trx: Db, stateHash: string): Promise<void> {
  await trx('oauth_states').where({ state_hash: stateHash }).update({ used_at: trx.fn.now() })
}
