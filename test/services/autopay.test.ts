import t from 'tap'
import { setTenantTimeZone } from '../../src/db/tenants.js'
import pino from 'pino'
import { testDb } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakePayments } from '../helpers/fake-payments.js'
import { syncInvoices } from '../../src/services/sync.js'
import { decideApproval, runAutopay } from '../../src/services/autopay.js'
import { enrolAutopay, recordConsent, revokeAutopay, setTenantRule } from '../../src/db/autopay.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { DEFAULT_AUTOPAY_RULE } from '../../src/domain/autopay.js'
import { Worker } from '../../src/jobs/worker.js'
import { paymentJobHandlers, scheduleAutopayRuns } from '../../src/jobs/payment-jobs.js'

const AUTOPAY_TEXT = 'I authorise Brightline Managed IT to charge my saved payment method for each invoice on its due date until I cancel.'

t.test('auto-pay', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db, 'Autopay MSP')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.addCompany('2', 'Summit Logistics')
  psa.put('1', { company: '1', total: 300_000 })
  psa.put('2', { company: '1', total: 45_000 })
  psa.put('3', { company: '2', total: 99_000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoices = await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1', '2', '3'])
  const harbor = invoices.get('1')!.customerId
  const common = { customerId: harbor, processorCustomerRef: 'cus_h', brand: null, expMonth: null, expYear: null, funding: null }
  const card = await savePaymentMethod(db, tenant.id, { ...common, processorMethodRef: 'pm_card', type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, isDefault: true })
  const bank = await savePaymentMethod(db, tenant.id, { ...common, processorMethodRef: 'pm_bank', type: 'ach', last4: '6789', isDefault: false })
  const payments = new FakePayments()
  const worker = new Worker({ db, handlers: paymentJobHandlers(async () => payments), log: pino({ level: 'silent' }), concurrency: 1 })
  const consent = { customerId: harbor, acceptedByName: 'Dana Ortiz', acceptedByEmail: 'dana@harbor.example', ip: '203.0.113.7', userAgent: 'Mozilla/5.0', textVersion: '2026-11' }

  await t.test('no enrolment without the client\'s recorded authorisation', async t => {
    t.same(await runAutopay(db, tenant.id, '2026-10-31'), { queued: 0, awaitingApproval: 0, waiting: 0, skipped: [] })
    await t.rejects(enrolAutopay(db, tenant.id, harbor), { code: 'VALIDATION_FAILED', message: /authorisation/ })
    await t.rejects(recordConsent(db, tenant.id, { ...consent, paymentMethodId: null, kind: 'autopay', text: AUTOPAY_TEXT, ip: '' }), { code: 'VALIDATION_FAILED' })
    await recordConsent(db, tenant.id, { ...consent, paymentMethodId: null, kind: 'autopay', text: AUTOPAY_TEXT })
    await enrolAutopay(db, tenant.id, harbor)
    const stored = await db('payment_consents').where({ tenant_id: tenant.id }).first()
    t.match(stored, { kind: 'autopay', text: AUTOPAY_TEXT, accepted_by_name: 'Dana Ortiz', ip: '203.0.113.7', user_agent: 'Mozilla/5.0', revoked_at: null })
  })

  await t.test('on the due date, the card is charged (no ACH mandate yet), once per invoice and day', async t => {
    await setTenantRule(db, tenant.id, { ...DEFAULT_AUTOPAY_RULE, approvalAbove: null })
    t.match(await runAutopay(db, tenant.id, '2026-10-30'), { queued: 0, waiting: 2 }, 'not due yet')
    t.match(await runAutopay(db, tenant.id, '2026-10-31'), { queued: 2 })
    t.match(await runAutopay(db, tenant.id, '2026-10-31'), { queued: 0 }, 'a second run the same day queues nothing')
    t.equal(await scheduleAutopayRuns(db, new Date('2026-10-31T12:00:00Z')), 1)
    // In Los Angeles it is still the 30th at 03:00 UTC on the 31st: that tenant's run is for its own date.
    await setTenantTimeZone(db, tenant.id, 'America/Los_Angeles')
    await scheduleAutopayRuns(db, new Date('2026-10-31T03:00:00Z'))
    t.ok(await db('jobs').where({ tenant_id: tenant.id, queue: 'autopay.run', dedupe_key: 'autopay.run:2026-10-30' }).first(), 'queued for the tenant\'s own today')
    await t.rejects(setTenantTimeZone(db, tenant.id, 'Pacific Time'), { code: 'VALIDATION_FAILED' })
    await setTenantTimeZone(db, tenant.id, 'UTC')
    while (await worker.runOnce() > 0) { /* drain */ }
    t.equal(payments.charged.length, 2, 'two invoices, two charges')
    t.ok(payments.charged.every(c => c.methodRef === 'pm_card'))
    t.equal((await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1'])).get('1')?.status, 'paid')
    t.equal((await invoicesByPsaIds(db, tenant.id, 'connectwise', ['3'])).get('3')?.status, 'open', 'a client not enrolled is never charged')
  })

  await t.test('ACH is preferred once its mandate is on record; big amounts wait for approval', async t => {
    psa.put('4', { company: '1', total: 80_000 })
    psa.put('5', { company: '1', total: 2_500_000 })
    await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    await recordConsent(db, tenant.id, { ...consent, paymentMethodId: bank.id, kind: 'ach_mandate', text: 'I authorise debits from account ending 6789 …' })
    await setTenantRule(db, tenant.id, { ...DEFAULT_AUTOPAY_RULE, approvalAbove: 1_000_000 })
    const summary = await runAutopay(db, tenant.id, '2026-11-01')
    t.match(summary, { queued: 1, awaitingApproval: 1 })
    const approval = await db('autopay_approvals').where({ tenant_id: tenant.id }).first()
    t.match(approval, { amount: 2_500_000, status: 'pending', payment_method_id: bank.id })
    while (await worker.runOnce() > 0) { /* drain */ }
    t.equal(payments.charged.at(-1)?.methodRef, 'pm_bank', 'ACH first')
    t.notOk(payments.charged.some(c => c.amount.amount === 2_500_000), 'the large invoice was not charged without approval')
    t.equal(card.type, 'card')
  })

  await t.test('a person approves or declines a held charge; no new request every day', async t => {
    t.match(await runAutopay(db, tenant.id, '2026-11-02'), { awaitingApproval: 1 })
    t.equal(await db('autopay_approvals').where({ tenant_id: tenant.id }).count('* as n').then(r => Number(r[0]?.n)), 1, 'still one request the next day')
    const approval = await db('autopay_approvals').where({ tenant_id: tenant.id, status: 'pending' }).first()
    await decideApproval(db, tenant.id, approval.id, 'approved', 'member:finance.lead')
    await t.rejects(decideApproval(db, tenant.id, approval.id, 'declined', 'member:other'), { code: 'VALIDATION_FAILED' }, 'decided once')
    const charges = payments.charged.length
    while (await worker.runOnce() > 0) { /* drain */ }
    t.equal(payments.charged.length, charges + 1)
    t.equal(payments.charged.at(-1)?.amount.amount, 2_500_000, 'the approved amount was charged')
    t.match(await db('autopay_approvals').where({ id: approval.id }).first(), { status: 'approved', decided_by: 'member:finance.lead' })

    psa.put('7', { company: '1', total: 3_000_000 })
    await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    t.match(await runAutopay(db, tenant.id, '2026-11-03'), { awaitingApproval: 1 })
    const big = await db('autopay_approvals').where({ tenant_id: tenant.id, status: 'pending' }).first()
    await decideApproval(db, tenant.id, big.id, 'declined', 'member:finance.lead')
    const next = await runAutopay(db, tenant.id, '2026-11-04')
    t.same(next.skipped.map(s => s.reason), ['A person declined auto-pay for this invoice.'], 'a decline stands')
    t.equal(next.awaitingApproval, 0, 'and is not asked again')
    t.equal(await db('jobs').where({ queue: 'autopay.charge', state: 'pending' }).count('* as n').then(r => Number(r[0]?.n)), 0, 'nothing queued for it')
  })

  await t.test('revoking stops auto-pay and keeps the record', async t => {
    psa.put('6', { company: '1', total: 10_000 })
    await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    await revokeAutopay(db, tenant.id, harbor, 'client:dana@harbor.example')
    t.match(await runAutopay(db, tenant.id, '2026-11-05'), { queued: 0 })
    const consents = await db('payment_consents').where({ tenant_id: tenant.id })
    t.equal(consents.length, 2, 'nothing deleted')
    t.ok(consents.every((c: { revoked_at: Date | null, revoked_by: string }) => c.revoked_at !== null && c.revoked_by === 'client:dana@harbor.example'))
  })
})
