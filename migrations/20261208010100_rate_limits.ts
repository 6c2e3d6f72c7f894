import type { Knex } from 'knex'

/**
 * Request counters for the rate limits on sign-in, session and pay routes
 * (src/db/rate-limits.ts). In the database, not in memory, because Settle
 * scales out as identical processes: every process counts into the same row.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('rate_limit_hits', t => {
    t.text('key').primary()
    t.integer('hits').notNullable()
    t.timestamp('window_ends_at', { useTz: true }).notNullable()
    t.index(['window_ends_at'])
  })
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('rate_limit_hits')
}
