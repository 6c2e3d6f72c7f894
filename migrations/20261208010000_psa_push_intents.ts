import type { Knex } from 'knex'

/**
 * Before Settle first posts a payment to the PSA it notes which payment ids
 * the invoice already had. A repeat after a lost answer then adopts only a
 * payment that is new since and Settle's own, never a check a person entered
 * for the same amount on the same day.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('psa_payment_push_intents', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('psa_system').notNullable()
    t.text('reference').notNullable()
    t.jsonb('payment_ids_before').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.primary(['tenant_id', 'psa_system', 'reference'])
  })
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('psa_payment_push_intents')
}
