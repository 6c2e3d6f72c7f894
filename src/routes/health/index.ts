import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config.js'
import { describeTarget } from '../../db/knex.js'
import { pendingMigrations } from '../../db/migrate.js'
import { AppError } from '../../errors.js'
import { databaseTarget } from '../../plugins/db.js'
import { MAIN_LAYOUT } from '../../plugins/view.js'

export default async function healthRoutes (app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  /** The database answers and which migrations are still to run; null pending when it does not answer. */
  const readiness = async (log: { warn: (o: object, m: string) => void }): Promise<{ reachable: boolean, pending: string[] }> => {
    try {
      await app.db.raw('select 1')
      return { reachable: true, pending: await pendingMigrations(app.db) }
    } catch (error) {
      log.warn({ err: error }, 'database not reachable')
      return { reachable: false, pending: [] }
    }
  }

  /** Liveness: the process answers. Never touches the database. */
  app.get('/health', async () => ({ status: 'ok' }))

  /** Readiness, for machines (load balancers, orchestrators): the database answers and every migration has run. */
  app.get('/ready', async (request, reply) => {
    const { reachable, pending } = await readiness(request.log)
    if (!reachable) throw new AppError('NOT_READY', 'The database is not reachable.')
    if (pending.length > 0) {
      return await reply.status(503).send({ error: { code: 'NOT_READY', message: `Migrations pending: ${pending.join(', ')}. Run npm run migrate.` }, pending })
    }
    return { status: 'ready', database: 'ok', migrations: 'current' }
  })

  /** The same checks as a page a person reads; /ready stays the machines' answer. */
  app.get('/status', async (request, reply) => {
    const { reachable, pending } = await readiness(request.log)
    const ready = reachable && pending.length === 0
    return await reply.status(ready ? 200 : 503).header('cache-control', 'no-store').view('status', {
      title: `Status: ${ready ? 'ready' : 'not ready'} · Settle`,
      ready,
      checks: [
        { name: 'Database', ok: reachable, badge: reachable ? 'OK' : 'Needs attention', text: reachable ? `Answering: ${describeTarget(databaseTarget(config))}.` : 'Not answering. Check DATABASE_URL and that PostgreSQL is running; the log has the error.' },
        {
          name: 'Migrations',
          ok: reachable && pending.length === 0,
          badge: reachable && pending.length === 0 ? 'OK' : 'Needs attention',
          text: !reachable ? 'Unknown until the database answers.' : pending.length === 0 ? 'Every migration has run.' : `${pending.length} to run: ${pending.join(', ')}. Run npm run migrate.`
        },
        { name: 'Background worker', ok: config.workerEnabled, badge: config.workerEnabled ? 'Running' : 'Off here', text: config.workerEnabled ? `Running in this process (${config.workerConcurrency} jobs at a time).` : 'Off in this process (WORKER_ENABLED=false); another process must run it.' },
        { name: 'Mode', ok: true, badge: config.demo ? 'Demo' : 'Production', text: config.demo ? 'Demo: seeded example tenants on stand-ins of ConnectWise, Autotask, Stripe and QuickBooks.' : 'Production.' }
      ]
    }, MAIN_LAYOUT)
  })
}
