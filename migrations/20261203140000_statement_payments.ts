import type { Knex } from 'knex'

/**
 * One payment over several invoices: a client pays their statement, or a
 * technician charges what a company owes, in one charge. Every attempt now
 * says which invoices it pays and how much of each (its allocations); a
 * single-invoice attempt gets its one allocation from a trigger, so every
 * insert path agrees. A statement attempt has no invoice_id of its own.
 *
 * The database keeps the promises:
 * - one payment in flight per invoice, whichever kind of attempt it is
 *   (unique index on in-flight allocations; the flag follows the attempt's
 *   status by trigger, so no code path can forget it);
 * - an attempt's allocations add up to its amount, checked at commit;
 * - every allocation is on an invoice of the attempt's client, in its currency;
 * - what an attempt pays (invoice, client, amount, currency) never changes.
 */
const IN_FLIGHT = "('created','processing','unknown')"

export async function up (db: Knex): Promise<void> {
  await db.raw('alter table payment_attempts alter column invoice_id drop not null')
  // A statement attempt pays several invoices; an installment part belongs to exactly one.
  await db.raw('alter table payment_attempts add constraint payment_attempts_statement_not_installment check (invoice_id is not null or installment_part_id is null)')

  await db.schema.createTable('payment_attempt_allocations', t => {
    t.uuid('tenant_id').notNullable()
    t.uuid('attempt_id').notNullable()
    t.uuid('invoice_id').notNullable()
    // Order of application (oldest due first); refunds give back in reverse.
    t.integer('position').notNullable()
    t.bigInteger('amount').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    t.boolean('in_flight').notNullable()
    t.primary(['tenant_id', 'attempt_id', 'invoice_id'])
    t.unique(['tenant_id', 'attempt_id', 'position'])
    // They are part of their attempt: gone with it.
    t.foreign(['tenant_id', 'attempt_id']).references(['tenant_id', 'id']).inTable('payment_attempts').onDelete('CASCADE')
    t.foreign(['tenant_id', 'invoice_id']).references(['tenant_id', 'id']).inTable('invoices')
    t.index(['tenant_id', 'invoice_id'])
  })
  await db.raw('alter table payment_attempt_allocations add constraint payment_attempt_allocations_amount check (amount > 0)')
  await db.raw('create unique index payment_attempt_allocations_one_in_flight on payment_attempt_allocations (tenant_id, invoice_id) where in_flight')

  await db.raw(`
    insert into payment_attempt_allocations (tenant_id, attempt_id, invoice_id, position, amount, currency, in_flight)
    select tenant_id, id, invoice_id, 0, amount, currency, status in ${IN_FLIGHT} from payment_attempts`)

  await db.raw(`
    create function payment_attempts_allocate() returns trigger language plpgsql as $$
    begin
      if tg_op = 'INSERT' then
        if new.invoice_id is not null then
          insert into payment_attempt_allocations (tenant_id, attempt_id, invoice_id, position, amount, currency, in_flight)
          values (new.tenant_id, new.id, new.invoice_id, 0, new.amount, new.currency, new.status in ${IN_FLIGHT});
        end if;
      else
        if (new.tenant_id, new.invoice_id, new.customer_id, new.amount, new.currency) is distinct from (old.tenant_id, old.invoice_id, old.customer_id, old.amount, old.currency) then
          raise exception 'payment_attempts: what an attempt pays never changes (attempt %)', new.id using errcode = '23514';
        end if;
        -- Rewritten on every change of the attempt, not only when the flag flips: that is how the invoice
        -- pod's version of every invoice the attempt pays sees it change (migrations/20261203150000_pod_version.ts).
        -- Attempts change a handful of times in their life, so this costs little.
        update payment_attempt_allocations set in_flight = new.status in ${IN_FLIGHT}
          where tenant_id = new.tenant_id and attempt_id = new.id;
      end if;
      return null;
    end $$`)
  await db.raw('create trigger payment_attempts_allocate after insert or update on payment_attempts for each row execute function payment_attempts_allocate()')

  await db.raw(`
    create function payment_attempt_allocations_guard() returns trigger language plpgsql as $$
    declare
      attempt_customer uuid; attempt_currency text; attempt_status text; invoice_customer uuid; invoice_currency text;
    begin
      if tg_op = 'UPDATE' and (new.tenant_id, new.attempt_id, new.invoice_id, new.position, new.amount, new.currency)
          is distinct from (old.tenant_id, old.attempt_id, old.invoice_id, old.position, old.amount, old.currency) then
        raise exception 'payment_attempt_allocations: an allocation is never edited (only its in-flight flag follows the attempt)' using errcode = '23514';
      end if;
      if tg_op = 'INSERT' then
        select customer_id, currency, status into attempt_customer, attempt_currency, attempt_status from payment_attempts
          where tenant_id = new.tenant_id and id = new.attempt_id;
        select customer_id, currency into invoice_customer, invoice_currency from invoices
          where tenant_id = new.tenant_id and id = new.invoice_id;
        if invoice_customer is distinct from attempt_customer then
          raise exception 'payment_attempt_allocations: invoice % belongs to another client than attempt %', new.invoice_id, new.attempt_id using errcode = '23514';
        end if;
        if invoice_currency <> attempt_currency or new.currency <> attempt_currency then
          raise exception 'payment_attempt_allocations: currency % differs from the attempt''s %', new.currency, attempt_currency using errcode = '23514';
        end if;
        new.in_flight := attempt_status in ${IN_FLIGHT};
      end if;
      return new;
    end $$`)
  await db.raw('create trigger payment_attempt_allocations_guard before insert or update on payment_attempt_allocations for each row execute function payment_attempt_allocations_guard()')

  // Checked at commit, after the statement service has written every allocation.
  await db.raw(`
    create function payment_attempts_allocated_in_full() returns trigger language plpgsql as $$
    declare allocated bigint;
    begin
      select coalesce(sum(amount), 0) into allocated from payment_attempt_allocations where tenant_id = new.tenant_id and attempt_id = new.id;
      if allocated <> new.amount then
        raise exception 'payment_attempts: attempt % allocates % of its % cents', new.id, allocated, new.amount using errcode = '23514';
      end if;
      return null;
    end $$`)
  await db.raw('create constraint trigger payment_attempts_allocated_in_full after insert on payment_attempts deferrable initially deferred for each row execute function payment_attempts_allocated_in_full()')
}

export async function down (db: Knex): Promise<void> {
  await db.raw('drop trigger payment_attempts_allocated_in_full on payment_attempts')
  await db.raw('drop function payment_attempts_allocated_in_full()')
  await db.raw('drop trigger payment_attempts_allocate on payment_attempts')
  await db.raw('drop function payment_attempts_allocate()')
  await db.schema.dropTable('payment_attempt_allocations')
  await db.raw('drop function payment_attempt_allocations_guard()')
  await db('payment_attempts').whereNull('invoice_id').delete()
  await db.raw('alter table payment_attempts drop constraint payment_attempts_statement_not_installment')
  await db.raw('alter table payment_attempts alter column invoice_id set not null')
}
