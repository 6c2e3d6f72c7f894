import t from 'tap'
import pino from 'pino'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { buildApp } from '../../src/app.js'
import { createStripeClient } from '../../src/adapters/stripe/client.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { putSecret } from '../../src/db/secrets.js'
import { Worker } from '../../src/jobs/worker.js'
import { AUTOTASK_SANDBOX_CREDENTIALS } from '../../src/sandbox/autotask/index.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS } from '../../src/sandbox/connectwise/index.js'
import { QUICKBOOKS_SANDBOX_CREDENTIALS, QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN, QUICKBOOKS_SANDBOX_REALM_ID } from '../../src/sandbox/quickbooks/index.js'
import { STRIPE_SANDBOX_API_KEY } from '../../src/sandbox/stripe/index.js'
import { connectQuickBooks } from '../../src/services/accounting-connections.js'
import { chargeInvoice } from '../../src/services/charge.js'
import { connectAutotask, connectConnectWise } from '../../src/services/psa-connections.js'
import { syncInvoices } from '../../src/services/sync.js'

/** `npm run sandbox` in a child process, and Settle pointed at it only through its configuration variables. */
async function startSandboxServer (t: { teardown: (fn: () => void) => void }): Promise<string> {
  const script = fileURLToPath(new URL('../../src/sandbox/server.ts', import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, SANDBOX_PORT: '0', LOG_LEVEL: 'warn', DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGTERM') })
  const line = await new Promise<string>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', code => { reject(new Error(`the stand-ins' server exited with ${String(code)}`)) })
    createInterface({ input: child.stdout }).once('line', resolve)
  })
  const origin = /listening at (http:\/\/\S+)/.exec(line)?.[1]
  if (origin === undefined) throw new Error(`unexpected first line: ${line}`)
  return origin
}

t.test('Settle syncs, charges and books through the stand-ins running on their own server', async t => {
  const origin = await startSandboxServer(t)

  const listing = await (await fetch(`${origin}/sandbox.json`)).json() as { standIns: Array<{ name: string, baseUrl: string }> }
  t.same(listing.standIns.map(s => s.name).sort(), ['autotask', 'connectwise', 'quickbooks', 'stripe'], 'all four stand-ins are listed')
  t.equal(listing.standIns.find(s => s.name === 'connectwise')?.baseUrl, `${origin}/sandbox/connectwise`, 'with base URLs on this server')

  const db = await testDb(t)
  const keyring = testKeyring()
  const app = await buildApp(testConfig({
    SETTLE_QBO_CLIENT_ID: QUICKBOOKS_SANDBOX_CREDENTIALS.clientId,
    SETTLE_QBO_CLIENT_SECRET: QUICKBOOKS_SANDBOX_CREDENTIALS.clientSecret,
    STRIPE_API_BASE: origin,
    QUICKBOOKS_API_BASE: `${origin}/sandbox/quickbooks`,
    QUICKBOOKS_OAUTH_BASE: `${origin}/sandbox/quickbooks`,
    AUTOTASK_ZONE_URL: `${origin}/sandbox/autotask/ATServicesRest/V1.0/zoneInformation`
  }), { db, keyring })
  t.teardown(async () => { await app.close() })

  // A tenant connected as an operator would, with the demo credentials the listing gives (no built-in sandbox flag).
  const tenant = await makeTenant(db, 'Shared stand-ins MSP')
  await connectConnectWise(db, keyring, tenant.id, { site: `${origin}/sandbox/connectwise`, ...CONNECTWISE_SANDBOX_CREDENTIALS })
  await connectAutotask(db, keyring, tenant.id, { ...AUTOTASK_SANDBOX_CREDENTIALS })
  await putSecret(db, keyring, tenant.id, 'stripe.secret_key', STRIPE_SANDBOX_API_KEY)
  await connectQuickBooks(db, keyring, { tenantId: tenant.id, realmId: QUICKBOOKS_SANDBOX_REALM_ID, tokens: { access_token: 'not-yet-issued', refresh_token: QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN, expires_in: 0, x_refresh_token_expires_in: 86_400 } })

  const cw = await syncInvoices({ db, tenantId: tenant.id, psa: await app.psaFor(db, tenant.id, 'connectwise'), trigger: 'test' })
  t.equal(cw.status, 'ok', cw.error ?? 'ConnectWise synced')
  t.equal(cw.created, 400, 'every demo ConnectWise invoice')
  const at = await syncInvoices({ db, tenantId: tenant.id, psa: await app.psaFor(db, tenant.id, 'autotask'), trigger: 'test' })
  t.equal(at.status, 'ok', at.error ?? 'Autotask synced through AUTOTASK_ZONE_URL')
  t.ok(at.created > 0, `${at.created} Autotask invoices`)

  const accounting = await app.accountingFor(tenant.id)
  t.ok(accounting !== null, 'QuickBooks is connected')
  const accounts = await accounting!.listAccounts()
  t.ok(accounts.some(a => a.subType === 'UndepositedFunds'), 'the token came from QUICKBOOKS_OAUTH_BASE and the chart of accounts from QUICKBOOKS_API_BASE')

  // Charge an open invoice by card through STRIPE_API_BASE, then let the outbox tell ConnectWise.
  const open = await db('invoices').where({ tenant_id: tenant.id, psa_system: 'connectwise', status: 'open' }).orderBy('psa_invoice_id').first('psa_invoice_id', 'total') as { psa_invoice_id: string, total: string }
  const invoice = (await invoicesByPsaIds(db, tenant.id, 'connectwise', [open.psa_invoice_id])).get(open.psa_invoice_id)!
  const stripe = createStripeClient({ secretKey: STRIPE_SANDBOX_API_KEY, baseUrl: origin })
  const stripeCustomer = await stripe.customers.create({ email: 'ap@client.example' })
  const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: stripeCustomer.id })
  const method = await savePaymentMethod(db, tenant.id, {
    customerId: invoice.customerId, processorCustomerRef: stripeCustomer.id, processorMethodRef: pm.id, type: 'card',
    brand: pm.card?.brand ?? null, last4: pm.card?.last4 ?? '4242', expMonth: pm.card?.exp_month ?? null, expYear: pm.card?.exp_year ?? null, funding: pm.card?.funding ?? null, isDefault: true
  })
  const charged = await chargeInvoice(db, await app.paymentsFor(db, tenant.id), { tenantId: tenant.id, invoiceId: invoice.id, paymentMethodId: method.id, actor: 'member:e2e', trigger: 'charge_card' })
  t.equal(charged.outcome, 'succeeded', 'charged at the Stripe stand-in')
  const intent = await stripe.paymentIntents.retrieve(charged.attempt.processorIntentRef ?? '')
  t.equal(intent.amount, invoice.total.amount, 'the stand-in holds the charge for the whole balance')

  const worker = new Worker({ db, handlers: app.jobHandlers, log: pino({ level: 'silent' }), concurrency: 1 })
  while (await worker.runOnce() > 0) { /* drain the outbox */ }
  const payments = await (await fetch(`${origin}/sandbox/connectwise/v4_6_release/apis/3.0/finance/invoices/${open.psa_invoice_id}/payments`, {
    headers: { authorization: `Basic ${Buffer.from(`${CONNECTWISE_SANDBOX_CREDENTIALS.companyId}+${CONNECTWISE_SANDBOX_CREDENTIALS.publicKey}:${CONNECTWISE_SANDBOX_CREDENTIALS.privateKey}`).toString('base64')}`, clientid: CONNECTWISE_SANDBOX_CREDENTIALS.clientId }
  })).json() as Array<{ amount: number }>
  t.same(payments.map(p => Math.round(p.amount * 100)), [invoice.total.amount], 'the payment was pushed back to the ConnectWise stand-in once')
})
