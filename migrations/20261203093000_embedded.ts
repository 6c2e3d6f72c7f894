import type { Knex } from 'knex'

/**
 * Who may do what inside the PSA: one row per tenant, PSA and member (a PSA
 * member id, `role:<name>`, or `*` for everyone) and permission. A member
 * with no row may only view; charge and sync are granted explicitly.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('embedded_member_permissions', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('psa_system').notNullable()
    t.text('member_ref').notNullable()
    t.text('permission').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'psa_system', 'member_ref', 'permission'])
  })
  await db.raw("alter table embedded_member_permissions add constraint embedded_member_permissions_permission check (permission in ('view','charge','sync'))")
  await db.raw("alter table embedded_member_permissions add constraint embedded_member_permissions_system check (psa_system in ('connectwise','autotask'))")
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('embedded_member_permissions')
}
