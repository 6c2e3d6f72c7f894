import t from 'tap'
import pino from 'pino'
import type { Knex } from 'knex'
import { testDb } from '../helpers/db.js'
import { makeCustomer, makeTenant } from '../helpers/fixtures.js'
import { FakeAccounting } from '../helpers/fake-accounting.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { enqueue } from '../../src/db/jobs.js'
import { getPostingBySource, linkCustomer, listPostings } from '../../src/db/accounting-postings.js'
import { listExceptions } from '../../src/db/reconciliation-exceptions.js'
import { postDeposit, postPayment, postReversal, syncNow, PostingNotReadyError } from '../../src/services/posting.js'
import { postingJobHandlers } from '../../src/jobs/posting-jobs.js'
import { Worker } from '../../src/jobs/worker.js'
import type { Tenant } from '../../src/db/tenants.js'

let seq = 0
const SETTINGS = {
  undepositedFundsAccountId: '4', bankAccountId: '35', feesAccountId: '8', receivableAccountId: '84', writeOffAccountId: '9',
  cardPaymentMethodId: '4', achPaymentMethodId: '5', surchargeItemId: '20', invoiceMatch: 'doc_number', docNumberPrefix: ''
}

async function setup (db: Knex, name = 'Acme Dental'): Promise<{ tenant: Tenant, customerId: string, methodId: string }> {
  const tenant = await makeTenant(db)
  const customer = await makeCustomer(db, tenant, name)
  await db('accounting_connections').insert({ tenant_id: tenant.id, system: 'quickbooks', realm_id: '9130000000000001', settings: JSON.stringify(SETTINGS) })
  const method = await savePaymentMethod(db, tenant.id, { customerId: customer.id, processorCustomerRef: 'cus_1', processorMethodRef: 'pm_1', type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: true })
  return { tenant, customerId: customer.id, methodId: method.id }
}

async function invoice (db: Knex, tenantId: string, customerId: string, number: string, total: number): Promise<string> {
  const [row] = await db('invoices').insert({
    tenant_id: tenantId, customer_id: customerId, psa_system: 'connectwise', psa_invoice_id: `cw-${++seq}`, number, kind: 'standard', currency: 'USD',
    issued_on: '2026-11-01', total, psa_balance: total, status: 'open', psa_updated_at: new Date()
  }).returning('id') as Array<{ id: string }>
  return (row as { id: string }).id
}

async function attempt (db: Knex, ctx: { tenant: Tenant, customerId: string, methodId: string }, invoiceId: string, amount: number, surcharge = 0): Promise<string> {
  const [row] = await db('payment_attempts').insert({
    tenant_id: ctx.tenant.id, invoice_id: invoiceId, customer_id: ctx.customerId, payment_method_id: ctx.methodId, amount, surcharge_amount: surcharge, currency: 'USD',
    status: 'succeeded', trigger: 'charge_card', actor: 'member:test', processor_intent_ref: `pi_${++seq}`, settled_at: new Date('2026-12-02T15:00:00Z')
  }).returning('id') as Array<{ id: string }>
  return (row as { id: string }).id
}

async function payout (db: Knex, tenantId: string, net: number, items: Array<{ type: string, attemptId?: string, gross: number, fee: number }>): Promise<string> {
  const gross = items.filter(i => i.type === 'charge').reduce((s, i) => s + i.gross, 0)
  const fees = items.reduce((s, i) => s + i.fee, 0)
  const [row] = await db('payouts').insert({
    tenant_id: tenantId, processor: 'stripe', processor_payout_ref: `po_${++seq}`, amount: net, currency: 'USD', arrival_date: '2026-12-04', status: 'paid',
    gross, fees, refunds: net - gross + fees
  }).returning('id') as Array<{ id: string }>
  const id = (row as { id: string }).id
  for (const item of items) {
    await db('payout_items').insert({ tenant_id: tenantId, payout_id: id, balance_transaction_ref: `txn_${++seq}`, type: item.type, attempt_id: item.attemptId ?? null, gross: item.gross, fee: item.fee, net: item.gross - item.fee, currency: 'USD' })
  }
  return id
}

t.test('a payment posts once, applied to its invoice, into Undeposited Funds', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const qbo = new FakeAccounting()
  const cust = qbo.addCustomer({ displayName: ' ACME dental ' })
  const qInv = qbo.addInvoice({ customerId: cust.id, docNumber: '1001', total: 50_000 })
  const inv = await invoice(db, ctx.tenant.id, ctx.customerId, '1001', 50_000)
  const a = await attempt(db, ctx, inv, 20_000, 600)

  const first = await postPayment(db, qbo, ctx.tenant.id, a)
  t.equal(first.status, 'posted')
  const payment = qbo.payments.get(first.status === 'posted' ? first.externalId : '')
  t.ok(payment)
  t.equal(payment?.total.amount, 20_000, 'TotalAmt is the invoice amount, never the surcharge')
  t.same(payment?.applications, [{ invoiceId: qInv.id, amount: { amount: 20_000, currency: 'USD' } }], 'partial payment applied to the invoice')
  t.equal(payment?.depositToAccountId, '4')
  t.match((payment?.raw as { PaymentMethodRef: string }).PaymentMethodRef, '4')
  t.equal(qbo.invoices.get(qInv.id)?.balance.amount, 30_000)
  const posting = await getPostingBySource(db, ctx.tenant.id, 'payment', a)
  t.equal(posting?.status, 'posted')
  t.ok((posting?.requestId.length ?? 99) <= 50)
  t.equal(posting?.externalType, 'Payment')
  // The exact-name match was stored: the next posting reads no customers.
  t.same(await db('accounting_customer_links').where({ tenant_id: ctx.tenant.id }).select('external_customer_id', 'linked_by'), [{ external_customer_id: cust.id, linked_by: 'exact_name' }])

  const calls = qbo.callsMade()
  const again = await postPayment(db, qbo, ctx.tenant.id, a)
  t.match(again, { status: 'posted', replayed: true })
  t.equal(qbo.callsMade(), calls, 'a stored external id short-circuits: no call at all')
  t.equal(qbo.payments.size, 1)

  const inv2 = await invoice(db, ctx.tenant.id, ctx.customerId, '1002', 9_000)
  qbo.addInvoice({ customerId: cust.id, docNumber: '1002', total: 9_000 })
  const before = qbo.log.length
  await postPayment(db, qbo, ctx.tenant.id, await attempt(db, ctx, inv2, 9_000))
  t.notOk(qbo.log.slice(before).some(l => l.method === 'findCustomers'), 'the stored link is used')
})

t.test('a crash between QBO\'s answer and our write: the retry replays the first write', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const qbo = new FakeAccounting()
  const cust = qbo.addCustomer({ displayName: 'Acme Dental' })
  const qInv = qbo.addInvoice({ customerId: cust.id, docNumber: '1001', total: 10_000 })
  const a = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '1001', 10_000), 10_000)
  qbo.fail = (method) => method === 'createPayment' ? 'after-write' : undefined
  await t.rejects(postPayment(db, qbo, ctx.tenant.id, a), /ETIMEDOUT/)
  t.equal(qbo.payments.size, 1, 'QBO wrote it')
  t.equal((await getPostingBySource(db, ctx.tenant.id, 'payment', a))?.status, 'pending', 'we never heard')
  t.equal(qbo.invoices.get(qInv.id)?.balance.amount, 0)
  qbo.fail = () => undefined
  // The invoice now shows 0 open in QBO; a re-derived request would be unapplied. The saved body is resent instead.
  const retry = await postPayment(db, qbo, ctx.tenant.id, a)
  t.match(retry, { status: 'posted', replayed: true })
  t.equal(qbo.payments.size, 1, 'never posted twice')
  t.equal((await getPostingBySource(db, ctx.tenant.id, 'payment', a))?.externalId, [...qbo.payments.keys()][0])
  t.same((await listExceptions(db, ctx.tenant.id)).map(e => e.kind), [], 'no false overpayment exception on the retry')
})

t.test('QBO balance check: overpayment leaves unapplied credit and an exception; missing invoice posts unapplied', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const qbo = new FakeAccounting()
  const cust = qbo.addCustomer({ displayName: 'Acme Dental' })
  const qInv = qbo.addInvoice({ customerId: cust.id, docNumber: '1001', total: 50_000, balance: 20_000 })
  const a = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '1001', 50_000), 50_000)
  const out = await postPayment(db, qbo, ctx.tenant.id, a)
  const p = qbo.payments.get(out.status === 'posted' ? out.externalId : '')
  t.equal(p?.total.amount, 50_000)
  t.equal(p?.unapplied.amount, 30_000)
  t.equal(qbo.invoices.get(qInv.id)?.balance.amount, 0)
  const [ex] = await listExceptions(db, ctx.tenant.id)
  t.match(ex?.summary, /QBO shows \$200\.00 open on invoice 1001 but Settle collected \$500\.00: someone applied a payment by hand in QBO\?/)

  const b = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '2002', 7_000), 7_000)
  const out2 = await postPayment(db, qbo, ctx.tenant.id, b)
  const p2 = qbo.payments.get(out2.status === 'posted' ? out2.externalId : '')
  t.equal(p2?.unapplied.amount, 7_000, 'no QBO invoice 2002: all unapplied')
  t.ok((await listExceptions(db, ctx.tenant.id)).some(e => e.kind === 'mapping_needed' && /no invoice 2002/.test(e.summary)))
})

t.test('customer mapping: no match raises mapping_needed with suggestions; the posting waits until a person links', async t => {
  const db = await testDb(t)
  const ctx = await setup(db, 'Acme Dental Group')
  const qbo = new FakeAccounting()
  qbo.addCustomer({ displayName: 'Acme Dental' })
  qbo.addCustomer({ displayName: 'Acme Dental Grp LLC' })
  qbo.addCustomer({ displayName: 'Zebra Plumbing' })
  const a = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '1001', 10_000), 10_000)
  const out = await postPayment(db, qbo, ctx.tenant.id, a)
  t.equal(out.status, 'waiting')
  t.equal(qbo.payments.size, 0)
  const [ex] = await listExceptions(db, ctx.tenant.id, { kind: 'mapping_needed' })
  t.ok(ex)
  t.ok((ex?.suggestions.length ?? 0) >= 1 && (ex?.suggestions.length ?? 9) <= 3)
  t.notMatch(JSON.stringify(ex?.details), /Zebra/, 'only look-alikes')
  const target = [...qbo.customers.values()].find(c => c.displayName === 'Acme Dental Grp LLC')?.id as string

  await linkCustomer(db, ctx.tenant.id, ctx.customerId, target, 'member:amy')
  t.equal((await db('audit_log').where({ tenant_id: ctx.tenant.id, action: 'accounting.customer_linked' })).length, 1)
  const jobs = await db('jobs').where({ tenant_id: ctx.tenant.id, queue: 'qbo.post-payment' })
  t.equal(jobs.length, 1, 'the waiting payment is queued again')
  const worker = new Worker({ db, handlers: postingJobHandlers(async () => qbo), log: pino({ level: 'silent' }), concurrency: 1 })
  await worker.runOnce()
  t.equal(qbo.payments.size, 1)
  t.equal([...qbo.payments.values()][0]?.customerId, target)
})

t.test('deposit: one per payout, the payments grouped, surcharge and fee lines, total = payout net to the cent', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const qbo = new FakeAccounting()
  const cust = qbo.addCustomer({ displayName: 'Acme Dental' })
  qbo.addInvoice({ customerId: cust.id, docNumber: '1001', total: 10_000 })
  qbo.addInvoice({ customerId: cust.id, docNumber: '1002', total: 25_000 })
  const a1 = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '1001', 10_000), 10_000, 300)
  const a2 = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '1002', 25_000), 25_000)
  const net = 10_300 + 25_000 - 329 - 755
  const po = await payout(db, ctx.tenant.id, net, [{ type: 'charge', attemptId: a1, gross: 10_300, fee: 329 }, { type: 'charge', attemptId: a2, gross: 25_000, fee: 755 }])

  await postPayment(db, qbo, ctx.tenant.id, a1)
  await t.rejects(postDeposit(db, qbo, ctx.tenant.id, po), PostingNotReadyError, 'waits for every payment')
  t.equal(qbo.deposits.size, 0)
  await postPayment(db, qbo, ctx.tenant.id, a2)
  const out = await postDeposit(db, qbo, ctx.tenant.id, po)
  t.equal(out.status, 'posted')
  const dep = [...qbo.deposits.values()][0]
  t.equal(dep?.total.amount, net, 'deposit = payout net')
  t.equal(dep?.bankAccountId, '35')
  t.equal(dep?.lines.filter(l => l.paymentId !== undefined).length, 2)
  t.ok(dep?.lines.some(l => l.accountId === '8' && l.amount.amount === -1084), 'one fee line')
  t.ok(dep?.lines.some(l => l.accountId === '8' && l.amount.amount === 300), 'surcharge line')
  t.equal((await postDeposit(db, qbo, ctx.tenant.id, po)).status, 'posted')
  t.equal(qbo.deposits.size, 1)

  // A payout that does not tie posts nothing and says why.
  const a3 = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '1003', 5_000), 5_000)
  await postPayment(db, qbo, ctx.tenant.id, a3)
  const bad = await payout(db, ctx.tenant.id, 4_000, [{ type: 'charge', attemptId: a3, gross: 5_000, fee: 175 }])
  await t.rejects(postDeposit(db, qbo, ctx.tenant.id, bad), /does not tie/)
  t.equal(qbo.deposits.size, 1)
  t.ok((await listExceptions(db, ctx.tenant.id, { kind: 'posting_failed' })).some(e => /add up to \$48\.25, the payout is \$40\.00/.test(e.summary)))
})

t.test('reversal: a refund reopens the QBO customer balance; the next payout\'s refund line nets Undeposited Funds', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const qbo = new FakeAccounting()
  const cust = qbo.addCustomer({ displayName: 'Acme Dental' })
  qbo.addInvoice({ customerId: cust.id, docNumber: '1001', total: 10_000 })
  const a = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '1001', 10_000), 10_000)
  const input = { sourceId: 'ref-1', attemptId: a, invoiceAmount: 4_000, surchargeAmount: 0, currency: 'USD', why: 'refund' as const }
  await t.rejects(postReversal(db, qbo, ctx.tenant.id, input), PostingNotReadyError, 'the payment goes first')
  await postPayment(db, qbo, ctx.tenant.id, a)
  t.equal(qbo.customers.get(cust.id)?.balance.amount, 0)
  const out = await postReversal(db, qbo, ctx.tenant.id, input)
  t.equal(out.status, 'posted')
  t.equal(qbo.customers.get(cust.id)?.balance.amount, 4_000, 'QBO customer owes what Settle reopened')
  const je = [...qbo.journals.values()][0]
  t.same(je?.posting.lines.map(l => [l.accountId, l.amount.amount]), [['84', 4_000], ['4', -4_000]])
  await postReversal(db, qbo, ctx.tenant.id, input)
  t.equal(qbo.journals.size, 1, 'once')
  // Charge in one payout, refund in the next: Undeposited Funds nets to zero and each deposit is its payout.
  const po1 = await payout(db, ctx.tenant.id, 10_000 - 320, [{ type: 'charge', attemptId: a, gross: 10_000, fee: 320 }])
  const po2 = await payout(db, ctx.tenant.id, -4_000, [{ type: 'refund', attemptId: a, gross: -4_000, fee: 0 }])
  await postDeposit(db, qbo, ctx.tenant.id, po1)
  await postDeposit(db, qbo, ctx.tenant.id, po2)
  const deps = [...qbo.deposits.values()]
  t.same(deps.map(d => d.total.amount), [9_680, -4_000])
  // Undeposited Funds: +10000 payment, -10000 grouped in deposit 1, -4000 by the JE, +4000 by deposit 2's negative line = 0.
  const ufMoves = (deps[0]?.lines.filter(l => l.paymentId !== undefined).reduce((s, l) => s - l.amount.amount, 10_000) ?? 1) +
    (je?.posting.lines.filter(l => l.accountId === '4').reduce((s, l) => s + l.amount.amount, 0) ?? 0) -
    (deps[1]?.lines.filter(l => l.accountId === '4').reduce((s, l) => s + l.amount.amount, 0) ?? 0)
  t.equal(ufMoves, 0, 'Undeposited Funds nets to zero')
})

t.test('syncNow posts everything pending in batches of 30: ≤ 0.1 calls per posted payment', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const qbo = new FakeAccounting()
  const cust = qbo.addCustomer({ displayName: 'Acme Dental' })
  const attempts: string[] = []
  for (let i = 0; i < 90; i++) {
    const n = String(3000 + i)
    qbo.addInvoice({ customerId: cust.id, docNumber: n, total: 1_000 + i })
    attempts.push(await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, n, 1_000 + i), 1_000 + i))
  }
  const po = await payout(db, ctx.tenant.id, attempts.reduce((s, _a, i) => s + 1_000 + i, 0) - 90 * 30,
    attempts.map((a, i) => ({ type: 'charge', attemptId: a, gross: 1_000 + i, fee: 30 })))
  // One item fails in QBO: reported with a hint, the rest post.
  qbo.fail = (method, input) => method === 'createPayment' && (input as { amount: { amount: number } }).amount.amount === 1_005 ? new Error('Invalid Reference Id: invoice') : undefined
  const first = await syncNow(db, qbo, ctx.tenant.id)
  t.equal(first.posted.filter(p => p.kind === 'payment').length, 89)
  t.equal(first.failed.length, 1)
  t.match(first.failed[0], { kind: 'payment', reason: /Invalid Reference Id/, fixHint: /Settings → Accounting/ })
  t.equal(first.pending.deposits, 1, 'the deposit waits for the failed payment')
  t.ok(first.calls / 89 <= 0.1, `calls per posted payment ${first.calls}/89`)
  t.ok(qbo.log.filter(l => l.method === 'batch').every(l => (l.input as unknown[]).length <= 30))
  t.match(first.posted[0], { docUrl: /^https:\/\/app\.qbo\.intuit\.com\/app\/recvpayment\?txnId=/ })

  qbo.fail = () => undefined
  const second = await syncNow(db, qbo, ctx.tenant.id)
  t.same(second.posted.map(p => p.kind), ['payment', 'deposit'])
  t.same(second.failed, [])
  t.equal(qbo.payments.size, 90)
  t.equal([...qbo.deposits.values()][0]?.total.amount, (await db('payouts').where({ id: po }).first('amount') as { amount: string }).amount as unknown as number * 1)
  const third = await syncNow(db, qbo, ctx.tenant.id)
  t.same(third.posted, [])
  t.equal(third.calls, 0, 'nothing pending: no calls')
  t.equal((await listPostings(db, ctx.tenant.id, { status: 'posted' })).length, 91)
})

t.test('dead letter: the last attempt raises posting_failed with QBO\'s message and a hint', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const qbo = new FakeAccounting()
  const cust = qbo.addCustomer({ displayName: 'Acme Dental' })
  qbo.addInvoice({ customerId: cust.id, docNumber: '1001', total: 10_000 })
  const a = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '1001', 10_000), 10_000)
  qbo.fail = method => method === 'createPayment' ? new Error('A business validation error has occurred: The books are closed for that period') : undefined
  await enqueue(db, ctx.tenant.id, [{ queue: 'qbo.post-payment', dedupeKey: `qbo-payment:${a}`, payload: { attemptId: a }, maxAttempts: 2 }])
  const worker = new Worker({ db, handlers: postingJobHandlers(async () => qbo), log: pino({ level: 'silent' }), concurrency: 1, backoff: { baseMs: 0, capMs: 0 } })
  await worker.runOnce()
  t.same(await listExceptions(db, ctx.tenant.id, { kind: 'posting_failed' }), [], 'not on the first failure')
  await db('jobs').where({ tenant_id: ctx.tenant.id }).update({ run_at: new Date(0) })
  await worker.runOnce()
  const job = await db('jobs').where({ tenant_id: ctx.tenant.id }).first('state')
  t.equal(job.state, 'dead')
  const [ex] = await listExceptions(db, ctx.tenant.id, { kind: 'posting_failed' })
  t.match(ex?.summary, /books are closed/)
  t.match(ex?.suggestedRepair, /open the period/)
  t.equal((await getPostingBySource(db, ctx.tenant.id, 'payment', a))?.status, 'failed')
})

t.test('a deposit waiting on its payments runs as soon as the last one posts, not after its wait', async t => {
  const db = await testDb(t)
  const ctx = await setup(db)
  const qbo = new FakeAccounting()
  const cust = qbo.addCustomer({ displayName: 'Acme Dental' })
  qbo.addInvoice({ customerId: cust.id, docNumber: '2001', total: 10_000 })
  qbo.addInvoice({ customerId: cust.id, docNumber: '2002', total: 20_000 })
  const a1 = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '2001', 10_000), 10_000)
  const a2 = await attempt(db, ctx, await invoice(db, ctx.tenant.id, ctx.customerId, '2002', 20_000), 20_000)
  const po = await payout(db, ctx.tenant.id, 30_000 - 900, [{ type: 'charge', attemptId: a1, gross: 10_000, fee: 300 }, { type: 'charge', attemptId: a2, gross: 20_000, fee: 600 }])
  const later = new Date(Date.now() + 10 * 60_000)
  await enqueue(db, ctx.tenant.id, [
    { queue: 'qbo.post-deposit', payload: { payoutId: po }, dedupeKey: `deposit:${po}`, runAt: later },
    { queue: 'qbo.post-deposit', payload: { payoutId: 'another-payout' }, dedupeKey: 'deposit:other', runAt: later }
  ])
  const runAt = async (key: string): Promise<number> => (await db('jobs').where({ tenant_id: ctx.tenant.id, dedupe_key: key }).first('run_at') as { run_at: Date }).run_at.getTime()

  await postPayment(db, qbo, ctx.tenant.id, a1)
  t.equal(await runAt(`deposit:${po}`), later.getTime(), 'one payment still missing: the deposit keeps waiting (a wake would spend an attempt)')
  await postPayment(db, qbo, ctx.tenant.id, a2)
  t.ok(await runAt(`deposit:${po}`) <= Date.now(), 'the last payment posted: the deposit is due now')
  t.equal(await runAt('deposit:other'), later.getTime(), 'another payout\'s deposit is left alone')
})
