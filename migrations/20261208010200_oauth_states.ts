import type { Knex } from 'knex'

/**
 * QuickBooks OAuth `state` values, stored so each is used once: only its
 * hash is kept, with the tenant, who started the flow, whether they asked to
 * move a company connected elsewhere, and the hash of the browser cookie
 * that began it (set when the person opens the begin link).
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('oauth_states', t => {
    t.text('state_hash').primary()
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.boolean('sandbox').notNullable()
    t.boolean('move_realm').notNullable().defaultTo(false)
    t.text('started_by').notNullable()
    t.text('browser_hash')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('expires_at', { useTz: true }).notNullable()
    t.timestamp('used_at', { useTz: true })
    t.index(['expires_at'])
  })
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('oauth_states')
}
