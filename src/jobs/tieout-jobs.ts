import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.js'
import type { AccountingFactory } from '../ports/accounting.js'
import { runTieout } from '../services/tieout.js'
import { booksForJob, queueDailyBooksRuns, startDailyBooksScheduler } from './daily.js'
import { PermanentJobError, RetryLaterError, type JobHandler } from './worker.js'

export const TIEOUT_QUEUE = 'tieout.run'

export function tieoutJobHandlers (accountingFor: AccountingFactory): Record<string, JobHandler> {
  return {
    /** The day's tie-out for one tenant; the dedupe key (tenant + date) makes it one run a day however many processes schedule it. */
    [TIEOUT_QUEUE]: async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError(`${TIEOUT_QUEUE} needs a tenant`)
      const accounting = await booksForJob(accountingFor, job.tenantId, log, 'tie-out')
      if (accounting === null) return
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

export const scheduleTieoutRuns = async (db: Knex, now = new Date()): Promise<number> => await queueDailyBooksRuns(db, TIEOUT_QUEUE, now)

export const startTieoutScheduler = (db: Knex, log: FastifyBaseLogger, everyMs = 60_000): () => void => startDailyBooksScheduler(db, log, TIEOUT_QUEUE, everyMs)
