import type { Knex } from 'knex'

/**
 * Checkout: the tenant's brand on the client's pages, one processor customer
 * per client, installment plans, and the card surcharge. Settings live on the
 * tenant row because every page and charge reads them with the tenant.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.alterTable('tenants', t => {
    // White-label: what the client sees instead of Settle.
    t.text('brand_name')
    t.text('brand_accent')
    t.binary('brand_logo')
    t.text('brand_logo_type')
    t.text('support_email')
    // Installments: off while the minimum is null.
    t.bigInteger('installments_min_amount')
    t.integer('installments_max_parts').notNullable().defaultTo(6)
    // Card surcharge in basis points (300 = 3%, the cap); 0 is off.
    t.integer('surcharge_rate_bp').notNullable().defaultTo(0)
    t.specificType('surcharge_blocked_states', 'text[]').notNullable().defaultTo('{}')
  })
  await db.raw("alter table tenants add constraint tenants_brand_accent check (brand_accent ~ '^#[0-9a-f]{6}$')")
  await db.raw("alter table tenants add constraint tenants_brand_logo_type check (brand_logo_type in ('image/png','image/svg+xml','image/jpeg','image/webp'))")
  await db.raw('alter table tenants add constraint tenants_brand_logo_size check (octet_length(brand_logo) <= 262144)')
  await db.raw('alter table tenants add constraint tenants_installments check (installments_max_parts between 2 and 12 and (installments_min_amount is null or installments_min_amount > 0))')
  await db.raw('alter table tenants add constraint tenants_surcharge_cap check (surcharge_rate_bp between 0 and 300)')

  await db.schema.alterTable('customers', t => {
    // Two-letter US state of the billing address: surcharges are not allowed everywhere.
    t.text('billing_state')
    t.text('billing_email')
  })

  // One processor customer per client, created once (its key is derived from our customer id).
  await db.schema.createTable('processor_customers', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('customer_id').notNullable()
    t.text('processor').notNullable().defaultTo('stripe')
    t.text('ref').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.primary(['tenant_id', 'customer_id', 'processor'])
    t.unique(['tenant_id', 'processor', 'ref'])
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
  })

  // What the client agreed to now includes an installment plan's schedule.
  await db.raw('alter table payment_consents drop constraint payment_consents_kind')
  await db.raw("alter table payment_consents add constraint payment_consents_kind check (kind in ('ach_mandate','autopay','installments'))")

  await db.schema.createTable('installment_plans', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('invoice_id').notNullable()
    t.uuid('customer_id').notNullable()
    t.uuid('payment_method_id').notNullable()
    t.bigInteger('total').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.integer('part_count').notNullable()
    t.text('status').notNullable().defaultTo('active')
    t.text('created_by').notNullable()
    t.uuid('consent_id')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('ended_at', { useTz: true })
    t.unique(['tenant_id', 'id'])
    t.foreign(['tenant_id', 'invoice_id']).references(['tenant_id', 'id']).inTable('invoices')
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
    t.foreign(['tenant_id', 'payment_method_id']).references(['tenant_id', 'id']).inTable('payment_methods')
  })
  await db.raw("alter table installment_plans add constraint installment_plans_status check (status in ('active','completed','cancelled','defaulted'))")
  await db.raw('alter table installment_plans add constraint installment_plans_parts check (part_count between 2 and 12 and total > 0)')
  await db.raw("create unique index installment_plans_one_active on installment_plans (tenant_id, invoice_id) where status = 'active'")

  await db.schema.createTable('installment_parts', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('plan_id').notNullable()
    t.integer('seq').notNullable()
    t.bigInteger('amount').notNullable()
    t.date('due_on').notNullable()
    t.text('status').notNullable().defaultTo('scheduled')
    t.uuid('attempt_id')
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['plan_id', 'seq'])
    t.foreign(['tenant_id', 'plan_id']).references(['tenant_id', 'id']).inTable('installment_plans')
    t.foreign(['tenant_id', 'attempt_id']).references(['tenant_id', 'id']).inTable('payment_attempts')
    t.index(['status', 'due_on'])
  })
  await db.raw("alter table installment_parts add constraint installment_parts_status check (status in ('scheduled','charging','paid','failed','cancelled'))")
  await db.raw('alter table installment_parts add constraint installment_parts_amount check (amount > 0 and seq >= 1)')

  // A surcharge rides on top of the invoice amount: charged, never applied to the invoice.
  await db.schema.alterTable('payment_attempts', t => {
    t.bigInteger('surcharge_amount').notNullable().defaultTo(0)
    t.uuid('installment_part_id')
  })
  await db.raw('alter table payment_attempts add constraint payment_attempts_surcharge check (surcharge_amount >= 0)')
}

export async function down (db: Knex): Promise<void> {
  await db.schema.alterTable('payment_attempts', t => { t.dropColumn('installment_part_id'); t.dropColumn('surcharge_amount') })
  await db.schema.dropTable('installment_parts')
  await db.schema.dropTable('installment_plans')
  await db.raw('alter table payment_consents drop constraint payment_consents_kind')
  await db.raw("alter table payment_consents add constraint payment_consents_kind check (kind in ('ach_mandate','autopay'))")
  await db.schema.dropTable('processor_customers')
  await db.schema.alterTable('customers', t => { t.dropColumn('billing_email'); t.dropColumn('billing_state') })
  await db.schema.alterTable('tenants', t => {
    for (const c of ['brand_name', 'brand_accent', 'brand_logo', 'brand_logo_type', 'support_email', 'installments_min_amount', 'installments_max_parts', 'surcharge_rate_bp', 'surcharge_blocked_states']) t.dropColumn(c)
  })
}
