import type { Knex } from 'knex'
import { AppError } from '../errors.js'
import type { Job } from '../db/jobs.js'
import { getPostingBySource, markNotPosted, type PostingKind } from '../db/accounting-postings.js'
import { raiseException } from '../db/reconciliation-exceptions.js'
import type { AccountingFactory, AccountingPort } from '../ports/accounting.js'
import { fixHintFor, postDeposit, postPayment, postReversal, PostingBlockedError, PostingNotReadyError, type PostOutcome, type ReversalInput } from '../services/posting.js'
import { PermanentJobError, RetryLaterError, type JobHandler } from './worker.js'

export const POST_PAYMENT_QUEUE = 'qbo.post-payment'
export const POST_DEPOSIT_QUEUE = 'qbo.post-deposit'
export const POST_REVERSAL_QUEUE = 'qbo.post-reversal'

/** How long a deposit or a reversal waits for its payments before looking again. */
const WAIT_MS = 10 * 60_000

const isUuidish = (v: unknown): v is string => typeof v === 'string' && v.length > 0

/**
 * The dead letter, here rather than in the worker: on the job's last try (or
 * a failure retrying cannot fix) the posting is marked failed and a
 * posting_failed exception carries QBO's message and a fix hint. The worker
 * then marks the job dead as usual.
 */
async function deadLetter (db: Knex, job: Job, kind: PostingKind, sourceId: string, error: unknown): Promise<void> {
  const last = error instanceof PermanentJobError || error instanceof PostingBlockedError || job.attempts >= job.maxAttempts
  if (!last || job.tenantId === null) return
  const message = error instanceof Error ? error.message : String(error)
  const fixHint = error instanceof PostingBlockedError ? error.fixHint : fixHintFor(message)
  const posting = await getPostingBySource(db, job.tenantId, kind, sourceId)
  if (posting !== null) await markNotPosted(db, job.tenantId, posting.id, 'failed', message)
  await raiseException(db, job.tenantId, {
    kind: 'posting_failed',
    dedupeKey: `qbo-${kind}:${sourceId}`,
    customerId: posting?.customerId ?? null,
    amount: posting?.amount ?? null,
    summary: `Settle could not post the ${kind} ${sourceId} to QuickBooks: ${message}`,
    likelyCause: message,
    suggestedRepair: `${fixHint} (Retry the dead job ${job.id} once fixed.)`,
    details: { jobId: job.id, queue: job.queue, attempts: job.attempts, error: message }
  })
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
      const p = job.payload
      const input: ReversalInput = {
        sourceId: field('sourceId')(job),
        attemptId: field('attemptId')(job),
        invoiceAmount: Number(p.invoiceAmount ?? 0),
        surchargeAmount: Number(p.surchargeAmount ?? 0),
        currency: String(p.currency ?? 'USD'),
        why: p.why === 'dispute_lost' || p.why === 'ach_return' ? p.why : 'refund'
      }
      return await postReversal(db, a, t, input)
    })
  }
}
