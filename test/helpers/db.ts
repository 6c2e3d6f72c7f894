import type { Knex } from 'knex'
import { randomBytes } from 'node:crypto'
import { createDb } from '../../src/db/knex.js'
import { migrateLatest } from '../../src/db/migrate.js'

/** Set by `.ci/run` (and by anyone with a PostgreSQL to hand): run against real PostgreSQL. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? null
export const onPostgres = TEST_DATABASE_URL !== null

interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

/**
 * A fresh, migrated database for one test file: a new PostgreSQL database
 * (dropped afterwards) when TEST_DATABASE_URL is set, else in-memory PGlite.
 */
export async function testDb (t: Teardown, options: { migrate?: boolean, poolMax?: number } = {}): Promise<Knex> {
  let db: Knex
  if (TEST_DATABASE_URL === null) {
    db = createDb({ kind: 'pglite', dataDir: null })
    t.teardown(async () => { await db.destroy() })
  } else {
    const { url, drop } = await createPostgresDatabase()
    db = createDb({ kind: 'postgres', url, poolMax: options.poolMax ?? 10 })
    t.teardown(async () => { await db.destroy(); await drop() })
  }
  if (options.migrate !== false) await migrateLatest(db)
  return db
}

/** Creates an empty PostgreSQL database next to TEST_DATABASE_URL's; returns its URL and a dropper. */
export async function createPostgresDatabase (): Promise<{ url: string, drop: () => Promise<void> }> {
  if (TEST_DATABASE_URL === null) throw new Error('TEST_DATABASE_URL is not set')
  const name = `settle_test_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = createDb({ kind: 'postgres', url: TEST_DATABASE_URL, poolMax: 1 })
  await admin.raw(`create database ${name}`)
  await admin.destroy()
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    drop: async () => {
      const again = createDb({ kind: 'postgres', url: TEST_DATABASE_URL, poolMax: 1 })
      await again.raw(`drop database if exists ${name} with (force)`)
      await again.destroy()
    }
  }
}
