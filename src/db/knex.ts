import knex, { type Knex } from 'knex'
import ClientPgLite from 'knex-pglite'
import pg from 'pg'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

export type Db = Knex | Knex.Transaction

// int8 (bigint, count(*)) arrives as text from pg and as numbers from PGlite.
// Amounts are cents within the safe-integer range, so read them as numbers
// here, once, and refuse anything that would lose precision.
pg.types.setTypeParser(20, (value: string) => {
  const n = Number(value)
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${value} exceeds the safe integer range`)
  return n
})

export type DatabaseTarget =
  | { kind: 'postgres', url: string, poolMax?: number }
  | { kind: 'pglite', dataDir: string | null }

export function describeTarget (target: DatabaseTarget): string {
  if (target.kind === 'pglite') return target.dataDir === null ? 'PGlite (in memory)' : `PGlite (${join(target.dataDir, 'pglite')})`
  const url = new URL(target.url)
  return `PostgreSQL (${url.hostname}:${url.port || '5432'}${url.pathname})`
}

export function createDb (target: DatabaseTarget): Knex {
  if (target.kind === 'postgres') {
    return knex({
      client: 'pg',
      connection: target.url,
      pool: { min: 0, max: target.poolMax ?? 10 },
      acquireConnectionTimeout: 10_000
    })
  }
  let connection: { filename?: string } = {}
  if (target.dataDir !== null) {
    const filename = join(target.dataDir, 'pglite')
    mkdirSync(filename, { recursive: true })
    connection = { filename }
  }
  // PGlite is a single connection inside this process: no pool to configure,
  // and its first start takes a few seconds, so allow for it.
  return knex({
    client: ClientPgLite as unknown as typeof knex.Client,
    dialect: 'postgres',
    connection,
    acquireConnectionTimeout: 60_000
  } as Knex.Config)
}

export function isPglite (db: Knex): boolean {
  return db.client.config.client !== 'pg'
}

/** Runs `work` in the caller's transaction when given one, else in a new one. */
export async function inTransaction<T> (db: Db, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  if (db.isTransaction === true) return await work(db as Knex.Transaction)
  return await (db as Knex).transaction(work)
}

/** PostgreSQL error fields we branch on (unique and foreign-key violations, raised checks). */
export interface PgError { code?: string, constraint?: string, message?: string }

export function pgError (error: unknown): PgError {
  return typeof error === 'object' && error !== null ? error as PgError : {}
}
