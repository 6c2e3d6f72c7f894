import type { Knex } from 'knex'

/**
 * PSA connections, Settle's mirror of PSA invoices and their lines, the sync
 * cursor and run history, stored webhook events, and the shared call budget
 * that keeps every process of a tenant inside the PSA's rate limit.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('psa_connections', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('system').notNullable()
    // Non-secret settings (site, company id, public key, client id, API user, zone URL);
    // private keys and secrets live in tenant_secrets, encrypted.
    t.jsonb('settings').notNullable().defaultTo('{}')
    t.text('status').notNullable().defaultTo('active')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.primary(['tenant_id', 'system'])
  })
  await db.raw("alter table psa_connections add constraint psa_connections_system check (system in ('connectwise','autotask'))")
  await db.raw("alter table psa_connections add constraint psa_connections_status check (status in ('active','error','disabled'))")

  await db.schema.createTable('invoices', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('customer_id').notNullable()
    t.text('psa_system').notNullable()
    t.text('psa_invoice_id').notNullable()
    t.text('number').notNullable()
    t.text('kind').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.date('issued_on').notNullable()
    t.date('due_on')
    t.bigInteger('total').notNullable()
    // What the PSA says is open (Autotask: total until paidDate, then 0).
    t.bigInteger('psa_balance').notNullable()
    t.date('paid_on')
    t.boolean('voided').notNullable().defaultTo(false)
    t.text('status').notNullable()
    t.text('agreement_name')
    t.text('po_number')
    t.timestamp('psa_updated_at', { useTz: true }).notNullable()
    // What the ledger has booked for this invoice, so each sync posts only the difference.
    t.bigInteger('ledger_billed').notNullable().defaultTo(0)
    t.bigInteger('ledger_paid_elsewhere').notNullable().defaultTo(0)
    // Maintained by collection: money Settle itself collected and applied here.
    t.bigInteger('paid_via_settle').notNullable().defaultTo(0)
    t.integer('line_count').notNullable().defaultTo(0)
    t.jsonb('raw')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'psa_system', 'psa_invoice_id'])
    t.unique(['tenant_id', 'id'])
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
    t.index(['tenant_id', 'customer_id', 'status'])
    t.index(['tenant_id', 'number'])
    t.index(['tenant_id', 'status', 'due_on'])
  })
  await db.raw("alter table invoices add constraint invoices_status check (status in ('open','partially_paid','paid','voided','disputed','in_collections'))")

  await db.schema.createTable('invoice_lines', t => {
    t.uuid('tenant_id').notNullable()
    t.uuid('invoice_id').notNullable()
    t.integer('line_no').notNullable()
    t.text('psa_line_id').notNullable()
    t.text('kind').notNullable()
    t.text('description').notNullable()
    t.text('quantity').notNullable()
    t.bigInteger('unit_price')
    t.bigInteger('amount').notNullable()
    t.primary(['invoice_id', 'line_no'])
    t.foreign(['tenant_id', 'invoice_id']).references(['tenant_id', 'id']).inTable('invoices').onDelete('CASCADE')
  })

  await db.schema.createTable('sync_state', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('system').notNullable()
    // Resume point: everything changed before (cursor_at, cursor_id) is committed.
    t.timestamp('cursor_at', { useTz: true })
    t.text('cursor_id')
    // A lease, so two processes never run one tenant's sync at once.
    t.text('locked_by')
    t.timestamp('locked_until', { useTz: true })
    t.timestamp('last_started_at', { useTz: true })
    t.timestamp('last_finished_at', { useTz: true })
    t.text('last_status')
    t.text('last_error')
    t.timestamp('last_open_recheck_at', { useTz: true })
    t.primary(['tenant_id', 'system'])
  })

  await db.schema.createTable('sync_runs', t => {
    t.bigIncrements('id').primary()
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('system').notNullable()
    t.text('trigger').notNullable()
    t.text('status').notNullable().defaultTo('running')
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('finished_at', { useTz: true })
    t.integer('pages').notNullable().defaultTo(0)
    t.integer('invoices_seen').notNullable().defaultTo(0)
    t.integer('created').notNullable().defaultTo(0)
    t.integer('changed').notNullable().defaultTo(0)
    t.integer('voided').notNullable().defaultTo(0)
    t.integer('unchanged').notNullable().defaultTo(0)
    t.integer('lines_fetched').notNullable().defaultTo(0)
    t.integer('calls').notNullable().defaultTo(0)
    t.text('error')
    t.index(['tenant_id', 'system', 'started_at'])
  })
  await db.raw("alter table sync_runs add constraint sync_runs_status check (status in ('running','ok','failed'))")

  await db.schema.createTable('webhook_events', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('source').notNullable()
    t.text('event_id').notNullable()
    t.text('kind').notNullable()
    t.jsonb('payload').notNullable()
    t.timestamp('received_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.primary(['tenant_id', 'source', 'event_id'])
  })

  // Payments pushed back to the PSA, by our reference: the job's own proof that
  // it already posted, since ConnectWise payments cannot be searched by it.
  await db.schema.createTable('psa_payment_pushes', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('psa_system').notNullable()
    t.text('reference').notNullable()
    t.text('psa_invoice_id').notNullable()
    t.bigInteger('amount').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.date('paid_on').notNullable()
    t.text('psa_payment_id').notNullable()
    t.boolean('marked_paid').notNullable().defaultTo(false)
    t.timestamp('pushed_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    // Set when a return or lost dispute took the payment back out of the PSA.
    t.timestamp('reversed_at', { useTz: true })
    t.primary(['tenant_id', 'psa_system', 'reference'])
  })

  // Token bucket per tenant and PSA, shared by every process through this row.
  await db.schema.createTable('psa_call_budget', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('system').notNullable()
    t.double('tokens').notNullable()
    t.timestamp('refilled_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.bigInteger('calls_total').notNullable().defaultTo(0)
    t.primary(['tenant_id', 'system'])
  })
}

export async function down (db: Knex): Promise<void> {
  for (const table of ['psa_call_budget', 'psa_payment_pushes', 'webhook_events', 'sync_runs', 'sync_state', 'invoice_lines', 'invoices', 'psa_connections']) {
    await db.schema.dropTable(table)
  }
}
