import type { Knex } from 'knex'

/**
 * Money collected elsewhere (QuickBooks payments, bank lines, manual entries)
 * and how any payment is applied to invoices. The database itself refuses to
 * apply the same money twice or to over-apply an invoice: a row trigger locks
 * the payment and invoice rows, then checks
 *   sum(applications of a payment) ≤ payment amount, and
 *   sum(outside applications to an invoice) + paid_via_settle
 *     + (ledger_paid_elsewhere less what of it those applications account for) ≤ ledger_billed.
 * Applications of Settle's own attempts are already in paid_via_settle, so the
 * invoice check counts outside applications only. Reconciliation also books
 * each applied outside payment into ledger_paid_elsewhere (so the PSA sync does
 * not count it again); the check takes them out of it, so each is counted once.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('outside_payments', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('source').notNullable()
    // The source's id; for bank lines without one, a hash of date+amount+memo+sequence.
    t.text('source_ref').notNullable()
    t.uuid('customer_id')
    t.text('payer')
    t.bigInteger('amount').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.date('received_on').notNullable()
    t.text('memo')
    t.text('bank_account')
    t.text('status').notNullable().defaultTo('unmatched')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    // A re-upload of the same statement adds nothing.
    t.unique(['tenant_id', 'source', 'source_ref'])
    t.unique(['tenant_id', 'id'])
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
    t.index(['tenant_id', 'status'])
  })
  await db.raw("alter table outside_payments add constraint outside_payments_source check (source in ('quickbooks','bank_csv','bank_ofx','manual'))")
  await db.raw("alter table outside_payments add constraint outside_payments_status check (status in ('unmatched','matched','partially_applied','exception','written_off','dismissed'))")
  await db.raw('alter table outside_payments add constraint outside_payments_amount_positive check (amount > 0)')

  await db.schema.createTable('payment_applications', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.uuid('outside_payment_id')
    t.uuid('attempt_id')
    t.uuid('invoice_id').notNullable()
    t.bigInteger('amount').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.text('kind').notNullable()
    t.jsonb('reasons').notNullable().defaultTo('[]')
    t.decimal('confidence', 4, 3)
    t.text('actor').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.foreign(['tenant_id', 'outside_payment_id']).references(['tenant_id', 'id']).inTable('outside_payments')
    t.foreign(['tenant_id', 'attempt_id']).references(['tenant_id', 'id']).inTable('payment_attempts')
    t.foreign(['tenant_id', 'invoice_id']).references(['tenant_id', 'id']).inTable('invoices')
    t.index(['tenant_id', 'invoice_id'])
    t.index(['tenant_id', 'outside_payment_id'])
  })
  await db.raw('alter table payment_applications add constraint payment_applications_one_source check ((outside_payment_id is null) <> (attempt_id is null))')
  await db.raw('alter table payment_applications add constraint payment_applications_amount_positive check (amount > 0)')
  await db.raw("alter table payment_applications add constraint payment_applications_kind check (kind in ('auto','accepted','manual'))")
  await db.raw(`
    create function payment_applications_guard() returns trigger language plpgsql as $$
    declare
      pay_amount bigint; pay_currency text; applied bigint;
      billed bigint; settled bigint; elsewhere bigint; inv_currency text; outside bigint;
    begin
      if new.outside_payment_id is not null then
        -- Lock the payment row: concurrent applications of it serialise here.
        select amount, currency into pay_amount, pay_currency from outside_payments
          where tenant_id = new.tenant_id and id = new.outside_payment_id for update;
        if pay_currency <> new.currency then
          raise exception 'payment_applications: currency % differs from the payment''s %', new.currency, pay_currency using errcode = '23514';
        end if;
        select coalesce(sum(amount), 0) into applied from payment_applications
          where tenant_id = new.tenant_id and outside_payment_id = new.outside_payment_id and id <> new.id;
        if applied + new.amount > pay_amount then
          raise exception 'payment_applications: payment % would be over-applied (% + % > %)', new.outside_payment_id, applied, new.amount, pay_amount using errcode = '23514';
        end if;
      end if;
      select ledger_billed, paid_via_settle, ledger_paid_elsewhere, currency into billed, settled, elsewhere, inv_currency from invoices
        where tenant_id = new.tenant_id and id = new.invoice_id for update;
      if inv_currency <> new.currency then
        raise exception 'payment_applications: currency % differs from the invoice''s %', new.currency, inv_currency using errcode = '23514';
      end if;
      if new.outside_payment_id is not null then
        select coalesce(sum(amount), 0) into outside from payment_applications
          where tenant_id = new.tenant_id and invoice_id = new.invoice_id and outside_payment_id is not null and id <> new.id;
        if outside + new.amount + settled + greatest(elsewhere - outside, 0) > billed then
          raise exception 'payment_applications: invoice % would be over-applied', new.invoice_id using errcode = '23514';
        end if;
      end if;
      return new;
    end $$`)
  await db.raw('create trigger payment_applications_guard before insert or update on payment_applications for each row execute function payment_applications_guard()')
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('payment_applications')
  await db.raw('drop function payment_applications_guard()')
  await db.schema.dropTable('outside_payments')
}
