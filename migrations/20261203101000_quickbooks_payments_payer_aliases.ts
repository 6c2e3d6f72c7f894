import type { Knex } from 'knex'

/**
 * Two small tables for reconciling money collected elsewhere:
 *
 * accounting_cdc_cursors: where each tenant's read of QuickBooks changes
 * (CDC) resumes, per stream ('payments'). Not sync_state: that table is the
 * PSA sync's, and the tie-out reads its last_finished_at as "when the PSA
 * was last synced".
 *
 * customer_payer_aliases: payer names and bank accounts a person confirmed
 * for a customer (by accepting or splitting an exception), so the next
 * payment from that payer is recognised. One value belongs to one customer
 * per tenant. Bank accounts are kept only as a fingerprint with the last
 * four digits, never the number.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('accounting_cdc_cursors', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('stream').notNullable()
    // Everything changed before this instant has been read and stored.
    t.timestamp('cursor_at', { useTz: true }).notNullable()
    // A lease, so a scheduled run and "sync now" never read and match one tenant's payments at once.
    t.timestamp('locked_until', { useTz: true })
    t.timestamp('last_run_at', { useTz: true })
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.primary(['tenant_id', 'stream'])
  })
  await db.raw("alter table accounting_cdc_cursors add constraint accounting_cdc_cursors_stream check (stream in ('payments'))")

  await db.schema.createTable('customer_payer_aliases', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('customer_id').notNullable()
    t.text('kind').notNullable()
    // name: normalised payer name; bank_account: fingerprint ("acct:…1234:<hash>").
    t.text('value').notNullable()
    t.uuid('outside_payment_id')
    t.text('actor').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'kind', 'value'])
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
    t.foreign(['tenant_id', 'outside_payment_id']).references(['tenant_id', 'id']).inTable('outside_payments')
    t.index(['tenant_id', 'customer_id'])
  })
  await db.raw("alter table customer_payer_aliases add constraint customer_payer_aliases_kind check (kind in ('name','bank_account'))")
  await db.raw("alter table customer_payer_aliases add constraint customer_payer_aliases_value check (char_length(value) between 1 and 200)")
  // A full account number must never land here: bank values are fingerprints.
  await db.raw("alter table customer_payer_aliases add constraint customer_payer_aliases_fingerprint check (kind <> 'bank_account' or value ~ '^acct:[0-9]{0,4}:[0-9a-f]{32}$')")
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('customer_payer_aliases')
  await db.schema.dropTable('accounting_cdc_cursors')
}
