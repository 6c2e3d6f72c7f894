import type { Knex } from 'knex'
import { AppError } from '../errors.js'
import type { Job } from '../db/jobs.js'
import type { PostingKind } from '../db/accounting-postings.js'
import type { AccountingFactory, AccountingPort } from '../ports/accounting.js'
import {
  finalPostingFailure, postDeposit, postPayment, postReversal, PostingBlockedError, PostingNotReadyError, recordPostingFailure, reversalInput,
  POST_DEPOSIT_QUEUE, POST_PAYMENT_QUEUE, POST_REVERSAL_QUEUE, POSTING_WAIT_MS as WAIT_MS, type PostOutcome
} from '../services/posting.js'
import { PermanentJobError, RetryLaterError, type JobHandler } from './worker.js'

export { POST_DEPOSIT_QUEUE, POST_PAYMENT_QUEUE, POST_REVERSAL_QUEUE }

const isUuidish = (v: unknown): v is string => typeof v === 'string' && v.length > 0

/**
 * The dead letter, here rather than in the worker: on the job's last try (or
 * a failure retrying cannot fix) the posting is marked failed and a
 * posting_failed exception carries QBO's message and a fix hint. The worker
 * then marks the job dead as usual. syncNow decides and records the same way.
 */
async function deadLetter (db: Knex, job: Job, kind: PostingKind, sourceId: string, error: unknown): Promise<void> {
  const last = error instanceof PermanentJobError || finalPostingFailure(error, job)
  if (!last || job.tenantId === null) return
  await recordPostingFailure(db, job.tenantId, { kind, sourceId, error, job })
}

export function postingJobHandlers (accountingFor: AccountingFactory): Record<string, JobHandler> {
  const connect = async (tenantId: string): Promise<AccountingPort | null> => {
    let accounting: AccountingPort | null
    try {
      accounting = await accountingFor(tenantId)
    } catch (error) {
      if (error instanceof AppError && error.code === 'ACCOUNTING_RECONNECT_REQUIRED') throw new PostingBlockedError(error.message, 'Reconnect QuickBooks under Settings → Accounting, then retry.')
      throw error
    }
    return accounting
  }
  const run = (kind: PostingKind, sourceOf: (job: Job) => string, post: (db: Knex, accounting: AccountingPort, tenantId: string, job: Job) => Promise<PostOutcome>): JobHandler =>
    async (job, { db, log }) => {
      if (job.tenantId === null) throw new PermanentJobError(`${job.queue} needs a tenant`)
      const sourceId = sourceOf(job)
      try {
        const accounting = await connect(job.tenantId)
        // Not connected: the money is booked in Settle; syncNow posts it once the books are connected (it finds every unposted source).
        if (accounting === null) { log.info({ kind, sourceId }, 'QuickBooks posting skipped: not connected'); return }
        const outcome = await post(db, accounting, job.tenantId, job)
        // Waiting on a person (a customer link): done for now; linkCustomer or syncNow queue it again.
        log.info({ outcome }, outcome.status === 'posted' ? 'posted to QuickBooks' : 'QuickBooks posting waits')
      } catch (error) {
        const wrapped = error instanceof PostingNotReadyError ? new RetryLaterError(error.message, WAIT_MS) : error
        await deadLetter(db, job, kind, sourceId, wrapped).catch((e: unknown) => { log.error({ err: e }, 'could not record the posting dead letter') })
        if (error instanceof PostingBlockedError) throw new PermanentJobError(`${error.message} ${error.fixHint}`)
        throw wrapped
      }
    }
  const field = (name: string) => (job: Job): string => {
    const v = job.payload[name]
    if (!isUuidish(v)) throw new PermanentJobError(`${job.queue} needs payload.${name}`)
    return v
  }
  return {
    [POST_PAYMENT_QUEUE]: run('payment', field('attemptId'), async (db, a, t, job) => await postPayment(db, a, t, field('attemptId')(job))),
    [POST_DEPOSIT_QUEUE]: run('deposit', field('payoutId'), async (db, a, t, job) => await postDeposit(db, a, t, field('payoutId')(job))),
    [POST_REVERSAL_QUEUE]: run('reversal', field('sourceId'), async (db, a, t, job) => {
      // The same reading of the payload syncNow uses; sourceId is checked above, so null means no attemptId.
      const input = reversalInput(job.payload)
      if (input === null) throw new PermanentJobError(`${job.queue} needs payload.attemptId`)
      return await postReversal(db, a, t, input)
    })
  }
}
