import t from 'tap'
import type { Knex } from 'knex'
import { onPostgres, testDb } from '../helpers/db.js'
import { countRows, makeTenant } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakePayments } from '../helpers/fake-payments.js'
import { syncInvoices } from '../../src/services/sync.js'
import { chargeInvoice, recordOutcome } from '../../src/services/charge.js'
import { savePaymentMethod, listAttempts, type PaymentMethod } from '../../src/db/payments.js'
import { customerBalance, trialBalance } from '../../src/db/ledger.js'
import { invoicesByPsaIds, type Invoice } from '../../src/db/invoices.js'
import type { Tenant } from '../../src/db/tenants.js'
import pino from 'pino'
import { Worker } from '../../src/jobs/worker.js'
import { paymentJobHandlers, sweepUnresolvedAttempts } from '../../src/jobs/payment-jobs.js'

interface Fixture { tenant: Tenant, invoices: Map<string, Invoice>, card: PaymentMethod, bank: PaymentMethod, otherClientCard: PaymentMethod }

async function setUp (db: Knex): Promise<Fixture> {
  const tenant = await makeTenant(db)
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.addCompany('2', 'Summit Logistics')
  for (let i = 1; i <= 8; i++) psa.put(String(i), { company: i === 8 ? '2' : '1', total: 100_000 + i })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoices = await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1', '2', '3', '4', '5', '6', '7', '8'])
  const harbor = invoices.get('1')?.customerId as string
  const summit = invoices.get('8')?.customerId as string
  const base = { processorCustomerRef: 'cus_harbor', brand: 'visa', expMonth: 4, expYear: 2029, funding: 'credit', isDefault: true }
  return {
    tenant,
    invoices,
    card: await savePaymentMethod(db, tenant.id, { ...base, customerId: harbor, processorMethodRef: 'pm_visa', type: 'card', last4: '4242' }),
    bank: await savePaymentMethod(db, tenant.id, { ...base, customerId: harbor, processorMethodRef: 'pm_bank', type: 'ach', brand: null, last4: '6789', expMonth: null, expYear: null, funding: null, isDefault: false }),
    otherClientCard: await savePaymentMethod(db, tenant.id, { ...base, customerId: summit, processorCustomerRef: 'cus_summit', processorMethodRef: 'pm_summit', type: 'card', last4: '1111' })
  }
}

const id = (f: Fixture, psaId: string): string => f.invoices.get(psaId)?.id as string

t.test('charging an invoice', async t => {
  const db = await testDb(t)
  const f = await setUp(db)
  const payments = new FakePayments()
  const harbor = f.card.customerId

  await t.test('full charge: attempt, ledger with fee, invoice paid, push-back queued', async t => {
    const result = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '1'), paymentMethodId: f.card.id, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(result.outcome, 'succeeded')
    t.equal(result.attempt.amount.amount, 100_001, 'defaults to the open balance')
    t.equal(payments.charged[0]?.idempotencyKey, `settle_attempt_${result.attempt.id}`, 'our attempt id is the idempotency key')
    t.equal(payments.charged[0]?.metadata.settle_attempt_id, result.attempt.id)
    const invoice = (await invoicesByPsaIds(db, f.tenant.id, 'connectwise', ['1'])).get('1')
    t.equal(invoice?.status, 'paid')
    t.equal(invoice?.paidViaSettle, 100_001)
    const entry = await db('journal_entries').where({ tenant_id: f.tenant.id, kind: 'payment.succeeded' }).first()
    const postings = await db('postings').where({ entry_id: entry.id }).orderBy('id')
    t.same(postings.map((p: { account_code: string, amount: number }) => [p.account_code, Number(p.amount)]), [
      ['processor:stripe:pending', 100_001], [`receivable:${harbor}`, -100_001], ['fees:processor', 2930], ['processor:stripe:pending', -2930]
    ])
    const push = await db('jobs').where({ tenant_id: f.tenant.id, queue: 'psa.push-payment' }).first()
    t.equal(push.source_entry_id, entry.id, 'the push-back is in the outbox with its entry')
    t.equal(push.payload.settlesInvoice, true)
    t.same((await trialBalance(db, f.tenant.id)).totals.map(m => m.amount), [0])
  })

  await t.test('partial charges and the balance limit', async t => {
    const partial = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '2'), paymentMethodId: f.card.id, amount: 40_000, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(partial.outcome, 'succeeded')
    t.equal((await invoicesByPsaIds(db, f.tenant.id, 'connectwise', ['2'])).get('2')?.status, 'partially_paid')
    const attemptsBefore = await countRows(db, 'payment_attempts')
    await t.rejects(chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '2'), paymentMethodId: f.card.id, amount: 60_003, actor: 'm', trigger: 'charge_card' }), { code: 'AMOUNT_EXCEEDS_BALANCE', message: /600\.03 is more than the 600\.02 open/ })
    await t.rejects(chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '2'), paymentMethodId: f.card.id, amount: 0, actor: 'm', trigger: 'charge_card' }), { code: 'INVALID_AMOUNT' })
    await t.rejects(chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '1'), paymentMethodId: f.card.id, actor: 'm', trigger: 'charge_card' }), { code: 'NOTHING_TO_CHARGE' })
    await t.rejects(chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '3'), paymentMethodId: f.otherClientCard.id, actor: 'm', trigger: 'charge_card' }), { code: 'PAYMENT_METHOD_NOT_FOUND' }, 'another client\'s card')
    t.equal(await countRows(db, 'payment_attempts'), attemptsBefore, 'refusals write nothing')
    const rest = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '2'), paymentMethodId: f.card.id, actor: 'm', trigger: 'charge_card' })
    t.equal(rest.attempt.amount.amount, 60_002, 'the default is what is still open')
  })

  await t.test('a decline is recorded with its class and leaves the ledger alone', async t => {
    payments.script = () => ({ status: 'failed', intentId: 'pi_declined', failure: { code: 'card_declined', declineCode: 'insufficient_funds', adviceCode: 'try_again_later', message: 'Your card has insufficient funds.' }, raw: {} })
    const entries = await countRows(db, 'journal_entries')
    const result = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '3'), paymentMethodId: f.card.id, actor: 'autopay', trigger: 'autopay' })
    t.equal(result.outcome, 'failed')
    if (result.outcome === 'failed') {
      t.equal(result.verdict.class, 'retry_later')
      t.equal(result.attempt.failure.declineCode, 'insufficient_funds')
    }
    t.equal(await countRows(db, 'journal_entries'), entries)
    t.equal((await invoicesByPsaIds(db, f.tenant.id, 'connectwise', ['3'])).get('3')?.status, 'open')
  })

  await t.test('ACH shows processing, never paid, until the processor settles it', async t => {
    payments.script = () => ({ status: 'processing', intentId: 'pi_ach', raw: {} })
    const result = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '4'), paymentMethodId: f.bank.id, actor: 'autopay', trigger: 'autopay' })
    t.equal(result.outcome, 'processing')
    t.equal((await invoicesByPsaIds(db, f.tenant.id, 'connectwise', ['4'])).get('4')?.status, 'open')
    const click = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '4'), paymentMethodId: f.card.id, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(click.outcome, 'already_processing', 'a second charge while ACH is in flight is refused with its status')
    t.equal(click.attempt.status, 'processing')
    const settled = await recordOutcome(db, f.tenant.id, result.attempt.id, { status: 'succeeded', intentId: 'pi_ach', chargeId: 'py_1', fee: { amount: 500, currency: 'USD' }, raw: {} })
    t.equal(settled.outcome, 'succeeded')
    const again = await recordOutcome(db, f.tenant.id, result.attempt.id, { status: 'succeeded', intentId: 'pi_ach', chargeId: 'py_1', fee: { amount: 500, currency: 'USD' }, raw: {} })
    t.equal(again.outcome, 'succeeded', 'a duplicate webhook is a no-op')
    t.equal(await db('journal_entries').where({ tenant_id: f.tenant.id }).where('idempotency_key', 'like', `payment:${result.attempt.id}%`).count('* as n').then(r => Number(r[0]?.n)), 1)
  })

  await t.test('a lost answer after the processor charged: recovered from the processor, charged once', async t => {
    payments.script = () => 'throw'
    const charges = payments.charged.length
    const lost = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '5'), paymentMethodId: f.card.id, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(lost.outcome, 'unknown', 'the person is told it is being checked, not that it failed')
    const [attempt] = await listAttempts(db, f.tenant.id, id(f, '5'))
    t.equal(attempt?.status, 'unknown', 'the attempt was written before the call and survives the lost answer')
    const click = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '5'), paymentMethodId: f.card.id, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(click.outcome, 'already_processing', 'nobody can charge again while the outcome is unknown')
    const found = await payments.findCharge({ idempotencyKey: `settle_attempt_${attempt?.id ?? ''}`, attemptId: attempt?.id ?? '' })
    t.equal(found?.status, 'succeeded')
    await recordOutcome(db, f.tenant.id, attempt?.id ?? '', found!)
    t.equal(payments.charged.length, charges + 1, 'one charge at the processor')
    t.equal((await invoicesByPsaIds(db, f.tenant.id, 'connectwise', ['5'])).get('5')?.status, 'paid')
  })

  await t.test('an unknown outcome is recorded as unknown and queued for resolution, never assumed failed', async t => {
    payments.script = () => ({ status: 'unknown', error: 'Stripe 502 Bad Gateway' })
    const result = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '6'), paymentMethodId: f.card.id, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(result.outcome, 'unknown')
    t.equal(result.attempt.status, 'unknown')
    t.equal(await db('jobs').where({ tenant_id: f.tenant.id, queue: 'payments.resolve' }).where('dedupe_key', 'like', `resolve:${result.attempt.id}:%`).count('* as n').then(r => Number(r[0]?.n)), 1)
    t.equal((await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '6'), paymentMethodId: f.card.id, actor: 'm', trigger: 'charge_card' })).outcome, 'already_processing')
  })

  await t.test('tenants cannot charge each other\'s invoices', async t => {
    const other = await makeTenant(db, 'Other MSP')
    await t.rejects(chargeInvoice(db, payments, { tenantId: other.id, invoiceId: id(f, '7'), paymentMethodId: f.card.id, actor: 'm', trigger: 'charge_card' }), { code: 'INVOICE_NOT_FOUND' })
  })

  t.same((await trialBalance(db, f.tenant.id)).totals.map(m => m.amount), [0])
  const receivable = (await customerBalance(db, f.tenant.id, harbor)).total[0]?.amount
  const openOnHarbor = [...f.invoices.values()].filter(i => i.customerId === harbor).reduce((s, i) => s + i.total.amount, 0) - 100_001 - 100_002 - 100_004 - 100_005
  t.equal(receivable, openOnHarbor, 'receivable equals billed less what Settle collected')
})

t.test('50 concurrent Charge card clicks produce exactly one charge', { skip: onPostgres ? false : 'needs real PostgreSQL concurrency (TEST_DATABASE_URL)' }, async t => {
  const db = await testDb(t, { poolMax: 50 })
  const f = await setUp(db)
  const payments = new FakePayments()
  payments.delayMs = 30 // the processor takes a moment, as it does
  const results = await Promise.allSettled(Array.from({ length: 50 }, async () =>
    await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '1'), paymentMethodId: f.card.id, actor: 'member:jsmith', trigger: 'charge_card' })))
  const outcomes = results.map(r => (r.status === 'fulfilled' ? r.value.outcome : (r.reason as { code: string }).code))
  t.equal(payments.charged.length, 1, 'the processor saw one charge')
  t.equal(outcomes.filter(o => o === 'succeeded').length, 1)
  t.ok(outcomes.every(o => ['succeeded', 'already_processing', 'NOTHING_TO_CHARGE'].includes(o)), `every other click was told why: ${[...new Set(outcomes)].join(', ')}`)
  t.ok(outcomes.filter(o => o === 'already_processing').length > 0, 'clicks during the charge saw "already processing"')
  t.equal(await countRows(db, 'payment_attempts'), 1)
  t.equal(await db('journal_entries').where({ kind: 'payment.succeeded' }).count('* as n').then(r => Number(r[0]?.n)), 1)
})

t.test('payment jobs: the recovery sweep and scheduled retries', async t => {
  const db = await testDb(t)
  const f = await setUp(db)
  const payments = new FakePayments()
  const worker = new Worker({ db, handlers: paymentJobHandlers(async () => payments), log: pino({ level: 'silent' }), concurrency: 1 })
  const dueNow = async (queue: string): Promise<void> => { await db('jobs').where({ queue, state: 'pending' }).update({ run_at: new Date(Date.now() - 1000) }) }

  await t.test('a crash mid-charge is found by the sweep and resolved with one charge', async t => {
    payments.script = () => 'throw'
    t.equal((await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '1'), paymentMethodId: f.card.id, actor: 'autopay', trigger: 'autopay' })).outcome, 'unknown')
    // As if its resolution jobs were lost: the sweep is the backstop.
    await db('jobs').where({ queue: 'payments.resolve' }).del()
    t.equal(await sweepUnresolvedAttempts(db, 60_000), 0, 'too fresh to sweep')
    await db('payment_attempts').update({ updated_at: new Date(Date.now() - 10 * 60_000) })
    t.equal(await sweepUnresolvedAttempts(db, 60_000), 1)
    t.equal(await sweepUnresolvedAttempts(db, 60_000), 1, 'sweeping again in the same window…')
    t.equal(await db('jobs').where({ queue: 'payments.resolve' }).count('* as n').then(r => Number(r[0]?.n)), 1, '…queues nothing new')
    await worker.runOnce()
    const [attempt] = await listAttempts(db, f.tenant.id, id(f, '1'))
    t.equal(attempt?.status, 'succeeded')
    t.equal(payments.charged.length, 1, 'the re-sent request replayed the first charge')
  })

  await t.test('an auto-pay soft decline retries on the policy days until it succeeds', async t => {
    let declines = 2
    payments.script = input => declines-- > 0
      ? { status: 'failed', intentId: `pi_d${declines}`, failure: { code: 'card_declined', declineCode: 'insufficient_funds', adviceCode: null, message: 'Insufficient funds.' }, raw: {} }
      : { status: 'succeeded', intentId: 'pi_ok', chargeId: 'ch_ok', fee: { amount: 30, currency: input.amount.currency }, raw: {} }
    const first = await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '2'), paymentMethodId: f.card.id, actor: 'autopay', trigger: 'autopay' })
    t.equal(first.outcome, 'failed')
    const retry1 = await db('jobs').where({ queue: 'payments.retry' }).first()
    t.ok(Math.abs(new Date(retry1.run_at).getTime() - (first.attempt.updatedAt.getTime() + 86_400_000)) < 5000, 'first retry a day later')
    await dueNow('payments.retry')
    await worker.runOnce()
    const retry2 = await db('jobs').where({ queue: 'payments.retry', state: 'pending' }).first()
    t.ok(Math.abs(new Date(retry2.run_at).getTime() - (first.attempt.updatedAt.getTime() + 3 * 86_400_000)) < 5000, 'second retry three days after the first failure')
    await dueNow('payments.retry')
    await worker.runOnce()
    const attempts = await listAttempts(db, f.tenant.id, id(f, '2'))
    t.same(attempts.map(a => [a.status, a.retryNumber]), [['failed', 0], ['failed', 1], ['succeeded', 2]])
    t.equal(attempts[2]?.retryOf, attempts[0]?.id, 'retries point at the first attempt of the chain')
    t.equal(await db('jobs').where({ queue: 'payments.retry', state: 'pending' }).count('* as n').then(r => Number(r[0]?.n)), 0, 'no retry after success')
  })

  await t.test('a hard decline is never retried; a technician\'s decline is not auto-retried', async t => {
    payments.script = () => ({ status: 'failed', intentId: 'pi_x', failure: { code: 'card_declined', declineCode: 'fraudulent', adviceCode: 'do_not_try_again', message: 'Declined.' }, raw: {} })
    const pending = async (): Promise<number> => await db('jobs').where({ queue: 'payments.retry', state: 'pending' }).count('* as n').then(r => Number(r[0]?.n))
    await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '3'), paymentMethodId: f.card.id, actor: 'autopay', trigger: 'autopay' })
    t.equal(await pending(), 0)
    payments.script = () => ({ status: 'failed', intentId: 'pi_y', failure: { code: 'card_declined', declineCode: 'insufficient_funds', adviceCode: null, message: 'Declined.' }, raw: {} })
    await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '4'), paymentMethodId: f.card.id, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(await pending(), 0)
  })

  await t.test('a retry finds the invoice paid another way and stands down', async t => {
    payments.script = () => ({ status: 'failed', intentId: 'pi_z', failure: { code: 'card_declined', declineCode: 'insufficient_funds', adviceCode: null, message: 'Declined.' }, raw: {} })
    await chargeInvoice(db, payments, { tenantId: f.tenant.id, invoiceId: id(f, '5'), paymentMethodId: f.card.id, actor: 'autopay', trigger: 'autopay' })
    await db('invoices').where({ id: id(f, '5') }).update({ ledger_paid_elsewhere: db.raw('ledger_billed') })
    const charges = payments.charged.length
    await dueNow('payments.retry')
    await worker.runOnce()
    t.equal(payments.charged.length, charges, 'no charge for a paid invoice')
  })
})
