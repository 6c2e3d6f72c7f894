import type { Knex } from 'knex'

/**
 * Row counts of every table but the bookkeeping (migrations, and the rate
 * limiter's counters, which count refusals by design), in one query:
 * equal fingerprints before and after a refusal mean it wrote nothing.
 * `except` leaves out rows a refusal may write by design (a bounded audit
 * record of a refused sign-in), as a SQL condition per table.
 */
export async function dbFingerprint (db: Knex, except: Record<string, string> = {}): Promise<Record<string, number>> {
  return await (await fingerprinter(db, except))()
}

/** The same, with the table list read once: for taking a fingerprint around every request of a fuzz run. */
export async function fingerprinter (db: Knex, except: Record<string, string> = {}): Promise<() => Promise<Record<string, number>>> {
  const tables = await db('information_schema.tables').where({ table_schema: 'public', table_type: 'BASE TABLE' })
    .whereNotIn('table_name', ['knex_migrations', 'knex_migrations_lock', 'rate_limit_hits']).orderBy('table_name').pluck('table_name') as string[]
  const sql = `select ${tables.map(t => `(select count(*) from "${t}"${except[t] === undefined ? '' : ` where not (${except[t]})`}) as "${t}"`).join(', ')}`
  return async () => {
    const result = await db.raw(sql) as { rows: Array<Record<string, number | string>> }
    return Object.fromEntries(Object.entries(result.rows[0] ?? {}).map(([k, v]) => [k, Number(v)]))
  }
}
