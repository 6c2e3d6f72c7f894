import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.js'
import type { AccountingFactory } from '../ports/accounting.js'
import { pullQuickBooksPayments } from '../services/quickbooks-payments.js'
import { booksForJob, queueDailyBooksRuns, startDailyBooksScheduler } from './daily.js'
import { PermanentJobError, RetryLaterError, type JobHandler } from './worker.js'

export const QBO_PAYMENTS_QUEUE = 'qbo.pull-payments'

export function quickBooksPaymentJobHandlers (accountingFor: AccountingFactory): Record<string, JobHandler> {
  return {
    /** Reads payments entered in QuickBooks since the tenant's cursor and matches them; the dedupe key (tenant + date) makes it one run a day. */
    [QBO_PAYMENTS_QUEUE]: async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError(`${QBO_PAYMENTS_QUEUE} needs a tenant`)
      const accounting = await booksForJob(accountingFor, job.tenantId, log, 'QuickBooks payments')
      if (accounting === null) return
      try {
        const r = await pullQuickBooksPayments(db, job.tenantId, accounting, { actor: 'system:quickbooks-payments' })
        log.info({ tenantId: job.tenantId, since: r.since, imported: r.imported, skippedOwn: r.skippedOwn, autoApplied: r.autoApplied, exceptions: r.exceptions, gap: r.gap }, 'QuickBooks payments read')
      } catch (error) {
        // "Sync now" is reading at this moment; its run covers today, look again later in case it failed.
        if (error instanceof AppError && error.code === 'SYNC_IN_PROGRESS') throw new RetryLaterError(error.message, 10 * 60_000)
        throw error
      }
    }
  }
}

export const scheduleQuickBooksPaymentPulls = async (db: Knex, now = new Date()): Promise<number> => await queueDailyBooksRuns(db, QBO_PAYMENTS_QUEUE, now)

export const startQuickBooksPaymentScheduler = (db: Knex, log: FastifyBaseLogger, everyMs = 60_000): () => void => startDailyBooksScheduler(db, log, QBO_PAYMENTS_QUEUE, everyMs)
