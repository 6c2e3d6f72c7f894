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
 * entry id, then the jobs JSON from `jobsJson`.
 */
export function jobInsertSql (options: { sourceEntryId: string, from?: string, where?: string }): string {
  return `insert into jobs (tenant_id, queue, payload, dedupe_key, run_at, max_attempts, source_entry_id)
    select ?::uuid, j.job->>'queue', coalesce(j.job->'payload', '{}'::jsonb), coalesce(j.job->>'dedupe_key', gen_random_uuid()::text),
      coalesce((j.job->>'run_at')::timestamptz, now()), coalesce((j.job->>'max_attempts')::int, 10), ${options.sourceEntryId}
    from ${options.from !== undefined ? `${options.from}, ` : ''}jsonb_array_elements(?::jsonb) with ordinality as j(job, n)
    ${options.where !== undefined ? `where ${options.where}` : ''}
    order by j.n
    on conflict (tenant_id, queue, dedupe_key) do nothing`
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
