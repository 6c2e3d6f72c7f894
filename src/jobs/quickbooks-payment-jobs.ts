import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.js'
import type { AccountingFactory } from '../ports/accounting.js'
import { pullQuickBooksPayments } from '../services/quickbooks-payments.js'
import { queueDailyRuns } from './daily.js'
import { PermanentJobError, RetryLaterError, type JobHandler } from './worker.js'

export const QBO_PAYMENTS_QUEUE = 'qbo.pull-payments'

export function quickBooksPaymentJobHandlers (accountingFor: AccountingFactory): Record<string, JobHandler> {
  return {
    /** Reads payments entered in QuickBooks since the tenant's cursor and matches them; the dedupe key (tenant + date) makes it one run a day. */
    [QBO_PAYMENTS_QUEUE]: async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError(`${QBO_PAYMENTS_QUEUE} needs a tenant`)
      let accounting
      try {
        accounting = await accountingFor(job.tenantId)
      } catch (error) {
        // A person must reconnect QuickBooks; the cursor stays put, so tomorrow's run reads what today's missed.
        if (error instanceof AppError && error.code === 'ACCOUNTING_RECONNECT_REQUIRED') throw new PermanentJobError(error.message)
        throw error
      }
      if (accounting === null) {
        log.info({ tenantId: job.tenantId }, 'QuickBooks payments skipped: QuickBooks is not connected')
        return
      }
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

/** Queues today's read for every tenant with QuickBooks connected; once a day per tenant (its own date), whichever process gets there first. */
export async function scheduleQuickBooksPaymentPulls (db: Knex, now = new Date()): Promise<number> {
  const tenants = await db('accounting_connections').where({ status: 'active' }).distinct('tenant_id').pluck('tenant_id') as string[]
  return await queueDailyRuns(db, tenants, QBO_PAYMENTS_QUEUE, now)
}

export function startQuickBooksPaymentScheduler (db: Knex, log: FastifyBaseLogger, everyMs = 60_000): () => void {
  const run = (): void => { scheduleQuickBooksPaymentPulls(db).catch((error: unknown) => { log.error({ err: error }, 'could not schedule QuickBooks payment reads') }) }
  const timer = setInterval(run, everyMs)
  timer.unref()
  return () => { clearInterval(timer) }
}
