import type { Knex } from 'knex'

/**
 * What Settle posted to the books and how PSA companies map to QBO
 * customers. One posting row per source (an attempt, a payout, a refund or
 * dispute): its id makes the QBO requestid, so a retry after a crash returns
 * the first write instead of posting twice.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('accounting_customer_links', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('customer_id').notNullable()
    t.text('external_customer_id').notNullable()
    // exact_name: matched by name on its own; stored: imported; person: confirmed by someone.
    t.text('linked_by').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'customer_id'])
    t.unique(['tenant_id', 'external_customer_id'])
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
  })
  await db.raw("alter table accounting_customer_links add constraint accounting_customer_links_by check (linked_by in ('exact_name','stored','person'))")

  await db.schema.createTable('accounting_postings', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('source_kind').notNullable()
    t.text('source_id').notNullable()
    t.uuid('customer_id')
    t.text('request_id').notNullable()
    t.text('external_id')
    t.text('external_type')
    t.bigInteger('amount').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.text('status').notNullable().defaultTo('pending')
    // The exact write sent first: a retry resends it (QBO answers the requestid from the first), never a re-derived one.
    t.jsonb('request_body')
    t.text('last_error')
    t.timestamp('posted_at', { useTz: true })
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'source_kind', 'source_id'])
    t.unique(['tenant_id', 'request_id'])
    t.index(['tenant_id', 'status', 'source_kind'])
  })
  await db.raw("alter table accounting_postings add constraint accounting_postings_kind check (source_kind in ('payment','deposit','reversal'))")
  await db.raw("alter table accounting_postings add constraint accounting_postings_status check (status in ('pending','posted','failed'))")
  await db.raw("alter table accounting_postings add constraint accounting_postings_type check (external_type is null or external_type in ('Payment','Deposit','JournalEntry'))")
  await db.raw('alter table accounting_postings add constraint accounting_postings_request_id check (char_length(request_id) <= 50)')
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('accounting_postings')
  await db.schema.dropTable('accounting_customer_links')
}
