import Fastify from 'fastify'
import type { Knex } from 'knex'
import type { AddressInfo } from 'node:net'
import quickbooksSandbox, { createQuickBooksStore, QUICKBOOKS_SANDBOX_CREDENTIALS, QUICKBOOKS_SANDBOX_PREFIX } from '../src/sandbox/quickbooks/index.js'
import { connectQuickBooks, createAccountingFactory, discoverSettings, saveAccountingSettings } from '../src/services/accounting-connections.js'
import { syncNow } from '../src/services/posting.js'
import { createTenant } from '../src/db/tenants.js'
import { upsertCustomer } from '../src/db/customers.js'
import { savePaymentMethod } from '../src/db/payments.js'
import { Keyring } from '../src/security/keyring.js'

const REALM = '9341453050298761'

export interface QboRequestCount {
  payments: number
  deposits: number
  /** HTTP requests the QuickBooks stand-in received for the company (token refreshes not counted). */
  requests: number
  perPayment: number
}

/**
 * "QuickBooks calls per payment" as the books see them: N card payments of
 * N invoices and the payout that carries them, posted by syncNow through the
 * real adapter, counted as HTTP requests arriving at the QuickBooks stand-in.
 * `db` is a migrated database of its own (it gets one tenant).
 */
export async function qboRequestsPerPayment (db: Knex, n: number): Promise<QboRequestCount> {
  const tenant = await createTenant(db, { slug: `qbo-requests-${Date.now()}`, name: 'Bench MSP' })
  const customer = await upsertCustomer(db, tenant.id, { name: 'Acme Dental', psaSystem: 'connectwise', psaCompanyId: '1' })
  const invoices = Array.from({ length: n }, (_, i) => ({ docNumber: String(5000 + i), cents: 1_000 + i }))
  const store = createQuickBooksStore({
    seed: 3, realmId: REALM, rateLimit: false,
    customers: [{ displayName: 'Acme Dental' }],
    invoices: invoices.map(i => ({ docNumber: i.docNumber, customerName: 'Acme Dental', total: i.cents, balance: i.cents, txnDate: '2026-11-01', dueDate: '2026-12-01' }))
  })
  const app = Fastify({ logger: false })
  let requests = 0
  app.addHook('onRequest', async req => { if (req.url.includes('/v3/company/')) requests++ })
  await app.register(quickbooksSandbox, { prefix: QUICKBOOKS_SANDBOX_PREFIX, store })
  await app.listen({ host: '127.0.0.1', port: 0 })
  try {
    const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    const keyring = new Keyring(Keyring.generateEntry('bench'))
    await connectQuickBooks(db, keyring, { tenantId: tenant.id, realmId: REALM, sandbox: true, tokens: store.issueTokens(REALM) })
    const port = await createAccountingFactory({ db, keyring, sandboxOrigin: () => origin, app: QUICKBOOKS_SANDBOX_CREDENTIALS })(tenant.id)
    if (port === null) throw new Error('the stand-in connection was not made')
    await saveAccountingSettings(db, tenant.id, await discoverSettings(port))
    const method = await savePaymentMethod(db, tenant.id, { customerId: customer.id, processorCustomerRef: 'cus_1', processorMethodRef: 'pm_1', type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: true })
    const attempts: string[] = []
    for (const inv of invoices) {
      const [row] = await db('invoices').insert({
        tenant_id: tenant.id, customer_id: customer.id, psa_system: 'connectwise', psa_invoice_id: `cw-${inv.docNumber}`, number: inv.docNumber, kind: 'standard', currency: 'USD',
        issued_on: '2026-11-01', total: inv.cents, psa_balance: inv.cents, status: 'open', psa_updated_at: new Date()
      }).returning('id') as Array<{ id: string }>
      const [attempt] = await db('payment_attempts').insert({
        tenant_id: tenant.id, invoice_id: row?.id, customer_id: customer.id, payment_method_id: method.id, amount: inv.cents, currency: 'USD',
        status: 'succeeded', trigger: 'charge_card', actor: 'member:bench', processor_intent_ref: `pi_${inv.docNumber}`, settled_at: new Date('2026-12-02T15:00:00Z')
      }).returning('id') as Array<{ id: string }>
      attempts.push(attempt?.id as string)
    }
    const fee = 30
    const gross = invoices.reduce((s, i) => s + i.cents, 0)
    const [payout] = await db('payouts').insert({
      tenant_id: tenant.id, processor: 'stripe', processor_payout_ref: 'po_bench', amount: gross - n * fee, currency: 'USD', arrival_date: '2026-12-04', status: 'paid', gross, fees: n * fee, refunds: 0
    }).returning('id') as Array<{ id: string }>
    await db('payout_items').insert(invoices.map((inv, i) => ({
      tenant_id: tenant.id, payout_id: payout?.id, balance_transaction_ref: `txn_${inv.docNumber}`, type: 'charge', attempt_id: attempts[i], gross: inv.cents, fee, net: inv.cents - fee, currency: 'USD'
    })))
    requests = 0
    let payments = 0
    let deposits = 0
    // Until nothing is left: the deposit waits for its payments, as it does in production.
    for (let round = 0; round < 5; round++) {
      const result = await syncNow(db, port, tenant.id)
      payments += result.posted.filter(p => p.kind === 'payment').length
      deposits += result.posted.filter(p => p.kind === 'deposit').length
      if (result.failed.length > 0) throw new Error(`posting failed: ${result.failed.map(f => f.reason).join('; ')}`)
      if (result.pending.payments + result.pending.deposits + result.pending.reversals === 0) break
    }
    return { payments, deposits, requests, perPayment: payments === 0 ? 0 : requests / payments }
  } finally {
    await app.close()
  }
}
