import t from 'tap'
import pino from 'pino'
import { testDb } from '../helpers/db.js'
import { makeCustomer, makeTenant } from '../helpers/fixtures.js'
import { FakeAccounting } from '../helpers/fake-accounting.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { getPostingBySource } from '../../src/db/accounting-postings.js'
import { recordOutcome } from '../../src/services/charge.js'
import { postingJobHandlers } from '../../src/jobs/posting-jobs.js'
import { Worker } from '../../src/jobs/worker.js'

t.test('a succeeded charge queues qbo.post-payment in the same transaction, once; the job posts it', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const customer = await makeCustomer(db, tenant, 'Acme Dental')
  await db('accounting_connections').insert({
    tenant_id: tenant.id, system: 'quickbooks', realm_id: '1',
    // Nested as the connection service's saveAccountingSettings stores them.
    settings: JSON.stringify({ accounting: { undepositedFundsAccountId: '4', bankAccountId: '35', feesAccountId: '8', receivableAccountId: '84', cardPaymentMethodId: '4', docNumberPrefix: 'PSA-' } })
  })
  const method = await savePaymentMethod(db, tenant.id, { customerId: customer.id, processorCustomerRef: 'cus_1', processorMethodRef: 'pm_1', type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: true })
  const [inv] = await db('invoices').insert({
    tenant_id: tenant.id, customer_id: customer.id, psa_system: 'connectwise', psa_invoice_id: 'cw-1', number: '1001', kind: 'standard', currency: 'USD',
    issued_on: '2026-11-01', total: 12_000, psa_balance: 12_000, status: 'open', psa_updated_at: new Date()
  }).returning('id') as Array<{ id: string }>
  const [att] = await db('payment_attempts').insert({
    tenant_id: tenant.id, invoice_id: inv?.id, customer_id: customer.id, payment_method_id: method.id, amount: 12_000, currency: 'USD',
    status: 'processing', trigger: 'charge_card', actor: 'member:test'
  }).returning('id') as Array<{ id: string }>
  const attemptId = att?.id as string
  const outcome = { status: 'succeeded' as const, intentId: 'pi_777', chargeId: 'ch_777', fee: { amount: 378, currency: 'USD' as const }, raw: {} }
  t.equal((await recordOutcome(db, tenant.id, attemptId, outcome)).outcome, 'succeeded')
  await recordOutcome(db, tenant.id, attemptId, outcome)
  const jobs = await db('jobs').where({ tenant_id: tenant.id, queue: 'qbo.post-payment' })
  t.equal(jobs.length, 1, 'one job, however often the outcome arrives')
  t.same(jobs[0]?.payload, { attemptId })
  t.equal(jobs[0]?.dedupe_key, `qbo-payment:${attemptId}`)

  const qbo = new FakeAccounting()
  const c = qbo.addCustomer({ displayName: 'Acme Dental' })
  const q = qbo.addInvoice({ customerId: c.id, docNumber: 'PSA-1001', total: 12_000 })
  const worker = new Worker({ db, handlers: postingJobHandlers(async () => qbo), log: pino({ level: 'silent' }), concurrency: 1 })
  await worker.runOnce()
  const p = [...qbo.payments.values()][0]
  t.equal(p?.reference, 'pi_777', 'PaymentRefNum is the Stripe intent')
  t.same(p?.applications.map(a => a.invoiceId), [q.id], 'found by DocNumber with the prefix')
  t.equal((await getPostingBySource(db, tenant.id, 'payment', attemptId))?.externalId, p?.id)
  t.equal((await db('jobs').where({ tenant_id: tenant.id, queue: 'qbo.post-payment' }).first('state')).state, 'done')
})

t.test('not connected: the job ends quietly and nothing is posted (syncNow picks it up later)', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const worker = new Worker({ db, handlers: postingJobHandlers(async () => null), log: pino({ level: 'silent' }), concurrency: 1 })
  await db('jobs').insert({ tenant_id: tenant.id, queue: 'qbo.post-payment', payload: JSON.stringify({ attemptId: '00000000-0000-4000-8000-000000000000' }), dedupe_key: 'x' })
  await worker.runOnce()
  t.equal((await db('jobs').where({ tenant_id: tenant.id }).first('state')).state, 'done')
})
