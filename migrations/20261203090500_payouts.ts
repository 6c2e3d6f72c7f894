import type { Knex } from 'knex'

/**
 * Processor payouts (Stripe po_…) and the balance transactions each one
 * settled. The deposit poster and the tie-out read these; the ledger entry
 * `payout:{po}:paid` moves the net from processor pending to the bank.
 */
export async function up (db: Knex): Promise<void> {
  // payout_items points at refunds through (tenant_id, id) like everything else.
  await db.raw('alter table payment_refunds add constraint payment_refunds_tenant_id_id_unique unique (tenant_id, id)')

  await db.schema.createTable('payouts', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('processor').notNullable().defaultTo('stripe')
    t.text('processor_payout_ref').notNullable()
    // Net paid to the bank, cents.
    t.bigInteger('amount').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.date('arrival_date')
    t.text('status').notNullable()
    // The balance transactions behind `amount`: gross + fees + refunds = amount.
    t.bigInteger('gross').notNullable().defaultTo(0)
    t.bigInteger('fees').notNullable().defaultTo(0)
    // Refund, dispute and adjustment items: negative or zero (a won dispute paid out alone is the one positive case).
    t.bigInteger('refunds').notNullable().defaultTo(0)
    t.bigInteger('ledger_entry_id')
    t.text('failure_code')
    t.jsonb('raw').notNullable().defaultTo('{}')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'processor', 'processor_payout_ref'])
    t.unique(['tenant_id', 'id'])
    t.foreign(['tenant_id', 'ledger_entry_id']).references(['tenant_id', 'id']).inTable('journal_entries')
    t.index(['tenant_id', 'arrival_date'])
  })
  await db.raw("alter table payouts add constraint payouts_status check (status in ('pending','in_transit','paid','failed','canceled'))")

  await db.schema.createTable('payout_items', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('payout_id').notNullable()
    t.text('balance_transaction_ref').notNullable()
    t.text('type').notNullable()
    // The processor's own type/reporting category, kept for the tie-out's explanations.
    t.text('processor_type')
    t.text('reporting_category')
    t.uuid('attempt_id')
    t.uuid('refund_id')
    t.bigInteger('gross').notNullable()
    t.bigInteger('fee').notNullable().defaultTo(0)
    t.bigInteger('net').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.text('source_ref')
    t.text('payment_intent_ref')
    t.timestamp('occurred_at', { useTz: true })
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.primary(['payout_id', 'balance_transaction_ref'])
    // One balance transaction settles in one payout only.
    t.unique(['tenant_id', 'balance_transaction_ref'])
    t.foreign(['tenant_id', 'payout_id']).references(['tenant_id', 'id']).inTable('payouts')
    t.foreign(['tenant_id', 'attempt_id']).references(['tenant_id', 'id']).inTable('payment_attempts')
    t.foreign(['tenant_id', 'refund_id']).references(['tenant_id', 'id']).inTable('payment_refunds')
    t.index(['tenant_id', 'attempt_id'])
  })
  await db.raw(`alter table payout_items add constraint payout_items_type
    check (type in ('charge','payment','refund','adjustment','dispute','payout_fee','other'))`)
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('payout_items')
  await db.schema.dropTable('payouts')
  await db.raw('alter table payment_refunds drop constraint payment_refunds_tenant_id_id_unique')
}
