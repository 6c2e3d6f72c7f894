import t from 'tap'
import pino from 'pino'
import Fastify from 'fastify'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { achCustomer, start } from '../helpers/stripe-harness.js'
import { buildApp } from '../../src/app.js'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, createConnectWiseStore } from '../../src/sandbox/connectwise/index.js'
import { STRIPE_SANDBOX_API_KEY } from '../../src/sandbox/stripe/index.js'
import { createStripeClient } from '../../src/adapters/stripe/client.js'
import { createStripePayments } from '../../src/adapters/stripe/payments.js'
import { connectConnectWise } from '../../src/services/psa-connections.js'
import { putSecret } from '../../src/db/secrets.js'
import { savePaymentMethod, listAttempts } from '../../src/db/payments.js'
import { customerBalance, accountBalance } from '../../src/db/ledger.js'
import { psaOpenBalances } from '../../src/db/invoices.js'
import { syncInvoices } from '../../src/services/sync.js'
import { chargeInvoice } from '../../src/services/charge.js'
import { refundPayment } from '../../src/services/refunds.js'
import { Worker } from '../../src/jobs/worker.js'
import { paymentJobHandlers } from '../../src/jobs/payment-jobs.js'

t.test('returns and disputes after success', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  const app = await buildApp(testConfig(), { db, keyring })
  const settle = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const cwStore = createConnectWiseStore({ seed: 9, companies: 6, invoices: 30 })
  const cw = Fastify()
  await cw.register(connectwiseSandbox, { prefix: '/cw', store: cwStore, credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
  const cwBase = await cw.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await cw.close() })

  const tenant = await makeTenant(db, 'Dispute MSP')
  const secret = 'whsec_disputes'
  await connectConnectWise(db, keyring, tenant.id, { site: `${cwBase}/cw`, ...CONNECTWISE_SANDBOX_CREDENTIALS })
  await putSecret(db, keyring, tenant.id, 'stripe.secret_key', STRIPE_SANDBOX_API_KEY)
  await putSecret(db, keyring, tenant.id, 'stripe.webhook_secret', secret)
  const { store, port, stripe } = await start(t, {}, { webhook: { url: `${settle}/webhooks/stripe/${tenant.slug}`, secret }, events: { duplicates: 1, shuffle: true } })
  const payments = createStripePayments(createStripeClient({ secretKey: STRIPE_SANDBOX_API_KEY, baseUrl: `http://127.0.0.1:${port}`, maxNetworkRetries: 0 }))
  // The app's own handlers (PSA push-back and reversal), with payments pointed at the stand-in.
  const worker = new Worker({ db, handlers: { ...app.jobHandlers, ...paymentJobHandlers(async () => payments) }, log: pino({ level: 'silent' }), concurrency: 1 })
  const drain = async (): Promise<void> => { await store.flushEvents(); while (await worker.runOnce() > 0) { /* drain */ } }
  const psa = await app.psaFor(db, tenant.id, 'connectwise')
  t.equal((await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })).status, 'ok')
  const tiesOut = async (): Promise<number> => {
    const open = await psaOpenBalances(db, tenant.id)
    const rows = await db('customers').where({ tenant_id: tenant.id }).pluck('id') as string[]
    let off = 0
    for (const id of rows) if (((await customerBalance(db, tenant.id, id)).total[0]?.amount ?? 0) !== (open.get(id) ?? 0)) off++
    return off
  }
  const pick = async (): Promise<{ id: string, customer_id: string, psa_invoice_id: string }> =>
    await db('invoices').where({ tenant_id: tenant.id, status: 'open', voided: false }).where('total', '>', 0).whereNotIn('id', db('payment_attempts').select('invoice_id')).orderBy('number').first()
  const save = async (customerId: string, ref: { customer: string, pm: string }, type: 'card' | 'ach'): Promise<string> =>
    (await savePaymentMethod(db, tenant.id, { customerId, processorCustomerRef: ref.customer, processorMethodRef: ref.pm, type, brand: null, last4: '1234', expMonth: null, expYear: null, funding: null, isDefault: true })).id
  /** One of Stripe's test cards, attached at the stand-in and stored for the client. */
  const cardOnFile = async (customerId: string, testCard: string): Promise<string> => {
    const customer = await stripe.customers.create({ email: 'ap@example.com' })
    const pm = await stripe.paymentMethods.attach(testCard, { customer: customer.id })
    return await save(customerId, { customer: customer.id, pm: pm.id }, 'card')
  }

  await t.test('an ACH return after success reopens the invoice in Settle and in ConnectWise', async t => {
    const invoice = await pick()
    const method = await save(invoice.customer_id, await achCustomer(stripe, 'pm_usBankAccount_lateReturn'), 'ach')
    t.equal((await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoice.id, paymentMethodId: method, actor: 'autopay', trigger: 'autopay' })).outcome, 'processing')
    store.settleAch()
    await drain()
    t.equal((await db('invoices').where({ id: invoice.id }).first()).status, 'paid')
    t.equal((await psa.getInvoice({ externalId: invoice.psa_invoice_id })).balance?.amount, 0, 'paid pushed to ConnectWise')

    store.runAll() // the bank returns the debit days later: a dispute, funds withdrawn, lost
    await drain()
    const after = await db('invoices').where({ id: invoice.id }).first()
    t.equal(after.status, 'open', 'reopened')
    t.equal(Number(after.paid_via_settle), 0)
    const [attempt] = await listAttempts(db, tenant.id, invoice.id)
    t.equal(attempt?.status, 'disputed')
    t.same(await accountBalance(db, tenant.id, 'disputes', 'USD'), { amount: 0, currency: 'USD' }, 'the disputes account clears when the dispute is lost')
    const cwInvoice = await psa.getInvoice({ externalId: invoice.psa_invoice_id })
    t.equal(cwInvoice.balance?.amount, cwInvoice.total.amount, 'the payment was taken back out of ConnectWise')
    t.ok((await db('psa_payment_pushes').where({ reference: attempt?.id }).first()).reversed_at, 'the push is marked reversed')
    await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    t.equal(await db('journal_entries').where({ tenant_id: tenant.id, kind: 'invoice.paid_elsewhere' }).whereRaw("source->>'invoice' = ?", [invoice.psa_invoice_id]).count('* as n').then(r => Number(r[0]?.n)), 0, 'no phantom payment from the PSA')
    t.equal(await tiesOut(), 0, 'receivables tie out to ConnectWise')
  })

  await t.test('a card dispute: disputed while open, paid again when won', async t => {
    const invoice = await pick()
    const method = await cardOnFile(invoice.customer_id, 'pm_card_createDispute')
    t.equal((await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoice.id, paymentMethodId: method, actor: 'member:jsmith', trigger: 'charge_card' })).outcome, 'succeeded')
    await drain()
    store.advance(0)
    await drain()
    t.equal((await db('invoices').where({ id: invoice.id }).first()).status, 'disputed')
    const dispute = [...store.disputes.values()].at(-1) as { id: string }
    store.closeDispute(dispute.id, 'won')
    await drain()
    t.equal((await db('invoices').where({ id: invoice.id }).first()).status, 'paid')
    const [attempt] = await listAttempts(db, tenant.id, invoice.id)
    t.equal(attempt?.status, 'succeeded')
    t.same(await accountBalance(db, tenant.id, 'disputes', 'USD'), { amount: 0, currency: 'USD' })
    t.equal(await db('jobs').where({ tenant_id: tenant.id }).whereNot({ state: 'done' }).count('* as n').then(r => Number(r[0]?.n)), 0, 'every job done: none failing, none dead')
    t.equal(await db('journal_entries').where({ tenant_id: tenant.id }).where('kind', 'like', 'dispute%').count('* as n').then(r => Number(r[0]?.n)), 4, 'withdrawn + lost, withdrawn + won: each once, though every event came twice')
  })

  await t.test('a card dispute lost: the client owes it again and ConnectWise shows it open', async t => {
    const invoice = await pick()
    const method = await cardOnFile(invoice.customer_id, 'pm_card_createDispute')
    const charge = await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoice.id, paymentMethodId: method, actor: 'member:jsmith', trigger: 'charge_card' })
    t.equal(charge.outcome, 'succeeded')
    await drain()
    t.equal((await psa.getInvoice({ externalId: invoice.psa_invoice_id })).balance?.amount, 0, 'paid in ConnectWise first')
    store.advance(0)
    await drain()
    const dispute = [...store.disputes.values()].at(-1) as { id: string }
    store.closeDispute(dispute.id, 'lost')
    await drain()
    const after = await db('invoices').where({ id: invoice.id }).first()
    t.equal(after.status, 'open')
    t.equal(Number(after.paid_via_settle), 0)
    const cwInvoice = await psa.getInvoice({ externalId: invoice.psa_invoice_id })
    t.equal(cwInvoice.balance?.amount, cwInvoice.total.amount, 'the payment was taken back out of ConnectWise')
    await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    t.equal(await tiesOut(), 0, 'receivables still tie out')
    t.same(await accountBalance(db, tenant.id, 'disputes', 'USD'), { amount: 0, currency: 'USD' })
  })

  await t.test('refunds: partial, then the rest; never more than was collected', async t => {
    const invoice = await pick()
    const method = await cardOnFile(invoice.customer_id, 'pm_card_visa')
    const charge = await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoice.id, paymentMethodId: method, actor: 'member:jsmith', trigger: 'charge_card' })
    await drain()
    const total = charge.attempt.amount.amount
    const part = Math.floor(total * 0.4)
    const refunds = async (): Promise<number> => await db('payment_refunds').where({ tenant_id: tenant.id }).count('* as n').then(r => Number(r[0]?.n))

    t.match(await refundPayment(db, payments, { tenantId: tenant.id, attemptId: charge.attempt.id, amount: part, reason: 'Billed twice for the same license', actor: 'member:finance.lead' }), { outcome: 'succeeded' })
    await drain()
    const partial = await db('invoices').where({ id: invoice.id }).first()
    t.equal(partial.status, 'partially_paid')
    t.equal(Number(partial.paid_via_settle), total - part)
    t.equal((await psa.getInvoice({ externalId: invoice.psa_invoice_id })).balance?.amount, part, 'ConnectWise re-stated: the remainder is paid, the refund is open')
    const before = await refunds()
    await t.rejects(refundPayment(db, payments, { tenantId: tenant.id, attemptId: charge.attempt.id, amount: total, reason: 'Too much', actor: 'member:finance.lead' }), { code: 'REFUND_NOT_ALLOWED' })
    t.equal(await refunds(), before, 'a refund above what is left writes nothing')
    await t.rejects(refundPayment(db, payments, { tenantId: tenant.id, attemptId: charge.attempt.id, reason: ' ', actor: 'member:finance.lead' }), { code: 'VALIDATION_FAILED' })

    t.match(await refundPayment(db, payments, { tenantId: tenant.id, attemptId: charge.attempt.id, reason: 'Contract cancelled', actor: 'member:finance.lead' }), { outcome: 'succeeded' })
    await drain()
    const [attempt] = await listAttempts(db, tenant.id, invoice.id)
    t.equal(attempt?.status, 'refunded')
    t.equal((await db('invoices').where({ id: invoice.id }).first()).status, 'open')
    const cwInvoice = await psa.getInvoice({ externalId: invoice.psa_invoice_id })
    t.equal(cwInvoice.balance?.amount, cwInvoice.total.amount, 'nothing left paid in ConnectWise')
    const refunded = [...store.refunds.values()].filter(r => (r as { paymentIntent?: string }).paymentIntent === charge.attempt.processorIntentRef)
    t.equal(refunded.reduce((s, r) => s + (r as { amount: number }).amount, 0), total, 'Stripe refunded exactly what was collected')
    await t.rejects(refundPayment(db, payments, { tenantId: tenant.id, attemptId: charge.attempt.id, reason: 'Again', actor: 'member:finance.lead' }), { code: 'REFUND_NOT_ALLOWED' })
    await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    t.equal(await tiesOut(), 0, 'receivables tie out to ConnectWise')
    t.equal(await db('jobs').where({ tenant_id: tenant.id }).whereNot({ state: 'done' }).count('* as n').then(r => Number(r[0]?.n)), 0, 'every job done')
  })
})
