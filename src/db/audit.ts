import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'

/**
 * Audit rows may hold what a stranger sent (a refused sign-in's claimed
 * member): every one is bounded, so a refusal can never be a large write.
 */
const MAX_TEXT = 200
const MAX_STRING_IN_DETAIL = 500
const MAX_DETAIL_JSON = 2_000

// PostgreSQL stores no NUL in text or jsonb; other control characters only garble a log reader.
// eslint-disable-next-line no-control-regex -- matching control characters is the point: they are stripped from audit text
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g

function cut (value: string, max: number): string {
  const clean = value.replace(CONTROL, '')
  return clean.length <= max ? clean : `${clean.slice(0, max - 1)}…`
}

function boundedValue (value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return cut(value, MAX_STRING_IN_DETAIL)
  if (value === null || typeof value !== 'object' || value instanceof Date) return value
  if (depth > 4) return '[nested too deep]'
  if (Array.isArray(value)) return value.slice(0, 50).map(v => boundedValue(v, depth + 1))
  return Object.fromEntries(Object.entries(value).slice(0, 50).map(([k, v]) => [cut(k, 100), boundedValue(v, depth + 1)]))
}

function boundedDetail (detail: Record<string, unknown>): string {
  const json = JSON.stringify(boundedValue(detail))
  return json.length <= MAX_DETAIL_JSON ? json : JSON.stringify({ truncated: true, preview: json.slice(0, MAX_DETAIL_JSON - 100) })
}

/** Writes who did what; in the same transaction as the change where there is one. */
export async function audit (db: Db, tenantId: string, actor: string, action: string, subject: string | null, detail: Record<string, unknown> = {}): Promise<void> {
  requireTenantId(tenantId)
  await db('audit_log').insert({ tenant_id: tenantId, actor: cut(actor, MAX_TEXT), action: cut(action, MAX_TEXT), subject: subject === null ? null : cut(subject, MAX_TEXT), detail: boundedDetail(detail) })
}
