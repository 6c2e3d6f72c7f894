import t from 'tap'
import type { Knex } from 'knex'
import pino from 'pino'
import Fastify from 'fastify'
import errorsPlugin from '../../src/plugins/errors.js'
import tieoutRoutes from '../../src/routes/api/tieout.js'
import { createApiKey } from '../../src/security/api-keys.js'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { buildApp } from '../../src/app.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakeAccounting } from '../helpers/fake-accounting.js'
import { syncInvoices } from '../../src/services/sync.js'
import { latestTieoutRun, runTieout } from '../../src/services/tieout.js'
import { closeException, listExceptions } from '../../src/db/reconciliation-exceptions.js'
import { postEntry } from '../../src/db/ledger.js'
import { Accounts } from '../../src/domain/ledger.js'
import { money } from '../../src/domain/money.js'
import { Worker } from '../../src/jobs/worker.js'
import { scheduleTieoutRuns, tieoutJobHandlers } from '../../src/jobs/tieout-jobs.js'
import type { AccountingCustomer, AccountingDeposit, AccountingInvoice, AccountingPort } from '../../src/ports/accounting.js'

/** The few reads the tie-out makes, over maps a test edits; every other method refuses. */
class Books {
  invoices = new Map<string, AccountingInvoice>()
  customers = new Map<string, AccountingCustomer>()
  deposits = new Map<string, AccountingDeposit>()
  calls = 0
  failListing = false

  invoice (id: string, docNumber: string, customerId: string, total: number, balance = total): void {
    this.invoices.set(id, { id, docNumber, customerId, customerName: null, total: money(total, 'USD'), balance: money(balance, 'USD'), txnDate: '2026-10-01', dueDate: null, syncToken: '0', updatedAt: new Date(), raw: {} })
  }

  customer (id: string, displayName: string, balance: number): void {
    this.customers.set(id, { id, displayName, companyName: null, balance: money(balance, 'USD'), active: true, raw: {} })
  }

  deposit (id: string, total: number): void {
    this.deposits.set(id, { id, bankAccountId: '35', txnDate: '2026-11-28', total: money(total, 'USD'), lines: [], note: null, syncToken: '0', raw: {} })
  }

  port (): AccountingPort {
    const refuse = async (): Promise<never> => { throw new Error('not used by the tie-out') }
    const self = this // eslint-disable-line @typescript-eslint/no-this-alias -- the port's generator methods count calls on the fake itself
    return {
      system: 'quickbooks',
      realmId: '9130',
      listAccounts: refuse,
      listPaymentMethods: refuse,
      listItems: refuse,
      findCustomers: refuse,
      listCustomers: async function * () { self.calls++; yield [...self.customers.values()] },
      findInvoices: async ({ docNumbers = [] }) => { self.calls++; return [...self.invoices.values()].filter(i => i.docNumber !== null && docNumbers.includes(i.docNumber)) },
      listOpenInvoices: async function * () {
        self.calls++
        if (self.failListing) throw new Error('QuickBooks answered 503')
        yield [...self.invoices.values()].filter(i => i.balance.amount > 0)
      },
      // This fake keeps no credit memos.
      listOpenCreditMemos: async function * () { self.calls++; yield * [] },
      findCreditMemos: async () => { self.calls++; return [] },
      getPayment: refuse,
      getDeposit: async ({ id }) => { self.calls++; return self.deposits.get(id) ?? null },
      createPayment: refuse,
      updatePayment: refuse,
      createDeposit: refuse,
      createJournalEntry: refuse,
      batch: refuse,
      changedSince: refuse,
      callsMade: () => self.calls
    }
  }
}

/** Another helper's migration creates these; until it lands, the same columns here so the payout side is tested. */
async function ensurePostingTables (db: Knex): Promise<void> {
  if (!await db.schema.hasTable('accounting_customer_links')) {
    await db.schema.createTable('accounting_customer_links', t => {
      t.uuid('tenant_id').notNullable()
      t.uuid('customer_id').notNullable()
      t.text('external_customer_id').notNullable()
      t.text('linked_by').notNullable()
    })
  }
  if (!await db.schema.hasTable('accounting_postings')) {
    await db.schema.createTable('accounting_postings', t => {
      t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'))
      t.uuid('tenant_id').notNullable()
      t.text('source_kind').notNullable()
      t.text('source_id').notNullable()
      t.text('request_id').notNullable()
      t.text('external_id')
      t.bigInteger('amount').notNullable()
      t.specificType('currency', 'char(3)').notNullable()
      t.text('status').notNullable()
      t.text('last_error')
    })
  }
}

async function seedTenant (db: Knex, name: string): Promise<{ tenantId: string, books: Books, customer: (psaId: string) => Promise<string> }> {
  const tenant = await makeTenant(db, name)
  await db('accounting_connections').insert({ tenant_id: tenant.id, realm_id: `realm-${name}`, settings: JSON.stringify({ docNumberPrefix: '' }) })
  const books = new Books()
  const customer = async (psaId: string): Promise<string> =>
    (await db('customers').where({ tenant_id: tenant.id, psa_company_id: psaId }).first('id') as { id: string }).id
  return { tenantId: tenant.id, books, customer }
}

async function addPayout (db: Knex, tenantId: string, ref: string, net: number, options: { booked?: boolean, deposit?: { status: string, externalId?: string, lastError?: string } }): Promise<string> {
  let entryId: string | null = null
  if (options.booked !== false) {
    const { entry } = await postEntry(db, tenantId, {
      idempotencyKey: `payout:${ref}:paid`,
      kind: 'payout.paid',
      effectiveAt: new Date('2026-11-28T12:00:00Z'),
      postings: [{ account: Accounts.bank('operating'), amount: money(net, 'USD') }, { account: Accounts.processorPending('stripe'), amount: money(-net, 'USD') }]
    })
    entryId = entry.id
  }
  const [row] = await db('payouts').insert({ tenant_id: tenantId, processor_payout_ref: ref, amount: net, currency: 'USD', arrival_date: '2026-11-28', status: 'paid', ledger_entry_id: entryId }).returning('id') as Array<{ id: string }>
  const id = (row as { id: string }).id
  if (options.deposit !== undefined) {
    await db('accounting_postings').insert({ tenant_id: tenantId, source_kind: 'deposit', source_id: id, request_id: `deposit-${ref}`, external_id: options.deposit.externalId ?? null, amount: net, currency: 'USD', status: options.deposit.status, last_error: options.deposit.lastError ?? null })
  }
  return id
}

const now = new Date('2026-12-03T15:00:00Z')
const causes = (list: Array<{ details: Record<string, unknown> }>): string[] => list.map(e => String(e.details.cause)).sort()

t.test('three-way tie-out', async t => {
  const db = await testDb(t)
  await ensurePostingTables(db)

  // Tenant A: a PSA with five invoices, books with a few planted differences, four payouts.
  const a = await seedTenant(db, 'Brightline')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.addCompany('2', 'Summit Logistics')
  psa.put('1', { company: '1', total: 50_000 })
  psa.put('2', { company: '1', total: 30_000 })
  psa.put('3', { company: '1', total: 45_000 })
  psa.put('4', { company: '2', total: 12_000 })
  psa.put('5', { company: '2', total: 20_000 })
  psa.put('6', { company: '2', total: 8_000, balance: 0 })
  await syncInvoices({ db, tenantId: a.tenantId, psa, trigger: 'test' })
  const harbor = await a.customer('1')
  const summit = await a.customer('2')
  a.books.customer('Q1', 'Harbor Dental', 50_000 + 40_000)
  a.books.customer('Q2', 'Summit Logistics', 20_000)
  await db('accounting_customer_links').insert({ tenant_id: a.tenantId, customer_id: summit, external_customer_id: 'Q2', linked_by: 'person' })
  a.books.invoice('101', 'INV-1', 'Q1', 50_000) // agrees
  // INV-2 missing in QuickBooks
  a.books.invoice('103', 'INV-3', 'Q1', 40_000) // total edited after sync
  a.books.invoice('104', 'INV-4', 'Q2', 12_000, 0) // paid by hand in QuickBooks
  a.books.invoice('105', 'INV-5', 'Q2', 20_000)
  a.books.invoice('106', 'INV-6', 'Q2', 8_000, 0)
  // INV-5: the mirror moved without the ledger (Settle vs PSA drift).
  await db('invoices').where({ tenant_id: a.tenantId, number: 'INV-5' }).update({ psa_balance: 15_000 })

  const clean = await addPayout(db, a.tenantId, 'po_clean', 97_000, { deposit: { status: 'posted', externalId: 'D1' } })
  a.books.deposit('D1', 97_000)
  const noDeposit = await addPayout(db, a.tenantId, 'po_nodeposit', 45_000, {})
  const edited = await addPayout(db, a.tenantId, 'po_edited', 30_000, { deposit: { status: 'posted', externalId: 'D3' } })
  a.books.deposit('D3', 29_500)
  const unbooked = await addPayout(db, a.tenantId, 'po_unbooked', 10_000, { booked: false, deposit: { status: 'posted', externalId: 'D4' } })
  a.books.deposit('D4', 10_000)

  // Tenant B: everything agrees.
  const b = await seedTenant(db, 'Northwind')
  const psaB = new FakePsa()
  psaB.addCompany('1', 'Harbor Dental')
  psaB.put('1', { company: '1', total: 70_000 })
  await syncInvoices({ db, tenantId: b.tenantId, psa: psaB, trigger: 'test' })
  b.books.customer('Q1', 'Harbor Dental', 70_000)
  b.books.invoice('201', 'INV-1', 'Q1', 70_000)
  await addPayout(db, b.tenantId, 'po_b', 68_000, { deposit: { status: 'posted', externalId: 'DB1' } })
  b.books.deposit('DB1', 68_000)

  await t.test('each planted difference becomes one exception with its cause', async t => {
    const outcome = await runTieout(db, a.tenantId, a.books.port(), { trigger: 'manual', now })
    t.equal(outcome.run.status, 'differences')
    const open = await listExceptions(db, a.tenantId, { kind: 'tieout_difference', status: 'open' })
    t.same(causes(open), ['bank_posting_missing', 'deposit_amount_differs', 'edited_after_sync', 'missing_deposit', 'missing_in_qbo', 'payment_applied_in_qbo', 'settle_psa_drift'].sort())
    t.equal(outcome.run.differencesCount, 7)
    const byCause = new Map(open.map(e => [e.details.cause, e]))
    t.match(byCause.get('missing_in_qbo'), { customerId: harbor, summary: /invoice INV-2 \(\$300\.00 open\) is not in QuickBooks/, amount: { amount: 30_000, currency: 'USD' } })
    t.match(byCause.get('payment_applied_in_qbo'), { customerId: summit, likelyCause: /applied by hand in QuickBooks/, suggestedRepair: /QBO invoice 104/ })
    t.match(byCause.get('edited_after_sync'), { summary: /totals \$450\.00 in the PSA but \$400\.00 in QuickBooks/ })
    t.match(byCause.get('settle_psa_drift'), { summary: /PSA shows Summit Logistics's invoice INV-5 with \$150\.00 open; Settle shows \$200\.00/ })
    t.match(byCause.get('missing_deposit'), { details: { payoutId: noDeposit }, summary: /po_nodeposit of \$450\.00/ })
    t.match(byCause.get('deposit_amount_differs'), { details: { payoutId: edited }, amount: { amount: -500 } })
    t.match(byCause.get('bank_posting_missing'), { details: { payoutId: unbooked } })
    t.notOk(open.some(e => e.details.payoutId === clean), 'the clean payout raises nothing')
    // Totals per source, one currency.
    t.match(outcome.run.totals, { USD: { psa: 50_000 + 30_000 + 45_000 + 12_000 + 15_000, settle: 50_000 + 30_000 + 45_000 + 12_000 + 20_000, qbo: 50_000 + 40_000 + 20_000, stripePayouts: 182_000, bankPostings: 172_000, qboDeposits: 136_500 } })
    t.match(outcome.lines.find(l => l.customerId === harbor), { psa: 125_000, settle: 125_000, qbo: 90_000, differences: 2 })
    t.equal(outcome.run.summary.qboLookups, 2, 'INV-2 and INV-4 were looked up by DocNumber; paid INV-6 was not')
  })

  await t.test('a rerun refreshes, never duplicates', async t => {
    const before = await db('reconciliation_exceptions').where({ tenant_id: a.tenantId }).count('* as n').first() as { n: string | number }
    const again = await runTieout(db, a.tenantId, a.books.port(), { trigger: 'manual', now })
    const after = await db('reconciliation_exceptions').where({ tenant_id: a.tenantId }).count('* as n').first() as { n: string | number }
    t.equal(Number(after.n), Number(before.n))
    t.equal(again.exceptionsRaised, 7)
    t.equal(again.exceptionsCleared, 0)
  })

  await t.test('a closed exception stays closed; a difference that is gone resolves itself', async t => {
    const open = await listExceptions(db, a.tenantId, { kind: 'tieout_difference', status: 'open' })
    const edit = open.find(e => e.details.cause === 'edited_after_sync')!
    await closeException(db, a.tenantId, edit.id, { status: 'dismissed', resolution: 'QuickBooks is right; the PSA will be corrected next month', actor: 'dana@brightline.example' })
    a.books.invoice('102', 'INV-2', 'Q1', 30_000) // someone creates the missing invoice
    const third = await runTieout(db, a.tenantId, a.books.port(), { trigger: 'manual', now })
    t.equal(third.exceptionsCleared, 1)
    const rows = await db('reconciliation_exceptions').where({ tenant_id: a.tenantId, id: edit.id }).first()
    t.match(rows, { status: 'dismissed', resolved_by: 'dana@brightline.example', resolution: /QuickBooks is right/ }, 'the rerun left the person\'s decision alone')
    const missing = (await listExceptions(db, a.tenantId, { kind: 'tieout_difference' })).find(e => e.details.cause === 'missing_in_qbo')!
    t.match(missing, { status: 'resolved', resolvedBy: 'tieout', resolution: /no longer finds/ })
    // Deleted again: a new exception, not the resolved one reused.
    a.books.invoices.delete('102')
    await runTieout(db, a.tenantId, a.books.port(), { trigger: 'manual', now })
    const missingNow = (await listExceptions(db, a.tenantId, { kind: 'tieout_difference', status: 'open' })).filter(e => e.details.cause === 'missing_in_qbo')
    t.equal(missingNow.length, 1)
    t.not(missingNow[0]?.id, missing.id)
  })

  await t.test('a clean tenant is clean, with zero exceptions, and sees nothing of the other', async t => {
    const outcome = await runTieout(db, b.tenantId, b.books.port(), { trigger: 'manual', now })
    t.equal(outcome.run.status, 'clean')
    t.same(outcome.differences, [])
    t.equal(outcome.run.differencesCount, 0)
    t.same(await listExceptions(db, b.tenantId), [])
    t.match(outcome.run.totals, { USD: { psa: 70_000, settle: 70_000, qbo: 70_000, stripePayouts: 68_000, bankPostings: 68_000, qboDeposits: 68_000 } })
    const latestB = await latestTieoutRun(db, b.tenantId)
    t.equal(latestB?.run.id, outcome.run.id)
    t.same(latestB?.lines.map(l => l.name), ['Harbor Dental'])
    const latestA = await latestTieoutRun(db, a.tenantId)
    t.equal(latestA?.run.status, 'differences', 'tenant A\'s latest run is its own')
    t.ok((await listExceptions(db, a.tenantId, { status: 'open' })).length > 0, 'and B\'s clean run cleared none of A\'s')
  })

  await t.test('a failed read records a failed run and changes no exception', async t => {
    const before = await listExceptions(db, a.tenantId, { status: 'open' })
    a.books.failListing = true
    await t.rejects(runTieout(db, a.tenantId, a.books.port(), { trigger: 'manual', now }), /503/)
    a.books.failListing = false
    const failed = await db('tieout_runs').where({ tenant_id: a.tenantId }).orderBy('started_at', 'desc').first()
    t.match(failed, { status: 'failed', error: /503/ })
    t.same((await listExceptions(db, a.tenantId, { status: 'open' })).map(e => e.id).sort(), before.map(e => e.id).sort())
    t.equal((await latestTieoutRun(db, a.tenantId))?.run.status, 'failed', 'the failure is the latest word')
  })

  await t.test('one run at a time per tenant; not connected is an error a person can act on', async t => {
    await db('tieout_runs').insert({ tenant_id: b.tenantId, trigger: 'manual', started_at: new Date(Date.now() - 60_000) })
    await t.rejects(runTieout(db, b.tenantId, b.books.port(), { trigger: 'manual' }), { code: 'TIEOUT_IN_PROGRESS' })
    // A run abandoned long ago no longer blocks.
    const later = new Date(Date.now() + 60 * 60_000)
    t.equal((await runTieout(db, b.tenantId, b.books.port(), { trigger: 'manual', now: later })).run.status, 'clean')
    t.match(await db('tieout_runs').where({ tenant_id: b.tenantId, status: 'failed' }).first(), { error: /Abandoned/ })
    await t.rejects(runTieout(db, b.tenantId, null, { trigger: 'manual', now }), { code: 'ACCOUNTING_NOT_CONNECTED' })
  })

  await t.test('the admin API: latest run, run now, scoped and per tenant', async t => {
    const app = Fastify({ logger: false })
    await app.register(errorsPlugin)
    app.decorate('db', db)
    const ports = new Map<string, AccountingPort>([[a.tenantId, a.books.port()], [b.tenantId, b.books.port()]])
    await app.register(tieoutRoutes, { accountingFor: async (tenantId: string) => ports.get(tenantId) ?? null })
    t.teardown(async () => { await app.close() })
    const reader = await createApiKey(db, b.tenantId, 'reports', ['payments:read'])
    const operator = await createApiKey(db, b.tenantId, 'finance lead', ['payments:read', 'exceptions:resolve'])
    const theirs = await createApiKey(db, a.tenantId, 'a finance', ['payments:read', 'exceptions:resolve'])
    const call = async (key: string | null, method: 'GET' | 'POST', url: string): Promise<{ statusCode: number, json: () => any }> =>
      await app.inject({ method, url, headers: key === null ? {} : { authorization: `Bearer ${key}` } })

    t.equal((await call(null, 'GET', '/api/v1/tieout')).statusCode, 401)
    const denied = await call(reader.key, 'POST', '/api/v1/tieout/runs')
    t.equal(denied.statusCode, 403)
    t.match(denied.json().error.message, /exceptions:resolve/)
    const ran = await call(operator.key, 'POST', '/api/v1/tieout/runs')
    t.equal(ran.statusCode, 201)
    t.match(ran.json(), { state: 'clean', run: { status: 'clean', trigger: 'manual', differencesCount: 0 }, differences: [], lines: [{ name: 'Harbor Dental', psa: 70_000, settle: 70_000, qbo: 70_000 }] })
    const latest = await call(reader.key, 'GET', '/api/v1/tieout')
    t.equal(latest.statusCode, 200)
    t.match(latest.json(), { state: 'clean', run: { id: ran.json().run.id }, differences: [], running: null })
    t.equal((await call(reader.key, 'GET', `/api/v1/tieout/runs/${String(ran.json().run.id)}`)).statusCode, 200)
    t.equal((await call(theirs.key, 'GET', `/api/v1/tieout/runs/${String(ran.json().run.id)}`)).statusCode, 404, 'another tenant\'s run is not found')
    t.equal((await call(reader.key, 'GET', '/api/v1/tieout/runs/nope')).statusCode, 400)
    const aView = (await call(theirs.key, 'GET', '/api/v1/tieout')).json()
    t.equal(aView.state, 'failed')
    t.ok(aView.differences.length > 0 && aView.differences.every((d: { summary: string, suggestedRepair: string }) => d.summary !== '' && d.suggestedRepair !== ''), 'tenant A sees its own open differences, each with a repair')
    ports.delete(b.tenantId)
    t.match((await call(operator.key, 'POST', '/api/v1/tieout/runs')).json(), { error: { code: 'ACCOUNTING_NOT_CONNECTED' } })
    ports.set(b.tenantId, b.books.port())
  })

  await t.test('the daily job: one per tenant and day, however often it is scheduled', async t => {
    t.equal(await scheduleTieoutRuns(db, now), 2)
    t.equal(await scheduleTieoutRuns(db, now), 2)
    const jobs = await db('jobs').where({ queue: 'tieout.run' }).select('tenant_id', 'dedupe_key')
    t.equal(jobs.length, 2)
    t.ok(jobs.every(j => j.dedupe_key === 'tieout.run:2026-12-03'))
    const ports = new Map<string, AccountingPort>([[a.tenantId, a.books.port()], [b.tenantId, b.books.port()]])
    const worker = new Worker({ db, handlers: tieoutJobHandlers(async tenantId => ports.get(tenantId) ?? null), log: pino({ level: 'silent' }), concurrency: 2 })
    while (await worker.runOnce() > 0) { /* drain */ }
    t.same((await db('jobs').where({ queue: 'tieout.run' }).pluck('state')).sort(), ['done', 'done'])
    t.equal(await db('tieout_runs').where({ tenant_id: b.tenantId, trigger: 'daily', status: 'clean' }).count('* as n').first().then(r => Number((r as { n: string }).n)), 1)
  })
})

t.test('the app mounts the tie-out API and its daily job', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db)
  const key = await createApiKey(db, tenant.id, 'finance', ['payments:read', 'exceptions:resolve'])
  const headers = { authorization: `Bearer ${key.key}` }
  t.match((await app.inject({ method: 'GET', url: '/api/v1/tieout', headers })).json(), { state: 'never_run', run: null, lines: [], differences: [] })
  const run = await app.inject({ method: 'POST', url: '/api/v1/tieout/runs', headers })
  t.equal(run.statusCode, 409)
  t.match(run.json(), { error: { code: 'ACCOUNTING_NOT_CONNECTED', message: /Connect QuickBooks/ } })
  t.type(app.jobHandlers['tieout.run'], 'function')
})

t.test('against the shared QuickBooks fake: a payment applied by hand, unapplied credit, a deposit Settle posted', async t => {
  const db = await testDb(t)
  await ensurePostingTables(db)
  const c = await seedTenant(db, 'Contoso')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.put('1', { company: '1', total: 50_000 })
  psa.put('2', { company: '1', total: 20_000 })
  await syncInvoices({ db, tenantId: c.tenantId, psa, trigger: 'test' })
  const books = new FakeAccounting()
  const harbor = books.addCustomer({ displayName: 'Harbor Dental' }) // linked by exact name
  books.addInvoice({ customerId: harbor.id, docNumber: 'INV-1', total: 50_000 })
  const second = books.addInvoice({ customerId: harbor.id, docNumber: 'INV-2', total: 20_000 })
  const common = { customerId: harbor.id, txnDate: '2026-11-20', paymentMethodId: null, reference: 'check 1182', depositToAccountId: '4', note: 'entered by hand' }
  await books.createPayment({ ...common, requestId: 'hand-1', amount: money(20_000, 'USD'), applications: [{ invoiceId: second.id, amount: money(20_000, 'USD') }] })
  await books.createPayment({ ...common, requestId: 'hand-2', amount: money(5_000, 'USD'), applications: [] })
  const deposit = await books.createDeposit({ requestId: 'dep-1', bankAccountId: '35', txnDate: '2026-11-28', currency: 'USD', note: 'po_c', lines: [{ accountId: '4', amount: money(61_000, 'USD') }] })
  await addPayout(db, c.tenantId, 'po_c', 61_000, { deposit: { status: 'posted', externalId: deposit.id } })

  const outcome = await runTieout(db, c.tenantId, books, { trigger: 'manual', now })
  t.same(outcome.differences.map(d => d.cause).sort(), ['payment_applied_in_qbo', 'qbo_customer_balance_differs'])
  t.match(outcome.differences.find(d => d.cause === 'payment_applied_in_qbo'), { summary: /invoice INV-2 with \$0\.00 open; Settle shows \$200\.00/ })
  t.match(outcome.differences.find(d => d.cause === 'qbo_customer_balance_differs'), { difference: { amount: -5_000 }, likelyCause: /\$50\.00 of credit sits unapplied/ })
  t.match(outcome.run.totals, { USD: { psa: 70_000, settle: 70_000, qbo: 50_000, stripePayouts: 61_000, bankPostings: 61_000, qboDeposits: 61_000 } })
  t.ok(outcome.run.summary.qboCalls as number >= 4, 'listing, customers, one DocNumber lookup, one deposit read')
})

t.test('PSA credit memos are compared with QuickBooks credit memos, not invoices', async t => {
  const db = await testDb(t)
  await ensurePostingTables(db)
  const c = await seedTenant(db, 'Evergreen')
  const psa = new FakePsa()
  psa.addCompany('1', 'Evergreen Realty')
  psa.put('1', { company: '1', total: 40_000, number: '10001' })
  psa.put('2', { company: '1', total: -2_699, number: '10014' }) // matched in QBO
  psa.put('3', { company: '1', total: -5_000, number: '10015' }) // missing in QBO
  psa.put('4', { company: '1', total: -1_000, number: '10016' }) // applied by hand in QBO
  await syncInvoices({ db, tenantId: c.tenantId, psa, trigger: 'test' })
  t.same((await db('invoices').where({ tenant_id: c.tenantId }).orderBy('number').pluck('kind')), ['standard', 'credit_memo', 'credit_memo', 'credit_memo'])
  const books = new FakeAccounting()
  const evergreen = books.addCustomer({ displayName: 'Evergreen Realty' })
  books.addInvoice({ customerId: evergreen.id, docNumber: '10001', total: 40_000 })
  books.addCreditMemo({ customerId: evergreen.id, docNumber: '10014', total: 2_699 })
  const applied = books.addCreditMemo({ customerId: evergreen.id, docNumber: '10016', total: 1_000, remainingCredit: 400 })

  const outcome = await runTieout(db, c.tenantId, books, { trigger: 'manual', now })
  const d = (n: string): unknown => outcome.differences.filter(x => x.summary.includes(n))
  t.same(d('10014'), [], 'a matched credit memo is no difference, and not "not in QuickBooks"')
  t.match(d('10015'), [{
    cause: 'missing_in_qbo', difference: { amount: -5_000, currency: 'USD' }, figures: { psa: -5_000, settle: -5_000, qbo: 0 },
    summary: /credit memo 10015 \(-\$50\.00 open\) is not in QuickBooks/, likelyCause: /as a credit memo/, suggestedRepair: /Create credit memo 10015 .* for \$50\.00/
  }])
  t.match(d('10016'), [{
    cause: 'credit_remaining_differs', difference: { amount: 600, currency: 'USD' }, figures: { psa: -1_000, settle: -1_000, qbo: -400 },
    summary: /\$4\.00 of credit left to apply; Settle shows \$10\.00/, likelyCause: /\$6\.00 of the credit was applied to an invoice in QuickBooks/, suggestedRepair: new RegExp(`QBO credit memo ${applied.id}`)
  }])
  t.same(outcome.differences.map(x => x.cause).sort(), ['credit_remaining_differs', 'missing_in_qbo'], 'the customer balance, net of open credit, ties')
  t.match(outcome.run.totals, { USD: { psa: 40_000 - 2_699 - 5_000 - 1_000, settle: 40_000 - 2_699 - 5_000 - 1_000, qbo: 40_000 - 2_699 - 400 } })
  t.ok(books.log.some(l => l.method === 'listOpenCreditMemos'))
  t.match(books.log.find(l => l.method === 'findCreditMemos'), { input: { docNumbers: ['10015'] } }, 'only the credit memo the listing missed is looked up, among credit memos')
  t.notOk(books.log.some(l => l.method === 'findInvoices' && (l.input as { docNumbers?: string[] }).docNumbers?.includes('10015')), 'never among invoices')

  // A QBO credit memo with credit left and no PSA twin is reported on its own subject.
  const stray = books.addCreditMemo({ customerId: evergreen.id, docNumber: 'CM-9', total: 700 })
  const again = await runTieout(db, c.tenantId, books, { trigger: 'manual', now })
  t.match(again.differences.find(x => x.subject.type === 'qbo_credit_memo'), { cause: 'not_in_psa', dedupeKey: `tieout:qbo_credit_memo:${stray.id}:not_in_psa`, difference: { amount: -700 }, summary: /credit memo CM-9 .* \$7\.00 of credit left/ })
})
