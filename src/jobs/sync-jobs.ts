import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { enqueue } from '../db/jobs.js'
import { getSyncState, listPsaConnections } from '../db/psa.js'
import { AppError } from '../errors.js'
import type { PsaPort, PsaSystem } from '../ports/psa.js'
import { syncInvoices, syncOneInvoice } from '../services/sync.js'
import { PermanentJobError, type JobHandler } from './worker.js'

/** Builds the adapter for a tenant's PSA connection (secrets decrypted, budget attached). */
export type PsaFactory = (db: Knex, tenantId: string, system: PsaSystem) => Promise<PsaPort>

const OPEN_RECHECK_MS = 60 * 60_000

function systemOf (payload: Record<string, unknown>): PsaSystem {
  if (payload.system === 'connectwise' || payload.system === 'autotask') return payload.system
  throw new PermanentJobError(`job payload names no PSA system: ${JSON.stringify(payload.system)}`)
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
