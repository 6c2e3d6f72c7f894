import type { Knex } from 'knex'

/**
 * Tenants, their encrypted secrets and customers; the double-entry ledger;
 * the job queue that doubles as the outbox.
 *
 * Rules enforced by the database as well as by code:
 * - every business row carries tenant_id, and references between rows go
 *   through (tenant_id, id) pairs, so a row can never point into another tenant;
 * - a journal entry's postings sum to zero per currency when its transaction
 *   commits (deferred constraint triggers), and an entry has at least two;
 * - journal entries and postings are never updated, deleted or truncated.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('tenants', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.text('slug').notNullable().unique()
    t.text('name').notNullable()
    t.specificType('default_currency', 'char(3)').notNullable().defaultTo('USD')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
  })
  await db.raw("alter table tenants add constraint tenants_slug_format check (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$')")

  await db.schema.createTable('tenant_secrets', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE')
    t.text('name').notNullable()
    t.text('key_id').notNullable()
    t.binary('iv').notNullable()
    t.binary('tag').notNullable()
    t.binary('ciphertext').notNullable()
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.primary(['tenant_id', 'name'])
    t.index(['key_id'])
  })

  await db.schema.createTable('customers', t => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('name').notNullable()
    t.specificType('currency', 'char(3)').notNullable().defaultTo('USD')
    t.text('psa_system')
    t.text('psa_company_id')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.unique(['tenant_id', 'id'])
    t.unique(['tenant_id', 'psa_system', 'psa_company_id'])
    t.index(['tenant_id', 'name'])
  })

  await db.schema.createTable('ledger_accounts', t => {
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('code').notNullable()
    t.text('kind').notNullable()
    t.uuid('customer_id')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.primary(['tenant_id', 'code'])
    t.foreign(['tenant_id', 'customer_id']).references(['tenant_id', 'id']).inTable('customers')
    t.index(['tenant_id', 'customer_id'])
  })
  await db.raw("alter table ledger_accounts add constraint ledger_accounts_kind check (kind in ('asset','liability','income','expense','control'))")

  await db.schema.createTable('journal_entries', t => {
    t.bigIncrements('id').primary()
    t.uuid('tenant_id').notNullable().references('tenants.id')
    t.text('idempotency_key').notNullable()
    t.text('kind').notNullable()
    t.text('memo')
    t.timestamp('effective_at', { useTz: true }).notNullable()
    t.timestamp('recorded_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.bigInteger('reverses_entry_id')
    t.text('fingerprint').notNullable()
    t.jsonb('source')
    t.unique(['tenant_id', 'idempotency_key'], { indexName: 'journal_entries_idempotency' })
    t.unique(['tenant_id', 'id'])
    // An entry is reversed at most once.
    t.unique(['reverses_entry_id'], { indexName: 'journal_entries_single_reversal' })
    t.foreign(['tenant_id', 'reverses_entry_id']).references(['tenant_id', 'id']).inTable('journal_entries')
  })

  await db.schema.createTable('postings', t => {
    t.bigIncrements('id').primary()
    t.uuid('tenant_id').notNullable()
    t.bigInteger('entry_id').notNullable()
    t.text('account_code').notNullable()
    t.bigInteger('amount').notNullable()
    t.specificType('currency', 'char(3)').notNullable()
    // Copied from the entry so "balance as of" is one index range scan.
    t.timestamp('effective_at', { useTz: true }).notNullable()
    t.foreign(['tenant_id', 'entry_id']).references(['tenant_id', 'id']).inTable('journal_entries')
    t.foreign(['tenant_id', 'account_code']).references(['tenant_id', 'code']).inTable('ledger_accounts')
    t.index(['entry_id'])
    t.index(['tenant_id', 'account_code', 'currency', 'effective_at'])
  })
  await db.raw('alter table postings add constraint postings_amount_nonzero check (amount <> 0)')
  await db.raw("alter table postings add constraint postings_currency_format check (currency ~ '^[A-Z]{3}$')")

  // Balance: checked at commit, once per entry and once per posting, so
  // postings added later or in another transaction cannot unbalance an entry.
  await db.raw(`create function ledger_check_entry_balanced() returns trigger language plpgsql as $$
    declare
      target bigint;
      n integer;
      bad text;
    begin
      if tg_table_name = 'postings' then target := new.entry_id; else target := new.id; end if;
      -- One pass: how many postings, and which currencies do not net to zero.
      select coalesce(sum(per_currency.n), 0), string_agg(per_currency.currency || ' ' || per_currency.total, ', ') filter (where per_currency.total <> 0)
        into n, bad
        from (select currency, count(*) as n, sum(amount) as total from postings where entry_id = target group by currency) per_currency;
      if n < 2 then
        raise exception 'journal entry % has % postings; at least 2 are required', target, n
          using errcode = '23514', constraint = 'journal_entries_balanced';
      end if;
      if bad is not null then
        raise exception 'journal entry % does not balance: %', target, bad
          using errcode = '23514', constraint = 'journal_entries_balanced';
      end if;
      return null;
    end $$`)
  await db.raw(`create constraint trigger journal_entries_balanced after insert on journal_entries
    deferrable initially deferred for each row execute function ledger_check_entry_balanced()`)
  await db.raw(`create constraint trigger postings_balanced after insert on postings
    deferrable initially deferred for each row execute function ledger_check_entry_balanced()`)

  // Immutability: corrections are reversing entries, never edits.
  await db.raw(`create function ledger_forbid_change() returns trigger language plpgsql as $$
    begin
      raise exception 'ledger rows in % are immutable; post a reversing entry instead', tg_table_name
        using errcode = '55000', hint = 'LEDGER_IMMUTABLE';
    end $$`)
  for (const table of ['journal_entries', 'postings']) {
    await db.raw(`create trigger ${table}_immutable before update or delete on ${table} for each row execute function ledger_forbid_change()`)
    await db.raw(`create trigger ${table}_no_truncate before truncate on ${table} for each statement execute function ledger_forbid_change()`)
  }

  // Jobs and outbox: one table. An outbox row is a job inserted in the same
  // transaction as the ledger entry that causes it (source_entry_id).
  await db.schema.createTable('jobs', t => {
    t.bigIncrements('id').primary()
    t.uuid('tenant_id').references('tenants.id')
    t.text('queue').notNullable()
    t.jsonb('payload').notNullable().defaultTo('{}')
    t.text('state').notNullable().defaultTo('pending')
    t.timestamp('run_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.integer('attempts').notNullable().defaultTo(0)
    t.integer('max_attempts').notNullable().defaultTo(10)
    t.text('dedupe_key').notNullable().defaultTo(db.raw('gen_random_uuid()::text'))
    t.text('locked_by')
    t.timestamp('locked_until', { useTz: true })
    t.text('last_error')
    t.bigInteger('source_entry_id')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now())
    t.timestamp('finished_at', { useTz: true })
    t.foreign(['tenant_id', 'source_entry_id']).references(['tenant_id', 'id']).inTable('journal_entries')
    t.index(['tenant_id', 'state'])
  })
  await db.raw("alter table jobs add constraint jobs_state check (state in ('pending','running','done','dead'))")
  await db.raw('alter table jobs add constraint jobs_attempts check (attempts >= 0 and max_attempts >= 1)')
  // Same tenant + queue + key = the same job, including system jobs (tenant_id null).
  await db.raw('create unique index jobs_dedupe on jobs (tenant_id, queue, dedupe_key) nulls not distinct')
  await db.raw("create index jobs_due on jobs (run_at) where state = 'pending'")
  await db.raw("create index jobs_leased on jobs (locked_until) where state = 'running'")
}

export async function down (db: Knex): Promise<void> {
  await db.schema.dropTable('jobs')
  await db.schema.dropTable('postings')
  await db.schema.dropTable('journal_entries')
  await db.raw('drop function ledger_forbid_change()')
  await db.raw('drop function ledger_check_entry_balanced()')
  await db.schema.dropTable('ledger_accounts')
  await db.schema.dropTable('customers')
  await db.schema.dropTable('tenant_secrets')
  await db.schema.dropTable('tenants')
}
