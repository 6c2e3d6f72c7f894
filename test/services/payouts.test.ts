import t from 'tap'
import pino from 'pino'
import Fastify from 'fastify'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { achCustomer, start } from '../helpers/stripe-harness.js'
import { buildApp } from '../../src/app.js'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, createConnectWiseStore } from '../../src/sandbox/connectwise/index.js'
import { STRIPE_SANDBOX_API_KEY, cardFee } from '../../src/sandbox/stripe/index.js'
import { createStripeClient } from '../../src/adapters/stripe/client.js'
import { createStripePayments } from '../../src/adapters/stripe/payments.js'
import { connectConnectWise } from '../../src/services/psa-connections.js'
import { putSecret } from '../../src/db/secrets.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { accountBalance, findEntryByKey } from '../../src/db/ledger.js'
import { enqueue } from '../../src/db/jobs.js'
import { findPayoutByRef, getPayout, listPayouts, payoutItems } from '../../src/db/payouts.js'
import { listExceptions } from '../../src/db/reconciliation-exceptions.js'
import { syncInvoices } from '../../src/services/sync.js'
import { chargeInvoice } from '../../src/services/charge.js'
import { refundPayment } from '../../src/services/refunds.js'
import { applyPayout, itemTypeOf } from '../../src/services/payouts.js'
import { Worker } from '../../src/jobs/worker.js'
import { paymentJobHandlers } from '../../src/jobs/payment-jobs.js'
import type { PaymentsPort } from '../../src/ports/payments.js'
import { FakePayments } from '../helpers/fake-payments.js'

const DAY = 86_400_000

t.test('item types from Stripe\'s words', async t => {
  t.equal(itemTypeOf({ type: 'charge', reportingCategory: 'charge', sourceRef: 'ch_1' }), 'charge')
  t.equal(itemTypeOf({ type: 'payment', reportingCategory: 'charge', sourceRef: 'py_1' }), 'payment')
  t.equal(itemTypeOf({ type: 'refund', reportingCategory: 'refund', sourceRef: 're_1' }), 'refund')
  t.equal(itemTypeOf({ type: 'adjustment', reportingCategory: 'dispute', sourceRef: 'dp_1' }), 'dispute')
  t.equal(itemTypeOf({ type: 'adjustment', reportingCategory: 'dispute_reversal', sourceRef: 'dp_1' }), 'dispute')
  t.equal(itemTypeOf({ type: 'adjustment', reportingCategory: 'other_adjustment', sourceRef: null }), 'adjustment')
  t.equal(itemTypeOf({ type: 'payout_failure', reportingCategory: 'payout_reversal', sourceRef: 'po_1' }), 'other')
})

t.test('a payout, end to end: stand-in, webhook job, ledger and outbox', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  const app = await buildApp(testConfig(), { db, keyring })
  const settle = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const cwStore = createConnectWiseStore({ seed: 9, companies: 6, invoices: 80 })
  const cw = Fastify()
  await cw.register(connectwiseSandbox, { prefix: '/cw', store: cwStore, credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
  const cwBase = await cw.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await cw.close() })

  const tenant = await makeTenant(db, 'Payout MSP')
  const secret = 'whsec_payouts'
  await connectConnectWise(db, keyring, tenant.id, { site: `${cwBase}/cw`, ...CONNECTWISE_SANDBOX_CREDENTIALS })
  await putSecret(db, keyring, tenant.id, 'stripe.secret_key', STRIPE_SANDBOX_API_KEY)
  await putSecret(db, keyring, tenant.id, 'stripe.webhook_secret', secret)
  // Every event twice, shuffled: the payout must still be booked once.
  const { store, port, stripe } = await start(t, {}, { webhook: { url: `${settle}/webhooks/stripe/${tenant.slug}`, secret }, events: { duplicates: 1, shuffle: true } })
  const payments = createStripePayments(createStripeClient({ secretKey: STRIPE_SANDBOX_API_KEY, baseUrl: `http://127.0.0.1:${port}`, maxNetworkRetries: 0 }))
  const worker = new Worker({ db, handlers: { ...app.jobHandlers, ...paymentJobHandlers(async () => payments) }, log: pino({ level: 'silent' }), concurrency: 1 })
  const drain = async (): Promise<void> => { await store.flushEvents(); while (await worker.runOnce() > 0) { /* drain */ } }
  const psa = await app.psaFor(db, tenant.id, 'connectwise')
  t.equal((await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })).status, 'ok')

  const pick = async (): Promise<{ id: string, customer_id: string, total: number }> =>
    await db('invoices').where({ tenant_id: tenant.id, status: 'open', voided: false }).where('total', '>', 0).whereNotIn('id', db('payment_attempts').select('invoice_id')).orderBy('number').first()
  const save = async (customerId: string, ref: { customer: string, pm: string }, type: 'card' | 'ach'): Promise<string> =>
    (await savePaymentMethod(db, tenant.id, { customerId, processorCustomerRef: ref.customer, processorMethodRef: ref.pm, type, brand: null, last4: '1234', expMonth: null, expYear: null, funding: null, isDefault: true })).id
  const cardOnFile = async (customerId: string, testCard: string): Promise<string> => {
    const customer = await stripe.customers.create({ email: 'ap@example.com' })
    const pm = await stripe.paymentMethods.attach(testCard, { customer: customer.id })
    return await save(customerId, { customer: customer.id, pm: pm.id }, 'card')
  }
  const charge = async (testCard: string, via: PaymentsPort = payments): Promise<{ attemptId: string, amount: number }> => {
    const invoice = await pick()
    const result = await chargeInvoice(db, via, { tenantId: tenant.id, invoiceId: invoice.id, paymentMethodId: await cardOnFile(invoice.customer_id, testCard), actor: 'member:test', trigger: 'charge_card' })
    t.equal(result.outcome, 'succeeded')
    return { attemptId: result.attempt.id, amount: result.attempt.amount.amount }
  }
  /** What Stripe still holds for this account: every balance movement not in a payout. */
  const atStripe = (): number => [...store.balanceTransactions.values()].filter(b => b.type !== 'payout' && (b.payout ?? null) === null).reduce((s, b) => s + b.net, 0)
  const pending = async (): Promise<number> => (await accountBalance(db, tenant.id, 'processor:stripe:pending', 'USD')).amount
  const bank = async (): Promise<number> => (await accountBalance(db, tenant.id, 'bank:operating', 'USD')).amount
  const depositJobs = async (): Promise<Array<{ payload: { payoutId: string }, dedupe_key: string }>> => await db('jobs').where({ tenant_id: tenant.id, queue: 'qbo.post-deposit' }).select('payload', 'dedupe_key')

  // Three card payments, one partly refunded; one charged back; one whose fee Settle did not hear at the time.
  const a = await charge('pm_card_visa')
  const b = await charge('pm_card_mastercard')
  await charge('pm_card_visa')
  await refundPayment(db, payments, { tenantId: tenant.id, attemptId: b.attemptId, amount: 500, reason: 'goodwill', actor: 'member:test' })
  await charge('pm_card_createDispute')
  const noFee: PaymentsPort = { ...payments, charge: async input => { const o = await payments.charge(input); return o.status === 'succeeded' ? { ...o, fee: null } : o } }
  const unknownFee = await charge('pm_card_visa', noFee)
  t.equal((await findEntryByKey(db, tenant.id, `payment:${unknownFee.attemptId}:succeeded`))?.postings.length, 2, 'that payment was booked without its fee')
  store.advance(3 * DAY) // the dispute opens, and the charges become available
  await drain()
  t.equal(await pending(), atStripe() + cardFee(unknownFee.amount), 'before the payout, pending is over by only the fee nobody told us')

  const wire = store.runPayout()
  const po = String(wire?.id)
  t.match(po, /^po_/)
  // One more charge after the payout: it stays at Stripe.
  const later = await charge('pm_card_visa')
  await drain()

  await t.test('recorded once with its items, booked to the cent, one deposit job', async t => {
    const payout = await findPayoutByRef(db, tenant.id, po)
    t.ok(payout)
    if (payout === null) return
    t.match(payout, { status: 'paid', amount: { amount: Number(wire?.amount), currency: 'USD' }, processor: 'stripe' })
    t.equal(payout.gross.amount - payout.fees.amount + payout.refunds.amount, payout.amount.amount, 'gross - fees + refunds = net')
    t.ok(payout.refunds.amount < 0, 'the refund and the dispute are in it')
    t.same(await getPayout(db, tenant.id, payout.id), payout)
    t.same((await listPayouts(db, tenant.id, { limit: 10 })).map(p => p.id), [payout.id])
    const items = await payoutItems(db, tenant.id, payout.id)
    t.same(items.map(i => i.type).sort(), ['charge', 'charge', 'charge', 'charge', 'charge', 'dispute', 'refund'])
    t.equal(items.reduce((s, i) => s + i.net.amount, 0), payout.amount.amount, 'items net to the payout')
    t.ok(items.filter(i => i.type === 'charge').every(i => i.attemptId !== null), 'every charge is one of our attempts')
    t.equal(items.find(i => i.type === 'charge' && i.attemptId === a.attemptId)?.fee.amount, cardFee(a.amount))
    const refund = items.find(i => i.type === 'refund')
    t.match(refund, { attemptId: b.attemptId, gross: { amount: -500 } })
    t.ok(refund?.refundId !== null, 'the refund is ours')
    t.ok(items.find(i => i.type === 'dispute')?.attemptId !== null, 'the dispute maps to its payment')

    const entry = await findEntryByKey(db, tenant.id, `payout:${po}:paid`)
    t.equal(entry?.kind, 'payout.paid')
    t.equal(payout.ledgerEntryId, entry?.id)
    t.same(entry?.postings.map(p => [p.accountCode, p.amount.amount]).sort(), [
      ['bank:operating', payout.amount.amount],
      ['processor:stripe:pending', -payout.amount.amount]
    ].sort(), 'the bank entry moves the net')
    const fees = await findEntryByKey(db, tenant.id, `payout:${po}:fees`)
    t.same(fees?.postings.map(p => [p.accountCode, p.amount.amount]).sort(), [
      ['fees:processor', cardFee(unknownFee.amount)],
      ['processor:stripe:pending', -cardFee(unknownFee.amount)]
    ].sort(), 'the fee not known at the charge is booked with it, from the balance transaction')
    t.equal(await bank(), payout.amount.amount, 'bank is the payout net to the cent')
    t.equal(await pending(), atStripe(), 'processor pending is exactly what is still at Stripe')
    t.equal(atStripe(), later.amount - cardFee(later.amount), 'which is the charge made after the payout')
    t.equal(await db('journal_entries').where({ tenant_id: tenant.id, kind: 'payout.paid' }).count('* as n').first().then(r => Number(r?.n)), 1, 'one entry for four deliveries')
    const jobs = await depositJobs()
    t.same(jobs.map(j => [j.dedupe_key, j.payload.payoutId]), [[`deposit:${payout.id}`, payout.id]], 'one deposit job, in the outbox')
  })

  await t.test('replays change nothing', async t => {
    const before = await db('payout_items').where({ tenant_id: tenant.id }).count('* as n').first()
    const again = await applyPayout(db, tenant.id, payments, po)
    t.equal(again.posted, false)
    t.equal(again.reversed, false)
    // A redelivered event with a new id runs the job again.
    await enqueue(db, tenant.id, [{ queue: 'stripe.event', payload: { eventId: 'evt_replay', type: 'payout.paid', objectType: 'payout', objectId: po }, dedupeKey: 'stripe:evt_replay' }])
    while (await worker.runOnce() > 0) { /* drain */ }
    t.same(await db('payout_items').where({ tenant_id: tenant.id }).count('* as n').first(), before)
    t.equal(await db('journal_entries').where({ tenant_id: tenant.id, kind: 'payout.paid' }).count('* as n').first().then(r => Number(r?.n)), 1)
    t.equal((await depositJobs()).length, 1)
    t.equal(await pending(), atStripe())
  })

  await t.test('a payout that fails after paid: the bank entry is reversed, and the money goes out again', async t => {
    store.failPayout(po)
    await drain()
    const payout = await findPayoutByRef(db, tenant.id, po)
    t.match(payout, { status: 'failed', failureCode: 'account_closed' })
    const reversal = await findEntryByKey(db, tenant.id, `payout:${po}:failed`)
    t.equal(reversal?.reversesEntryId, payout?.ledgerEntryId)
    t.equal(await bank(), 0)
    t.equal(await pending(), atStripe(), 'the money is back at Stripe, and in pending')
    t.equal((await applyPayout(db, tenant.id, payments, po)).reversed, false, 'a replayed failure reverses nothing more')
    // A worker that read the payout while it was still paid, committing after the failure, changes nothing.
    const stale: PaymentsPort = { ...payments, retrievePayout: async input => ({ ...(await payments.retrievePayout(input)), status: 'paid', failureCode: null }) }
    const raced = await applyPayout(db, tenant.id, stale, po)
    t.match(raced, { posted: false, reversed: false, payout: { status: 'failed' } })
    t.equal(await bank(), 0)
    const raised = await listExceptions(db, tenant.id, { kind: 'tieout_difference' })
    t.equal(raised.length, 1, 'a person is told to undo the deposit in the books')
    t.match(raised[0], { amount: { amount: payout?.amount.amount }, summary: new RegExp(`${po} failed after it was paid`) })
    store.advance(3 * DAY)
    const next = store.runPayout()
    await drain()
    const second = await findPayoutByRef(db, tenant.id, String(next?.id))
    t.equal(second?.status, 'paid')
    const items = await payoutItems(db, tenant.id, String(second?.id))
    t.same(items.map(i => [i.type, i.processorType]).sort(), [['charge', 'charge'], ['other', 'payout_failure']])
    t.equal(await bank(), second?.amount.amount)
    t.equal(await pending(), atStripe())
    t.equal(atStripe(), 0)
    t.equal((await depositJobs()).length, 2)
  })

  await t.test('a payout read before its payment was booked waits, then books once', async t => {
    const invoice = await pick()
    const method = await save(invoice.customer_id, await achCustomer(stripe, 'pm_usBankAccount_success'), 'ach')
    const ach = await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoice.id, paymentMethodId: method, actor: 'autopay', trigger: 'autopay' })
    t.equal(ach.outcome, 'processing')
    store.settleAch() // succeeded at Stripe; the event has not reached Settle
    const early = store.runPayout({ includePending: true })
    const first = await applyPayout(db, tenant.id, payments, String(early?.id))
    t.equal(first.waitingFor.length, 1, 'the ACH payment is not booked yet')
    t.equal(first.posted, false)
    t.equal(await findEntryByKey(db, tenant.id, `payout:${String(early?.id)}:paid`), null, 'nothing posted')
    await drain() // payment events and payout events, shuffled; the payout job may have to wait
    const done = await applyPayout(db, tenant.id, payments, String(early?.id))
    t.equal(done.waitingFor.length, 0)
    t.ok(await findEntryByKey(db, tenant.id, `payout:${String(early?.id)}:paid`))
    t.equal(await pending(), atStripe())
    t.equal(await db('journal_entries').where({ tenant_id: tenant.id, kind: 'payout.paid' }).count('* as n').first().then(r => Number(r?.n)), 3)
  })

  await t.test('the same payout applied by three workers at once is booked once', async t => {
    await charge('pm_card_visa')
    const po4 = String(store.runPayout({ includePending: true })?.id)
    const results = await Promise.all([1, 2, 3].map(async () => await applyPayout(db, tenant.id, payments, po4)))
    t.equal(results.filter(r => r.posted).length, 1)
    t.equal(new Set(results.map(r => r.payout.id)).size, 1, 'one payout row')
    await drain()
    t.equal(await db('journal_entries').where({ tenant_id: tenant.id, idempotency_key: `payout:${po4}:paid` }).count('* as n').first().then(r => Number(r?.n)), 1)
    t.equal((await depositJobs()).length, 4)
    t.equal(await pending(), atStripe())
  })

  await t.test('a charge Settle did not take is paid out all the same, and raised for a person', async t => {
    const foreign = await stripe.paymentIntents.create({ amount: 12_300, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
    const bankBefore = await bank()
    const po3 = store.runPayout({ includePending: true })
    await drain()
    const payout = await findPayoutByRef(db, tenant.id, String(po3?.id))
    t.equal(payout?.status, 'paid')
    t.equal(await bank() - bankBefore, 12_300 - cardFee(12_300), 'the bank gets what Stripe paid')
    t.equal(await pending(), atStripe() - (12_300 - cardFee(12_300)), 'pending shows the money Settle never booked')
    const [item] = await payoutItems(db, tenant.id, String(payout?.id))
    t.match(item, { type: 'charge', attemptId: null, paymentIntentRef: foreign.id })
    const raised = await listExceptions(db, tenant.id, { kind: 'unmatched_payment' })
    t.equal(raised.length, 1)
    t.match(raised[0], { amount: { amount: 12_300 }, summary: /did not take/ })
  })
})

t.test('tenants never see each other\'s payouts; unknown ids are refused', async t => {
  const db = await testDb(t)
  const one = await makeTenant(db, 'One')
  const two = await makeTenant(db, 'Two')
  const fake = new FakePayments()
  fake.payouts.set('po_fake', {
    payout: { id: 'po_fake', status: 'paid', amount: { amount: 1_000, currency: 'USD' }, arrivalDate: '2026-12-04', createdAt: new Date(), automatic: true, failureCode: null, failureMessage: null, raw: {} },
    transactions: [{ id: 'txn_fake', type: 'adjustment', reportingCategory: 'other_adjustment', gross: { amount: 1_000, currency: 'USD' }, fee: { amount: 0, currency: 'USD' }, net: { amount: 1_000, currency: 'USD' }, sourceRef: null, paymentIntentRef: null, created: new Date() }]
  })
  const result = await applyPayout(db, one.id, fake, 'po_fake')
  t.equal(result.posted, true)
  t.equal(result.payout.arrivalDate, '2026-12-04')
  t.equal((await findEntryByKey(db, one.id, 'payout:po_fake:paid'))?.effectiveAt.toISOString(), '2026-12-04T00:00:00.000Z', 'booked on the arrival date')
  t.same(await listPayouts(db, two.id), [])
  await t.rejects(getPayout(db, two.id, result.payout.id), { code: 'PAYOUT_NOT_FOUND' })
  await t.rejects(getPayout(db, one.id, 'not-a-uuid'), { code: 'PAYOUT_NOT_FOUND' })
  t.same(await payoutItems(db, two.id, result.payout.id), [])
  // A list that does not add up to the payout is never booked.
  const base = fake.payouts.get('po_fake')?.payout
  if (base === undefined) throw new Error('set above')
  fake.payouts.set('po_short', { payout: { ...base, id: 'po_short', amount: { amount: 2_000, currency: 'USD' } }, transactions: [] })
  fake.payouts.get('po_short')?.transactions.push({ id: 'txn_short', type: 'charge', reportingCategory: 'charge', gross: { amount: 1_500, currency: 'USD' }, fee: { amount: 0, currency: 'USD' }, net: { amount: 1_500, currency: 'USD' }, sourceRef: 'ch_x', paymentIntentRef: null, created: new Date() })
  await t.rejects(applyPayout(db, one.id, fake, 'po_short'), /net 1500 but the payout is 2000/)
  t.equal(await findPayoutByRef(db, one.id, 'po_short'), null, 'nothing written')
})
