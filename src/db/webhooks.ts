import type { Knex } from 'knex'
import type { Db } from './knex.js'
import { jobInsertSql, jobsJson, type JobInput } from './jobs.js'
import { requireTenantId } from './tenants.js'

export interface WebhookEvent {
  source: 'stripe' | 'connectwise' | 'quickbooks'
  /** The sender's event id (or a digest of the body where the sender has none). */
  eventId: string
  kind: string
  /** The raw body as received, kept verbatim for the audit log. */
  raw: string
}

/**
 * Stores a verified webhook event by its id and queues the job that
 * processes it, in one statement: one round trip, atomic on its own, and a
 * redelivery (same id) stores nothing and queues nothing. Returns false for
 * a redelivery.
 */
export async function storeWebhookEvent (db: Db, tenantId: string, event: WebhookEvent, job: JobInput): Promise<boolean> {
  requireTenantId(tenantId)
  const result = await db.raw(`
    with stored as (
      insert into webhook_events (tenant_id, source, event_id, kind, payload)
      values (?::uuid, ?, ?, ?, ?::jsonb)
      on conflict (tenant_id, source, event_id) do nothing
      returning event_id
    ),
    queued as (${jobInsertSql({ sourceEntryId: 'null::bigint', from: 'stored' })})
    select count(*)::int as stored from stored`,
  [tenantId, event.source, event.eventId, event.kind, event.raw, tenantId, jobsJson([job])] as Knex.RawBinding[])
    .options({ name: 'settle_store_webhook_v1' }) as { rows: Array<{ stored: number }> }
  return Number(result.rows[0]?.stored) === 1
}
