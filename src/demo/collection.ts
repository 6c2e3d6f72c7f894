import { createStripeClient } from '../adapters/stripe/client.js'
import { createStripePayments } from '../adapters/stripe/payments.js'
import { enrolAutopay, recordConsent } from '../db/autopay.js'
import { savePaymentMethod } from '../db/payments.js'
import { getTenant } from '../db/tenants.js'
import { achMandateText, autopayAuthorisationText, CONSENT_TEXT_VERSION } from '../domain/consents.js'
import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import { enqueue, type Job } from '../db/jobs.js'
import { TIEOUT_QUEUE } from '../jobs/tieout-jobs.js'
import { RetryLaterError, type JobHandler } from '../jobs/worker.js'
import { runAutopay } from '../services/autopay.js'
import { chargeInvoice } from '../services/charge.js'
import { processorCustomerFor } from '../services/checkout.js'
import { STRIPE_SANDBOX_API_KEY } from '../sandbox/stripe/index.js'
import type { AccountingFactory } from '../ports/accounting.js'
import { discoverSettings, getAccountingSettings, saveAccountingSettings } from '../services/accounting-connections.js'

/** Which demo clients get which method, by Stripe's test payment method ids. */
const PLAN = [
  { method: 'pm_card_visa', type: 'card', autopay: true },
  { method: 'pm_usBankAccount_success', type: 'ach', autopay: true },
  { method: 'pm_card_chargeDeclinedInsufficientFunds', type: 'card', autopay: true },
  { method: 'pm_card_mastercard', type: 'card', autopay: false }
] as const

const DEMO_BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) Settle demo'

/**
 * Gives the demo MSP's first clients stored methods at the Stripe stand-in,
 * recorded authorisations and auto-pay, then charges as a technician would:
 * all through the real adapter and services. Runs once, after the first
 * sync has brought invoices in.
 */
export function demoCollectionSetup (origin: () => string | null, accountingFor?: AccountingFactory): JobHandler {
  return async (job, { db, log }) => {
    if (job.tenantId === null) return
    const tenantId = job.tenantId
    const base = origin()
    const clients = await db('customers as c').where('c.tenant_id', tenantId)
      .whereExists(q => { void q.select(db.raw('1')).from('invoices as i').whereRaw('i.customer_id = c.id').whereIn('i.status', ['open', 'partially_paid']) })
      .orderBy('c.name').limit(PLAN.length).select('c.id', 'c.name') as Array<{ id: string, name: string }>
    if (base === null || clients.length < PLAN.length) throw new RetryLaterError('waiting for the first PSA sync', 3000)
    // Set up already (this is a re-run): only the payout may be left to do.
    if (await db('payment_methods').where({ tenant_id: tenantId }).first('id') !== undefined) { await demoPayout(job, db, tenantId, base, log); return }
    // The books' accounts as a person would confirm them after connecting (the OAuth callback does this for a real tenant),
    // before the first charge wants to post.
    const books = accountingFor === undefined ? null : await accountingFor(tenantId)
    if (books !== null && (await getAccountingSettings(db, tenantId)).undepositedFundsAccountId === null) {
      await saveAccountingSettings(db, tenantId, await discoverSettings(books))
    }
    const tenant = await getTenant(db, tenantId)
    const stripe = createStripeClient({ secretKey: STRIPE_SANDBOX_API_KEY, baseUrl: base })
    const payments = createStripePayments(stripe)
    for (const [index, plan] of PLAN.entries()) {
      const client = clients[index] as { id: string, name: string }
      const customer = { id: await processorCustomerFor(db, payments, tenantId, client.id) }
      const acceptance = { customer_acceptance: { type: 'online' as const, online: { ip_address: '203.0.113.24', user_agent: DEMO_BROWSER } } }
      const pmId = plan.type === 'ach'
        ? String((await stripe.setupIntents.create({ customer: customer.id, payment_method: plan.method, confirm: true, usage: 'off_session', mandate_data: acceptance })).payment_method)
        : (await stripe.paymentMethods.attach(plan.method, { customer: customer.id })).id
      const pm = await stripe.paymentMethods.retrieve(pmId)
      const method = await savePaymentMethod(db, tenantId, {
        customerId: client.id,
        processorCustomerRef: customer.id,
        processorMethodRef: pm.id,
        type: plan.type,
        brand: pm.card?.brand ?? pm.us_bank_account?.bank_name ?? null,
        last4: pm.card?.last4 ?? pm.us_bank_account?.last4 ?? '0000',
        expMonth: pm.card?.exp_month ?? null,
        expYear: pm.card?.exp_year ?? null,
        funding: pm.card?.funding ?? null,
        isDefault: true
      })
      const who = { customerId: client.id, acceptedByName: `Accounts payable, ${client.name}`, acceptedByEmail: null, ip: '203.0.113.24', userAgent: DEMO_BROWSER, textVersion: CONSENT_TEXT_VERSION }
      if (plan.type === 'ach') await recordConsent(db, tenantId, { ...who, paymentMethodId: method.id, kind: 'ach_mandate', text: achMandateText(tenant.name, method.brand ?? 'bank', method.last4) })
      if (plan.autopay) {
        await recordConsent(db, tenantId, { ...who, paymentMethodId: null, kind: 'autopay', text: autopayAuthorisationText(tenant.name) })
        await enrolAutopay(db, tenantId, client.id)
      } else {
        // A technician's Charge card on this client's oldest open invoice.
        const invoice = await db('invoices').where({ tenant_id: tenantId, customer_id: client.id }).whereIn('status', ['open', 'partially_paid']).orderBy('due_on').first('id')
        if (invoice !== undefined) await chargeInvoice(db, payments, { tenantId, invoiceId: invoice.id, paymentMethodId: method.id, actor: 'member:demo.technician', trigger: 'charge_card' })
      }
    }
    log.info({ tenantId, ...(await runAutopay(db, tenantId, new Date().toISOString().slice(0, 10))) }, 'demo collection ready')
    await demoPayout(job, db, tenantId, base, log)
  }
}

/**
 * Once the demo's charges have settled, the stand-in pays them out (Stripe
 * would on its daily schedule; the demo cannot wait two days), and the
 * payout reaches the ledger through the same webhook job as in production.
 * Waits by asking the worker to come back, so the boot itself is not held up.
 */
async function demoPayout (job: Job, db: Knex, tenantId: string, base: string, log: FastifyBaseLogger): Promise<void> {
  if (await db('payouts').where({ tenant_id: tenantId }).first('id') !== undefined) return
  const inFlight = await db('payment_attempts').where({ tenant_id: tenantId }).whereIn('status', ['created', 'processing', 'unknown']).first('id')
  const queued = await db('jobs').where({ tenant_id: tenantId }).whereIn('queue', ['autopay.run', 'autopay.charge']).whereIn('state', ['pending', 'running']).first('id')
  // A few attempts are kept back so a charge stuck processing cannot keep the demo from ever showing a payout.
  if ((inFlight !== undefined || queued !== undefined) && job.attempts < job.maxAttempts - 5) throw new RetryLaterError('the demo payout waits for the charges to settle', 4000)
  const res = await fetch(`${base}/v1/test_helpers/payouts/run`, {
    method: 'POST',
    headers: { authorization: `Bearer ${STRIPE_SANDBOX_API_KEY}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'include_pending=true',
    signal: AbortSignal.timeout(10_000)
  })
  const body = await res.json() as { id?: string, amount?: number, error?: { message?: string } }
  log.info({ tenantId, payout: body.id ?? null, amount: body.amount ?? null, note: body.error?.message }, 'demo payout requested')
  // Tie out once the payout's deposit has had time to post, so the overview shows the stand-in's planted differences, not work in flight.
  await enqueue(db, tenantId, [{ queue: TIEOUT_QUEUE, dedupeKey: 'demo-after-payout', runAt: new Date(Date.now() + 30_000), maxAttempts: 3 }])
}
