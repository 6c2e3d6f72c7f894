import type { Knex } from 'knex'
import { tenantToday } from '../db/tenants.js'
import { queueDailyRuns } from './daily.js'
import { chargeInstallmentPart, runInstallments } from '../services/installments.js'
import type { PaymentsFactory } from './payment-jobs.js'
import { PermanentJobError, type JobHandler } from './worker.js'

export function installmentJobHandlers (paymentsFor: PaymentsFactory): Record<string, JobHandler> {
  return {
    /** The day's due installments for one tenant. */
    'installments.run': async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError('installments.run needs a tenant')
      const today = typeof job.payload.date === 'string' ? job.payload.date : await tenantToday(db, job.tenantId)
      log.info({ tenantId: job.tenantId, today, ...(await runInstallments(db, job.tenantId, today)) }, 'installments run')
    },
    /** One due part; by the time it runs the invoice may be paid another way, or another payment may be in flight. */
    'installments.charge': async (job, { db, log }) => {
      if (job.tenantId === null || typeof job.payload.partId !== 'string') throw new PermanentJobError('installments.charge needs a tenant and partId')
      const result = await chargeInstallmentPart(db, await paymentsFor(db, job.tenantId), job.tenantId, job.payload.partId, 'installments')
      log.info({ partId: job.payload.partId, outcome: result.outcome, ...('reason' in result ? { reason: result.reason } : {}) }, 'installment charge')
    }
  }
}

/** Queues today's installments run for every tenant with an active plan; once a day per tenant whichever process gets there first. */
export async function scheduleInstallmentRuns (db: Knex, now = new Date()): Promise<number> {
  const tenants = await db('installment_plans').where({ status: 'active' }).distinct('tenant_id').pluck('tenant_id') as string[]
  return await queueDailyRuns(db, tenants, 'installments.run', now)
}
