import type { Knex } from 'knex'
import { enqueue } from '../db/jobs.js'
import { localDate } from '../domain/calendar.js'

/**
 * Queues one run of `queue` per tenant for the tenant's own today (its time
 * zone): the dedupe key is the date, so every process may call this every
 * minute and each tenant still gets one run a day.
 */
export async function queueDailyRuns (db: Knex, tenantIds: readonly string[], queue: string, now: Date): Promise<number> {
  if (tenantIds.length === 0) return 0
  const tenants = await db('tenants').whereIn('id', tenantIds).select('id', 'time_zone') as Array<{ id: string, time_zone: string }>
  for (const tenant of tenants) {
    const today = localDate(now, tenant.time_zone)
    await enqueue(db, tenant.id, [{ queue, payload: { date: today }, dedupeKey: `${queue}:${today}`, maxAttempts: 3 }])
  }
  return tenants.length
}
