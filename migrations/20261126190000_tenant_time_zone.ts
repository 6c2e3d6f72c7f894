import type { Knex } from 'knex'

/** "Due today" is the MSP's today: auto-pay and installments run by the tenant's calendar, not UTC's. */
export async function up (db: Knex): Promise<void> {
  await db.schema.alterTable('tenants', t => { t.text('time_zone').notNullable().defaultTo('UTC') })
}

export async function down (db: Knex): Promise<void> {
  await db.schema.alterTable('tenants', t => { t.dropColumn('time_zone') })
}
