import t from 'tap'
import fc from 'fast-check'
import pino from 'pino'
import type { Knex } from 'knex'
import { testDb } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakePayments } from '../helpers/fake-payments.js'
import { syncInvoices } from '../../src/services/sync.js'
import { runAutopay } from '../../src/services/autopay.js'
import { chargeInvoice, type ChargeTrigger } from '../../src/services/charge.js'
import { enrolAutopay, recordConsent, setTenantRule } from '../../src/db/autopay.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { enqueue } from '../../src/db/jobs.js'
import { DEFAULT_AUTOPAY_RULE } from '../../src/domain/autopay.js'
import { AppError } from '../../src/errors.js'
import { Worker } from '../../src/jobs/worker.js'
import { paymentJobHandlers } from '../../src/jobs/payment-jobs.js'
import type { ChargeOutcome } from '../../src/ports/payments.js'

const log = pino({ level: 'silent' })
const AUTOPAY_TEXT = 'I authorise Brightline Managed IT to charge my saved payment method for each invoice on its due date until I cancel.'
const softDecline: ChargeOutcome = { status: 'failed', intentId: null, failure: { code: 'card_declined', declineCode: 'insufficient_funds', adviceCode: null, message: 'Your card has insufficient funds.' }, raw: {} }

interface World { tenantId: string, invoiceIds: string[], methodId: string, payments: FakePayments, worker: Worker }

/** A client enrolled in auto-pay with a card, owing three invoices due on 2026-10-31. */
async function world (db: Knex): Promise<World> {
  const tenant = await makeTenant(db, 'Retry MSP')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  for (const id of ['1', '2', '3']) psa.put(id, { company: '1', total: 40_000 + Number(id) * 1000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoices = await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1', '2', '3'])
  const customerId = invoices.get('1')!.customerId
  const card = await savePaymentMethod(db, tenant.id, { customerId, processorCustomerRef: 'cus_h', processorMethodRef: 'pm_card', type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: true })
  await recordConsent(db, tenant.id, { customerId, paymentMethodId: null, kind: 'autopay', text: AUTOPAY_TEXT, acceptedByName: 'Dana Ortiz', acceptedByEmail: 'dana@harbor.example', ip: '203.0.113.7', userAgent: 'Mozilla/5.0', textVersion: '2026-11' })
  await enrolAutopay(db, tenant.id, customerId)
  await setTenantRule(db, tenant.id, { ...DEFAULT_AUTOPAY_RULE, approvalAbove: null })
  const payments = new FakePayments()
  payments.script = () => softDecline
  const worker = new Worker({ db, handlers: paymentJobHandlers(async () => payments), log, concurrency: 1 })
  return { tenantId: tenant.id, invoiceIds: ['1', '2', '3'].map(id => invoices.get(id)!.id), methodId: card.id, payments, worker }
}

async function drain (w: World): Promise<void> {
  while (await w.worker.runOnce() > 0) { /* until nothing is due */ }
}

/** A day passes: every stamp of this tenant's attempts and jobs moves a day into the past. */
async function nextDay (db: Knex, tenantId: string): Promise<void> {
  await db('payment_attempts').where({ tenant_id: tenantId }).update({ created_at: db.raw("created_at - interval '1 day'"), updated_at: db.raw("updated_at - interval '1 day'") })
  await db('jobs').where({ tenant_id: tenantId }).update({ run_at: db.raw("run_at - interval '1 day'"), created_at: db.raw("created_at - interval '1 day'") })
}

async function pendingRetries (db: Knex, tenantId: string): Promise<Map<string, number>> {
  const rows = await db('jobs as j').join('payment_attempts as a', function () { this.on('a.tenant_id', 'j.tenant_id').andOn(db.raw("a.id::text = j.payload->>'attemptId'")) })
    .where({ 'j.tenant_id': tenantId, 'j.queue': 'payments.retry', 'j.state': 'pending' }).select('a.invoice_id') as Array<{ invoice_id: string }>
  const counts = new Map<string, number>()
  for (const r of rows) counts.set(r.invoice_id, (counts.get(r.invoice_id) ?? 0) + 1)
  return counts
}

async function attemptsInLast30Days (db: Knex, tenantId: string, invoiceId: string): Promise<number> {
  const [row] = await db('payment_attempts').where({ tenant_id: tenantId, invoice_id: invoiceId }).where('created_at', '>', db.raw("now() - interval '30 days'")).count({ n: '*' })
  return Number(row?.n ?? 0)
}

type Trigger = { kind: 'autopay' } | { kind: 'charge_card' | 'checkout', invoice: number }
const trigger: fc.Arbitrary<Trigger> = fc.oneof(
  fc.constant({ kind: 'autopay' as const }),
  fc.record({ kind: fc.constantFrom('charge_card' as const, 'checkout' as const), invoice: fc.integer({ min: 0, max: 2 }) })
)

t.test('over a simulated month of triggers: one retry schedule per invoice, auto-pay leaves retrying invoices alone, at most 15 attempts in 30 days', async t => {
  const db = await testDb(t)
  await fc.assert(fc.asyncProperty(
    fc.array(fc.array(trigger, { maxLength: 3 }), { minLength: 30, maxLength: 30 }),
    async days => {
      const w = await world(db)
      for (const [day, triggers] of days.entries()) {
        const today = `2026-10-${String(day + 1).padStart(2, '0')}`
        // The daily run comes first each day, as at the day change.
        for (const next of [{ kind: 'autopay' } as Trigger, ...triggers]) {
          if (next.kind === 'autopay') {
            const retrying = await pendingRetries(db, w.tenantId)
            await runAutopay(db, w.tenantId, today)
            const queued = await db('jobs').where({ tenant_id: w.tenantId, queue: 'autopay.charge', state: 'pending' }).select('payload') as Array<{ payload: { invoiceId: string } }>
            for (const job of queued) {
              if (retrying.has(job.payload.invoiceId)) throw new Error(`day ${day + 1}: auto-pay queued a charge on an invoice with a retry scheduled`)
            }
          } else {
            const kind: ChargeTrigger = next.kind
            await chargeInvoice(db, w.payments, { tenantId: w.tenantId, invoiceId: w.invoiceIds[next.invoice]!, paymentMethodId: w.methodId, actor: kind === 'checkout' ? 'client' : 'cw:tech', trigger: kind })
              .catch((error: unknown) => { if (!(error instanceof AppError && error.code === 'CHARGE_LIMIT_REACHED')) throw error })
          }
          await drain(w)
          for (const [invoiceId, n] of await pendingRetries(db, w.tenantId)) {
            if (n > 1) throw new Error(`day ${day + 1}: invoice ${invoiceId} holds ${n} retry schedules`)
          }
          for (const invoiceId of w.invoiceIds) {
            const n = await attemptsInLast30Days(db, w.tenantId, invoiceId)
            if (n > 15) throw new Error(`day ${day + 1}: invoice ${invoiceId} was charged ${n} times in 30 days`)
          }
        }
        await nextDay(db, w.tenantId)
      }
    }
  ), { numRuns: 6 })
  t.pass('held for every generated month')
})

t.test('the database holds one pending retry per invoice, and a queued auto-pay charge skips a retrying invoice', async t => {
  const db = await testDb(t)
  const w = await world(db)
  const [invoiceId] = w.invoiceIds as [string]
  await runAutopay(db, w.tenantId, '2026-10-31')
  await drain(w)
  const retries = await db('jobs').where({ tenant_id: w.tenantId, queue: 'payments.retry', state: 'pending' })
  t.equal(retries.filter((j: { payload: { invoiceId?: string } }) => j.payload.invoiceId === invoiceId).length, 1, 'the decline scheduled one retry')
  // A second schedule for the same invoice from another failure is not written.
  const again = await enqueue(db, w.tenantId, [{ queue: 'payments.retry', payload: { attemptId: retries[0].payload.attemptId, invoiceId }, dedupeKey: 'retry:another' }])
  t.same(again, [], 'refused by the one-retry-per-invoice index')
  // A charge queued before the decline (another process's run) finds the retry and leaves the invoice alone.
  const charged = w.payments.charged.length
  await enqueue(db, w.tenantId, [{ queue: 'autopay.charge', payload: { invoiceId, paymentMethodId: w.methodId, amount: 41_000, runOn: '2026-11-01' }, dedupeKey: `autopay:${invoiceId}:2026-11-01` }])
  await drain(w)
  t.equal(w.payments.charged.length, charged, 'no charge on the retrying invoice')
  const summary = await runAutopay(db, w.tenantId, '2026-11-01')
  t.match(summary.skipped.find(s => s.invoiceId === invoiceId), { reason: /retry/ })
})
