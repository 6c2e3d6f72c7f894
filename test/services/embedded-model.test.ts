import t from 'tap'
import { testDb } from '../helpers/db.js'
import { makeCustomer, makeTenant } from '../helpers/fixtures.js'
import { setTenantTimeZone } from '../../src/db/tenants.js'
import { localDate } from '../../src/domain/calendar.js'
import { companyModel, invoiceModel } from '../../src/services/embedded.js'

t.test('the invoice pod model: one tenant\'s invoice, active methods default first, newest attempts, pending retries', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db, 'Pod MSP')
  const other = await makeTenant(db, 'Other MSP')
  await setTenantTimeZone(db, tenant.id, 'America/Chicago')
  const customer = await makeCustomer(db, tenant, 'Acme Dental')
  const otherCustomer = await makeCustomer(db, other, 'Not Yours LLC')
  const method = async (ref: string, over: Record<string, unknown>): Promise<string> => {
    const [row] = await db('payment_methods').insert({ tenant_id: tenant.id, customer_id: customer.id, processor_customer_ref: 'cus_1', processor_method_ref: ref, type: 'card', brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2030, ...over }).returning('id') as Array<{ id: string }>
    return row!.id
  }
  const spare = await method('pm_spare', { is_default: false, last4: '1111', created_at: new Date('2026-10-01T00:00:00Z') })
  const main = await method('pm_main', { is_default: true, created_at: new Date('2026-09-01T00:00:00Z') })
  await method('pm_gone', { is_default: false, status: 'detached', last4: '9999' })
  const invoice = async (tenantId: string, customerId: string, psaId: string, dueOn: string): Promise<string> => {
    const [row] = await db('invoices').insert({
      tenant_id: tenantId, customer_id: customerId, psa_system: 'connectwise', psa_invoice_id: psaId, number: `INV-${psaId}`, kind: 'standard', currency: 'USD',
      issued_on: '2026-10-01', due_on: dueOn, total: 120_000, psa_balance: 120_000, status: 'open', psa_updated_at: new Date(), ledger_billed: 120_000, paid_via_settle: 20_000
    }).returning('id') as Array<{ id: string }>
    return row!.id
  }
  const dueOn = '2026-11-01'
  const invoiceId = await invoice(tenant.id, customer.id, '501', dueOn)
  const siblingId = await invoice(tenant.id, customer.id, '502', dueOn)
  await invoice(other.id, otherCustomer.id, '777', dueOn)
  const attempt = async (invoiceOf: string, minute: number, status: string): Promise<string> => {
    const [row] = await db('payment_attempts').insert({
      tenant_id: tenant.id, invoice_id: invoiceOf, customer_id: customer.id, payment_method_id: main, amount: 1_000 + minute, currency: 'USD', status, trigger: 'charge_card', actor: 'member:cw:jo',
      failure_code: status === 'failed' ? 'card_declined' : null, decline_code: status === 'failed' ? 'insufficient_funds' : null, created_at: new Date(Date.UTC(2026, 10, 2, 0, minute))
    }).returning('id') as Array<{ id: string }>
    return row!.id
  }
  const paid = await attempt(invoiceId, 1, 'succeeded')
  const declined = await attempt(invoiceId, 2, 'failed')
  const siblingDeclined = await attempt(siblingId, 3, 'failed')
  const retryAt = new Date('2026-11-05T15:00:00Z')
  await db('jobs').insert([
    { tenant_id: tenant.id, queue: 'payments.retry', payload: { attemptId: declined }, run_at: retryAt, dedupe_key: `retry:${declined}`, state: 'pending' },
    { tenant_id: tenant.id, queue: 'payments.retry', payload: { attemptId: paid }, run_at: retryAt, dedupe_key: `retry:${paid}`, state: 'done' },
    { tenant_id: tenant.id, queue: 'payments.retry', payload: { attemptId: siblingDeclined }, run_at: retryAt, dedupe_key: `retry:${siblingDeclined}`, state: 'pending' }
  ])

  const model = await invoiceModel(db, tenant.id, 'connectwise', '501') as any
  t.equal(model.invoice.customer, 'Acme Dental')
  t.same(model.balance, { amount: 100_000, currency: 'USD' }, 'billed less what Settle collected')
  t.same(model.paid, { amount: 20_000, currency: 'USD' })
  t.equal(model.status, 'overdue', 'an open invoice whose latest attempt declined is still open (here overdue): the decline is in its history')
  t.equal(model.statusLabel, 'Overdue')
  t.equal(model.attempts[0].actor, 'jo (ConnectWise)', 'who charged, in words, not cw:jo')
  t.same(model.methods.map((m: any) => m.id), [main, spare], 'active methods only, the default first')
  t.same(model.attempts.map((a: any) => a.id), [declined, paid], 'this invoice\'s attempts, newest first')
  t.ok(model.attempts[0].when instanceof Date, 'attempt times are Dates for the view')
  t.match(model.attempts[0].explanation, /insufficient|funds/i, 'a decline is explained in plain words')
  t.same(model.retries.map((r: Date) => r.toISOString()), [retryAt.toISOString()], 'only the pending retry of this invoice\'s attempt')
  const today = localDate(new Date(), 'America/Chicago')
  t.equal(model.overdueDays, Math.round((Date.parse(today) - Date.parse(dueOn)) / 86_400_000), 'days overdue counted in the tenant\'s time zone')
  t.equal(model.chargeable, true)

  const limited = await invoiceModel(db, tenant.id, 'connectwise', '501', 1) as any
  t.same(limited.attempts.map((a: any) => a.id), [declined], 'the history limit keeps the newest')

  await t.rejects(invoiceModel(db, tenant.id, 'connectwise', '777'), { code: 'INVOICE_NOT_FOUND' }, 'another tenant\'s invoice is not found')
  await t.rejects(invoiceModel(db, tenant.id, 'autotask', '501'), { code: 'INVOICE_NOT_FOUND' }, 'the same id in the other PSA is another invoice')

  const psaCompany = (await db('customers').where({ tenant_id: tenant.id, id: customer.id }).first('psa_company_id') as { psa_company_id: string }).psa_company_id
  const company = await companyModel(db, tenant.id, 'connectwise', psaCompany) as any
  t.same(company.attempts.map((a: any) => a.id), [siblingDeclined, declined, paid], 'the company tab: the client\'s attempts on every invoice, newest first')
  t.equal(company.failures, 2)
  t.same(company.methods.map((m: any) => m.id), [main, spare])
})
