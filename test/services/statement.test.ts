import t from 'tap'
import type { Knex } from 'knex'
import pino from 'pino'
import { onPostgres, testDb } from '../helpers/db.js'
import { countRows, makeTenant } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakePayments } from '../helpers/fake-payments.js'
import { FakeAccounting } from '../helpers/fake-accounting.js'
import { syncInvoices } from '../../src/services/sync.js'
import { chargeInvoice, chargeInputFor, chargeStatement, invoiceNumbersOf, quoteStatement } from '../../src/services/charge.js'
import { refundPayment } from '../../src/services/refunds.js'
import { recordDispute } from '../../src/services/disputes.js'
import { postPayment } from '../../src/services/posting.js'
import { allocationsOf, getAttempt, listAttempts, savePaymentMethod, type PaymentMethod } from '../../src/db/payments.js'
import { customerBalance, trialBalance } from '../../src/db/ledger.js'
import { invoicesByPsaIds, type Invoice } from '../../src/db/invoices.js'
import type { Tenant } from '../../src/db/tenants.js'
import { Worker } from '../../src/jobs/worker.js'
import { paymentJobHandlers } from '../../src/jobs/payment-jobs.js'
import { money } from '../../src/domain/money.js'

/**
 * Statement payments: one charge over several invoices of one client,
 * applied oldest due first, and everything that follows it (ledger, PSA,
 * QuickBooks, refunds, disputes) per invoice.
 */
interface World { tenant: Tenant, invoices: Map<string, Invoice>, card: PaymentMethod, otherCard: PaymentMethod, harbor: string }

// Harbor Dental owes four invoices, due on different days and synced in no particular order; one is a credit memo.
async function world (db: Knex): Promise<World> {
  const tenant = await makeTenant(db)
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.addCompany('2', 'Summit Logistics')
  psa.put('12', { company: '1', total: 30_000, number: '1012', dueOn: '2026-11-30' })
  psa.put('10', { company: '1', total: 10_000, number: '1010', dueOn: '2026-09-30' })
  psa.put('11', { company: '1', total: 20_000, number: '1011', dueOn: '2026-10-31' })
  psa.put('13', { company: '1', total: -5_000, number: 'CM-13' })
  psa.put('20', { company: '2', total: 7_000, number: '2020' })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoices = await invoicesByPsaIds(db, tenant.id, 'connectwise', ['10', '11', '12', '13', '20'])
  const harbor = invoices.get('10')?.customerId as string
  const summit = invoices.get('20')?.customerId as string
  const base = { processorCustomerRef: 'cus_harbor', brand: 'visa', expMonth: 4, expYear: 2029, funding: 'debit', isDefault: true, type: 'card' as const }
  return {
    tenant,
    invoices,
    harbor,
    card: await savePaymentMethod(db, tenant.id, { ...base, customerId: harbor, processorMethodRef: 'pm_visa', last4: '4242' }),
    otherCard: await savePaymentMethod(db, tenant.id, { ...base, customerId: summit, processorCustomerRef: 'cus_summit', processorMethodRef: 'pm_summit', last4: '1111' })
  }
}

const id = (w: World, psaId: string): string => w.invoices.get(psaId)?.id as string
const paid = async (db: Knex, w: World): Promise<Record<string, [number, string]>> => {
  const rows = await invoicesByPsaIds(db, w.tenant.id, 'connectwise', ['10', '11', '12'])
  return Object.fromEntries([...rows].map(([psa, i]) => [psa, [i.paidViaSettle, i.status]]))
}

t.test('quoting a statement payment', async t => {
  const db = await testDb(t)
  const w = await world(db)
  const base = { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id }

  const all = await quoteStatement(db, base)
  t.same(all.allocations.map(a => [a.number, a.applied.amount]), [['1010', 10_000], ['1011', 20_000], ['1012', 30_000]], 'every open invoice, oldest due first; the credit memo is left out')
  t.equal(all.amount.amount, 60_000)
  t.equal(all.total.amount, all.amount.amount + all.surcharge.amount)

  const part = await quoteStatement(db, { ...base, amount: 25_000 })
  t.same(part.allocations.map(a => [a.number, a.applied.amount, a.open.amount]), [['1010', 10_000, 10_000], ['1011', 15_000, 20_000]], 'a partial payment fills the oldest first and leaves the newest open')

  const chosen = await quoteStatement(db, { ...base, invoiceIds: [id(w, '12'), id(w, '10')] })
  t.same(chosen.allocations.map(a => a.number), ['1010', '1012'], 'only the chosen invoices, still oldest first')

  await t.rejects(quoteStatement(db, { ...base, amount: 60_001 }), { code: 'AMOUNT_EXCEEDS_BALANCE', message: /\$600\.01 is more than the \$600\.00 open/ })
  await t.rejects(quoteStatement(db, { ...base, invoiceIds: [id(w, '10'), id(w, '20')] }), { code: 'INVOICE_NOT_FOUND' }, 'another client\'s invoice')
  await t.rejects(quoteStatement(db, { ...base, invoiceIds: [id(w, '13')] }), { code: 'NOTHING_TO_CHARGE', message: /CM-13 has nothing open/ }, 'a credit memo is not charged')
  await t.rejects(quoteStatement(db, { ...base, invoiceIds: [] }), { code: 'VALIDATION_FAILED' })
  await t.rejects(quoteStatement(db, { ...base, invoiceIds: ['not-a-uuid'] }), { code: 'VALIDATION_FAILED' })
  await t.rejects(quoteStatement(db, { ...base, paymentMethodId: w.otherCard.id }), { code: 'PAYMENT_METHOD_NOT_FOUND' })
  await t.rejects(quoteStatement(db, { ...base, amount: 0 }), { code: 'INVALID_AMOUNT' })
  await t.rejects(quoteStatement(db, { ...base, customerId: 'nope' }), { code: 'CUSTOMER_NOT_FOUND' })

  await db('invoices').where({ id: id(w, '12') }).update({ currency: 'CAD' })
  await t.rejects(quoteStatement(db, base), { code: 'CURRENCY_MISMATCH', message: /CAD and USD/ }, 'one currency per payment')
  t.same((await quoteStatement(db, { ...base, invoiceIds: [id(w, '10'), id(w, '11')] })).amount, money(30_000, 'USD'))
})

t.test('a statement payment: one charge, each invoice paid, one ledger entry, one push per invoice', async t => {
  const db = await testDb(t)
  const w = await world(db)
  const payments = new FakePayments()

  const result = await chargeStatement(db, payments, { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, amount: 45_000, actor: 'member:jsmith', trigger: 'charge_card' })
  t.equal(result.outcome, 'succeeded')
  t.equal(result.attempt.invoiceId, null, 'a statement attempt has no single invoice')
  t.equal(payments.charged.length, 1, 'one charge')
  const charge = payments.charged[0]
  t.equal(charge?.amount.amount, 45_000)
  t.equal(charge?.description, 'Invoices 1010, 1011 and 1012')
  t.same(charge?.metadata, { settle_attempt_id: result.attempt.id, settle_tenant_id: w.tenant.id, invoice_numbers: '1010, 1011, 1012' })
  t.equal(charge?.idempotencyKey, `settle_attempt_${result.attempt.id}`)

  t.same((await allocationsOf(db, w.tenant.id, result.attempt.id)).map(a => [a.invoiceNumber, a.amount]), [['1010', 10_000], ['1011', 20_000], ['1012', 15_000]])
  t.same(await paid(db, w), { 10: [10_000, 'paid'], 11: [20_000, 'paid'], 12: [15_000, 'partially_paid'] })

  const entries = await db('journal_entries').where({ tenant_id: w.tenant.id, kind: 'payment.succeeded' })
  t.equal(entries.length, 1, 'one ledger entry for the one charge')
  t.equal(entries[0].memo, 'Card payment for invoices 1010, 1011 and 1012')
  t.same((await customerBalance(db, w.tenant.id, w.harbor)).total, [money(60_000 - 5_000 - 45_000, 'USD')], 'the client owes what the three invoices and the credit memo leave')
  t.same((await trialBalance(db, w.tenant.id)).totals.map(m => m.amount), [0])

  const pushes = await db('jobs').where({ tenant_id: w.tenant.id, queue: 'psa.push-payment' }).orderBy('id')
  t.same(pushes.map((j: { payload: { invoiceExternalId: string, amount: number, reference: string, settlesInvoice: boolean } }) => [j.payload.invoiceExternalId, j.payload.amount, j.payload.reference, j.payload.settlesInvoice]), [
    ['10', 10_000, `${result.attempt.id}:${id(w, '10')}`, true],
    ['11', 20_000, `${result.attempt.id}:${id(w, '11')}`, true],
    ['12', 15_000, `${result.attempt.id}:${id(w, '12')}`, false]
  ], 'one PSA payment per invoice, each with its own reference')
  t.equal(await db('jobs').where({ tenant_id: w.tenant.id, queue: 'qbo.post-payment' }).count('* as n').first().then(r => Number(r?.n)), 1, 'one QuickBooks payment')

  const history = await listAttempts(db, w.tenant.id, id(w, '11'))
  t.same(history.map(a => a.id), [result.attempt.id], 'the statement payment is in each invoice\'s history')

  await t.rejects(chargeStatement(db, payments, { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, amount: 15_001, actor: 'm', trigger: 'charge_card' }), { code: 'AMOUNT_EXCEEDS_BALANCE' }, 'what is left is the most it takes')
  const rest = await chargeStatement(db, payments, { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, actor: 'm', trigger: 'charge_card' })
  t.same((await allocationsOf(db, w.tenant.id, rest.attempt.id)).map(a => [a.invoiceNumber, a.amount]), [['1012', 15_000]], 'the default is everything still open')
  await t.rejects(chargeStatement(db, payments, { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, actor: 'm', trigger: 'charge_card' }), { code: 'NOTHING_TO_CHARGE' })
})

t.test('one payment in flight per invoice, whichever kind', async t => {
  const db = await testDb(t, { poolMax: 10 })
  const w = await world(db)
  const payments = new FakePayments()
  payments.delayMs = 150
  const statement = { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, actor: 'member:jsmith', trigger: 'charge_card' as const }

  const clicks = await Promise.all([chargeStatement(db, payments, statement), chargeStatement(db, payments, statement), chargeInvoice(db, payments, { ...statement, invoiceId: id(w, '11') })])
  t.equal(payments.charged.length, 1, 'three clicks, one charge')
  t.equal(clicks.filter(c => c.outcome === 'already_processing').length, 2)
  const won = clicks.find(c => c.outcome !== 'already_processing')
  t.ok(clicks.every(c => c.attempt.id === won?.attempt.id), 'the losers are shown the winner')
  t.same(await paid(db, w), won?.attempt.invoiceId === null
    ? { 10: [10_000, 'paid'], 11: [20_000, 'paid'], 12: [30_000, 'paid'] }
    : { 10: [0, 'open'], 11: [20_000, 'paid'], 12: [0, 'open'] }, 'whichever won, each invoice was paid once')

  // The database is the backstop: a second in-flight allocation on an invoice is refused outright.
  const [open] = await db('invoices').where({ tenant_id: w.tenant.id, customer_id: w.harbor }).where('kind', 'standard').select('id') as Array<{ id: string }>
  await db.transaction(async trx => {
    const [a] = await trx('payment_attempts').insert({ tenant_id: w.tenant.id, invoice_id: null, customer_id: w.harbor, payment_method_id: w.card.id, amount: 100, currency: 'USD', trigger: 'charge_card', actor: 't' }).returning('id') as Array<{ id: string }>
    await trx('payment_attempt_allocations').insert({ tenant_id: w.tenant.id, attempt_id: a?.id, invoice_id: open?.id, position: 0, amount: 100, currency: 'USD', in_flight: true })
    const sp = await trx.transaction()
    await t.rejects(sp('payment_attempts').insert({ tenant_id: w.tenant.id, invoice_id: open?.id, customer_id: w.harbor, payment_method_id: w.card.id, amount: 100, currency: 'USD', trigger: 'charge_card', actor: 't' }), { code: '23505' })
    await sp.rollback().catch(() => {})
    await trx.rollback()
  }).catch(() => {})
  t.equal(await countRows(db, 'payment_attempts'), 1, 'nothing of that was kept')
})

t.test('what the database refuses', async t => {
  const db = await testDb(t)
  const w = await world(db)
  const attemptRow = { tenant_id: w.tenant.id, invoice_id: null, customer_id: w.harbor, payment_method_id: w.card.id, amount: 15_000, currency: 'USD', trigger: 'charge_card', actor: 't', status: 'failed' }
  const write = async (allocations: Array<{ invoice: string, amount: number, currency?: string }>): Promise<void> => {
    await db.transaction(async trx => {
      const [a] = await trx('payment_attempts').insert(attemptRow).returning('id') as Array<{ id: string }>
      for (const [position, al] of allocations.entries()) {
        await trx('payment_attempt_allocations').insert({ tenant_id: w.tenant.id, attempt_id: a?.id, invoice_id: al.invoice, position, amount: al.amount, currency: al.currency ?? 'USD', in_flight: false })
      }
    })
  }
  await t.rejects(write([{ invoice: id(w, '10'), amount: 10_000 }]), { message: /allocates 10000 of its 15000 cents/ }, 'allocations must add up to the attempt, at commit')
  await t.rejects(write([{ invoice: id(w, '10'), amount: 10_000 }, { invoice: id(w, '20'), amount: 5_000 }]), { message: /belongs to another client/ })
  await t.rejects(write([{ invoice: id(w, '10'), amount: 10_000 }, { invoice: id(w, '11'), amount: 5_000, currency: 'CAD' }]), { message: /currency CAD differs/ })
  await t.rejects(db('payment_attempts').insert({ ...attemptRow, installment_part_id: '00000000-0000-4000-8000-000000000000' }), { message: /payment_attempts_statement_not_installment/ })
  t.equal(await countRows(db, 'payment_attempts'), 0, 'none of it was kept')
  await write([{ invoice: id(w, '10'), amount: 10_000 }, { invoice: id(w, '11'), amount: 5_000 }])
  await t.rejects(db('payment_attempt_allocations').where({ tenant_id: w.tenant.id }).update({ amount: 1 }), { message: /never edited/ })
})

t.test('declined, unknown, resolved: a statement payment is never charged twice and never retried', async t => {
  const db = await testDb(t)
  const w = await world(db)
  const payments = new FakePayments()
  const request = { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, actor: 'client', trigger: 'checkout' as const }

  payments.script = () => ({ status: 'failed', intentId: 'pi_declined', failure: { code: 'card_declined', declineCode: 'insufficient_funds', adviceCode: null, message: 'Your card has insufficient funds.' }, raw: {} })
  const declined = await chargeStatement(db, payments, request)
  t.equal(declined.outcome, 'failed')
  t.same(await paid(db, w), { 10: [0, 'open'], 11: [0, 'open'], 12: [0, 'open'] }, 'nothing applied')
  t.equal(await db('jobs').whereIn('queue', ['payments.retry', 'collection.give-up']).count('* as n').first().then(r => Number(r?.n)), 0, 'a person started it and saw the decline: no retry, no give-up notice')
  t.same((await db('payment_attempt_allocations').where({ attempt_id: declined.attempt.id }).pluck('in_flight')), [false, false, false], 'the invoices are free again')

  payments.script = () => 'throw'
  t.equal((await chargeStatement(db, payments, request)).outcome, 'unknown', 'a lost answer is being checked, not an error')
  const [stuck] = (await listAttempts(db, w.tenant.id, id(w, '10'))).filter(a => a.status === 'unknown')
  t.ok(stuck, 'the attempt was written before the processor was called')
  const blocked = await chargeInvoice(db, payments, { ...request, invoiceId: id(w, '12') })
  t.equal(blocked.outcome, 'already_processing', 'its invoices stay blocked while the outcome is unknown')
  const resend = chargeInputFor(stuck!, w.card, await invoiceNumbersOf(db, stuck!))
  t.same(resend, payments.charged.at(-1), 'the resolver rebuilds the identical request')

  payments.script = input => ({ status: 'succeeded', intentId: 'pi_never', chargeId: null, fee: null, raw: input })
  const worker = new Worker({ db, handlers: paymentJobHandlers(async () => payments), log: pino({ level: 'silent' }), concurrency: 1 })
  await db('jobs').insert({ tenant_id: w.tenant.id, queue: 'payments.resolve', payload: { attemptId: stuck!.id }, dedupe_key: 'resolve:test' })
  await worker.runOnce()
  t.equal((await getAttempt(db, w.tenant.id, stuck!.id)).status, 'succeeded')
  t.equal(payments.charged.filter(c => c.idempotencyKey === resend.idempotencyKey).length, 1, 'charged once')
  t.same(await paid(db, w), { 10: [10_000, 'paid'], 11: [20_000, 'paid'], 12: [30_000, 'paid'] })
})

t.test('money given back reopens the invoice paid last first', async t => {
  const db = await testDb(t)
  const w = await world(db)
  const payments = new FakePayments()
  const { attempt } = await chargeStatement(db, payments, { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, actor: 'member:jsmith', trigger: 'charge_card' })
  t.equal(attempt.surcharge.amount, 0, 'a debit card carries no surcharge')

  await refundPayment(db, payments, { tenantId: w.tenant.id, attemptId: attempt.id, amount: 35_000, reason: 'Overbilled on 1012', actor: 'member:finance' })
  t.same(await paid(db, w), { 10: [10_000, 'paid'], 11: [15_000, 'partially_paid'], 12: [0, 'open'] }, '1012 reopens in full, then 1011 by the rest')
  const restates = await db('jobs').where({ tenant_id: w.tenant.id, queue: 'psa.restate-payment' }).orderBy('id')
  t.same(restates.map((j: { payload: { invoiceExternalId: string, remainder: number } }) => [j.payload.invoiceExternalId, j.payload.remainder]), [['12', 0], ['11', 15_000]], 'only the touched invoices are re-stated in the PSA, each with what stays paid')
  const refundEntry = await db('journal_entries').where({ tenant_id: w.tenant.id, kind: 'payment.refunded' }).first('memo')
  t.equal(refundEntry.memo, 'Refund on invoices 1010, 1011 and 1012: Overbilled on 1012', 'the ledger names the payment refunded')
  const reversal = await db('jobs').where({ tenant_id: w.tenant.id, queue: 'qbo.post-reversal' }).first()
  t.equal(reversal.payload.invoiceAmount, 35_000, 'one QuickBooks reversal for the refund')

  await refundPayment(db, payments, { tenantId: w.tenant.id, attemptId: attempt.id, amount: 20_000, reason: 'Goodwill', actor: 'member:finance' })
  t.same(await paid(db, w), { 10: [5_000, 'partially_paid'], 11: [0, 'open'], 12: [0, 'open'] }, 'the next refund carries on where the last stopped')
  t.same((await trialBalance(db, w.tenant.id)).totals.map(m => m.amount), [0])

  const second = await chargeStatement(db, payments, { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, invoiceIds: [id(w, '11'), id(w, '12')], actor: 'member:jsmith', trigger: 'charge_card' })
  const intent = second.attempt.processorIntentRef as string
  const dispute = { id: 'dp_1', intentId: intent, amount: money(50_000, 'USD'), fee: money(1_500, 'USD'), reason: 'fraudulent', createdAt: new Date('2026-12-03T10:00:00Z'), reinstatedAt: null }
  await recordDispute(db, w.tenant.id, { ...dispute, status: 'needs_response' })
  t.same(await paid(db, w), { 10: [5_000, 'partially_paid'], 11: [20_000, 'disputed'], 12: [30_000, 'disputed'] }, 'both invoices show the dispute')
  await recordDispute(db, w.tenant.id, { ...dispute, status: 'lost' })
  await recordDispute(db, w.tenant.id, { ...dispute, status: 'lost' })
  t.same(await paid(db, w), { 10: [5_000, 'partially_paid'], 11: [0, 'open'], 12: [0, 'open'] }, 'lost: both reopen, once however often Stripe says so')
  t.same((await trialBalance(db, w.tenant.id)).totals.map(m => m.amount), [0])
})

t.test('QuickBooks gets one Payment with a line per invoice', async t => {
  const db = await testDb(t)
  const w = await world(db)
  const payments = new FakePayments()
  const qbo = new FakeAccounting()
  await db('accounting_connections').insert({
    tenant_id: w.tenant.id, system: 'quickbooks', realm_id: '9130000000000001',
    settings: JSON.stringify({ undepositedFundsAccountId: '4', bankAccountId: '35', feesAccountId: '8', receivableAccountId: '84', writeOffAccountId: '9', cardPaymentMethodId: '4', achPaymentMethodId: '5', surchargeItemId: '20', invoiceMatch: 'doc_number', docNumberPrefix: '' })
  })
  const customer = qbo.addCustomer({ displayName: 'Harbor Dental' })
  const q1010 = qbo.addInvoice({ customerId: customer.id, docNumber: '1010', total: 10_000 })
  const q1011 = qbo.addInvoice({ customerId: customer.id, docNumber: '1011', total: 20_000 })
  // 1012 never reached QuickBooks: its share stays unapplied credit, and a person is told.
  const { attempt } = await chargeStatement(db, payments, { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, amount: 40_000, actor: 'member:jsmith', trigger: 'charge_card' })

  const posted = await postPayment(db, qbo, w.tenant.id, attempt.id)
  t.equal(posted.status, 'posted')
  const payment = qbo.payments.get(posted.status === 'posted' ? posted.externalId : '')
  t.equal(payment?.total.amount, 40_000)
  t.same(payment?.applications, [{ invoiceId: q1010.id, amount: money(10_000, 'USD') }, { invoiceId: q1011.id, amount: money(20_000, 'USD') }])
  t.match(payment?.note, /for invoices 1010, 1011 and 1012/)
  const exceptions = await db('reconciliation_exceptions').where({ tenant_id: w.tenant.id })
  t.same(exceptions.map((e: { kind: string, invoice_id: string, amount: string }) => [e.kind, e.invoice_id, Number(e.amount)]), [['mapping_needed', id(w, '12'), 10_000]])
  const again = await postPayment(db, qbo, w.tenant.id, attempt.id)
  t.same([again.status, qbo.payments.size], ['posted', 1], 'posting again posts nothing')
})

t.test(`stays correct on ${onPostgres ? 'PostgreSQL' : 'PGlite'}: ledger and allocations agree`, async t => {
  const db = await testDb(t)
  const w = await world(db)
  const payments = new FakePayments()
  for (const amount of [7_000, 9_000, 11_000]) {
    await chargeStatement(db, payments, { tenantId: w.tenant.id, customerId: w.harbor, paymentMethodId: w.card.id, amount, actor: 'm', trigger: 'charge_card' })
  }
  const [applied] = await db('payment_attempt_allocations').where({ tenant_id: w.tenant.id }).sum({ total: 'amount' }) as Array<{ total: string }>
  const [viaSettle] = await db('invoices').where({ tenant_id: w.tenant.id }).sum({ total: 'paid_via_settle' }) as Array<{ total: string }>
  t.equal(Number(applied?.total), 27_000)
  t.equal(Number(viaSettle?.total), 27_000, 'what invoices show paid is what the allocations say')
  t.same(await paid(db, w), { 10: [10_000, 'paid'], 11: [17_000, 'partially_paid'], 12: [0, 'open'] })
})
