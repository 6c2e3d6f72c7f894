import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.js'
import type { AccountingFactory, AccountingPort } from '../ports/accounting.js'
import { enqueue } from '../db/jobs.js'
import { PermanentJobError } from './worker.js'
import { localDate } from '../domain/calendar.js'

/**
 * Queues one run of `queue` per tenant for the tenant's own today (its time
 * zone): the dedupe key is the date, so every process may call this every
 * minute and each tenant still gets one run a day.
 */
export async function queueDailyRuns (db: Knex, tenantIds: readonly string[], queue: string, now: Date): Promise<number> {
  if (tenantIds.length === 0) return 0
  const tenants = await db('tenants').whereIn('id', tenantIds).select('id', 'time_zone') as Array<{ id: string, time_zone: string }>
  for (const tenant of tenants) {
    const today = localDate(now, tenant.time_zone)
    await enqueue(db, tenant.id, [{ queue, payload: { date: today }, dedupeKey: `${queue}:${today}`, maxAttempts: 3 }])
  }
  return tenants.length
}

/** Tenants whose QuickBooks connection is active: the ones the books' daily jobs run for. */
export async function queueDailyBooksRuns (db: Knex, queue: string, now = new Date()): Promise<number> {
  const tenants = await db('accounting_connections').where({ status: 'active' }).distinct('tenant_id').pluck('tenant_id') as string[]
  return await queueDailyRuns(db, tenants, queue, now)
}

/** Every process queues the day's runs each minute; the dedupe key keeps it to one per tenant and day. */
export function startDailyBooksScheduler (db: Knex, log: FastifyBaseLogger, queue: string, everyMs = 60_000): () => void {
  const run = (): void => { queueDailyBooksRuns(db, queue).catch((error: unknown) => { log.error({ err: error, queue }, 'could not queue the day\'s runs') }) }
  const timer = setInterval(run, everyMs)
  timer.unref()
  return () => { clearInterval(timer) }
}

/**
 * The tenant's QuickBooks port for a books job, or null (logged) when the
 * books are not connected. A refused sign-in is permanent for today: a
 * person must reconnect, and tomorrow's run tries again.
 */
export async function booksForJob (accountingFor: AccountingFactory, tenantId: string, log: FastifyBaseLogger, what: string): Promise<AccountingPort | null> {
  let accounting
  try {
    accounting = await accountingFor(tenantId)
  } catch (error) {
    if (error instanceof AppError && error.code === 'ACCOUNTING_RECONNECT_REQUIRED') throw new PermanentJobError(error.message)
    throw error
  }
  if (accounting === null) log.info({ tenantId }, `${what} skipped: QuickBooks is not connected`)
  return accounting
}
