import t from 'tap'
import pino from 'pino'
import { startDemoApp } from '../helpers/demo-app.js'
import { ledgerOverview } from '../../src/services/overview.js'
import { refundPayment } from '../../src/services/refunds.js'
import { syncInvoices } from '../../src/services/sync.js'
import { getTenant } from '../../src/db/tenants.js'
import { Worker } from '../../src/jobs/worker.js'
import type { PsaSystem } from '../../src/ports/psa.js'

t.test('the overview\'s aging adds up to its open receivables after every step of the demo loop', async t => {
  const { app, db, tenants } = await startDemoApp(t)
  const systems = new Map<string, PsaSystem>(tenants.map(tenant => [tenant.id, tenant.slug === 'cobalt' ? 'autotask' : 'connectwise']))
  const steps: string[] = []
  const check = async (step: string): Promise<void> => {
    steps.push(step)
    for (const tenant of tenants) {
      const page = await ledgerOverview(db, await getTenant(db, tenant.id), new Date())
      const aged = page.aging.reduce((s, b) => s + b.amount.amount, 0)
      if (aged !== page.receivables.amount) t.fail(`${tenant.slug} after ${step}: aging sums to ${aged}, open receivables are ${page.receivables.amount} (overdue ${page.overdue.amount})`)
    }
  }
  const syncAll = async (): Promise<void> => {
    for (const tenant of tenants) await syncInvoices({ db, tenantId: tenant.id, psa: await app.psaFor(db, tenant.id, systems.get(tenant.id)!), trigger: 'test', recheckOpen: true })
  }
  await check('the first sync')

  // The demo's collection set-up charges as technicians and auto-pay would, then the outbox pushes back and posts: a check per batch.
  const worker = new Worker({ db, handlers: app.jobHandlers, log: pino({ level: 'silent' }), concurrency: 1 })
  let batches = 0
  while (await worker.runOnce() > 0 && batches < 400) await check(`job batch ${++batches}`)
  const [brightline] = tenants
  const collected = await db('payment_attempts').where({ tenant_id: brightline!.id, status: 'succeeded' }).orderBy('created_at').select('id', 'amount') as Array<{ id: string, amount: number | string }>
  t.ok(collected.length > 0, 'the demo collected payments')
  await syncAll()
  await check('the sync after the push-backs')

  // A client pays an invoice in the PSA (a check), and the next sync books it as collected elsewhere.
  for (const tenant of tenants) {
    const system = systems.get(tenant.id)!
    const invoice = await db('invoices').where({ tenant_id: tenant.id, status: 'open', voided: false }).where('total', '>', 0).orderBy('number').first()
    const psa = await app.psaFor(db, tenant.id, system)
    if (system === 'connectwise') await psa.recordPayment({ invoiceExternalId: invoice.psa_invoice_id, amount: { amount: Number(invoice.psa_balance), currency: invoice.currency }, paidOn: '2026-11-26', reference: `check-${tenant.slug}`, method: 'check' })
    else await psa.markPaid({ invoiceExternalId: invoice.psa_invoice_id, paidOn: '2026-11-26', reference: `check-${tenant.slug}` })
  }
  await check('a payment entered in the PSA')
  await syncAll()
  await check('the sync that brings it in')

  // A refund reopens the invoice; its re-statement goes to the PSA through the outbox.
  const payments = await app.paymentsFor(db, brightline!.id)
  await refundPayment(db, payments, { tenantId: brightline!.id, attemptId: collected[0]!.id, amount: Math.floor(Number(collected[0]!.amount) / 2), reason: 'Credit for a missed visit', actor: 'member:finance' })
  await check('a partial refund')
  while (await worker.runOnce() > 0 && batches < 800) await check(`job batch ${++batches}`)
  await syncAll()
  await check('the sync after the re-statement')
  t.ok(steps.length >= 6, `checked after ${steps.length} steps`)
})
