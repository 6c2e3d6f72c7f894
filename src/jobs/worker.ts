import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { claimJobs, completeJob, failJob, type Job } from '../db/jobs.js'
import { backoffDelayMs, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js'

export interface JobContext {
  db: Knex
  log: FastifyBaseLogger
  /** Aborted when the worker is stopping; long jobs should stop at a safe point. */
  signal: AbortSignal
}

export type JobHandler = (job: Job, ctx: JobContext) => Promise<void>

/** Throw from a handler when trying again cannot help (bad payload, revoked access): the job goes straight to dead. */
export class PermanentJobError extends Error {
  override readonly name = 'PermanentJobError'
}

/** Throw when the far end said when to come back (Retry-After). */
export class RetryLaterError extends Error {
  override readonly name = 'RetryLaterError'
  constructor (message: string, readonly retryAfterMs: number) { super(message) }
}

export interface WorkerOptions {
  db: Knex
  handlers: Readonly<Record<string, JobHandler>>
  log: FastifyBaseLogger
  concurrency?: number
  pollMs?: number
  leaseMs?: number
  backoff?: BackoffPolicy
  workerId?: string
}

/**
 * Runs due jobs from the shared table. Any number of workers, in any number
 * of processes, can run against one database: claims are row locks with
 * SKIP LOCKED, and completion is fenced by worker id and attempt.
 */
export class Worker {
  readonly id: string
  readonly #opts: Required<Omit<WorkerOptions, 'workerId'>>
  readonly #inflight = new Set<Promise<void>>()
  readonly #abort = new AbortController()
  #loop: Promise<void> | null = null
  #wake: (() => void) | null = null

  constructor (options: WorkerOptions) {
    this.id = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
    this.#opts = {
      concurrency: 4,
      pollMs: 1000,
      leaseMs: 5 * 60_000,
      backoff: DEFAULT_BACKOFF,
      ...options
    }
  }

  get queues (): string[] {
    return Object.keys(this.#opts.handlers)
  }

  start (): void {
    if (this.#loop !== null) return
    this.#loop = this.#run()
  }

  /** Stops claiming, then waits for jobs in flight (they were signalled to wind down). */
  async stop (): Promise<void> {
    this.#abort.abort()
    this.#wake?.()
    await this.#loop
    await Promise.allSettled([...this.#inflight])
  }

  /** Claims and runs one batch; returns how many jobs ran. For tests and one-shot CLIs. */
  async runOnce (): Promise<number> {
    const jobs = await this.#claim(this.#opts.concurrency)
    await Promise.allSettled(jobs.map(job => this.#execute(job)))
    return jobs.length
  }

  async #run (): Promise<void> {
    while (!this.#abort.signal.aborted) {
      const free = this.#opts.concurrency - this.#inflight.size
      let claimed = 0
      if (free > 0) {
        try {
          const jobs = await this.#claim(free)
          claimed = jobs.length
          for (const job of jobs) {
            const running = this.#execute(job).finally(() => { this.#inflight.delete(running); this.#wake?.() })
            this.#inflight.add(running)
          }
        } catch (error) {
          this.#opts.log.error({ err: error }, 'worker could not claim jobs; will retry')
        }
      }
      // A full batch suggests more is due: look again at once when a slot frees.
      if (claimed === 0 || this.#inflight.size >= this.#opts.concurrency) await this.#sleep(claimed === 0 ? this.#opts.pollMs : 60_000)
    }
  }

  async #sleep (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = setTimeout(done, ms)
      function done (): void { clearTimeout(timer); resolve() }
      this.#wake = done
    })
    this.#wake = null
  }

  async #claim (limit: number): Promise<Job[]> {
    return await claimJobs(this.#opts.db, { workerId: this.id, limit, leaseMs: this.#opts.leaseMs, queues: this.queues })
  }

  async #execute (job: Job): Promise<void> {
    const log = this.#opts.log.child({ jobId: job.id, queue: job.queue, attempt: job.attempts })
    const handler = this.#opts.handlers[job.queue]
    try {
      if (handler === undefined) throw new PermanentJobError(`No handler for queue ${job.queue}`)
      await handler(job, { db: this.#opts.db, log, signal: this.#abort.signal })
      if (!await completeJob(this.#opts.db, job, this.id)) log.warn('job finished after its lease was taken over; the newer claim decides its state')
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      const retryAt = error instanceof PermanentJobError
        ? null
        : new Date(Date.now() + (error instanceof RetryLaterError ? error.retryAfterMs : backoffDelayMs(job.attempts, this.#opts.backoff)))
      const state = await failJob(this.#opts.db, job, this.id, message, retryAt).catch((e: unknown) => {
        log.error({ err: e }, 'could not record job failure; its lease will expire and it will run again')
        return null
      })
      if (state === 'dead') log.error({ err: error }, 'job dead-lettered')
      // A job asking to come back later (waiting on something) is not a failure worth a stack trace.
      else if (error instanceof RetryLaterError) log.info({ reason: error.message, retryAt }, 'job will run again later')
      else log.warn({ err: error, retryAt }, 'job failed; will retry')
    }
  }
}
