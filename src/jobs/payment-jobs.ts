import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { enqueue } from '../db/jobs.js'
import { openBalance } from '../db/invoices.js'
import { partCollectible } from '../db/installments.js'
import { collectionsUnderway, getAttempt, getPaymentMethod, type AttemptRow } from '../db/payments.js'
import type { PaymentsPort } from '../ports/payments.js'
import { chargeInputFor, chargeInvoice, followUp, invoiceNumbersOf, recordOutcome } from '../services/charge.js'
import { runAutopay, UNDERWAY_REASON } from '../services/autopay.js'
import { removeMethod } from '../services/checkout.js'
import { tenantToday } from '../db/tenants.js'
import { queueDailyRuns } from './daily.js'
import { recordDispute } from '../services/disputes.js'
import { applyPayout } from '../services/payouts.js'
import { scheduleInstallmentRuns } from './installment-jobs.js'
import { PermanentJobError, RetryLaterError, type JobHandler } from './worker.js'
import { AppError } from '../errors.js'

/** Builds the processor adapter for a tenant (its own Stripe keys). */
export type PaymentsFactory = (db: Knex, tenantId: string) => Promise<PaymentsPort>

/** Past this age an unresolved attempt is only looked up, never re-sent: a charge hours late would surprise the client. */
const RESEND_WINDOW_MS = 60 * 60_000

function attemptIdOf (payload: Record<string, unknown>): string {
  if (typeof payload.attemptId !== 'string') throw new PermanentJobError('payload needs attemptId')
  return payload.attemptId
}

export function paymentJobHandlers (paymentsFor: PaymentsFactory): Record<string, JobHandler> {
  return {
    /**
     * Resolves an attempt whose outcome we do not know (crash, timeout, 5xx):
     * within the hour, re-send the identical request with the same key (the
     * processor answers with the first result, or makes the charge it never
     * received); after that, only look it up.
     */
    'payments.resolve': async (job, { db }) => {
      if (job.tenantId === null) throw new PermanentJobError('payments.resolve needs a tenant')
      const attempt = await getAttempt(db, job.tenantId, attemptIdOf(job.payload))
      if (attempt.status !== 'created' && attempt.status !== 'unknown') return
      const payments = await paymentsFor(db, job.tenantId)
      const method = await getPaymentMethod(db, job.tenantId, attempt.paymentMethodId)
      const input = chargeInputFor(attempt, method, await invoiceNumbersOf(db, attempt))
      const outcome = Date.now() - attempt.createdAt.getTime() < RESEND_WINDOW_MS
        ? await payments.charge(input)
        : await payments.findCharge({ idempotencyKey: input.idempotencyKey, attemptId: attempt.id }) ??
          { status: 'failed' as const, intentId: null, failure: { code: 'never_reached_processor', declineCode: null, adviceCode: null, message: 'The processor has no record of this attempt; nothing was charged.' }, raw: null }
      const result = await recordOutcome(db, job.tenantId, attempt.id, outcome)
      if (result.outcome === 'unknown') throw new RetryLaterError('the processor outcome is still unknown', 60_000)
      await followUp(db, result, method.type)
    },
    /**
     * A Stripe event about a PaymentIntent: re-read the intent and apply its
     * state to our attempt (ACH processing → succeeded or failed; a late
     * answer to an attempt we marked unknown). Applying is idempotent, so
     * duplicated and out-of-order events end in the same ledger.
     */
    'stripe.event': async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError('stripe.event needs a tenant')
      const { objectType, objectId, type } = job.payload
      if (objectType === 'dispute' && typeof objectId === 'string') {
        const dispute = await (await paymentsFor(db, job.tenantId)).retrieveDispute({ disputeId: objectId })
        log.info({ dispute: dispute.id, status: dispute.status, result: await recordDispute(db, job.tenantId, dispute) }, 'dispute applied')
        return
      }
      if (objectType === 'payout' && typeof objectId === 'string') {
        // created, updated, paid, failed, canceled: all a hint to read the payout again.
        const result = await applyPayout(db, job.tenantId, await paymentsFor(db, job.tenantId), objectId)
        // Their own events are usually seconds behind; waiting longer each time covers a processor having a bad hour.
        if (result.waitingFor.length > 0) throw new RetryLaterError(`payout ${objectId} settles ${result.waitingFor.length} item(s) Settle has not booked yet`, 30_000 * Math.max(1, job.attempts))
        log.info({ payout: objectId, status: result.payout.status, posted: result.posted, reversed: result.reversed, unmatched: result.unmatched.length }, 'payout applied')
        return
      }
      if (objectType !== 'payment_intent' || typeof objectId !== 'string') {
        log.info({ type }, 'stripe event kept for the record; no handler for this object yet')
        return
      }
      const { outcome, attemptId } = await (await paymentsFor(db, job.tenantId)).retrieveIntent({ intentId: objectId })
      if (attemptId === null) { log.info({ objectId }, 'payment intent not made by Settle'); return }
      const before = await getAttempt(db, job.tenantId, attemptId)
      const result = await recordOutcome(db, job.tenantId, attemptId, outcome)
      // Follow up only when this event changed the attempt: a duplicate must not schedule a second retry.
      if (before.status !== result.attempt.status) {
        const method = await getPaymentMethod(db, job.tenantId, result.attempt.paymentMethodId)
        await followUp(db, result, method.type)
      }
    },
    /** A method the client removed: detach it at the processor so nothing can charge it again. */
    'payments.detach-method': async (job, { db }) => {
      if (job.tenantId === null || typeof job.payload.methodRef !== 'string') throw new PermanentJobError('payments.detach-method needs a tenant and methodRef')
      await (await paymentsFor(db, job.tenantId)).detachMethod({ methodRef: job.payload.methodRef })
    },
    /** A method the client used once without keeping it: removed as soon as no payment needs it. */
    'payments.forget-method': async (job, { db }) => {
      const { customerId, methodId } = job.payload
      if (job.tenantId === null || typeof customerId !== 'string' || typeof methodId !== 'string') throw new PermanentJobError('payments.forget-method needs a tenant, customerId and methodId')
      try {
        await removeMethod(db, job.tenantId, customerId, methodId, 'client (not kept)')
      } catch (error) {
        const code = (error as { code?: string }).code
        if (code === 'PAYMENT_METHOD_IN_USE') throw new RetryLaterError('a payment on this method is still processing', 6 * 60 * 60_000)
        if (code === 'PAYMENT_METHOD_NOT_FOUND') return
        throw error
      }
    },
    /** The day's auto-pay decisions for one tenant. */
    'autopay.run': async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError('autopay.run needs a tenant')
      const today = typeof job.payload.date === 'string' ? job.payload.date : await tenantToday(db, job.tenantId)
      log.info({ tenantId: job.tenantId, today, ...(await runAutopay(db, job.tenantId, today)) }, 'auto-pay run')
    },
    /** One auto-pay charge; by the time it runs the invoice may be paid or partly paid: charge at most what is open. */
    'autopay.charge': async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError('autopay.charge needs a tenant')
      const { invoiceId, paymentMethodId, amount } = job.payload
      if (typeof invoiceId !== 'string' || typeof paymentMethodId !== 'string' || typeof amount !== 'number') throw new PermanentJobError('autopay.charge payload is incomplete')
      const invoice = await db('invoices').where({ tenant_id: job.tenantId, id: invoiceId }).first() as { ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number } | undefined
      const open = invoice === undefined ? 0 : openBalance(invoice)
      if (open <= 0) { log.info({ invoiceId }, 'auto-pay: nothing open any more'); return }
      // Since this charge was queued a plan, a retry schedule or another payment took the invoice on: that one collects it.
      const busy = (await collectionsUnderway(db, job.tenantId, [invoiceId])).get(invoiceId)
      if (busy !== undefined) { log.info({ invoiceId, reason: UNDERWAY_REASON[busy] }, 'auto-pay: skipped'); return }
      try {
        const result = await chargeInvoice(db, await paymentsFor(db, job.tenantId), {
          tenantId: job.tenantId, invoiceId, paymentMethodId, amount: Math.min(amount, open), actor: 'autopay', trigger: 'autopay'
        })
        log.info({ invoiceId, outcome: result.outcome }, 'auto-pay charge')
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'CHARGE_LIMIT_REACHED')) throw error
        log.info({ invoiceId, reason: error.message }, 'auto-pay: skipped')
      }
    },
    /** The next scheduled try after a soft decline: same method, at most what is still open. */
    'payments.retry': async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError('payments.retry needs a tenant')
      const failed = await getAttempt(db, job.tenantId, attemptIdOf(job.payload))
      // Statement payments are started by a person and never retried (followUp); a job naming one is not ours.
      if (failed.invoiceId === null) throw new PermanentJobError(`attempt ${failed.id} is a statement payment, which is not retried`)
      // An installment whose plan was cancelled or ended meanwhile is not collected any more.
      if (failed.installmentPartId !== null && !await partCollectible(db, job.tenantId, failed.installmentPartId)) {
        log.info({ attempt: failed.id }, 'nothing to retry: the installment plan has ended'); return
      }
      const firstAttemptId = typeof job.payload.firstAttemptId === 'string' ? job.payload.firstAttemptId : failed.id
      const invoice = await db('invoices').where({ tenant_id: job.tenantId, id: failed.invoiceId }).first() as { ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number }
      const open = openBalance(invoice)
      if (open <= 0) { log.info({ attempt: failed.id }, 'nothing left to retry: the invoice was paid another way'); return }
      // Other triggers used up the invoice's charges for the window meanwhile: the schedule gives up, as when it runs out.
      const capped = async (error: unknown): Promise<null> => {
        if (!(error instanceof AppError && error.code === 'CHARGE_LIMIT_REACHED')) throw error
        await enqueue(db, job.tenantId as string, [{ queue: 'collection.give-up', payload: { attemptId: failed.id, why: 'attempt_cap' }, dedupeKey: `give-up:${failed.id}` }])
        return null
      }
      const result = await chargeInvoice(db, await paymentsFor(db, job.tenantId), {
        tenantId: job.tenantId,
        invoiceId: failed.invoiceId,
        paymentMethodId: failed.paymentMethodId,
        amount: Math.min(failed.amount.amount, open),
        actor: 'retry',
        trigger: 'retry',
        retryOf: firstAttemptId,
        retryNumber: failed.retryNumber + 1,
        ...(failed.installmentPartId === null ? {} : { installmentPartId: failed.installmentPartId })
      }).catch(capped)
      if (result === null) { log.info({ attempt: failed.id }, 'retry given up: the invoice reached its charge limit'); return }
      log.info({ attempt: result.attempt.id, outcome: result.outcome }, 'payment retry ran')
    }
  }
}

/**
 * Finds attempts stuck in `created` or `unknown` for a minute (a crash
 * between the processor call and our write whose recovery job was lost, or
 * an attempt written before those jobs existed) and queues their resolution.
 * Runs from every process; the dedupe key makes it one job per attempt and
 * sweep window.
 */
export async function sweepUnresolvedAttempts (db: Knex, olderThanMs = 60_000): Promise<number> {
  const stuck = await db('payment_attempts').whereIn('status', ['created', 'unknown'])
    .where('updated_at', '<', new Date(Date.now() - olderThanMs)).limit(500) as AttemptRow[]
  const window = Math.floor(Date.now() / olderThanMs)
  for (const attempt of stuck) {
    await enqueue(db, attempt.tenant_id, [{ queue: 'payments.resolve', payload: { attemptId: attempt.id }, dedupeKey: `sweep:${attempt.id}:${window}`, maxAttempts: 5 }])
  }
  return stuck.length
}

/** Queues today's auto-pay run for every tenant with an enrolled client; once a day per tenant whichever process gets there first. */
export async function scheduleAutopayRuns (db: Knex, now = new Date()): Promise<number> {
  const tenants = await db('autopay_rules').where({ enrolled: true }).distinct('tenant_id').pluck('tenant_id') as string[]
  return await queueDailyRuns(db, tenants, 'autopay.run', now)
}

export function startPaymentSweeps (db: Knex, log: FastifyBaseLogger, everyMs = 60_000): () => void {
  const run = (): void => {
    sweepUnresolvedAttempts(db).catch((error: unknown) => { log.error({ err: error }, 'payment sweep failed') })
    scheduleAutopayRuns(db).catch((error: unknown) => { log.error({ err: error }, 'could not schedule auto-pay') })
    scheduleInstallmentRuns(db).catch((error: unknown) => { log.error({ err: error }, 'could not schedule installments') })
  }
  // At once on start as well: attempts a crashed process left behind are found now, not a minute later.
  run()
  const timer = setInterval(run, everyMs)
  timer.unref()
  return () => { clearInterval(timer) }
}
