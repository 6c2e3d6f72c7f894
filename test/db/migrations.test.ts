import t from 'tap'
import { onPostgres, testDb } from '../helpers/db.js'
import { migrateLatest, migrateRollbackAll, pendingMigrations } from '../../src/db/migrate.js'

t.test(`migrations go up, down and up again (${onPostgres ? 'PostgreSQL' : 'PGlite'})`, async t => {
  const db = await testDb(t, { migrate: false })
  const tables = async (): Promise<string[]> => (await db('information_schema.tables')
    .where({ table_schema: 'public' }).whereNot('table_name', 'like', 'knex_%').orderBy('table_name').pluck('table_name')) as string[]
  const all = await pendingMigrations(db)
  t.ok(all.length >= 1)
  t.same(await migrateLatest(db), all)
  t.same(await pendingMigrations(db), [])
  const created = await tables()
  // One table a line, sorted: each migration adds its own lines.
  t.same(created, [
    'accounting_cdc_cursors',
    'accounting_connections',
    'accounting_customer_links',
    'accounting_postings',
    'api_keys',
    'audit_log',
    'autopay_approvals',
    'autopay_rules',
    'collection_exceptions',
    'customer_payer_aliases',
    'customers',
    'embedded_member_permissions',
    'installment_parts',
    'installment_plans',
    'invoice_lines',
    'invoices',
    'jobs',
    'journal_entries',
    'ledger_accounts',
    'outside_payments',
    'payment_applications',
    'payment_attempt_allocations',
    'payment_attempts',
    'payment_consents',
    'payment_methods',
    'payment_refunds',
    'payout_items',
    'payouts',
    'pod_versions',
    'oauth_states',
    'postings',
    'processor_customers',
    'psa_call_budget',
    'psa_connections',
    'psa_payment_push_intents',
    'psa_payment_pushes',
    'rate_limit_hits',
    'reconciliation_exceptions',
    'sync_runs',
    'sync_state',
    'tenant_secrets',
    'tenants',
    'tieout_lines',
    'tieout_runs',
    'webhook_events'
  ].sort())
  t.same((await migrateRollbackAll(db)).sort(), [...all].sort())
  t.same(await tables(), [], 'down removes everything up made')
  const functions = await db('pg_proc').whereIn('proname', ['ledger_check_entry_balanced', 'ledger_forbid_change', 'pod_note', 'pod_bump', 'payment_attempts_pod_note', 'payment_methods_pod_note', 'jobs_pod_note']).count('* as n')
  t.equal(Number(functions[0]?.n), 0, 'and the trigger functions')
  t.same(await migrateLatest(db), all)
  t.same(await tables(), created)
})
