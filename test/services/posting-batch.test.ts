import t from 'tap'
import type { Knex } from 'knex'
import { testDb } from '../helpers/db.js'
import { makeCustomer, makeTenant } from '../helpers/fixtures.js'
import { FakeAccounting } from '../helpers/fake-accounting.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { listExceptions } from '../../src/db/reconciliation-exceptions.js'
import { syncNow } from '../../src/services/posting.js'

async function seed (db: Knex): Promise<{ tenantId: string, attemptIds: string[], customerId: string }> {
  const tenant = await makeTenant(db)
  const customer = await makeCustomer(db, tenant, 'Acme Dental')
  await db('accounting_connections').insert({ tenant_id: tenant.id, system: 'quickbooks', realm_id: '1', settings: JSON.stringify({ undepositedFundsAccountId: '4', bankAccountId: '35', feesAccountId: '8' }) })
  const method = await savePaymentMethod(db, tenant.id, { customerId: customer.id, processorCustomerRef: 'cus_1', processorMethodRef: 'pm_1', type: 'ach', brand: null, last4: '6789', expMonth: null, expYear: null, funding: null, isDefault: true })
  const [inv] = await db('invoices').insert({
    tenant_id: tenant.id, customer_id: customer.id, psa_system: 'connectwise', psa_invoice_id: 'cw-1', number: '1001', kind: 'standard', currency: 'USD',
    issued_on: '2026-11-01', total: 12_000, psa_balance: 12_000, status: 'open', psa_updated_at: new Date()
  }).returning('id') as Array<{ id: string }>
  const attemptIds: string[] = []
  // Two installments on one invoice, collected before the sync ran.
  for (const amount of [6_000, 6_000]) {
    const [a] = await db('payment_attempts').insert({
      tenant_id: tenant.id, invoice_id: inv?.id, customer_id: customer.id, payment_method_id: method.id, amount, currency: 'USD',
      status: 'succeeded', trigger: 'installment', actor: 'system', processor_intent_ref: `pi_${attemptIds.length}`, settled_at: new Date()
    }).returning('id') as Array<{ id: string }>
    attemptIds.push(a?.id as string)
  }
  return { tenantId: tenant.id, attemptIds, customerId: customer.id }
}

t.test('two installments on one invoice in one sync: applied up to the QBO balance, the rest unapplied with an exception', async t => {
  const db = await testDb(t)
  const { tenantId, customerId } = await seed(db)
  const qbo = new FakeAccounting()
  const c = qbo.addCustomer({ displayName: 'Acme Dental' })
  const q = qbo.addInvoice({ customerId: c.id, docNumber: '1001', total: 12_000, balance: 10_000 })
  const out = await syncNow(db, qbo, tenantId, { customerId })
  t.equal(out.posted.length, 2)
  t.same(out.failed, [])
  const pays = [...qbo.payments.values()]
  t.same(pays.map(p => p.applications.reduce((s, a) => s + a.amount.amount, 0)), [6_000, 4_000])
  t.same(pays.map(p => p.unapplied.amount), [0, 2_000])
  t.equal(qbo.invoices.get(q.id)?.balance.amount, 0)
  t.equal(out.calls, 3, 'one customer read, one invoice read, one batch')
  t.equal((await listExceptions(db, tenantId)).filter(e => e.kind === 'tieout_difference').length, 1)
})

t.test('a batch item QBO refused is derived again on the next run, from the books as they are then', async t => {
  const db = await testDb(t)
  const { tenantId } = await seed(db)
  const qbo = new FakeAccounting()
  const c = qbo.addCustomer({ displayName: 'Acme Dental' })
  qbo.addInvoice({ customerId: c.id, docNumber: '1001', total: 12_000 })
  let refused = 0
  qbo.fail = (method) => method === 'createPayment' && refused++ === 0 ? new Error('Stale Object Error') : undefined
  const first = await syncNow(db, qbo, tenantId)
  t.equal(first.posted.length, 1)
  t.equal(first.failed.length, 1)
  t.match(first.failed[0]?.fixHint, /retry/)
  const second = await syncNow(db, qbo, tenantId)
  t.equal(second.posted.length, 1)
  t.equal(qbo.payments.size, 2)
})
