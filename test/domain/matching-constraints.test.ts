import t from 'tap'
import { onPostgres, testDb } from '../helpers/db.js'
import { createTenant } from '../../src/db/tenants.js'
import { upsertCustomer } from '../../src/db/customers.js'

/** The database, not only the code, refuses to apply money twice or over-apply an invoice. */
t.test(`payment_applications constraints (${onPostgres ? 'PostgreSQL' : 'PGlite'})`, async t => {
  const db = await testDb(t)
  const tenant = await createTenant(db, { slug: 'match', name: 'Match MSP' })
  const customer = await upsertCustomer(db, tenant.id, { name: 'Harbor Dental', psaSystem: 'connectwise', psaCompanyId: '1' })
  const [invoice] = await db('invoices').insert({
    tenant_id: tenant.id, customer_id: customer.id, psa_system: 'connectwise', psa_invoice_id: '1042', number: '1042', kind: 'standard', currency: 'USD',
    issued_on: '2026-11-01', total: 50_000, psa_balance: 50_000, status: 'open', psa_updated_at: new Date(), ledger_billed: 50_000, paid_via_settle: 10_000
  }).returning('id') as Array<{ id: string }>
  const payment = async (ref: string, amount: number): Promise<string> => {
    const [row] = await db('outside_payments').insert({ tenant_id: tenant.id, source: 'bank_csv', source_ref: ref, amount, currency: 'USD', received_on: '2026-11-10', payer: 'Harbor Dental' }).returning('id') as Array<{ id: string }>
    return row!.id
  }
  const apply = (paymentId: string, amount: number, extra: Record<string, unknown> = {}): Promise<unknown> =>
    db('payment_applications').insert({ tenant_id: tenant.id, outside_payment_id: paymentId, invoice_id: invoice!.id, amount, currency: 'USD', kind: 'manual', actor: 'test', ...extra })

  const p1 = await payment('line-1', 30_000)
  await t.rejects(payment('line-1', 30_000), /unique|duplicate/i, 'a re-upload of the same line adds nothing')
  await t.rejects(payment('line-0', 0), /check|amount_positive/i)

  await apply(p1, 20_000)
  await t.rejects(apply(p1, 10_001), /over-applied/, 'the same money cannot be applied twice')
  await apply(p1, 10_000)
  const p2 = await payment('line-2', 30_000)
  // Invoice: billed 50,000, 10,000 paid via Settle, 30,000 applied from p1 → 10,000 left.
  await t.rejects(apply(p2, 10_001), /over-applied/, 'an invoice cannot be over-applied')
  await apply(p2, 10_000)
  await t.rejects(apply(p2, 1), /over-applied/)
  await t.rejects(apply(p2, 1, { currency: 'CAD' }), /currency/)
  await t.rejects(apply(p2, 0), /check|amount_positive/)
  await t.rejects(db('payment_applications').insert({ tenant_id: tenant.id, invoice_id: invoice!.id, amount: 1, currency: 'USD', kind: 'manual', actor: 'test' }), /one_source|check/, 'exactly one of payment and attempt')
  await t.rejects(db('payment_applications').where({ outside_payment_id: p2 }).update({ amount: 10_001 }), /over-applied/, 'updates are checked too')
  const [sum] = await db('payment_applications').sum('amount as s') as Array<{ s: string }>
  t.equal(Number(sum!.s), 40_000, 'refused inserts changed nothing')
})

t.test(`an outside payment that reconciliation booked into ledger_paid_elsewhere counts once (${onPostgres ? 'PostgreSQL' : 'PGlite'})`, async t => {
  const db = await testDb(t)
  const tenant = await createTenant(db, { slug: 'match-once', name: 'Match MSP' })
  const customer = await upsertCustomer(db, tenant.id, { name: 'Harbor Dental', psaSystem: 'connectwise', psaCompanyId: '1' })
  const [invoice] = await db('invoices').insert({
    tenant_id: tenant.id, customer_id: customer.id, psa_system: 'connectwise', psa_invoice_id: '7', number: '7', kind: 'standard', currency: 'USD',
    issued_on: '2026-11-01', total: 100_000, psa_balance: 100_000, status: 'open', psa_updated_at: new Date(), ledger_billed: 100_000
  }).returning('id') as Array<{ id: string }>
  const pay = async (ref: string, amount: number): Promise<string> => {
    const [row] = await db('outside_payments').insert({ tenant_id: tenant.id, source: 'bank_csv', source_ref: ref, amount, currency: 'USD', received_on: '2026-11-10', payer: 'Harbor Dental' }).returning('id') as Array<{ id: string }>
    return row!.id
  }
  const apply = async (paymentId: string, amount: number): Promise<void> => {
    await db('payment_applications').insert({ tenant_id: tenant.id, outside_payment_id: paymentId, invoice_id: invoice!.id, amount, currency: 'USD', kind: 'auto', actor: 'test' })
  }
  // As the reconcile service does: apply 60,000, then book it into ledger_paid_elsewhere.
  await apply(await pay('a', 60_000), 60_000)
  await db('invoices').where({ id: invoice!.id }).update({ ledger_paid_elsewhere: 60_000 })
  const second = await pay('b', 50_000)
  await t.rejects(apply(second, 40_001), /over-applied/, 'only 40,000 is left')
  await apply(second, 40_000)
  t.pass('the 60,000 counted once: 40,000 more fits')
  // A 5,000 check the PSA reported on its own (not an application) still counts: billed 110,000 - 100,000 applied - 5,000 = 5,000 left.
  await db('invoices').where({ id: invoice!.id }).update({ ledger_paid_elsewhere: 105_000, ledger_billed: 110_000 })
  const third = await pay('c', 20_000)
  await t.rejects(apply(third, 5_001), /over-applied/, 'PSA-reported money beyond the applications is counted too')
  await apply(third, 5_000)
})
