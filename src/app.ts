import Fastify, { type FastifyInstance } from 'fastify'
import formbody from '@fastify/formbody'
import type { Knex } from 'knex'
import type { Config } from './config.js'
import { loggerOptions } from './logging.js'
import dbPlugin from './plugins/db.js'
import errorsPlugin from './plugins/errors.js'
import securityPlugin from './plugins/security.js'
import viewPlugin from './plugins/view.js'
import workerPlugin from './plugins/worker.js'
import healthRoutes from './routes/health/index.js'
import homeRoutes from './routes/home/index.js'
import { seedDemo } from './demo/seed.js'
import type { Keyring } from './security/keyring.js'

export interface AppDependencies {
  /** A database the caller owns (tests, benchmarks). */
  db?: Knex
  keyring?: Keyring
}

/** Builds the whole server from its plugins; `server.ts` only starts and stops it. */
export async function buildApp (config: Config, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const production = config.nodeEnv === 'production'
  const app = Fastify({
    logger: loggerOptions(config.logLevel, production),
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    return503OnClosing: true,
    requestTimeout: 30_000,
    routerOptions: { ignoreTrailingSlash: true }
  })
  await app.register(errorsPlugin)
  await app.register(securityPlugin)
  await app.register(formbody)
  await app.register(dbPlugin, { config, ...deps })
  await app.register(viewPlugin, { production })
  await app.register(workerPlugin, { config })
  if (config.demo) {
    const tenant = await seedDemo(app.db, new Date())
    app.log.info({ tenant: tenant.slug }, 'demo tenant ready')
  }
  await app.register(healthRoutes)
  await app.register(homeRoutes, { config })
  return app
}
