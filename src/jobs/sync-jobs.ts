import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { enqueue } from '../db/jobs.js'
import { getSyncState, listPsaConnections, paymentIdsBeforePush, rememberPaymentIdsBeforePush } from '../db/psa.js'
import { isUuid } from '../db/tenants.js'
import { AppError } from '../errors.js'
import type { PsaPaymentInput, PsaPort, PsaSystem } from '../ports/psa.js'
import { money, type Money } from '../domain/money.js'
import { syncInvoices, syncOneInvoice } from '../services/sync.js'
import { PermanentJobError, type JobHandler } from './worker.js'

/** Builds the adapter for a tenant's PSA connection (secrets decrypted, budget attached). */
export type PsaFactory = (db: Knex, tenantId: string, system: PsaSystem) => Promise<PsaPort>

const OPEN_RECHECK_MS = 60 * 60_000

export interface PushPayment extends PsaPaymentInput {
  /** The payment leaves nothing open: also mark the invoice paid. */
  settlesInvoice: boolean
}

/** The push-back job's payload, checked: a malformed one can never succeed, so it is dead at once. */
export function parsePushPayment (payload: Record<string, unknown>): PushPayment {
  const { invoiceExternalId, reference, paidOn, method, settlesInvoice } = payload
  if (typeof invoiceExternalId !== 'string' || typeof reference !== 'string' || reference === '' ||
    typeof paidOn !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(paidOn) || !['card', 'ach', 'check', 'wire', 'other'].includes(String(method))) {
    throw new PermanentJobError('psa.push-payment payload needs invoiceExternalId, reference, paidOn (YYYY-MM-DD) and method')
  }
  let amount: Money
  try { amount = money(Number(payload.amount), String(payload.currency)) } catch (error) {
    throw new PermanentJobError(`psa.push-payment amount: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (amount.amount <= 0) throw new PermanentJobError('psa.push-payment amount must be positive cents')
  return { invoiceExternalId, reference, paidOn, method: method as PushPayment['method'], amount, settlesInvoice: settlesInvoice === true }
}

function systemOf (payload: Record<string, unknown>): PsaSystem {
  if (payload.system === 'connectwise' || payload.system === 'autotask') return payload.system
  throw new PermanentJobError(`job payload names no PSA system: ${JSON.stringify(payload.system)}`)
}

/** Records one payment in the PSA and remembers it by our reference, so it is never posted twice. */
async function pushPayment (db: Knex, psa: PsaPort, tenantId: string, system: PsaSystem, push: PushPayment): Promise<void> {
  const key = { tenant_id: tenantId, psa_system: system, reference: push.reference }
  if (await db('psa_payment_pushes').where(key).first('reference') !== undefined) return
  const before = await paymentIdsBeforePush(db, tenantId, system, push.reference)
  const recorded = await psa.recordPayment({
    ...push,
    ...(before === null ? {} : { paymentIdsBefore: before }),
    // Kept before the post: after a lost answer the next try can tell our payment from a person's.
    beforePost: async ids => { await rememberPaymentIdsBeforePush(db, tenantId, system, push.reference, ids) }
  })
  if (push.settlesInvoice) await psa.markPaid({ invoiceExternalId: push.invoiceExternalId, paidOn: push.paidOn, reference: push.reference })
  await db('psa_payment_pushes').insert({
    ...key,
    psa_invoice_id: push.invoiceExternalId,
    amount: push.amount.amount,
    currency: push.amount.currency,
    paid_on: push.paidOn,
    psa_payment_id: recorded.externalId,
    marked_paid: push.settlesInvoice
  }).onConflict(['tenant_id', 'psa_system', 'reference']).ignore()
}

export function syncJobHandlers (psaFor: PsaFactory): Record<string, JobHandler> {
  return {
    /** Incremental sync of one tenant's PSA; Autotask also re-reads open invoices hourly (it has no invoice webhooks). */
    'psa.sync': async (job, { db, signal, log }) => {
      if (job.tenantId === null) throw new PermanentJobError('psa.sync needs a tenant')
      const system = systemOf(job.payload)
      const psa = await psaFor(db, job.tenantId, system)
      const state = await getSyncState(db, job.tenantId, system)
      const recheckOpen = system === 'autotask' && (state?.lastOpenRecheckAt == null || Date.now() - state.lastOpenRecheckAt.getTime() > OPEN_RECHECK_MS)
      let result
      try {
        result = await syncInvoices({ db, tenantId: job.tenantId, psa, trigger: job.payload.trigger === 'manual' ? 'manual' : 'schedule', full: job.payload.full === true, recheckOpen, signal })
      } catch (error) {
        // Another process is already syncing this tenant: its run covers this one.
        if (error instanceof AppError && error.code === 'SYNC_IN_PROGRESS') return
        throw error
      }
      log.info({ tenantId: job.tenantId, system, ...result }, 'psa sync finished')
      // The failed run is already recorded for the tenant to see; the job retries with backoff.
      if (result.status === 'failed') throw new Error(`sync failed: ${result.error ?? 'unknown error'}`)
    },
    /**
     * Tells the PSA about money Settle collected: records the payment and,
     * when the invoice is settled, marks it paid. Each far-end write is
     * idempotent, and the push is recorded by our reference so a retried job
     * never posts twice.
     */
    'psa.push-payment': async (job, { db }) => {
      if (job.tenantId === null) throw new PermanentJobError('psa.push-payment needs a tenant')
      const push = parsePushPayment(job.payload)
      const system = systemOf(job.payload)
      const key = { tenant_id: job.tenantId, psa_system: system, reference: push.reference }
      if (await db('psa_payment_pushes').where(key).first('reference') !== undefined) return
      // A payment taken back (returned, disputed) before this job ran must not be posted.
      // (References are attempt ids for money Settle collected; other pushes carry their own.)
      // (A statement payment's references are `attempt:invoice`.)
      const attemptId = push.reference.split(':')[0] as string
      const attempt = isUuid(attemptId)
        ? await db('payment_attempts').where({ tenant_id: job.tenantId, id: attemptId }).first('status') as { status: string } | undefined
        : undefined
      if (attempt !== undefined && attempt.status !== 'succeeded') return
      await pushPayment(db, await psaFor(db, job.tenantId, system), job.tenantId, system, push)
    },
    /**
     * Re-states in the PSA what Settle collected on an invoice after money
     * went back (refund, ACH return, lost dispute): every push for the
     * attempt is taken out, then what remains, if anything, is pushed again.
     * One job, so the two steps can never run out of order; each is
     * idempotent, so a crash between them is safe to re-run.
     */
    'psa.restate-payment': async (job, { db }) => {
      if (job.tenantId === null) throw new PermanentJobError('psa.restate-payment needs a tenant')
      const system = systemOf(job.payload)
      const { attemptId, remainder } = job.payload
      if (typeof attemptId !== 'string' || typeof remainder !== 'number') throw new PermanentJobError('psa.restate-payment needs attemptId and remainder')
      // One invoice at a time: a statement payment pushed one payment to each of its invoices.
      const invoiceExternalId = typeof job.payload.invoiceExternalId === 'string' ? job.payload.invoiceExternalId : null
      const current = await db('psa_payment_pushes').where({ tenant_id: job.tenantId, psa_system: system }).whereNull('reversed_at')
        .where(q => { void q.where('reference', attemptId).orWhere('reference', 'like', `${attemptId}:%`) })
        .modify(q => { if (invoiceExternalId !== null) void q.where('psa_invoice_id', invoiceExternalId) }) as Array<{ reference: string, psa_invoice_id: string, psa_payment_id: string, marked_paid: boolean }>
      const restatedRef = typeof job.payload.restatedReference === 'string' ? job.payload.restatedReference : null
      if (current.length === 0 && (remainder === 0 || restatedRef === null)) return
      const psa = await psaFor(db, job.tenantId, system)
      for (const pushed of current.filter(p => p.reference !== restatedRef)) {
        await psa.reversePayment({ invoiceExternalId: pushed.psa_invoice_id, paymentExternalId: pushed.psa_payment_id, markedPaid: pushed.marked_paid })
        await db('psa_payment_pushes').where({ tenant_id: job.tenantId, psa_system: system, reference: pushed.reference }).update({ reversed_at: db.fn.now() })
      }
      if (remainder > 0 && restatedRef !== null) {
        await pushPayment(db, psa, job.tenantId, system, parsePushPayment({ ...job.payload, amount: remainder, reference: restatedRef }))
      }
    },
    /** A PSA callback said one invoice changed: re-read just that one. */
    'psa.sync-invoice': async (job, { db }) => {
      if (job.tenantId === null) throw new PermanentJobError('psa.sync-invoice needs a tenant')
      const invoiceId = job.payload.invoiceId
      if (typeof invoiceId !== 'string' || invoiceId === '') throw new PermanentJobError('psa.sync-invoice needs an invoiceId')
      await syncOneInvoice(db, job.tenantId, await psaFor(db, job.tenantId, systemOf(job.payload)), invoiceId)
    }
  }
}

/**
 * Every process ticks, but a poll is one job per connection per interval:
 * the dedupe key is the interval's start, so whichever process enqueues
 * first wins and the rest insert nothing.
 */
export function startSyncScheduler (db: Knex, intervalMinutes: number, log: FastifyBaseLogger): () => void {
  const intervalMs = intervalMinutes * 60_000
  const tick = async (): Promise<void> => {
    const bucket = new Date(Math.floor(Date.now() / intervalMs) * intervalMs).toISOString()
    for (const connection of await listPsaConnections(db)) {
      await enqueue(db, connection.tenantId, [{ queue: 'psa.sync', payload: { system: connection.system, trigger: 'schedule' }, dedupeKey: `poll:${connection.system}:${bucket}`, maxAttempts: 3 }])
    }
  }
  const run = (): void => { tick().catch((error: unknown) => { log.error({ err: error }, 'could not schedule PSA syncs') }) }
  run()
  const timer = setInterval(run, Math.min(intervalMs, 60_000))
  timer.unref()
  return () => { clearInterval(timer) }
}
