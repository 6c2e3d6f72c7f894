import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'
import type { Money } from '../domain/money.js'

/**
 * The exception queue: everything reconciliation could not settle on its
 * own. Producers (matching, posting dead letters, the tie-out) raise a
 * finding under a dedupe key; raising it again while it is open refreshes
 * its details, and raising it after a person closed it changes nothing, so
 * a daily job never re-opens what someone already dealt with.
 */
export type ExceptionKind = 'unmatched_payment' | 'ambiguous_match' | 'posting_failed' | 'tieout_difference' | 'mapping_needed'
export type ExceptionStatus = 'open' | 'resolved' | 'dismissed'

export interface ExceptionSuggestion {
  rank: number
  /** 0..1 */
  confidence: number
  invoiceIds: string[]
  /** Cents per invoice, in the order of invoiceIds. */
  amounts: number[]
  reasons: string[]
}

export interface ReconciliationException {
  id: string
  tenantId: string
  kind: ExceptionKind
  dedupeKey: string
  customerId: string | null
  invoiceId: string | null
  amount: Money | null
  summary: string
  likelyCause: string | null
  suggestedRepair: string | null
  details: Record<string, unknown>
  suggestions: ExceptionSuggestion[]
  status: ExceptionStatus
  resolution: string | null
  resolvedBy: string | null
  resolvedAt: Date | null
  createdAt: Date
  updatedAt: Date
}

export interface RaiseInput {
  kind: ExceptionKind
  dedupeKey: string
  customerId?: string | null
  invoiceId?: string | null
  amount?: Money | null
  summary: string
  likelyCause?: string | null
  suggestedRepair?: string | null
  details?: Record<string, unknown>
  suggestions?: ExceptionSuggestion[]
}

interface ExceptionRow {
  id: string, tenant_id: string, kind: ExceptionKind, dedupe_key: string, customer_id: string | null, invoice_id: string | null,
  amount: number | null, currency: string | null, summary: string, likely_cause: string | null, suggested_repair: string | null,
  details: Record<string, unknown>, suggestions: ExceptionSuggestion[], status: ExceptionStatus, resolution: string | null,
  resolved_by: string | null, resolved_at: Date | null, created_at: Date, updated_at: Date
}

const toException = (r: ExceptionRow): ReconciliationException => ({
  id: r.id,
  tenantId: r.tenant_id,
  kind: r.kind,
  dedupeKey: r.dedupe_key,
  customerId: r.customer_id,
  invoiceId: r.invoice_id,
  amount: r.amount === null || r.currency === null ? null : { amount: Number(r.amount), currency: r.currency as Money['currency'] },
  summary: r.summary,
  likelyCause: r.likely_cause,
  suggestedRepair: r.suggested_repair,
  details: r.details,
  suggestions: r.suggestions,
  status: r.status,
  resolution: r.resolution,
  resolvedBy: r.resolved_by,
  resolvedAt: r.resolved_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at
})

/** Raises (or refreshes, while open) one finding; returns it as stored. */
export async function raiseException (db: Db, tenantId: string, input: RaiseInput): Promise<ReconciliationException> {
  requireTenantId(tenantId)
  if (input.dedupeKey.trim() === '') throw new AppError('VALIDATION_FAILED', 'An exception needs a dedupe key.')
  const fields = {
    kind: input.kind,
    customer_id: input.customerId ?? null,
    invoice_id: input.invoiceId ?? null,
    amount: input.amount?.amount ?? null,
    currency: input.amount?.currency ?? null,
    summary: input.summary,
    likely_cause: input.likelyCause ?? null,
    suggested_repair: input.suggestedRepair ?? null,
    details: JSON.stringify(input.details ?? {}),
    suggestions: JSON.stringify(input.suggestions ?? [])
  }
  const result = await db.raw(`
    insert into reconciliation_exceptions (tenant_id, dedupe_key, kind, customer_id, invoice_id, amount, currency, summary, likely_cause, suggested_repair, details, suggestions)
    values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?::jsonb)
    on conflict (tenant_id, dedupe_key) do update set
      kind = excluded.kind, customer_id = excluded.customer_id, invoice_id = excluded.invoice_id, amount = excluded.amount,
      currency = excluded.currency, summary = excluded.summary, likely_cause = excluded.likely_cause,
      suggested_repair = excluded.suggested_repair, details = excluded.details, suggestions = excluded.suggestions, updated_at = now()
      where reconciliation_exceptions.status = 'open'
    returning *`, [tenantId, input.dedupeKey, fields.kind, fields.customer_id, fields.invoice_id, fields.amount, fields.currency,
    fields.summary, fields.likely_cause, fields.suggested_repair, fields.details, fields.suggestions]) as { rows: ExceptionRow[] }
  const [row] = result.rows
  if (row !== undefined) return toException(row)
  // Closed by a person already: leave it as they left it.
  return toException(await db('reconciliation_exceptions').where({ tenant_id: tenantId, dedupe_key: input.dedupeKey }).first() as ExceptionRow)
}

export async function getException (db: Db, tenantId: string, id: string): Promise<ReconciliationException> {
  requireTenantId(tenantId)
  const row = await db('reconciliation_exceptions').where({ tenant_id: tenantId, id }).first() as ExceptionRow | undefined
  if (row === undefined) throw new AppError('EXCEPTION_NOT_FOUND', `No reconciliation exception ${id}.`)
  return toException(row)
}

/** Locks one open exception for an action on it (accept, split, write off, dismiss). */
export async function lockOpenException (db: Db, tenantId: string, id: string): Promise<ReconciliationException> {
  requireTenantId(tenantId)
  const row = await db('reconciliation_exceptions').where({ tenant_id: tenantId, id }).forUpdate().first() as ExceptionRow | undefined
  if (row === undefined) throw new AppError('EXCEPTION_NOT_FOUND', `No reconciliation exception ${id}.`)
  if (row.status !== 'open') throw new AppError('EXCEPTION_CLOSED', `This exception was ${row.status} by ${row.resolved_by ?? 'someone'}; nothing was changed.`)
  return toException(row)
}

export async function listExceptions (db: Db, tenantId: string, filter: { status?: ExceptionStatus, kind?: ExceptionKind, customerId?: string, limit?: number } = {}): Promise<ReconciliationException[]> {
  requireTenantId(tenantId)
  const query = db('reconciliation_exceptions').where({ tenant_id: tenantId })
  if (filter.status !== undefined) query.andWhere('status', filter.status)
  if (filter.kind !== undefined) query.andWhere('kind', filter.kind)
  if (filter.customerId !== undefined) query.andWhere('customer_id', filter.customerId)
  const rows = await query.orderBy('created_at', 'desc').orderBy('id').limit(filter.limit ?? 200) as ExceptionRow[]
  return rows.map(toException)
}

/** Closes an open exception; the caller writes the audit row in the same transaction. */
export async function closeException (db: Db, tenantId: string, id: string, input: { status: 'resolved' | 'dismissed', resolution: string, actor: string }): Promise<ReconciliationException> {
  requireTenantId(tenantId)
  const [row] = await db('reconciliation_exceptions').where({ tenant_id: tenantId, id, status: 'open' })
    .update({ status: input.status, resolution: input.resolution, resolved_by: input.actor, resolved_at: db.fn.now(), updated_at: db.fn.now() })
    .returning('*') as ExceptionRow[]
  if (row === undefined) throw new AppError('EXCEPTION_CLOSED', 'This exception is no longer open; nothing was changed.')
  return toException(row)
}
