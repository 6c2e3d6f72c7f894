import t from 'tap'
import type { Knex } from 'knex'
import { testDb } from '../helpers/db.js'
import type { FakePsa } from '../helpers/fake-psa.js'
import { reconcileWorld } from '../helpers/reconcile-world.js'
import { syncInvoices } from '../../src/services/sync.js'
import { openBalance } from '../../src/db/invoices.js'
import { accountBalance } from '../../src/db/ledger.js'
import { listExceptions } from '../../src/db/reconciliation-exceptions.js'
import { acceptSuggestion, dismiss, importBankStatement, splitManually, writeOff } from '../../src/services/reconcile.js'
import { AppError } from '../../src/errors.js'

const csv = (rows: string[]): string => ['Date,Description,Payee,Amount', ...rows].join('\n')

async function setUp (db: Knex): Promise<{ tenantId: string, psa: FakePsa, id: (psaId: string) => Promise<string>, harbor: string }> {
  return await reconcileWorld(db)
}

async function receivableEqualsOpen (db: Knex, tenantId: string, customerId: string): Promise<[number, number]> {
  const rows = await db('invoices').where({ tenant_id: tenantId, customer_id: customerId })
  const open = rows.reduce((s: number, r: Parameters<typeof openBalance>[0]) => s + openBalance(r), 0)
  return [(await accountBalance(db, tenantId, `receivable:${customerId}`, 'USD')).amount, open]
}

t.test('reconciliation of bank lines', async t => {
  const db = await testDb(t)
  const f = await setUp(db)
  const actor = 'member:ops'

  await t.test('a check naming the invoice is applied automatically, balanced, pushed', async t => {
    const r = await importBankStatement(db, f.tenantId, { text: csv(['2026-11-20,CHECK 1042 INV-5001,Harbor Dental,1200.00']), currency: 'USD', actor, source: 'bank_csv' })
    t.same(r, { imported: 1, duplicates: 0, autoApplied: 1, exceptions: 0 })
    const inv = await db('invoices').where({ tenant_id: f.tenantId, id: await f.id('1') }).first()
    t.equal(openBalance(inv), 0)
    t.equal(inv.status, 'paid')
    const [receivable, open] = await receivableEqualsOpen(db, f.tenantId, f.harbor)
    t.equal(receivable, open, 'receivable equals open balances')
    t.equal(receivable, 90_000)
    t.equal((await accountBalance(db, f.tenantId, 'bank:operating', 'USD')).amount, 120_000)
    const jobs = await db('jobs').where({ tenant_id: f.tenantId, queue: 'psa.push-payment' })
    t.equal(jobs.length, 1)
    t.equal(jobs[0].payload.amount, 120_000)
    t.equal(jobs[0].payload.method, 'check')
    t.equal(jobs[0].payload.settlesInvoice, true)
    const apps = await db('payment_applications').where({ tenant_id: f.tenantId })
    t.equal(apps.length, 1)
    t.equal(apps[0].kind, 'auto')
  })

  await t.test('re-importing the same statement adds nothing', async t => {
    const r = await importBankStatement(db, f.tenantId, { text: csv(['2026-11-20,CHECK 1042 INV-5001,Harbor Dental,1200.00']), currency: 'USD', actor, source: 'bank_csv' })
    t.same(r, { imported: 0, duplicates: 1, autoApplied: 0, exceptions: 0 })
    t.equal((await db('payment_applications').where({ tenant_id: f.tenantId })).length, 1)
  })

  await t.test('the PSA sync after our push books nothing twice', async t => {
    f.psa.put('1', { company: '1', total: 120_000, number: 'INV-5001', balance: 0 })
    await syncInvoices({ db, tenantId: f.tenantId, psa: f.psa, trigger: 'test' })
    const [receivable, open] = await receivableEqualsOpen(db, f.tenantId, f.harbor)
    t.equal(receivable, 90_000, 'receivable unchanged')
    t.equal(open, 90_000)
    t.equal((await accountBalance(db, f.tenantId, 'collected_elsewhere:connectwise', 'USD')).amount, 0, 'not counted as collected elsewhere too')
  })

  await t.test('bad statements store nothing', async t => {
    const before = (await db('outside_payments').where({ tenant_id: f.tenantId })).length
    await t.rejects(importBankStatement(db, f.tenantId, { text: 'nothing,useful\n1,2', currency: 'USD', actor, source: 'bank_csv' }), { code: 'VALIDATION_FAILED' })
    t.equal((await db('outside_payments').where({ tenant_id: f.tenantId })).length, before)
  })

  let ambiguousId = ''
  await t.test('two same-amount invoices and no memo: ambiguous, two suggestions', async t => {
    const r = await importBankStatement(db, f.tenantId, { text: csv(['2026-11-21,DEPOSIT,Harbor Dental,450.00']), currency: 'USD', actor, source: 'bank_csv' })
    t.equal(r.autoApplied, 0)
    t.equal(r.exceptions, 1)
    const [exc] = await listExceptions(db, f.tenantId, { kind: 'ambiguous_match', status: 'open' })
    t.ok(exc)
    t.equal(exc?.suggestions.length, 2)
    t.same(new Set(exc?.suggestions.flatMap(s => s.invoiceIds)), new Set([await f.id('2'), await f.id('3')]))
    ambiguousId = exc?.id as string
    const p = await db('outside_payments').where({ tenant_id: f.tenantId, id: exc?.details.outsidePaymentId }).first()
    t.equal(p.status, 'exception')
  })

  await t.test('accept applies and audits; a second accept is 409 and changes nothing', async t => {
    await acceptSuggestion(db, f.tenantId, ambiguousId, 1, actor)
    const audits = await db('audit_log').where({ tenant_id: f.tenantId, action: 'reconciliation.suggestion_accepted' })
    t.equal(audits.length, 1)
    t.equal(audits[0].actor, actor)
    const apps = (await db('payment_applications').where({ tenant_id: f.tenantId })).length
    const [receivable, open] = await receivableEqualsOpen(db, f.tenantId, f.harbor)
    t.equal(receivable, 45_000)
    t.equal(open, 45_000)
    const err = await acceptSuggestion(db, f.tenantId, ambiguousId, 1, actor).catch(e => e)
    t.ok(err instanceof AppError)
    t.equal(err.code, 'EXCEPTION_CLOSED')
    t.equal(err.status ?? 409, 409)
    t.equal((await db('payment_applications').where({ tenant_id: f.tenantId })).length, apps)
  })

  await t.test('unmatched payment: split by hand, with over-application refused', async t => {
    const r = await importBankStatement(db, f.tenantId, { text: csv(['2026-11-22,WIRE IN,,1500.00']), currency: 'USD', actor, source: 'bank_csv' })
    t.equal(r.exceptions, 1)
    const exc = (await listExceptions(db, f.tenantId, { status: 'open' }))[0]
    const a = await f.id('4')
    const b = await f.id('5')
    await t.rejects(splitManually(db, f.tenantId, exc?.id as string, [{ invoiceId: a, amount: 90_000 }], actor), { code: 'VALIDATION_FAILED' }, 'more than the invoice is open')
    await t.rejects(splitManually(db, f.tenantId, exc?.id as string, [{ invoiceId: a, amount: 80_000 }, { invoiceId: b, amount: 100_000 }], actor), { code: 'VALIDATION_FAILED' }, 'more than the payment')
    await t.rejects(splitManually(db, f.tenantId, exc?.id as string, [{ invoiceId: a, amount: 10_000 }, { invoiceId: await f.id('3'), amount: 10_000 }], actor), { code: 'VALIDATION_FAILED' }, 'two customers')
    t.equal((await listExceptions(db, f.tenantId, { status: 'open' })).length, 1, 'still open after refusals')
    await splitManually(db, f.tenantId, exc?.id as string, [{ invoiceId: a, amount: 80_000 }, { invoiceId: b, amount: 60_000 }], actor)
    const summit = (await db('invoices').where({ tenant_id: f.tenantId, id: a }).first()).customer_id
    const [receivable, open] = await receivableEqualsOpen(db, f.tenantId, summit)
    t.equal(receivable, 80_000)
    t.equal(open, 80_000)
    t.equal((await accountBalance(db, f.tenantId, `credit:${summit}`, 'USD')).amount, -10_000, 'the rest is customer credit (a credit balance)')
    const p = await db('outside_payments').where({ tenant_id: f.tenantId, id: exc?.details.outsidePaymentId }).first()
    t.equal(p.status, 'partially_applied')
  })

  await t.test('short-pay written off within tolerance; dismiss', async t => {
    await importBankStatement(db, f.tenantId, { text: csv(['2026-11-23,DEPOSIT 1,,395.00', '2026-11-23,DEPOSIT 2,,12.34']), currency: 'USD', actor, source: 'bank_csv' })
    const open = await listExceptions(db, f.tenantId, { status: 'open' })
    t.equal(open.length, 2)
    const short = open.find(e => e.amount?.amount === 39_500)
    const noise = open.find(e => e.amount?.amount === 1234)
    const b = await f.id('6')
    await t.rejects(writeOff(db, f.tenantId, short?.id as string, { invoiceId: b, amount: 5000 }, actor), { code: 'VALIDATION_FAILED' }, 'beyond tolerance')
    await writeOff(db, f.tenantId, short?.id as string, { invoiceId: b, amount: 500 }, actor)
    t.equal((await accountBalance(db, f.tenantId, 'writeoff', 'USD')).amount, 500)
    const inv = await db('invoices').where({ tenant_id: f.tenantId, id: b }).first()
    t.equal(openBalance(inv), 0)
    await dismiss(db, f.tenantId, noise?.id as string, 'interest credit, not a customer payment', actor)
    await t.rejects(dismiss(db, f.tenantId, noise?.id as string, 'again', actor), { code: 'EXCEPTION_CLOSED' })
    t.equal((await listExceptions(db, f.tenantId, { status: 'open' })).length, 0)
  })

  await t.test('the trial balance still balances', async t => {
    const rows = await db('postings').where({ tenant_id: f.tenantId }).sum({ s: 'amount' })
    t.equal(Number(rows[0]?.s), 0)
  })
})
