import type { Knex } from 'knex'
import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'
import type { PsaSystem } from '../ports/psa.js'

export interface PsaConnection {
  tenantId: string
  system: PsaSystem
  settings: Record<string, string>
  status: 'active' | 'error' | 'disabled'
}

export async function savePsaConnection (db: Db, tenantId: string, system: PsaSystem, settings: Record<string, string>): Promise<void> {
  requireTenantId(tenantId)
  await db('psa_connections').insert({ tenant_id: tenantId, system, settings: JSON.stringify(settings), status: 'active' })
    .onConflict(['tenant_id', 'system']).merge({ settings: JSON.stringify(settings), status: 'active', updated_at: db.fn.now() } as never)
}

/** Merges discovered facts (the Autotask zone, the ConnectWise codebase) into the saved settings. */
export async function updatePsaSettings (db: Db, tenantId: string, system: PsaSystem, patch: Record<string, string>): Promise<void> {
  requireTenantId(tenantId)
  await db('psa_connections').where({ tenant_id: tenantId, system })
    .update({ settings: db.raw('settings || ?::jsonb', [JSON.stringify(patch)]), updated_at: db.fn.now() })
}

export async function getPsaConnection (db: Db, tenantId: string, system: PsaSystem): Promise<PsaConnection> {
  const row = await db('psa_connections').where({ tenant_id: requireTenantId(tenantId), system }).first()
  if (row === undefined) throw new AppError('PSA_NOT_CONNECTED', `This tenant has no ${system === 'connectwise' ? 'ConnectWise PSA' : 'Autotask'} connection; connect it in settings first.`)
  return { tenantId: row.tenant_id, system: row.system, settings: row.settings, status: row.status }
}

export async function listPsaConnections (db: Db, filter: { tenantId?: string } = {}): Promise<PsaConnection[]> {
  const query = db('psa_connections').where({ status: 'active' })
  if (filter.tenantId !== undefined) query.andWhere({ tenant_id: requireTenantId(filter.tenantId) })
  const rows = await query.orderBy(['tenant_id', 'system'])
  return rows.map((row: { tenant_id: string, system: PsaSystem, settings: Record<string, string>, status: PsaConnection['status'] }) =>
    ({ tenantId: row.tenant_id, system: row.system, settings: row.settings, status: row.status }))
}

export interface SyncCursor { at: Date | null, id: string | null }

export interface SyncState {
  cursor: SyncCursor
  lastStartedAt: Date | null
  lastFinishedAt: Date | null
  lastStatus: string | null
  lastError: string | null
  lastOpenRecheckAt: Date | null
}

/**
 * Takes the tenant's sync lease for `leaseMs`. Returns null when another
 * process holds a live lease: that process is already syncing.
 */
export async function claimSync (db: Knex, tenantId: string, system: PsaSystem, holder: string, leaseMs: number): Promise<SyncState | null> {
  requireTenantId(tenantId)
  await db('sync_state').insert({ tenant_id: tenantId, system }).onConflict(['tenant_id', 'system']).ignore()
  const [row] = await db('sync_state')
    .where({ tenant_id: tenantId, system })
    .andWhere(q => { void q.whereNull('locked_until').orWhere('locked_until', '<', db.fn.now()).orWhere('locked_by', holder) })
    .update({ locked_by: holder, locked_until: db.raw("now() + (? * interval '1 millisecond')", [leaseMs]), last_started_at: db.fn.now(), last_status: 'running' })
    .returning('*')
  return row === undefined ? null : toState(row)
}

/** Extends the lease and moves the cursor, inside the page's own transaction. */
export async function advanceCursor (db: Db, tenantId: string, system: PsaSystem, holder: string, cursor: SyncCursor, leaseMs: number): Promise<void> {
  const n = await db('sync_state').where({ tenant_id: tenantId, system, locked_by: holder })
    .update({ cursor_at: cursor.at, cursor_id: cursor.id, locked_until: db.raw("now() + (? * interval '1 millisecond')", [leaseMs]) })
  if (n !== 1) throw new AppError('SYNC_IN_PROGRESS', 'This sync lost its lease to another process; stopping without writing.')
}

export async function releaseSync (db: Db, tenantId: string, system: PsaSystem, holder: string, outcome: { status: 'ok' | 'failed', error?: string, openRechecked?: boolean }): Promise<void> {
  await db('sync_state').where({ tenant_id: tenantId, system, locked_by: holder }).update({
    locked_by: null,
    locked_until: null,
    last_finished_at: db.fn.now(),
    last_status: outcome.status,
    last_error: outcome.error ?? null,
    ...(outcome.openRechecked === true ? { last_open_recheck_at: db.fn.now() } : {})
  })
}


function toState (row: { cursor_at: Date | null, cursor_id: string | null, last_started_at: Date | null, last_finished_at: Date | null, last_status: string | null, last_error: string | null, last_open_recheck_at: Date | null }): SyncState {
  return {
    cursor: { at: row.cursor_at, id: row.cursor_id },
    lastStartedAt: row.last_started_at,
    lastFinishedAt: row.last_finished_at,
    lastStatus: row.last_status,
    lastError: row.last_error,
    lastOpenRecheckAt: row.last_open_recheck_at
  }
}

export interface SyncRunCounts {
  pages: number
  invoicesSeen: number
  created: number
  changed: number
  voided: number
  unchanged: number
  linesFetched: number
  calls: number
}

export interface SyncRun extends SyncRunCounts {
  id: number
  system: PsaSystem
  trigger: string
  status: 'running' | 'ok' | 'failed'
  startedAt: Date
  finishedAt: Date | null
  error: string | null
}

export async function startSyncRun (db: Db, tenantId: string, system: PsaSystem, trigger: string): Promise<number> {
  const [row] = await db('sync_runs').insert({ tenant_id: requireTenantId(tenantId), system, trigger }).returning('id') as Array<{ id: number }>
  return Number(row?.id)
}

export async function finishSyncRun (db: Db, runId: number, counts: SyncRunCounts, outcome: { status: 'ok' | 'failed', error?: string }): Promise<void> {
  await db('sync_runs').where({ id: runId }).update({
    status: outcome.status,
    error: outcome.error ?? null,
    finished_at: db.fn.now(),
    pages: counts.pages,
    invoices_seen: counts.invoicesSeen,
    created: counts.created,
    changed: counts.changed,
    voided: counts.voided,
    unchanged: counts.unchanged,
    lines_fetched: counts.linesFetched,
    calls: counts.calls
  })
}

/** Recent runs with their counts and errors: what the sync status UI shows. */
export async function listSyncRuns (db: Db, tenantId: string, options: { system?: PsaSystem, limit?: number } = {}): Promise<SyncRun[]> {
  const query = db('sync_runs').where({ tenant_id: requireTenantId(tenantId) })
  if (options.system !== undefined) query.andWhere({ system: options.system })
  const rows = await query.orderBy('id', 'desc').limit(Math.min(options.limit ?? 20, 200))
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    system: r.system as PsaSystem,
    trigger: String(r.trigger),
    status: r.status as SyncRun['status'],
    startedAt: r.started_at as Date,
    finishedAt: (r.finished_at ?? null) as Date | null,
    error: (r.error ?? null) as string | null,
    pages: Number(r.pages),
    invoicesSeen: Number(r.invoices_seen),
    created: Number(r.created),
    changed: Number(r.changed),
    voided: Number(r.voided),
    unchanged: Number(r.unchanged),
    linesFetched: Number(r.lines_fetched),
    calls: Number(r.calls)
  }))
}

export async function getSyncState (db: Db, tenantId: string, system: PsaSystem): Promise<SyncState | null> {
  const row = await db('sync_state').where({ tenant_id: requireTenantId(tenantId), system }).first()
  return row === undefined ? null : toState(row)
}

/** The PSA payment ids an invoice had before Settle first tried to post the payment `reference`; null before any try. */
export async function paymentIdsBeforePush (db: Db, tenantId: string, system: PsaSystem, reference: string): Promise<string[] | null> {
  const row = await db('psa_payment_push_intents').where({ tenant_id: requireTenantId(tenantId), psa_system: system, reference }).first('payment_ids_before') as { payment_ids_before: unknown } | undefined
  if (row === undefined) return null
  const ids = typeof row.payment_ids_before === 'string' ? JSON.parse(row.payment_ids_before) as unknown : row.payment_ids_before
  return Array.isArray(ids) ? ids.map(String) : []
}

/** Keeps the ids from before the first try; a later try never replaces them (by then one of them may be ours). */
export async function rememberPaymentIdsBeforePush (db: Db, tenantId: string, system: PsaSystem, reference: string, ids: readonly string[]): Promise<void> {
  await db('psa_payment_push_intents').insert({ tenant_id: requireTenantId(tenantId), psa_system: system, reference, payment_ids_before: JSON.stringify(ids) })
    .onConflict(['tenant_id', 'psa_system', 'reference']).ignore()
}
