import type { Knex } from 'knex'
import { readdirSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { MIGRATIONS_DIR, RUNNING_BUILD } from '../paths.js'
import { join } from 'node:path'


interface Migration { up: (db: Knex) => Promise<void>, down: (db: Knex) => Promise<void> }

/**
 * Lists `migrations/*.ts` in name (timestamp) order and imports them through
 * the same loader the app runs under, so TypeScript migrations need no build.
 * The build runs their compiled `.js` twins under the same `.ts` names, so
 * knex_migrations reads the same whichever way the server was started.
 */
class DirectorySource implements Knex.MigrationSource<string> {
  async getMigrations (): Promise<string[]> {
    return readdirSync(MIGRATIONS_DIR).filter(f => /^\d{14}_[a-z0-9_]+\.(ts|js)$/.test(f)).map(f => f.replace(/\.js$/, '.ts')).sort()
  }

  getMigrationName (migration: string): string {
    return migration
  }

  async getMigration (migration: string): Promise<Migration> {
    const file = RUNNING_BUILD ? migration.replace(/\.ts$/, '.js') : migration
    return await import(pathToFileURL(join(MIGRATIONS_DIR, file)).href) as Migration
  }
}

const options = (): Knex.MigratorConfig => ({ migrationSource: new DirectorySource(), tableName: 'knex_migrations' })

export async function migrateLatest (db: Knex): Promise<string[]> {
  const [, applied] = await db.migrate.latest(options()) as [number, string[]]
  return applied
}

export async function migrateRollbackAll (db: Knex): Promise<string[]> {
  const [, undone] = await db.migrate.rollback(options(), true) as [number, string[]]
  return undone
}

export async function pendingMigrations (db: Knex): Promise<string[]> {
  const [, pending] = await db.migrate.list(options()) as [unknown, Array<{ file: string } | string>]
  return pending.map(p => (typeof p === 'string' ? p : p.file))
}
