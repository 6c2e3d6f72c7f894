import type { Knex } from 'knex'

/**
 * A version per invoice and per customer for the rows the invoice pod reads
 * beyond the invoice, customer and tenant rows themselves (whose xmin the pod
 * fingerprint reads directly):
 *
 * - `invoice` versions: the invoice's payment attempts (through their
 *   allocations, so a statement payment bumps each invoice it pays), and
 *   the `payments.retry` jobs named `retry:<attempt id>` of those attempts;
 * - `customer` versions: the customer's payment methods.
 *
 * Any committed insert, update or delete of such a row bumps its version in
 * the same transaction, so the fingerprint reads 5 rows however long the
 * history is, and is never stale in any process.
 *
 * Two steps, for lock order: a statement trigger notes the keys touched in
 * a transaction-local setting (no locks), and a deferred constraint trigger
 * bumps them at commit, all of them at once and in sorted order. Bumping
 * mid-transaction would take a version lock between business locks (a
 * method removed while another is added for the same customer would
 * deadlock); at commit every business lock is already held, and sorted
 * order rules out a cycle between two committing transactions.
 *
 * Not seen: TRUNCATE, and a retry job written before its attempt is
 * committed by another transaction (the attempt's own bump comes first).
 */
const NOTE_SETTING = 'settle.pod_changes'

// Per table: the keys ('subject/tenant/id') of the rows in the transition table `r`.
const KEYS: Record<string, string> = {
  payment_attempts: "select 'invoice/' || r.tenant_id || '/' || r.invoice_id from r",
  // Every invoice an attempt pays, a statement payment's included: allocation rows are rewritten on every
  // change of their attempt (migrations/20261203140000_statement_payments.ts), so this sees those changes too.
  payment_attempt_allocations: "select 'invoice/' || r.tenant_id || '/' || r.invoice_id from r",
  payment_methods: "select 'customer/' || r.tenant_id || '/' || r.customer_id from r",
  // The pod joins a retry job to its attempt by dedupe key 'retry:' || attempt id; the CASE keeps the cast from seeing any other key.
  jobs: `select 'invoice/' || a.tenant_id || '/' || a.invoice_id from r
    join payment_attempts a on a.tenant_id = r.tenant_id
      and a.id = case when r.dedupe_key ~ '^retry:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then substr(r.dedupe_key, 7)::uuid end
    where r.queue = 'payments.retry'`
}

export async function up (db: Knex): Promise<void> {
  await db.schema.createTable('pod_versions', t => {
    t.uuid('tenant_id').notNullable()
    t.text('subject').notNullable()
    t.uuid('subject_id').notNullable()
    t.bigInteger('version').notNullable()
    // No foreign keys: checking one would share-lock the invoice or customer row at commit.
    t.primary(['tenant_id', 'subject', 'subject_id'])
  })
  await db.raw("alter table pod_versions add constraint pod_versions_subject check (subject in ('invoice','customer'))")

  // Adds keys to the transaction's set, kept sorted and distinct.
  await db.raw(`create function pod_note(keys text[]) returns void language plpgsql as $$
    begin
      if coalesce(array_length(keys, 1), 0) = 0 then return; end if;
      perform set_config('${NOTE_SETTING}', (
        select string_agg(k, ' ' order by k) from (
          select unnest(string_to_array(coalesce(current_setting('${NOTE_SETTING}', true), ''), ' ')) as k
          union select unnest(keys)) s
        where k <> ''), true);
    end $$`)

  // At commit: bump every noted key once, in sorted order, and forget them.
  await db.raw(`create function pod_bump() returns trigger language plpgsql as $$
    declare
      keys text := coalesce(current_setting('${NOTE_SETTING}', true), '');
      k text;
    begin
      if keys = '' then return null; end if;
      perform set_config('${NOTE_SETTING}', '', true);
      foreach k in array string_to_array(keys, ' ') loop
        insert into pod_versions (tenant_id, subject, subject_id, version)
          values (split_part(k, '/', 2)::uuid, split_part(k, '/', 1), split_part(k, '/', 3)::uuid, 1)
          on conflict (tenant_id, subject, subject_id) do update set version = pod_versions.version + 1;
      end loop;
      return null;
    end $$`)

  for (const [table, keys] of Object.entries(KEYS)) {
    // Transition tables allow one event per trigger: inserts and deletes read one table, updates both (a row may move).
    await db.raw(`create function ${table}_pod_note() returns trigger language plpgsql as $$
      begin
        if tg_op in ('INSERT', 'UPDATE') then
          perform pod_note(array(with r as (select * from pod_new) ${keys}));
        end if;
        if tg_op in ('DELETE', 'UPDATE') then
          perform pod_note(array(with r as (select * from pod_old) ${keys}));
        end if;
        return null;
      end $$`)
    await db.raw(`create trigger ${table}_pod_note_insert after insert on ${table} referencing new table as pod_new for each statement execute function ${table}_pod_note()`)
    await db.raw(`create trigger ${table}_pod_note_update after update on ${table} referencing old table as pod_old new table as pod_new for each statement execute function ${table}_pod_note()`)
    await db.raw(`create trigger ${table}_pod_note_delete after delete on ${table} referencing old table as pod_old for each statement execute function ${table}_pod_note()`)
    await db.raw(`create constraint trigger ${table}_pod_bump after insert or update or delete on ${table} deferrable initially deferred for each row execute function pod_bump()`)
  }
}

export async function down (db: Knex): Promise<void> {
  for (const table of Object.keys(KEYS)) {
    for (const event of ['insert', 'update', 'delete']) await db.raw(`drop trigger ${table}_pod_note_${event} on ${table}`)
    await db.raw(`drop trigger ${table}_pod_bump on ${table}`)
    await db.raw(`drop function ${table}_pod_note()`)
  }
  await db.raw('drop function pod_bump()')
  await db.raw('drop function pod_note(text[])')
  await db.schema.dropTable('pod_versions')
}
