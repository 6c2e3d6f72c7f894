import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'

/** Writes who did what; in the same transaction as the change where there is one. */
export async function audit (db: Db, tenantId: string, actor: string, action: string, subject: string | null, detail: Record<string, unknown> = {}): Promise<void> {
  requireTenantId(tenantId)
  await db('audit_log').insert({ tenant_id: tenantId, actor, action, subject, detail: JSON.stringify(detail) })
}
