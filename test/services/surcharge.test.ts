import t from 'tap'
import type { Knex } from 'knex'
import { testDb } from '../helpers/db.js'
import { countRows, makeTenant } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakePayments } from '../helpers/fake-payments.js'
import { syncInvoices } from '../../src/services/sync.js'
import { chargeInputFor, chargeInvoice, quoteCharge, recordOutcome } from '../../src/services/charge.js'
import { refundPayment } from '../../src/services/refunds.js'
import { recordDispute } from '../../src/services/disputes.js'
import { savePaymentMethod, listAttempts, type PaymentMethod } from '../../src/db/payments.js'
import { accountBalance, customerBalance, trialBalance } from '../../src/db/ledger.js'
import { invoicesByPsaIds, psaOpenBalances, type Invoice } from '../../src/db/invoices.js'
import { setTenantSurcharge, type Tenant } from '../../src/db/tenants.js'
import type { Money } from '../../src/domain/money.js'
import type { PaymentsPort } from '../../src/ports/payments.js'

interface Methods { credit: PaymentMethod, debit: PaymentMethod, prepaid: PaymentMethod, bank: PaymentMethod, blockedState: PaymentMethod, unknownState: PaymentMethod }
interface Fixture { tenant: Tenant, invoices: Map<string, Invoice>, m: Methods }

/** Harbor (Texas) has invoices 1–10; Summit (CT, where the tenant blocks surcharges) 11; Nowhere (no state) 12. */
async function setUp (db: Knex): Promise<Fixture> {
  const tenant = await makeTenant(db, 'Surcharge MSP')
  await setTenantSurcharge(db, tenant.id, { rateBp: 250, blockedStates: ['CT'] })
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.addCompany('2', 'Summit Logistics')
  psa.addCompany('3', 'Nowhere Inc')
  Object.assign(psa.companies.get('1') ?? {}, { state: 'Texas' })
  Object.assign(psa.companies.get('2') ?? {}, { state: 'CT' })
  for (let i = 1; i <= 12; i++) psa.put(String(i), { company: i === 11 ? '2' : i === 12 ? '3' : '1', total: i === 5 ? 123_457 : 100_000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoices = await invoicesByPsaIds(db, tenant.id, 'connectwise', Array.from({ length: 12 }, (_, i) => String(i + 1)))
  const customerOf = (psaId: string): string => invoices.get(psaId)?.customerId as string
  const card = async (psaId: string, ref: string, funding: string | null, type: 'card' | 'ach' = 'card'): Promise<PaymentMethod> =>
    await savePaymentMethod(db, tenant.id, { customerId: customerOf(psaId), processorCustomerRef: `cus_${psaId}`, processorMethodRef: ref, type, brand: type === 'card' ? 'visa' : null, last4: '4242', expMonth: null, expYear: null, funding, isDefault: false })
  return {
    tenant,
    invoices,
    m: {
      credit: await card('1', 'pm_credit', 'credit'),
      debit: await card('1', 'pm_debit', 'debit'),
      prepaid: await card('1', 'pm_prepaid', 'prepaid'),
      bank: await card('1', 'pm_bank', null, 'ach'),
      blockedState: await card('11', 'pm_summit', 'credit'),
      unknownState: await card('12', 'pm_nowhere', 'credit')
    }
  }
}

/** The fake processor, plus refunds (FakePayments leaves those to the Stripe stand-in): each is recorded and succeeds. */
function withRefunds (fake: FakePayments): { port: PaymentsPort, refunds: Array<{ intentId: string, amount: Money }> } {
  const refunds: Array<{ intentId: string, amount: Money }> = []
  const refund: PaymentsPort['refund'] = async input => {
    refunds.push({ intentId: input.intentId, amount: input.amount })
    return { status: 'succeeded', refundId: `re_${refunds.length}`, raw: {} }
  }
  return { port: new Proxy(fake, { get: (target, key, receiver) => key === 'refund' ? refund : Reflect.get(target, key, receiver) }), refunds }
}

async function postingsOf (db: Knex, tenantId: string, idempotencyKey: string): Promise<Array<[string, number]>> {
  const entry = await db('journal_entries').where({ tenant_id: tenantId, idempotency_key: idempotencyKey }).first('id') as { id: string } | undefined
  if (entry === undefined) return []
  const rows = await db('postings').where({ entry_id: entry.id }).orderBy('id') as Array<{ account_code: string, amount: number | string }>
  return rows.map(p => [p.account_code, Number(p.amount)])
}

async function invoiceRow (db: Knex, id: string): Promise<{ status: string, paid_via_settle: number }> {
  const row = await db('invoices').where({ id }).first('status', 'paid_via_settle') as { status: string, paid_via_settle: number | string }
  return { status: row.status, paid_via_settle: Number(row.paid_via_settle) }
}

const balanced = async (db: Knex, tenantId: string): Promise<number[]> => (await trialBalance(db, tenantId)).totals.map(m => m.amount).filter(a => a !== 0)

t.test('the card surcharge', async t => {
  const db = await testDb(t)
  const f = await setUp(db)
  const fake = new FakePayments()
  const { port: payments, refunds } = withRefunds(fake)
  const succeed = fake.script
  const tenantId = f.tenant.id
  const id = (psaId: string): string => f.invoices.get(psaId)?.id as string
  const harbor = f.m.credit.customerId

  await t.test('billing states came from the PSA company list the sync read anyway', async t => {
    const states = await db('customers').where({ tenant_id: tenantId }).orderBy('name').select('name', 'billing_state')
    t.same(states, [{ name: 'Harbor Dental', billing_state: 'TX' }, { name: 'Nowhere Inc', billing_state: null }, { name: 'Summit Logistics', billing_state: 'CT' }])
  })

  await t.test('the quote is exactly what is charged, and the processor takes amount + surcharge', async t => {
    const quote = await quoteCharge(db, tenantId, { invoiceId: id('1'), paymentMethodId: f.m.credit.id })
    t.same(quote.amount, { amount: 100_000, currency: 'USD' }, 'defaults to the open balance')
    t.same(quote.surcharge, { amount: 2500, currency: 'USD' })
    t.same(quote.total, { amount: 102_500, currency: 'USD' })
    t.match(quote.surchargeReason, /2\.5% surcharge/)
    t.equal(await countRows(db, 'payment_attempts'), 0, 'a quote writes nothing')

    const result = await chargeInvoice(db, payments, { tenantId, invoiceId: id('1'), paymentMethodId: f.m.credit.id, actor: 'client', trigger: 'checkout', expectedSurcharge: quote.surcharge.amount })
    t.equal(result.outcome, 'succeeded')
    t.same(result.attempt.amount, quote.amount)
    t.same(result.attempt.surcharge, quote.surcharge)
    t.equal(Number((await db('payment_attempts').where({ id: result.attempt.id }).first('surcharge_amount')).surcharge_amount), 2500, 'stored on the attempt')
    const sent = fake.charged.at(-1)
    t.same(sent?.amount, quote.total, 'the processor is asked for amount + surcharge')
    t.equal(sent?.description, 'Invoice INV-1: $1,000.00 + $25.00 credit card surcharge', 'the receipt explains the extra')
    t.match(sent?.metadata, { invoice_amount: '1000.00', card_surcharge: '25.00', settle_attempt_id: result.attempt.id })

    const fee = Math.round(102_500 * 0.029) + 30
    t.same(await postingsOf(db, tenantId, `payment:${result.attempt.id}:succeeded`), [
      ['processor:stripe:pending', 102_500], [`receivable:${harbor}`, -100_000], ['surcharge:income', -2500], ['fees:processor', fee], ['processor:stripe:pending', -fee]
    ], 'gross to the processor, the invoice amount off the receivable, the surcharge to income; the fee is on the whole charge')
    t.same(await invoiceRow(db, id('1')), { status: 'paid', paid_via_settle: 100_000 }, 'the invoice is paid exactly, not over-paid by the surcharge')
    const push = await db('jobs').where({ tenant_id: tenantId, queue: 'psa.push-payment' }).whereRaw("payload->>'reference' = ?", [result.attempt.id]).first()
    t.equal(push.payload.amount, 100_000, 'the PSA hears of the invoice amount only')
    t.equal(push.payload.settlesInvoice, true)
    t.same(await accountBalance(db, tenantId, 'surcharge:income', 'USD'), { amount: -2500, currency: 'USD' })
    t.same(await balanced(db, tenantId), [], 'the ledger balances')
  })

  await t.test('a partial amount is surcharged on that amount', async t => {
    const quote = await quoteCharge(db, tenantId, { invoiceId: id('2'), paymentMethodId: f.m.credit.id, amount: 40_001 })
    t.same([quote.amount.amount, quote.surcharge.amount, quote.total.amount], [40_001, 1000, 41_001], '1000.025 rounds down')
    const result = await chargeInvoice(db, payments, { tenantId, invoiceId: id('2'), paymentMethodId: f.m.credit.id, amount: 40_001, actor: 'member:jsmith', trigger: 'charge_card', expectedSurcharge: 1000 })
    t.equal(result.attempt.surcharge.amount, 1000)
    t.same(await invoiceRow(db, id('2')), { status: 'partially_paid', paid_via_settle: 40_001 })
    await t.rejects(quoteCharge(db, tenantId, { invoiceId: id('2'), paymentMethodId: f.m.credit.id, amount: 60_000 }), { code: 'AMOUNT_EXCEEDS_BALANCE' }, 'quotes check like charges do')
    await t.rejects(quoteCharge(db, tenantId, { invoiceId: 'not-a-uuid', paymentMethodId: f.m.credit.id }), { code: 'INVOICE_NOT_FOUND' })
    await t.rejects(quoteCharge(db, tenantId, { invoiceId: id('3'), paymentMethodId: f.m.blockedState.id }), { code: 'PAYMENT_METHOD_NOT_FOUND' }, 'another client\'s card')
  })

  await t.test('settings changed after the quote: QUOTE_CHANGED, and nothing is written or charged', async t => {
    const quote = await quoteCharge(db, tenantId, { invoiceId: id('3'), paymentMethodId: f.m.credit.id })
    t.equal(quote.surcharge.amount, 2500)
    await setTenantSurcharge(db, tenantId, { rateBp: 100, blockedStates: ['CT'] })
    const before = { attempts: await countRows(db, 'payment_attempts'), entries: await countRows(db, 'journal_entries'), jobs: await countRows(db, 'jobs'), charged: fake.charged.length }
    await t.rejects(
      chargeInvoice(db, payments, { tenantId, invoiceId: id('3'), paymentMethodId: f.m.credit.id, actor: 'client', trigger: 'checkout', expectedSurcharge: quote.surcharge.amount }),
      { code: 'QUOTE_CHANGED', status: 409, message: /now \$10\.00, not the \$25\.00 shown.*Nothing was charged/ }
    )
    t.same({ attempts: await countRows(db, 'payment_attempts'), entries: await countRows(db, 'journal_entries'), jobs: await countRows(db, 'jobs'), charged: fake.charged.length }, before, 'no attempt, entry, job or processor call')
    await t.rejects(chargeInvoice(db, payments, { tenantId, invoiceId: id('3'), paymentMethodId: f.m.credit.id, actor: 'client', trigger: 'checkout', expectedSurcharge: -1 }), { code: 'INVALID_AMOUNT' })
    const again = await quoteCharge(db, tenantId, { invoiceId: id('3'), paymentMethodId: f.m.credit.id })
    const result = await chargeInvoice(db, payments, { tenantId, invoiceId: id('3'), paymentMethodId: f.m.credit.id, actor: 'client', trigger: 'checkout', expectedSurcharge: again.surcharge.amount })
    t.same([result.outcome, result.attempt.surcharge.amount, fake.charged.at(-1)?.amount.amount], ['succeeded', 1000, 101_000], 'confirmed again at the new total')
    await setTenantSurcharge(db, tenantId, { rateBp: 250, blockedStates: ['CT'] })
  })

  await t.test('auto-pay is never surcharged: nobody saw a total', async t => {
    const result = await chargeInvoice(db, payments, { tenantId, invoiceId: id('4'), paymentMethodId: f.m.credit.id, actor: 'autopay', trigger: 'autopay' })
    t.same([result.outcome, result.attempt.surcharge.amount, fake.charged.at(-1)?.amount.amount], ['succeeded', 0, 100_000])
  })

  await t.test('debit, prepaid, ACH, a blocked state and an unknown state: no surcharge', async t => {
    const cases: Array<[string, PaymentMethod, string, RegExp]> = [
      ['debit card', f.m.debit, '6', /debit/],
      ['prepaid card', f.m.prepaid, '7', /prepaid/],
      ['ACH', f.m.bank, '8', /ACH/],
      ['client in CT', f.m.blockedState, '11', /billed in CT/],
      ['client with no known state', f.m.unknownState, '12', /not known/]
    ]
    for (const [what, method, psaId, reason] of cases) {
      const quote = await quoteCharge(db, tenantId, { invoiceId: id(psaId), paymentMethodId: method.id })
      t.equal(quote.surcharge.amount, 0, `${what}: no surcharge`)
      t.same(quote.total, quote.amount, `${what}: the total is the amount`)
      t.match(quote.surchargeReason, reason, `${what}: says why`)
    }
    fake.script = () => ({ status: 'succeeded', intentId: `pi_debit_${fake.charged.length}`, chargeId: null, fee: null, raw: {} })
    const debit = await chargeInvoice(db, payments, { tenantId, invoiceId: id('6'), paymentMethodId: f.m.debit.id, actor: 'client', trigger: 'checkout', expectedSurcharge: 0 })
    t.equal(debit.attempt.surcharge.amount, 0)
    const sent = fake.charged.at(-1)
    t.same([sent?.amount.amount, sent?.description], [100_000, 'Invoice INV-6'], 'an unsurcharged request is what it always was')
    t.notOk(sent !== undefined && 'card_surcharge' in sent.metadata, 'no surcharge metadata')
    t.same(await postingsOf(db, tenantId, `payment:${debit.attempt.id}:succeeded`), [['processor:stripe:pending', 100_000], [`receivable:${harbor}`, -100_000]], 'no surcharge posting')
    fake.script = succeed
  })

  await t.test('an unknown outcome is resolved by re-sending the identical request', async t => {
    fake.script = () => 'throw'
    const lost = await chargeInvoice(db, payments, { tenantId, invoiceId: id('9'), paymentMethodId: f.m.credit.id, actor: 'client', trigger: 'checkout', expectedSurcharge: 2500 })
    t.equal(lost.outcome, 'unknown', 'the client is told it is being checked, not that it failed')
    const [attempt] = await listAttempts(db, tenantId, id('9'))
    t.equal(attempt?.surcharge.amount, 2500, 'the surcharge was written before the call')
    const resend = chargeInputFor(attempt!, f.m.credit, ['INV-9'])
    t.same(resend, fake.charged.at(-1), 'rebuilt from the attempt row, byte for byte')
    const outcome = await fake.charge(resend)
    await recordOutcome(db, tenantId, attempt!.id, outcome)
    t.equal(fake.charged.filter(c => c.idempotencyKey === resend.idempotencyKey).length, 1, 'charged once')
    t.same(await invoiceRow(db, id('9')), { status: 'paid', paid_via_settle: 100_000 })
    fake.script = succeed
  })

  await t.test('a full refund gives back the surcharge and reverses all of its income', async t => {
    const charge = await chargeInvoice(db, payments, { tenantId, invoiceId: id('10'), paymentMethodId: f.m.credit.id, actor: 'client', trigger: 'checkout', expectedSurcharge: 2500 })
    const income = (await accountBalance(db, tenantId, 'surcharge:income', 'USD')).amount
    const result = await refundPayment(db, payments, { tenantId, attemptId: charge.attempt.id, reason: 'Client cancelled', actor: 'member:finance' })
    t.equal(result.outcome, 'succeeded')
    t.same(refunds.at(-1)?.amount, { amount: 102_500, currency: 'USD' }, 'the refundable amount is amount + surcharge')
    t.same(await postingsOf(db, tenantId, `refund:${result.refundId}`), [
      [`receivable:${harbor}`, 100_000], ['surcharge:income', 2500], ['processor:stripe:pending', -102_500]
    ])
    t.equal((await accountBalance(db, tenantId, 'surcharge:income', 'USD')).amount, income + 2500, 'all of this payment\'s surcharge income reversed')
    t.same(await invoiceRow(db, id('10')), { status: 'open', paid_via_settle: 0 })
    const [attempt] = await listAttempts(db, tenantId, id('10'))
    t.equal(attempt?.status, 'refunded')
    const restate = await db('jobs').where({ tenant_id: tenantId, queue: 'psa.restate-payment' }).whereRaw("payload->>'attemptId' = ?", [charge.attempt.id]).first()
    t.equal(restate.payload.remainder, 0, 'nothing left pushed to the PSA')
    await t.rejects(refundPayment(db, payments, { tenantId, attemptId: charge.attempt.id, amount: 1, reason: 'Again', actor: 'member:finance' }), { code: 'REFUND_NOT_ALLOWED' })
    t.same(await balanced(db, tenantId), [])
  })

  await t.test('partial refunds split pro rata in exact cents, and end exactly at amount and surcharge', async t => {
    // Invoice 5: 1,234.57 with a 30.86 surcharge (3086.425 rounded down).
    const charge = await chargeInvoice(db, payments, { tenantId, invoiceId: id('5'), paymentMethodId: f.m.credit.id, actor: 'client', trigger: 'checkout', expectedSurcharge: 3086 })
    t.same([charge.attempt.amount.amount, charge.attempt.surcharge.amount], [123_457, 3086])
    const pushes: number[] = []
    const shares: Array<[number, number]> = []
    for (const amount of [10_001, 33_333, undefined]) {
      const before = await db('payment_refunds').where({ tenant_id: tenantId, attempt_id: charge.attempt.id }).count('* as n').then(r => Number(r[0]?.n))
      const refund = await refundPayment(db, payments, { tenantId, attemptId: charge.attempt.id, ...(amount === undefined ? {} : { amount }), reason: 'Partial credit', actor: 'member:finance' })
      t.equal(await db('payment_refunds').where({ tenant_id: tenantId, attempt_id: charge.attempt.id }).count('* as n').then(r => Number(r[0]?.n)), before + 1)
      const postings = new Map(await postingsOf(db, tenantId, `refund:${refund.refundId}`))
      shares.push([postings.get(`receivable:${harbor}`) ?? 0, postings.get('surcharge:income') ?? 0])
      const restate = await db('jobs').where({ tenant_id: tenantId, queue: 'psa.restate-payment' }).where('dedupe_key', `restate:${charge.attempt.id}:refund:${refund.refundId}`).first()
      pushes.push(restate.payload.remainder)
    }
    t.same(refunds.slice(-3).map(r => r.amount.amount), [10_001, 33_333, 126_543 - 43_334], 'the last refund takes what is left of amount + surcharge')
    // 10,001 × 123,457 / 126,543 = 9,757.1 → 9,757; the running total 43,334 → 42,277.2 → 42,277, so 32,520; the rest 81,180.
    t.same(shares, [[9757, 244], [32_520, 813], [81_180, 2029]])
    t.equal(shares.reduce((s, [inv]) => s + inv, 0), 123_457, 'the invoice shares add up to the amount')
    t.equal(shares.reduce((s, [, sur]) => s + sur, 0), 3086, 'the surcharge shares add up to the surcharge')
    t.same(pushes, [123_457 - 9757, 123_457 - 42_277, 0], 'the PSA is re-stated with the invoice share still paid')
    t.same(await invoiceRow(db, id('5')), { status: 'open', paid_via_settle: 0 })
    t.same(await balanced(db, tenantId), [])
  })

  await t.test('a lost dispute reverses the surcharge income with the rest', async t => {
    const charge = await chargeInvoice(db, payments, { tenantId, invoiceId: id('10'), paymentMethodId: f.m.credit.id, actor: 'client', trigger: 'checkout', expectedSurcharge: 2500 })
    const income = (await accountBalance(db, tenantId, 'surcharge:income', 'USD')).amount
    const dispute = {
      id: 'dp_surcharge', status: 'lost', amount: { amount: 102_500, currency: 'USD' as const }, intentId: charge.attempt.processorIntentRef as string,
      fee: { amount: 1500, currency: 'USD' as const }, reason: 'fraudulent', createdAt: new Date('2026-11-20T12:00:00Z'), reinstatedAt: null
    }
    t.equal(await recordDispute(db, tenantId, dispute), 'recorded')
    t.same(await postingsOf(db, tenantId, 'dispute:dp_surcharge:lost'), [[`receivable:${harbor}`, 100_000], ['surcharge:income', 2500], ['disputes', -102_500]])
    t.same(await invoiceRow(db, id('10')), { status: 'open', paid_via_settle: 0 }, 'only the invoice amount is owed again')
    t.equal((await accountBalance(db, tenantId, 'surcharge:income', 'USD')).amount, income + 2500)
    t.same(await accountBalance(db, tenantId, 'disputes', 'USD'), { amount: 0, currency: 'USD' })
    const entries = await countRows(db, 'journal_entries')
    await recordDispute(db, tenantId, dispute)
    t.equal(await countRows(db, 'journal_entries'), entries, 'the same event again writes nothing')
    t.same(await invoiceRow(db, id('10')), { status: 'open', paid_via_settle: 0 })
  })

  // The ledger's receivable still equals the open balances: the surcharge never touched it.
  const open = await psaOpenBalances(db, tenantId)
  const settled = await db('invoices').where({ tenant_id: tenantId, customer_id: harbor }).sum({ paid: 'paid_via_settle' }).then(r => Number(r[0]?.paid))
  t.equal((await customerBalance(db, tenantId, harbor)).total[0]?.amount, (open.get(harbor) ?? 0) - settled, 'receivable equals billed less what Settle applied to invoices')
  t.same(await balanced(db, tenantId), [], 'trial balance nets to zero')
})

t.test('tenant settings: validated, nothing changed on bad input', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  t.same(await setTenantSurcharge(db, tenant.id, { rateBp: 300, blockedStates: ['ma', 'CT'] }), { rateBp: 300, blockedStates: ['CT', 'MA'] })
  await t.rejects(setTenantSurcharge(db, tenant.id, { rateBp: 301, blockedStates: [] }), { code: 'VALIDATION_FAILED', message: /3%/ })
  await t.rejects(setTenantSurcharge(db, tenant.id, { rateBp: 100, blockedStates: ['CT', 'Mass'] }), { code: 'VALIDATION_FAILED', message: /"MASS"/ })
  const row = await db('tenants').where({ id: tenant.id }).first('surcharge_rate_bp', 'surcharge_blocked_states')
  t.same([row.surcharge_rate_bp, row.surcharge_blocked_states], [300, ['CT', 'MA']], 'the refused changes left the settings alone')
  await t.rejects(setTenantSurcharge(db, '6f1c0000-0000-4000-8000-000000000000', { rateBp: 100, blockedStates: [] }), { code: 'TENANT_NOT_FOUND' })
})
