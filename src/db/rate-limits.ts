import type { Knex } from 'knex'

/**
 * A store for @fastify/rate-limit over the `rate_limit_hits` table, so the
 * limit holds across every process on one database. One upsert per counted
 * request: the row's window restarts once it has ended, otherwise it counts
 * up. PostgreSQL makes concurrent upserts of one key wait for each other, so
 * no hit is lost between processes.
 */
export async function countHit (db: Knex, key: string, windowMs: number): Promise<{ current: number, ttl: number }> {
  const result = await db.raw(`
    insert into rate_limit_hits as r (key, hits, window_ends_at) values (?, 1, now() + make_interval(secs => ?))
    on conflict (key) do update set
      hits = case when r.window_ends_at <= now() then 1 else r.hits + 1 end,
      window_ends_at = case when r.window_ends_at <= now() then excluded.window_ends_at else r.window_ends_at end
    returning hits, greatest(0, ceil(extract(epoch from (window_ends_at - now())) * 1000))::int as ttl_ms`, [key, windowMs / 1000]) as { rows: Array<{ hits: number, ttl_ms: number }> }
  const row = result.rows[0] as { hits: number, ttl_ms: number }
  return { current: Number(row.hits), ttl: Number(row.ttl_ms) }
}

/** Drops counters whose window ended; called now and then, by whichever process. */
export async function sweepEndedWindows (db: Knex): Promise<void> {
  await db('rate_limit_hits').where('window_ends_at', '<', db.raw("now() - interval '1 minute'")).delete()
}

type Callback = (error: Error | null, result?: { current: number, ttl: number }) => void
const SWEEP_EVERY_MS = 60_000

/** The store class @fastify/rate-limit instantiates; each limit (its groupId) counts under its own prefix. */
export function postgresRateLimitStore (db: Knex): new (options: unknown) => { incr: (key: string, cb: Callback, timeWindow: number) => void, child: (routeOptions: { groupId?: string, routeInfo?: { url?: string } }) => unknown } {
  let lastSweep = 0
  return class PostgresRateLimitStore {
    readonly prefix: string
    constructor (_options: unknown, prefix = '') { this.prefix = prefix }

    incr (key: string, cb: Callback, timeWindow: number): void {
      countHit(db, `${this.prefix}${key}`, timeWindow).then(result => { cb(null, result) }, (error: Error) => { cb(error) })
      if (Date.now() - lastSweep > SWEEP_EVERY_MS) {
        lastSweep = Date.now()
        sweepEndedWindows(db).catch(() => undefined)
      }
    }

    child (routeOptions: { groupId?: string, routeInfo?: { url?: string } }): PostgresRateLimitStore {
      return new PostgresRateLimitStore(undefined, `${routeOptions.groupId ?? routeOptions.routeInfo?.url ?? ''}|`)
    }
  }
}
