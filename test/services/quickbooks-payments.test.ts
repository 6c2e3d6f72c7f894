import t from 'tap'
import type { Knex } from 'knex'
import pino from 'pino'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { reconcileWorld } from '../helpers/reconcile-world.js'
import { FakeAccounting } from '../helpers/fake-accounting.js'
import { openBalance } from '../../src/db/invoices.js'
import { listExceptions } from '../../src/db/reconciliation-exceptions.js'
import { acceptSuggestion, splitManually, reconcileOutsidePayments } from '../../src/services/reconcile.js'
import { pullQuickBooksPayments } from '../../src/services/quickbooks-payments.js'
import { bankAccountFingerprint } from '../../src/db/payer-aliases.js'
import { Worker } from '../../src/jobs/worker.js'
import { QBO_PAYMENTS_QUEUE, quickBooksPaymentJobHandlers, scheduleQuickBooksPaymentPulls } from '../../src/jobs/quickbooks-payment-jobs.js'
import { buildApp } from '../../src/app.js'
import { createApiKey } from '../../src/security/api-keys.js'
import { money } from '../../src/domain/money.js'

// The fake's clock starts at 2026-12-01T00:00:00Z and ticks a second per change; runs happen a few minutes later.
const at = (minutes: number): Date => new Date(Date.parse('2026-12-01T00:00:00Z') + minutes * 60_000)

interface World {
  tenantId: string
  books: FakeAccounting
  id: (psaId: string) => Promise<string>
  harbor: string
  summit: string
  q: { harbor: string, summit: string, holdings: string, stray: string }
  qInvoice: (doc: string) => string
}

async function setUp (db: Knex): Promise<World> {
  const { tenantId, id, harbor, summit } = await reconcileWorld(db)
  const books = new FakeAccounting()
  const q = {
    harbor: books.addCustomer({ displayName: 'Harbor Dental' }).id,
    summit: books.addCustomer({ displayName: 'Summit Logistics' }).id,
    // The parent company that pays some of Harbor's bills: a name Settle does not know.
    holdings: books.addCustomer({ displayName: 'HD Holdings LLC' }).id,
    stray: books.addCustomer({ displayName: 'Stray Co' }).id
  }
  const docs: Array<[string, string, number]> = [['INV-5001', q.harbor, 120_000], ['INV-5002', q.harbor, 45_000], ['INV-5003', q.harbor, 45_000], ['INV-6001', q.summit, 80_000], ['INV-6002', q.summit, 100_000], ['INV-6003', q.summit, 40_000]]
  for (const [docNumber, customerId, total] of docs) books.addInvoice({ customerId, docNumber, total })
  const qInvoice = (doc: string): string => books.invoiceByDocNumber(doc)?.id as string
  return { tenantId, books, id, harbor, summit, q, qInvoice }
}

const open = async (db: Knex, tenantId: string, invoiceId: string): Promise<number> => openBalance(await db('invoices').where({ tenant_id: tenantId, id: invoiceId }).first())

t.test('payments entered in QuickBooks are matched like any money collected elsewhere', async t => {
  const db = await testDb(t)
  const w = await setUp(db)
  const actor = 'member:ops'

  await t.test('one linked to its invoice auto-applies; the one Settle posted is skipped', async t => {
    // A bookkeeper recorded Harbor's check against INV-5001 in QuickBooks.
    const byHand = w.books.addPayment({ customerId: w.q.harbor, total: 120_000, reference: '1042', method: 'Check', applications: [{ invoiceId: w.qInvoice('INV-5001'), amount: 120_000 }] })
    // Settle's own posting of a card payment for Summit: in QBO too, and in accounting_postings.
    const ours = await w.books.createPayment({
      requestId: 'stl-p-test-1', customerId: w.q.summit, amount: money(80_000, 'USD'), txnDate: '2026-11-27', paymentMethodId: '4', reference: 'pi_123',
      depositToAccountId: '4', note: 'card payment', applications: [{ invoiceId: w.qInvoice('INV-6001'), amount: money(80_000, 'USD') }]
    })
    await db('accounting_postings').insert({ tenant_id: w.tenantId, source_kind: 'payment', source_id: 'att-1', request_id: 'stl-p-test-1', external_id: ours.id, external_type: 'Payment', amount: 80_000, currency: 'USD', status: 'posted' })
    // And one whose external id we had not written yet when CDC saw it: its note says it is ours.
    w.books.addPayment({ customerId: w.q.summit, total: 40_000, note: 'Settle payment 7c1e for invoice INV-6003', applications: [{ invoiceId: w.qInvoice('INV-6003'), amount: 40_000 }] })

    const r = await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(5) })
    t.match(r, { seen: 3, imported: 1, skippedOwn: 2, skippedVoided: 0, autoApplied: 1, exceptions: 0, gap: false })
    t.equal(await open(db, w.tenantId, await w.id('1')), 0, 'INV-5001 is paid')
    t.equal(await open(db, w.tenantId, await w.id('4')), 80_000, 'INV-6001 untouched: Settle collected that itself')
    t.equal(await open(db, w.tenantId, await w.id('6')), 40_000)
    const [p] = await db('outside_payments').where({ tenant_id: w.tenantId, source: 'quickbooks' })
    t.equal(p.source_ref, byHand.id)
    t.equal(p.payer, 'Harbor Dental')
    t.match(p.memo, /^invoice INV-5001; 1042; paid by Check/)
    t.equal(p.status, 'matched')
    const apps = await db('payment_applications').where({ tenant_id: w.tenantId, outside_payment_id: p.id })
    t.equal(apps.length, 1)
    t.equal(apps[0].kind, 'auto')
    t.match(JSON.stringify(apps[0].reasons), /reference/)
    const push = await db('jobs').where({ tenant_id: w.tenantId, queue: 'psa.push-payment' })
    t.equal(push.length, 1)
    t.match(push[0].payload, { amount: 120_000, method: 'check', settlesInvoice: true })
    const cursor = await db('accounting_cdc_cursors').where({ tenant_id: w.tenantId }).first()
    t.equal(new Date(cursor.cursor_at).toISOString(), r.cursor)
    t.equal(cursor.locked_until, null, 'the lease is released')
  })

  await t.test('a rerun over an overlapping window ingests nothing new', async t => {
    const before = await db('outside_payments').where({ tenant_id: w.tenantId }).count('* as n').first()
    const r = await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(6) })
    t.match(r, { imported: 0, alreadyImported: 1, skippedOwn: 2, autoApplied: 0, exceptions: 0 })
    t.equal(r.since, new Date(at(5).getTime() - 10 * 60_000).toISOString(), 'read from the stored cursor')
    const calls = w.books.log.filter(l => l.method === 'changedSince')
    t.same((calls.at(-1)?.input as { since: Date }).since, at(-5))
    t.same(await db('outside_payments').where({ tenant_id: w.tenantId }).count('* as n').first(), before)
    t.equal((await db('payment_applications').where({ tenant_id: w.tenantId })).length, 1)
  })

  let holdingsException = ''
  await t.test('one that fits two invoices lands in the queue with suggestions', async t => {
    // HD Holdings (a name Settle does not know) pays 450.00 with a mistyped reference: one edit from both INV-5002 and INV-5003, both 450.00.
    w.books.addPayment({ customerId: w.q.holdings, total: 45_000, reference: 'INV-500' })
    const r = await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(7) })
    t.match(r, { imported: 1, autoApplied: 0, exceptions: 1 })
    const [exc] = await listExceptions(db, w.tenantId, { status: 'open' })
    t.equal(exc?.kind, 'ambiguous_match')
    t.match(exc?.summary, /QuickBooks payment/)
    t.same(new Set(exc?.suggestions.flatMap(s => s.invoiceIds)), new Set([await w.id('2'), await w.id('3')]))
    holdingsException = exc?.id as string
  })

  await t.test('accepting it remembers the payer; the next payment from them matches by alias', async t => {
    await acceptSuggestion(db, w.tenantId, holdingsException, 1, actor)
    const aliases = await db('customer_payer_aliases').where({ tenant_id: w.tenantId })
    t.same(aliases.map(a => [a.customer_id, a.kind, a.value]), [[w.harbor, 'name', 'hd holdings']])
    t.equal((await db('audit_log').where({ tenant_id: w.tenantId, action: 'reconciliation.payer_remembered' })).length, 1)
    const left = (await db('invoices').where({ tenant_id: w.tenantId }).whereIn('id', [await w.id('2'), await w.id('3')])).filter(i => openBalance(i) > 0)
    t.equal(left.length, 1)

    // Another 450.00 from HD Holdings: now one invoice of that amount is left, and the remembered name says whose it is.
    w.books.addPayment({ customerId: w.q.holdings, total: 45_000, txnDate: '2026-11-30' })
    const r = await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(8) })
    t.match(r, { imported: 1, autoApplied: 1, exceptions: 0 })
    t.equal(await open(db, w.tenantId, left[0].id), 0)
    const p = await db('outside_payments').where({ tenant_id: w.tenantId, source: 'quickbooks' }).orderBy('created_at', 'desc').orderBy('id').first()
    const [app] = await db('payment_applications').where({ tenant_id: w.tenantId, outside_payment_id: p.id })
    t.match(JSON.stringify(app.reasons), /payer name \\"HD Holdings LLC\\"/, 'identified by the remembered name')
  })

  await t.test('without the alias a unique amount alone would have waited for a person', async t => {
    const other = await setUp(db)
    await db('outside_payments').insert({ tenant_id: other.tenantId, source: 'manual', source_ref: 'x', payer: 'HD Holdings LLC', amount: 120_000, currency: 'USD', received_on: '2026-11-30' })
    await reconcileOutsidePayments(db, other.tenantId)
    // INV-5001 (1200.00) is Harbor's only invoice of that amount; amount alone is never applied.
    t.equal(await open(db, other.tenantId, await other.id('1')), 120_000)
  })

  await t.test('a bank account is remembered as a fingerprint and recognised later', async t => {
    const [first] = await db('outside_payments').insert({ tenant_id: w.tenantId, source: 'manual', source_ref: 'wire-1', payer: null, bank_account: '0001-2345-6789', amount: 150_000, currency: 'USD', received_on: '2026-11-30', memo: 'WIRE IN' }).returning('id')
    await reconcileOutsidePayments(db, w.tenantId)
    const exc = (await listExceptions(db, w.tenantId, { status: 'open' })).find(e => e.details.outsidePaymentId === first.id)
    t.ok(exc, 'a person splits it')
    await splitManually(db, w.tenantId, exc?.id as string, [{ invoiceId: await w.id('5'), amount: 100_000 }, { invoiceId: await w.id('6'), amount: 40_000 }], actor)
    const [alias] = await db('customer_payer_aliases').where({ tenant_id: w.tenantId, kind: 'bank_account' })
    t.equal(alias.customer_id, w.summit)
    t.match(alias.value, /^acct:6789:[0-9a-f]{32}$/)
    t.notMatch(alias.value, /123456789/, 'never the number')
    t.equal(alias.value, bankAccountFingerprint(w.tenantId, '000123456789'))
    t.not(alias.value, bankAccountFingerprint(w.tenantId, '000123456788'))
    await t.rejects(async () => { await db('customer_payer_aliases').insert({ tenant_id: w.tenantId, customer_id: w.summit, kind: 'bank_account', value: '000123456789', actor }) }, /customer_payer_aliases_fingerprint/, 'the table refuses a raw number')

    // Summit's last invoice, INV-6001 (800.00), paid from the same account with a wire that names nothing.
    const [second] = await db('outside_payments').insert({ tenant_id: w.tenantId, source: 'manual', source_ref: 'wire-2', bank_account: '000123456789', amount: 80_000, currency: 'USD', received_on: '2026-12-01', memo: 'WIRE IN' }).returning('id')
    const r = await reconcileOutsidePayments(db, w.tenantId)
    t.equal(r.autoApplied, 1)
    const [app] = await db('payment_applications').where({ tenant_id: w.tenantId, outside_payment_id: second.id })
    t.equal(app.invoice_id, await w.id('4'))
    t.match(JSON.stringify(app.reasons), /remembered bank account/)
  })

  await t.test('voided or deleted in QuickBooks: off the queue, never ingested', async t => {
    const stray = w.books.addPayment({ customerId: w.q.stray, total: 77_777 })
    const r1 = await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(9) })
    t.match(r1, { imported: 1, exceptions: 1 })
    const row = await db('outside_payments').where({ tenant_id: w.tenantId, source: 'quickbooks', source_ref: stray.id }).first()
    t.equal(row.status, 'exception')
    w.books.voidPayment(stray.id)
    const gone = w.books.addPayment({ customerId: w.q.stray, total: 12_345 })
    w.books.deletePayment(gone.id)
    const r2 = await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(10) })
    t.match(r2, { imported: 0, withdrawn: 1, skippedVoided: 2 })
    t.equal((await db('outside_payments').where({ tenant_id: w.tenantId, id: row.id }).first()).status, 'dismissed')
    t.equal(await db('outside_payments').where({ tenant_id: w.tenantId, source_ref: gone.id }).first(), undefined)
    const exc = await db('reconciliation_exceptions').where({ tenant_id: w.tenantId, dedupe_key: `outside:${String(row.id)}` }).first()
    t.equal(exc.status, 'dismissed')
    t.match(exc.resolution, /voided in QuickBooks/)
  })

  await t.test('edited in QuickBooks after Settle read it: matched afresh while on the queue, a finding once applied', async t => {
    const queued = w.books.addPayment({ customerId: w.q.stray, total: 31_313, note: 'first try' })
    await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(10) })
    const row = await db('outside_payments').where({ tenant_id: w.tenantId, source: 'quickbooks', source_ref: queued.id }).first()
    t.equal(row.status, 'exception', 'nothing fits it: a person is asked')
    w.books.editPayment(queued.id, { total: 31_000, note: 'corrected amount' })
    const r = await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(10) })
    t.equal(r.revised, 1)
    const after = await db('outside_payments').where({ tenant_id: w.tenantId, id: row.id }).first()
    t.match({ ...after, amount: Number(after.amount) }, { amount: 31_000, memo: /corrected amount/ })
    const exc = await db('reconciliation_exceptions').where({ tenant_id: w.tenantId, dedupe_key: `outside:${String(row.id)}` }).first()
    t.match({ ...exc, amount: Number(exc.amount) }, { status: 'open', amount: 31_000 }, 'matched afresh as it now is (and still asks a person)')
    t.ok(await db('audit_log').where({ tenant_id: w.tenantId, action: 'reconciliation.quickbooks_payment_revised', subject: row.id }).first())
    const quiet = await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(10) })
    t.equal(quiet.revised, 0, 'read again unchanged: nothing happens')

    // The check applied to INV-5001 earlier is corrected in QuickBooks: Settle's application stays, a person is told.
    const applied = await db('outside_payments').where({ tenant_id: w.tenantId, source: 'quickbooks', status: 'matched' }).orderBy('created_at').first()
    w.books.editPayment(applied.source_ref, { total: 110_000 })
    const r2 = await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(10) })
    t.equal(r2.revised, 1)
    const finding = await db('reconciliation_exceptions').where({ tenant_id: w.tenantId, kind: 'tieout_difference' }).where('dedupe_key', 'like', `qbo-payment-revised:${String(applied.id)}:%`).first()
    t.match({ ...finding, amount: Number(finding?.amount) }, { status: 'open', amount: 10_000, summary: /changed there from \$1,200\.00 to \$1,100\.00 after Settle applied it/ })
    t.equal(Number((await db('outside_payments').where({ tenant_id: w.tenantId, id: applied.id }).first()).amount), 120_000, 'applied money is not rewritten behind a person\'s back')
  })

  await t.test('a QuickBooks customer linked to ours names the customer', async t => {
    await db('accounting_customer_links').insert({ tenant_id: w.tenantId, customer_id: w.summit, external_customer_id: w.q.summit, linked_by: 'person' })
    w.books.addPayment({ customerId: w.q.summit, total: 5_000, withCustomerName: false })
    await pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(11) })
    const p = await db('outside_payments').where({ tenant_id: w.tenantId, source: 'quickbooks', amount: 5_000 }).first()
    t.equal(p.customer_id, w.summit)
    t.equal(p.payer, 'Summit Logistics', 'the name read from QuickBooks when CDC left it out')
  })

  await t.test('one run at a time per tenant', async t => {
    await db('accounting_cdc_cursors').where({ tenant_id: w.tenantId }).update({ locked_until: db.raw("now() + interval '5 minutes'") })
    await t.rejects(pullQuickBooksPayments(db, w.tenantId, w.books, { actor, now: at(12) }), { code: 'SYNC_IN_PROGRESS' })
    await db('accounting_cdc_cursors').where({ tenant_id: w.tenantId }).update({ locked_until: null })
    await t.rejects(pullQuickBooksPayments(db, w.tenantId, null), { code: 'ACCOUNTING_NOT_CONNECTED' })
  })

  await t.test('the trial balance still balances', async t => {
    const rows = await db('postings').where({ tenant_id: w.tenantId }).sum({ s: 'amount' })
    t.equal(Number(rows[0]?.s), 0)
  })
})

t.test('the daily job reads each connected tenant once a day', async t => {
  const db = await testDb(t)
  const w = await setUp(db)
  await db('accounting_connections').insert({ tenant_id: w.tenantId, realm_id: w.books.realmId, connected_at: at(-60) })
  w.books.addPayment({ customerId: w.q.harbor, total: 120_000, applications: [{ invoiceId: w.qInvoice('INV-5001'), amount: 120_000 }] })
  const now = new Date('2026-12-03T15:00:00Z')
  t.ok(await scheduleQuickBooksPaymentPulls(db, now) >= 1)
  await scheduleQuickBooksPaymentPulls(db, now)
  const jobs = await db('jobs').where({ tenant_id: w.tenantId, queue: QBO_PAYMENTS_QUEUE })
  t.equal(jobs.length, 1)
  const worker = new Worker({ db, handlers: quickBooksPaymentJobHandlers(async tenantId => tenantId === w.tenantId ? w.books : null), log: pino({ level: 'silent' }), concurrency: 1 })
  while (await worker.runOnce() > 0) { /* drain */ }
  t.same(await db('jobs').where({ tenant_id: w.tenantId, queue: QBO_PAYMENTS_QUEUE }).pluck('state'), ['done'])
  t.equal(await open(db, w.tenantId, await w.id('1')), 0)
})

t.test('the admin API reads QuickBooks payments on demand', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db)
  const reader = await createApiKey(db, tenant.id, 'reports', ['payments:read'])
  const writer = await createApiKey(db, tenant.id, 'ops', ['payments:read', 'reconciliation:write'])
  const url = '/api/v1/reconciliation/quickbooks-payments/sync'
  const denied = await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${reader.key}` } })
  t.equal(denied.statusCode, 403)
  const res = await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${writer.key}` } })
  t.equal(res.statusCode, 409)
  t.equal(res.json().error.code, 'ACCOUNTING_NOT_CONNECTED')
  t.type(app.jobHandlers[QBO_PAYMENTS_QUEUE], 'function')
})
