import type { Knex } from 'knex'

/**
 * Keys for the admin API (a tenant's own scripts and back office): stored as
 * a SHA-256 of a 256-bit random secret, so the database never holds a usable
 * key, with the scopes each may use.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('api_keys', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('name').notNullable()
    t.binary('secret_hash').notNullable()
    t.specificType('scopes', 'text[]').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('last_used_at', { useTz: true })
    t.timestamp('revoked_at', { useTz: true })
    t.unique(['tenant_id', 'name'])
  })
  // Who did what through the API (and later, the embedded pages).
  await db.schema.createTable('audit_log', t => {
    t.bigIncrements('id').primary()
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('actor').notNullable()
    t.text('action').notNullable()
    t.text('subject')
    t.jsonb('detail').notNullable().defaultTo('{}')
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.index(['tenant_id', 'at'])
  })
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('audit_log')
  await db.schema.dropTable('api_keys')
}
