import type { Knex } from 'knex'
import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'

/**
 * The job queue, which is also the outbox: an outside effect (post to
 * QuickBooks, mark paid in the PSA, send an email) is a job inserted in the
 * same transaction as the ledger entry that causes it, so it exists exactly
 * when the entry does. Workers claim due jobs with FOR UPDATE SKIP LOCKED
 * under a lease; a worker that dies leaves a lease that expires and the job
 * is claimed again, so effects must be idempotent at the far end.
 */
export type JobState = 'pending' | 'running' | 'done' | 'dead'

export interface Job {
  id: number
  tenantId: string | null
  queue: string
  payload: Record<string, unknown>
  state: JobState
  runAt: Date
  attempts: number
  maxAttempts: number
  dedupeKey: string
  lockedBy: string | null
  lockedUntil: Date | null
  lastError: string | null
  sourceEntryId: number | null
  createdAt: Date
  finishedAt: Date | null
}

export interface JobInput {
  queue: string
  payload?: Record<string, unknown>
  /** Run no earlier than this; default now. */
  runAt?: Date
  /** Same tenant + queue + key is the same job: a second enqueue is a no-op. */
  dedupeKey?: string
  maxAttempts?: number
}

interface JobRow {
  id: number, tenant_id: string | null, queue: string, payload: Record<string, unknown>, state: JobState, run_at: Date,
  attempts: number, max_attempts: number, dedupe_key: string, locked_by: string | null, locked_until: Date | null,
  last_error: string | null, source_entry_id: number | null, created_at: Date, finished_at: Date | null
}

const toJob = (r: JobRow): Job => ({
  id: Number(r.id),
  tenantId: r.tenant_id,
  queue: r.queue,
  payload: r.payload,
  state: r.state,
  runAt: r.run_at,
  attempts: r.attempts,
  maxAttempts: r.max_attempts,
  dedupeKey: r.dedupe_key,
  lockedBy: r.locked_by,
  lockedUntil: r.locked_until,
  lastError: r.last_error,
  sourceEntryId: r.source_entry_id === null ? null : Number(r.source_entry_id),
  createdAt: r.created_at,
  finishedAt: r.finished_at
})

const QUEUE_NAME = /^[a-z][a-z0-9_.-]{0,99}$/

function checkJob (job: JobInput): void {
  if (!QUEUE_NAME.test(job.queue)) throw new AppError('VALIDATION_FAILED', `Queue name "${job.queue}" must be lower case letters, digits, dots and dashes.`)
  if (job.maxAttempts !== undefined && (!Number.isInteger(job.maxAttempts) || job.maxAttempts < 1 || job.maxAttempts > 100)) {
    throw new AppError('VALIDATION_FAILED', 'maxAttempts must be a whole number from 1 to 100.')
  }
  if (job.runAt !== undefined && Number.isNaN(job.runAt.getTime())) throw new AppError('VALIDATION_FAILED', 'runAt must be a valid date.')
}

/**
 * The one SQL shape that inserts job rows, from a JSON array of jobs. Used on
 * its own by `enqueue` and as a step of the ledger's single-statement write,
 * where `from` adds the new entry and `sourceEntryId` points at it.
 * Bindings, in order: tenant id, then (when `sourceEntryId` is `?`) the
 * entry id, then the jobs JSON from `jobsJson`. A job that would break any
 * unique rule is skipped: its dedupe key, or one pending retry per invoice
 * (migrations/20261208011000_one_retry_per_invoice.ts).
 */
export function jobInsertSql (options: { sourceEntryId: string, from?: string, where?: string }): string {
  return `insert into jobs (tenant_id, queue, payload, dedupe_key, run_at, max_attempts, source_entry_id)
    select ?::uuid, j.job->>'queue', coalesce(j.job->'payload', '{}'::jsonb), coalesce(j.job->>'dedupe_key', gen_random_uuid()::text),
      coalesce((j.job->>'run_at')::timestamptz, now()), coalesce((j.job->>'max_attempts')::int, 10), ${options.sourceEntryId}
    from ${options.from !== undefined ? `${options.from}, ` : ''}jsonb_array_elements(?::jsonb) with ordinality as j(job, n)
    ${options.where !== undefined ? `where ${options.where}` : ''}
    order by j.n
    on conflict do nothing`
}

/** Validates jobs and serialises them for `jobInsertSql` (`entryKey` ties a job to its entry in a batch). */
export function jobsJson (jobs: ReadonlyArray<JobInput & { entryKey?: string }>): string {
  jobs.forEach(checkJob)
  return JSON.stringify(jobs.map(job => ({
    entry_key: job.entryKey ?? null,
    queue: job.queue,
    payload: job.payload ?? {},
    dedupe_key: job.dedupeKey ?? null,
    run_at: job.runAt?.toISOString() ?? null,
    max_attempts: job.maxAttempts ?? null
  })))
}

/**
 * Enqueues jobs for a tenant (or `null` for system-wide work). Returns the
 * jobs created; a job whose dedupe key exists already is skipped.
 */
export async function enqueue (db: Db, tenantId: string | null, jobs: readonly JobInput[]): Promise<Job[]> {
  if (tenantId !== null) requireTenantId(tenantId)
  if (jobs.length === 0) return []
  const result = await db.raw(`${jobInsertSql({ sourceEntryId: 'null::bigint' })} returning *`, [tenantId, jobsJson(jobs)]) as { rows: JobRow[] }
  return result.rows.map(toJob)
}

export interface ClaimOptions {
  workerId: string
  limit: number
  /** How long the claim holds before another worker may take the job over. */
  leaseMs: number
  queues?: readonly string[]
}

/**
 * Takes up to `limit` due jobs. SKIP LOCKED lets concurrent workers pass over
 * each other's rows instead of waiting or taking the same one; a job whose
 * lease ran out (its worker died) is due again.
 */
export async function claimJobs (db: Knex, options: ClaimOptions): Promise<Job[]> {
  if (options.limit < 1) return []
  const queueFilter = options.queues === undefined ? '' : 'and queue = any(?::text[])'
  const bindings: Knex.RawBinding[] = options.queues === undefined ? [] : [options.queues as string[]]
  const result = await db.raw(`
    update jobs set state = 'running', attempts = attempts + 1, locked_by = ?,
      locked_until = now() + (? * interval '1 millisecond'), updated_at = now()
    where id in (
      select id from jobs
      where ((state = 'pending' and run_at <= now()) or (state = 'running' and locked_until < now()))
        ${queueFilter}
      order by run_at, id
      limit ?
      for update skip locked
    )
    returning *`, [options.workerId, options.leaseMs, ...bindings, options.limit]) as { rows: JobRow[] }
  return result.rows.map(toJob).sort((a, b) => a.id - b.id)
}

/**
 * Claims, for someone running a queue's work in-line (QuickBooks "Sync
 * now"), the job of each source named by `payload->>payloadKey`, so no
 * worker runs the same source meanwhile. A source's pending job (or one
 * whose lease ran out) is claimed as a worker would claim it; a source with
 * no live job gets one under `${dedupePrefix}:${value}` (reused on later
 * runs), already claimed, so a crash leaves it for the workers. A source
 * whose job another worker holds, or whose row is being claimed right now
 * (SKIP LOCKED), is busy: not claimed (and none of its jobs is). Settle the claims with completeJob or
 * failJob under the same `workerId`.
 */
export async function claimSourceJobs (db: Knex, tenantId: string, input: {
  queue: string, payloadKey: string, sources: ReadonlyArray<{ value: string, payload: Record<string, unknown> }>, dedupePrefix: string, workerId: string, leaseMs: number
}): Promise<{ claimed: Map<string, Job[]>, busy: Set<string> }> {
  requireTenantId(tenantId)
  const claimed = new Map<string, Job[]>()
  const busy = new Set<string>()
  const values = [...new Set(input.sources.map(s => s.value))]
  if (values.length === 0) return { claimed, busy }
  const taken = await db.raw(`
    update jobs set state = 'running', attempts = attempts + 1, locked_by = ?, locked_until = now() + (? * interval '1 millisecond'), updated_at = now()
    where id in (
      select id from jobs
      where tenant_id = ? and queue = ? and payload->>? = any(?::text[])
        and (state = 'pending' or (state = 'running' and locked_until < now()))
      order by id
      for update skip locked
    )
    returning *`, [input.workerId, input.leaseMs, tenantId, input.queue, input.payloadKey, values]) as { rows: JobRow[] }
  // A source can have two live jobs (a relink queues another): all are claimed, so none runs beside us.
  for (const r of taken.rows) {
    const v = String(r.payload[input.payloadKey])
    claimed.set(v, [...(claimed.get(v) ?? []), toJob(r)])
  }
  // Still live and not ours: a worker holds it, or it was locked mid-claim when we looked.
  const others = await db('jobs').where({ tenant_id: tenantId, queue: input.queue }).whereRaw('payload->>? = any(?::text[])', [input.payloadKey, values])
    .whereIn('state', ['pending', 'running']).andWhere(q => { void q.whereNull('locked_by').orWhereNot('locked_by', input.workerId) })
    .select(db.raw('payload->>? as v', [input.payloadKey])) as Array<{ v: string }>
  for (const o of others) busy.add(o.v)
  // Busy beside a job we did claim (two jobs, one held elsewhere): hand ours back as they were.
  for (const v of busy) {
    for (const job of claimed.get(v) ?? []) {
      await db('jobs').where({ id: job.id, locked_by: input.workerId, attempts: job.attempts })
        .update({ state: 'pending', attempts: job.attempts - 1, locked_by: null, locked_until: null, updated_at: db.fn.now() })
    }
    claimed.delete(v)
  }
  for (const s of input.sources) {
    if (claimed.has(s.value) || busy.has(s.value)) continue
    // The unique (tenant, queue, dedupe key) serialises two in-line runners: only one gets the row back.
    const res = await db.raw(`
      insert into jobs (tenant_id, queue, payload, dedupe_key, state, run_at, attempts, locked_by, locked_until)
      values (?::uuid, ?, ?::jsonb, ?, 'running', now(), 1, ?, now() + (? * interval '1 millisecond'))
      on conflict (tenant_id, queue, dedupe_key) do update set
        state = 'running', payload = excluded.payload, run_at = now(), attempts = 1, max_attempts = 10, locked_by = excluded.locked_by,
        locked_until = excluded.locked_until, last_error = null, finished_at = null, updated_at = now()
      where jobs.state in ('done', 'dead')
      returning *`, [tenantId, input.queue, JSON.stringify(s.payload), `${input.dedupePrefix}:${s.value}`, input.workerId, input.leaseMs]) as { rows: JobRow[] }
    const row = res.rows[0]
    if (row === undefined) busy.add(s.value)
    else claimed.set(s.value, [toJob(row)])
  }
  return { claimed, busy }
}

/**
 * Marks a claimed job done. Fenced by worker and attempt: a worker whose lease
 * was taken over cannot overwrite the newer claim's outcome.
 */
export async function completeJob (db: Db, job: Job, workerId: string): Promise<boolean> {
  const n = await db('jobs')
    .where({ id: job.id, locked_by: workerId, attempts: job.attempts, state: 'running' })
    .update({ state: 'done', locked_by: null, locked_until: null, finished_at: db.fn.now(), updated_at: db.fn.now(), last_error: null })
  return n === 1
}

/** Records a failure: back to pending at `retryAt`, or dead when out of attempts or not retryable. */
export async function failJob (db: Db, job: Job, workerId: string, error: string, retryAt: Date | null): Promise<JobState | null> {
  const dead = retryAt === null || job.attempts >= job.maxAttempts
  const n = await db('jobs')
    .where({ id: job.id, locked_by: workerId, attempts: job.attempts, state: 'running' })
    .update({
      state: dead ? 'dead' : 'pending',
      run_at: dead ? db.raw('run_at') : retryAt,
      locked_by: null,
      locked_until: null,
      last_error: error.slice(0, 2000),
      finished_at: dead ? db.fn.now() : null,
      updated_at: db.fn.now()
    })
  return n === 1 ? (dead ? 'dead' : 'pending') : null
}

/** A person retries a dead job (after fixing its cause): one more attempt, now. */
export async function retryDeadJob (db: Db, tenantId: string, jobId: number): Promise<Job> {
  requireTenantId(tenantId)
  const [row] = await db('jobs').where({ id: jobId, tenant_id: tenantId, state: 'dead' })
    .update({ state: 'pending', run_at: db.fn.now(), max_attempts: db.raw('attempts + 1'), finished_at: null, updated_at: db.fn.now() })
    .returning('*') as JobRow[]
  if (row === undefined) throw new AppError('VALIDATION_FAILED', `Job ${jobId} is not a dead job of this tenant.`)
  return toJob(row)
}

export async function getJob (db: Db, tenantId: string, jobId: number): Promise<Job | null> {
  const row = await db<JobRow>('jobs').where({ id: jobId, tenant_id: requireTenantId(tenantId) }).first()
  return row === undefined ? null : toJob(row)
}

export async function listJobs (db: Db, tenantId: string, filter: { state?: JobState, queue?: string, limit?: number } = {}): Promise<Job[]> {
  const query = db<JobRow>('jobs').where({ tenant_id: requireTenantId(tenantId) })
  if (filter.state !== undefined) query.andWhere({ state: filter.state })
  if (filter.queue !== undefined) query.andWhere({ queue: filter.queue })
  const rows = await query.orderBy('id', 'desc').limit(Math.min(filter.limit ?? 100, 1000))
  return rows.map(toJob)
}

export async function jobCounts (db: Db, tenantId: string): Promise<Record<JobState, number>> {
  const rows = await db('jobs').where({ tenant_id: requireTenantId(tenantId) })
    .select('state').count('* as n').groupBy('state') as Array<{ state: JobState, n: number | string }>
  const counts: Record<JobState, number> = { pending: 0, running: 0, done: 0, dead: 0 }
  for (const r of rows) counts[r.state] = Number(r.n)
  return counts
}

/** Closes a job that is no longer needed before it ran (its work happened another way); a job already claimed is left alone. */
export async function closePendingJob (db: Db, tenantId: string, queue: string, dedupeKey: string): Promise<void> {
  await db('jobs').where({ tenant_id: requireTenantId(tenantId), queue, dedupe_key: dedupeKey, state: 'pending' })
    .update({ state: 'done', finished_at: db.fn.now(), last_error: null })
}
