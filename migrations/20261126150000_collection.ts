import type { Knex } from 'knex'

/**
 * Stored payment methods (processor ids and display facts only: never card or
 * account numbers), the authorisations clients give, and payment attempts,
 * each written before the processor is called.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('payment_methods', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('customer_id').notNullable()
    t.text('processor').notNullable().defaultTo('stripe')
    t.text('processor_customer_ref').notNullable()
    t.text('processor_method_ref').notNullable()
    t.text('type').notNullable()
    t.text('brand')
    t.text('last4').notNullable()
    t.integer('exp_month')
    t.integer('exp_year')
    t.text('funding')
    t.boolean('is_default').notNullable().defaultTo(false)
    t.text('status').notNullable().defaultTo('active')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'id'])
    t.unique(['tenant_id', 'processor', 'processor_method_ref'])
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
  })
  await db.raw("alter table payment_methods add constraint payment_methods_type check (type in ('card','ach'))")
  await db.raw("alter table payment_methods add constraint payment_methods_status check (status in ('active','detached'))")
  await db.raw("alter table payment_methods add constraint payment_methods_last4 check (last4 ~ '^[0-9]{4}$')")

  await db.schema.createTable('payment_attempts', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('invoice_id').notNullable()
    t.uuid('customer_id').notNullable()
    t.uuid('payment_method_id').notNullable()
    t.bigInteger('amount').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.text('status').notNullable().defaultTo('created')
    t.text('trigger').notNullable()
    t.text('actor').notNullable()
    t.text('processor_intent_ref')
    t.text('failure_code')
    t.text('decline_code')
    t.text('advice_code')
    t.text('failure_class')
    t.text('failure_message')
    t.uuid('retry_of')
    t.integer('retry_number').notNullable().defaultTo(0)
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('settled_at', { useTz: true })
    t.unique(['tenant_id', 'id'])
    t.foreign(['tenant_id', 'invoice_id']).references(['tenant_id', 'id']).inTable('invoices')
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
    t.foreign(['tenant_id', 'payment_method_id']).references(['tenant_id', 'id']).inTable('payment_methods')
    t.index(['tenant_id', 'invoice_id', 'created_at'])
  })
  await db.raw("alter table payment_attempts add constraint payment_attempts_status check (status in ('created','processing','unknown','succeeded','failed','refunded','disputed'))")
  await db.raw('alter table payment_attempts add constraint payment_attempts_amount check (amount > 0)')
  // The double-click guard: one attempt in flight per invoice, enforced by the database.
  await db.raw("create unique index payment_attempts_one_in_flight on payment_attempts (tenant_id, invoice_id) where status in ('created','processing','unknown')")
  await db.raw("create index payment_attempts_unresolved on payment_attempts (updated_at) where status in ('created','unknown')")

  // Auto-pay: the tenant's rule (customer_id null) and each client's enrolment and overrides.
  await db.schema.createTable('autopay_rules', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('customer_id')
    t.boolean('enrolled').notNullable().defaultTo(false)
    t.jsonb('rule').notNullable().defaultTo('{}')
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
  })
  await db.raw('create unique index autopay_rules_one_per_customer on autopay_rules (tenant_id, customer_id) nulls not distinct')

  // What a client agreed to, in the words they saw: the ACH mandate and the auto-pay authorisation.
  await db.schema.createTable('payment_consents', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('customer_id').notNullable()
    t.uuid('payment_method_id')
    t.text('kind').notNullable()
    t.text('text').notNullable()
    t.text('text_version').notNullable()
    t.text('accepted_by_name').notNullable()
    t.text('accepted_by_email')
    t.text('ip').notNullable()
    t.text('user_agent').notNullable()
    t.timestamp('accepted_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('revoked_at', { useTz: true })
    t.text('revoked_by')
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
    t.foreign(['tenant_id', 'payment_method_id']).references(['tenant_id', 'id']).inTable('payment_methods')
    t.index(['tenant_id', 'customer_id'])
  })
  await db.raw("alter table payment_consents add constraint payment_consents_kind check (kind in ('ach_mandate','autopay'))")

  // Auto-pay charges above the approval amount wait here for a person.
  await db.schema.createTable('autopay_approvals', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('invoice_id').notNullable()
    t.uuid('payment_method_id').notNullable()
    t.bigInteger('amount').notNullable()
    t.date('run_on').notNullable()
    t.text('status').notNullable().defaultTo('pending')
    t.text('decided_by')
    t.timestamp('decided_at', { useTz: true })
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'invoice_id', 'run_on'])
    t.foreign(['tenant_id', 'invoice_id']).references(['tenant_id', 'id']).inTable('invoices')
  })
  await db.raw("alter table autopay_approvals add constraint autopay_approvals_status check (status in ('pending','approved','declined'))")

  // Collections that ran out of road: a person should look (the exceptions list).
  await db.schema.createTable('collection_exceptions', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('invoice_id').notNullable()
    t.uuid('attempt_id').notNullable()
    t.text('reason').notNullable()
    t.text('explanation').notNullable()
    t.text('next_step').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('resolved_at', { useTz: true })
    t.text('resolved_by')
    t.unique(['tenant_id', 'attempt_id'])
    t.foreign(['tenant_id', 'invoice_id']).references(['tenant_id', 'id']).inTable('invoices')
  })
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('collection_exceptions')
  await db.schema.dropTable('autopay_approvals')
  await db.schema.dropTable('payment_consents')
  await db.schema.dropTable('autopay_rules')
  await db.schema.dropTable('payment_attempts')
  await db.schema.dropTable('payment_methods')
}
