import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import type { Config } from '../config.js'
import { createDb, describeTarget, type DatabaseTarget } from '../db/knex.js'
import { migrateLatest } from '../db/migrate.js'
import { Keyring } from '../security/keyring.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Knex
    keyring: Keyring
  }
}

/**
 * PostgreSQL when configured; otherwise PGlite, kept in the data directory.
 * The demo's PGlite lives in memory: its stand-ins (Stripe's objects, the
 * PSAs' payments) do, and a database that outlived them would point at
 * customers and cards that no longer exist.
 */
export function databaseTarget (config: Config): DatabaseTarget {
  if (config.databaseUrl !== null) return { kind: 'postgres', url: config.databaseUrl }
  return { kind: 'pglite', dataDir: config.demo ? null : config.dataDir }
}

/** How long close waits for handlers still running after their client left. */
const HANDLER_DRAIN_MS = 5_000

export interface DbPluginOptions {
  config: Config
  /** A database the caller owns (tests); it is neither migrated nor closed here. */
  db?: Knex
  keyring?: Keyring
}

/**
 * The database and the key ring. The embedded default migrates itself on
 * boot; a PostgreSQL deployment migrates with `npm run migrate`, and `/ready`
 * reports pending migrations until it has.
 */
export default fp<DbPluginOptions>(async (app, { config, db: given, keyring }) => {
  const db = given ?? createDb(databaseTarget(config))
  // Fastify drains connections before onClose, but a handler whose client hung
  // up keeps running its queries; the pool must outlive it, or the handler
  // fails half-way ("Unable to acquire a connection").
  const running = new Set<FastifyRequest>()
  app.addHook('onRequest', (request, _reply, done) => { running.add(request); done() })
  app.addHook('onSend', (request, _reply, payload, done) => { running.delete(request); done(null, payload) })
  app.addHook('onClose', async () => {
    const giveUpAt = Date.now() + HANDLER_DRAIN_MS
    while (running.size > 0 && Date.now() < giveUpAt) await new Promise(resolve => setTimeout(resolve, 10))
    if (running.size > 0) app.log.warn({ handlers: running.size }, 'closing the database with handlers still running')
    if (given === undefined) await db.destroy()
  })
  if (given === undefined) {
    app.log.info({ database: describeTarget(databaseTarget(config)) }, 'database')
    if (config.databaseUrl === null) {
      const applied = await migrateLatest(db)
      if (applied.length > 0) app.log.info({ applied }, 'migrations applied')
    }
  }
  app.decorate('db', db)
  app.decorate('keyring', keyring ?? (config.encryptionKeys !== null ? new Keyring(config.encryptionKeys) : Keyring.loadOrCreateLocal(config.dataDir)))
}, { name: 'settle-db' })
