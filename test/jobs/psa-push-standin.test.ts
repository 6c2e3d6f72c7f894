import t from 'tap'
import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { testDb } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { fast, serve } from '../helpers/serve.js'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, createConnectWiseStore, SANDBOX_ACCOUNTING_MEMBER, SANDBOX_API_MEMBER } from '../../src/sandbox/connectwise/index.js'
import { createConnectWisePsa } from '../../src/adapters/connectwise/psa.js'
import { UpstreamError } from '../../src/adapters/http.js'
import { syncJobHandlers } from '../../src/jobs/sync-jobs.js'
import type { Job } from '../../src/db/jobs.js'
import type { PsaPort } from '../../src/ports/psa.js'

const log = pino({ level: 'silent' })

function job (tenantId: string, queue: string, payload: Record<string, unknown>): Job {
  return { id: 0, tenantId, queue, payload, state: 'running', runAt: new Date(), attempts: 1, maxAttempts: 5, dedupeKey: randomUUID(), lockedBy: null, lockedUntil: null, lastError: null, sourceEntryId: null, createdAt: new Date(), finishedAt: null }
}

t.test('a client\'s check of the same amount on the same day is never taken for Settle\'s payment', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const store = createConnectWiseStore({ seed: 7, companies: 6, invoices: 60 })
  const base = await serve(t, async app => { await app.register(connectwiseSandbox, { prefix: '/cw', store, credentials: CONNECTWISE_SANDBOX_CREDENTIALS }) })
  // As the PSA factory does: the API member learned from our first post is kept with the connection.
  let apiMember: string | undefined
  const adapter = (): ReturnType<typeof createConnectWisePsa> => createConnectWisePsa({
    site: `${base}/cw`, ...CONNECTWISE_SANDBOX_CREDENTIALS, sleep: fast, attempts: 1,
    ...(apiMember === undefined ? {} : { apiMember }),
    onApiMemberLearned: async member => { apiMember = member }
  })
  let psa: () => PsaPort = adapter
  const handlers = syncJobHandlers(async () => psa())
  const ctx = { db, log, signal: new AbortController().signal }
  const unpaid = store.invoices.filter(i => i.type !== 'CreditMemo' && i.statusId !== 4 && store.paidCents(i) === 0 && store.balanceCents(i) % 2 === 0 && store.balanceCents(i) > 1000)
  const push = (invoiceId: number, reference: string, amount: number): Record<string, unknown> =>
    ({ system: 'connectwise', invoiceExternalId: String(invoiceId), amount, currency: 'USD', paidOn: '2026-11-20', reference, method: 'card', settlesInvoice: true })

  await t.test('check, then the push, then a refund: the check stays, Settle\'s payment is recorded and taken back', async t => {
    const invoice = unpaid[0]!
    const half = store.balanceCents(invoice) / 2
    // The client pays the other half by check; a person enters it the same day.
    const check = store.addPayment(invoice.id, { amountCents: half, paymentDate: new Date('2026-11-20T00:00:00Z'), source: 'Check' })
    t.equal(check.appliedBy, SANDBOX_ACCOUNTING_MEMBER)
    const reference = randomUUID()
    await handlers['psa.push-payment']!(job(tenant.id, 'psa.push-payment', push(invoice.id, reference, half)), ctx)

    const payments = store.paymentsOf(invoice.id)
    t.equal(payments.length, 2, 'Settle\'s payment was posted beside the check')
    const ours = payments.find(p => p.id !== check.id)!
    t.equal(ours.appliedBy, SANDBOX_API_MEMBER)
    t.equal(apiMember, SANDBOX_API_MEMBER, 'the API member was learned from our own post')
    t.equal(store.balanceCents(invoice), 0, 'the invoice is settled in ConnectWise')
    const pushed = await db('psa_payment_pushes').where({ tenant_id: tenant.id, reference }).first()
    t.equal(pushed.psa_payment_id, String(ours.id), 'Settle remembers its own payment, not the check')

    await handlers['psa.restate-payment']!(job(tenant.id, 'psa.restate-payment', { system: 'connectwise', attemptId: reference, remainder: 0, invoiceExternalId: String(invoice.id) }), ctx)
    t.same(store.paymentsOf(invoice.id).map(p => p.id), [check.id], 'the refund took out Settle\'s payment only; the client\'s check stays')
    t.equal(store.balanceCents(invoice), half)
  })

  await t.test('after a lost answer the repeat adopts Settle\'s own payment, never the check', async t => {
    const invoice = unpaid[1]!
    const half = store.balanceCents(invoice) / 2
    const reference = randomUUID()
    // The post lands but its answer is lost, and the client's check is entered before the job runs again.
    psa = () => {
      const real = adapter()
      return { ...real, recordPayment: async input => { await real.recordPayment(input); throw new UpstreamError('connectwise', 502, 'http_502', 'answer lost', true) } }
    }
    await t.rejects(handlers['psa.push-payment']!(job(tenant.id, 'psa.push-payment', push(invoice.id, reference, half)), ctx), { code: 'http_502' })
    psa = adapter
    const check = store.addPayment(invoice.id, { amountCents: half, paymentDate: new Date('2026-11-20T00:00:00Z'), source: 'Check' })
    await handlers['psa.push-payment']!(job(tenant.id, 'psa.push-payment', push(invoice.id, reference, half)), ctx)
    const payments = store.paymentsOf(invoice.id)
    t.equal(payments.length, 2, 'posted once, and the check')
    const pushed = await db('psa_payment_pushes').where({ tenant_id: tenant.id, reference }).first()
    t.not(pushed.psa_payment_id, String(check.id))
    t.equal(payments.find(p => String(p.id) === pushed.psa_payment_id)?.appliedBy, SANDBOX_API_MEMBER)
  })

  await t.test('a re-statement never deletes a payment a person entered, even one Settle once took for its own', async t => {
    const invoice = unpaid[2]!
    const amount = store.balanceCents(invoice)
    const check = store.addPayment(invoice.id, { amountCents: amount, paymentDate: new Date('2026-11-20T00:00:00Z'), source: 'Check' })
    const reference = randomUUID()
    // A push recorded before this fix, which adopted the check.
    await db('psa_payment_pushes').insert({ tenant_id: tenant.id, psa_system: 'connectwise', reference, psa_invoice_id: String(invoice.id), amount, currency: 'USD', paid_on: '2026-11-20', psa_payment_id: String(check.id), marked_paid: true })
    await handlers['psa.restate-payment']!(job(tenant.id, 'psa.restate-payment', { system: 'connectwise', attemptId: reference, remainder: 0, invoiceExternalId: String(invoice.id) }), ctx)
    t.same(store.paymentsOf(invoice.id).map(p => p.id), [check.id], 'the check stays')
  })

  await t.test('markPaid never records money Settle did not collect', async t => {
    const invoice = unpaid[3]!
    const open = store.balanceCents(invoice)
    await adapter().markPaid({ invoiceExternalId: String(invoice.id), paidOn: '2026-11-20', reference: randomUUID() })
    t.equal(store.paymentsOf(invoice.id).length, 0)
    t.equal(store.balanceCents(invoice), open)
  })
})
