import type { Knex } from 'knex'

/**
 * The books connection (QuickBooks Online) and the one exception queue that
 * reconciliation, posting and the tie-out all feed. Tokens live in
 * tenant_secrets (encrypted); this table keeps what is not secret.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('accounting_connections', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('system').notNullable().defaultTo('quickbooks')
    t.text('realm_id').notNullable()
    t.text('company_name')
    // active; reconnect_required (refresh failed: a person must connect again); disconnected.
    t.text('status').notNullable().defaultTo('active')
    // Account, payment-method and item ids (AccountingSettings), discovered then confirmed.
    t.jsonb('settings').notNullable().defaultTo('{}')
    t.timestamp('access_expires_at', { useTz: true })
    t.timestamp('refresh_expires_at', { useTz: true })
    t.text('last_error')
    t.timestamp('connected_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.primary(['tenant_id', 'system'])
  })
  await db.raw("alter table accounting_connections add constraint accounting_connections_system check (system in ('quickbooks'))")
  await db.raw("alter table accounting_connections add constraint accounting_connections_status check (status in ('active','reconnect_required','disconnected'))")

  // Everything that needs a person: money that matched nothing or too much,
  // postings that died, tie-out differences. One finding is one row
  // (dedupe_key), however often the job that finds it runs.
  await db.schema.createTable('reconciliation_exceptions', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('kind').notNullable()
    t.text('dedupe_key').notNullable()
    t.uuid('customer_id')
    t.uuid('invoice_id')
    t.bigInteger('amount')
    t.specificType('currency', 'char(3)')
    t.text('summary').notNullable()
    t.text('likely_cause')
    t.text('suggested_repair')
    t.jsonb('details').notNullable().defaultTo('{}')
    // Ranked: [{ rank, confidence, invoiceIds, amounts, reasons }]
    t.jsonb('suggestions').notNullable().defaultTo('[]')
    t.text('status').notNullable().defaultTo('open')
    t.text('resolution')
    t.text('resolved_by')
    t.timestamp('resolved_at', { useTz: true })
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'dedupe_key'])
    t.unique(['tenant_id', 'id'])
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
    t.foreign(['tenant_id', 'invoice_id']).references(['tenant_id', 'id']).inTable('invoices')
    t.index(['tenant_id', 'status', 'created_at'])
  })
  await db.raw(`alter table reconciliation_exceptions add constraint reconciliation_exceptions_kind
    check (kind in ('unmatched_payment','ambiguous_match','posting_failed','tieout_difference','mapping_needed'))`)
  await db.raw("alter table reconciliation_exceptions add constraint reconciliation_exceptions_status check (status in ('open','resolved','dismissed'))")
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('reconciliation_exceptions')
  await db.schema.dropTable('accounting_connections')
}
