import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.js'
import type { AccountingFactory } from '../ports/accounting.js'
import { runTieout } from '../services/tieout.js'
import { queueDailyRuns } from './daily.js'
import { PermanentJobError, RetryLaterError, type JobHandler } from './worker.js'

export const TIEOUT_QUEUE = 'tieout.run'

export function tieoutJobHandlers (accountingFor: AccountingFactory): Record<string, JobHandler> {
  return {
    /** The day's tie-out for one tenant; the dedupe key (tenant + date) makes it one run a day however many processes schedule it. */
    [TIEOUT_QUEUE]: async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError(`${TIEOUT_QUEUE} needs a tenant`)
      let accounting
      try {
        accounting = await accountingFor(job.tenantId)
      } catch (error) {
        // A person must reconnect QuickBooks; retrying today cannot help, tomorrow's run tries again.
        if (error instanceof AppError && error.code === 'ACCOUNTING_RECONNECT_REQUIRED') throw new PermanentJobError(error.message)
        throw error
      }
      if (accounting === null) {
        log.info({ tenantId: job.tenantId }, 'tie-out skipped: QuickBooks is not connected')
        return
      }
      try {
        const outcome = await runTieout(db, job.tenantId, accounting, { trigger: 'daily' })
        log.info({ tenantId: job.tenantId, runId: outcome.run.id, status: outcome.run.status, differences: outcome.differences.length, cleared: outcome.exceptionsCleared }, 'tie-out ran')
      } catch (error) {
        // Someone pressed "run now" at the same moment: theirs answers today; look again later in case it failed.
        if (error instanceof AppError && error.code === 'TIEOUT_IN_PROGRESS') throw new RetryLaterError(error.message, 10 * 60_000)
        throw error
      }
    }
  }
}

/** Queues today's tie-out for every tenant with QuickBooks connected; once a day per tenant (its own date), whichever process gets there first. */
export async function scheduleTieoutRuns (db: Knex, now = new Date()): Promise<number> {
  const tenants = await db('accounting_connections').where({ status: 'active' }).distinct('tenant_id').pluck('tenant_id') as string[]
  return await queueDailyRuns(db, tenants, TIEOUT_QUEUE, now)
}

export function startTieoutScheduler (db: Knex, log: FastifyBaseLogger, everyMs = 60_000): () => void {
  const run = (): void => { scheduleTieoutRuns(db).catch((error: unknown) => { log.error({ err: error }, 'could not schedule tie-outs') }) }
  const timer = setInterval(run, everyMs)
  timer.unref()
  return () => { clearInterval(timer) }
}
