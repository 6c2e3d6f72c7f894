import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { Worker, type JobHandler } from '../jobs/worker.js'
import { startSyncScheduler } from '../jobs/sync-jobs.js'
import { startPaymentSweeps } from '../jobs/payment-jobs.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Queue name → handler. Plugins add theirs before the server is ready. */
    jobHandlers: Record<string, JobHandler>
    worker: Worker | null
  }
}

/**
 * Each server process runs a worker when WORKER_ENABLED; they share the jobs
 * table and claim with SKIP LOCKED, so scaling out is starting more processes.
 */
export default fp<{ config: Config }>(async (app, { config }) => {
  if (!app.hasDecorator('jobHandlers')) app.decorate('jobHandlers', {} as Record<string, JobHandler>)
  app.decorate('worker', null)
  if (!config.workerEnabled) return
  let stopScheduler: (() => void) | null = null
  // After listen: jobs may call this server itself (the sandbox stand-ins on the embedded default).
  app.addHook('onListen', async () => {
    const worker = new Worker({
      db: app.db,
      handlers: app.jobHandlers,
      log: app.log.child({ component: 'worker' }),
      concurrency: config.workerConcurrency,
      pollMs: config.workerPollMs
    })
    app.worker = worker
    worker.start()
    const stopSync = startSyncScheduler(app.db, config.syncIntervalMinutes, app.log.child({ component: 'scheduler' }))
    const stopSweeps = startPaymentSweeps(app.db, app.log.child({ component: 'payment-sweep' }))
    stopScheduler = () => { stopSync(); stopSweeps() }
  })
  app.addHook('preClose', async () => {
    stopScheduler?.()
    await app.worker?.stop()
  })
}, { name: 'settle-worker', dependencies: ['settle-db'] })
