import type { FastifyInstance } from 'fastify'
import { pendingMigrations } from '../../db/migrate.js'
import { AppError } from '../../errors.js'

export default async function healthRoutes (app: FastifyInstance): Promise<void> {
  /** Liveness: the process answers. Never touches the database. */
  app.get('/health', async () => ({ status: 'ok' }))

  /** Readiness: the database answers and every migration has run. */
  app.get('/ready', async (request, reply) => {
    let pending: string[]
    try {
      await app.db.raw('select 1')
      pending = await pendingMigrations(app.db)
    } catch (error) {
      request.log.warn({ err: error }, 'database not reachable')
      throw new AppError('NOT_READY', 'The database is not reachable.')
    }
    if (pending.length > 0) {
      return await reply.status(503).send({ error: { code: 'NOT_READY', message: `Migrations pending: ${pending.join(', ')}. Run npm run migrate.` }, pending })
    }
    return { status: 'ready', database: 'ok', migrations: 'current' }
  })
}
