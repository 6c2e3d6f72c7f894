import type { Knex } from 'knex'

/**
 * The three-way tie-out's record: one row per run (daily or on demand) with
 * each source's totals per currency, and one line per customer and
 * currency so a clean run can be shown as clean, figure by figure. The
 * differences themselves live in reconciliation_exceptions.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('tieout_runs', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    // daily (the scheduled job) or manual (the API's "run now").
    t.text('trigger').notNullable()
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('finished_at', { useTz: true })
    // running while it works; then clean, differences or failed.
    t.text('status').notNullable().defaultTo('running')
    // { "USD": { psa, settle, qbo, stripePayouts, bankPostings, qboDeposits }, … } in cents; never summed across currencies.
    t.jsonb('totals').notNullable().defaultTo('{}')
    t.integer('differences_count').notNullable().defaultTo(0)
    // Counts by cause, invoices and payouts compared, QuickBooks calls, when the PSA mirror was last synced.
    t.jsonb('summary').notNullable().defaultTo('{}')
    t.text('error')
    t.unique(['tenant_id', 'id'])
    t.index(['tenant_id', 'started_at'])
  })
  await db.raw("alter table tieout_runs add constraint tieout_runs_status check (status in ('running','clean','differences','failed'))")
  await db.raw("alter table tieout_runs add constraint tieout_runs_trigger check (trigger in ('daily','manual'))")
  // One run at a time per tenant: a second "run now" is refused instead of doubling the QuickBooks reads.
  await db.raw("create unique index tieout_runs_one_running on tieout_runs (tenant_id) where status = 'running'")

  await db.schema.createTable('tieout_lines', t => {
    t.uuid('tenant_id').notNullable()
    t.uuid('run_id').notNullable()
    t.integer('line_no').notNullable()
    // Null for QuickBooks amounts no Settle customer could be linked to.
    t.uuid('customer_id')
    t.text('name').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.bigInteger('psa').notNullable()
    t.bigInteger('settle').notNullable()
    t.bigInteger('qbo').notNullable()
    t.integer('differences').notNullable().defaultTo(0)
    t.primary(['run_id', 'line_no'])
    t.foreign(['tenant_id', 'run_id']).references(['tenant_id', 'id']).inTable('tieout_runs').onDelete('CASCADE')
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
    t.index(['tenant_id', 'customer_id'])
  })
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('tieout_lines')
  await db.schema.dropTable('tieout_runs')
}
