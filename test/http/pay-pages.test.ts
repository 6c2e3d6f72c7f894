import t from 'tap'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakePayments } from '../helpers/fake-payments.js'
import { buildApp } from '../../src/app.js'
import { signPayLink, verifyPayLink } from '../../src/security/pay-links.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { setInstallmentSettings } from '../../src/db/installments.js'
import { setBrand } from '../../src/db/branding.js'
import { syncInvoices } from '../../src/services/sync.js'
import { Worker } from '../../src/jobs/worker.js'
import type { OutgoingMail } from '../../src/ports/mailer.js'

const ORIGIN = 'https://pay.brightline.example'

async function world (t: { teardown: (fn: () => Promise<void> | void) => void }): Promise<{ app: FastifyInstance, db: Awaited<ReturnType<typeof testDb>>, tenantId: string, link: (n: string, expiresAt?: Date) => Promise<string>, invoiceId: (n: string) => Promise<string>, card: string, mail: OutgoingMail[], payments: FakePayments }> {
  const db = await testDb(t)
  const payments = new FakePayments()
  const mail: OutgoingMail[] = []
  const app = await buildApp(testConfig({ PUBLIC_URL: ORIGIN }), { db, keyring: testKeyring(), paymentsFor: async () => payments, mailer: { send: async m => { mail.push(m); return { id: String(mail.length) } } } })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Brightline Managed IT')
  await setBrand(db, tenant.id, { supportEmail: 'billing@brightline.example' })
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.put('1', { company: '1', total: 120_000 })
  psa.put('2', { company: '1', total: 30_000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoiceId = async (n: string): Promise<string> => (await invoicesByPsaIds(db, tenant.id, 'connectwise', [n])).get(n)!.id
  const first = (await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1'])).get('1')!
  await db('customers').where({ tenant_id: tenant.id, id: first.customerId }).update({ billing_email: 'ap@harbor.example' })
  const card = await savePaymentMethod(db, tenant.id, { customerId: first.customerId, processorCustomerRef: 'cus_1', processorMethodRef: 'pm_1', type: 'card', brand: 'visa', last4: '4242', expMonth: 8, expYear: 2030, funding: 'debit', isDefault: true })
  const link = async (n: string, expiresAt = new Date(Date.now() + 86_400_000)): Promise<string> => `/pay/${signPayLink(app.keyring, { tenantId: tenant.id, invoiceId: await invoiceId(n), expiresAt })}`
  return { app, db, tenantId: tenant.id, link, invoiceId, card: card.id, mail, payments }
}

const html = { accept: 'text/html' }

t.test('a payment redirects to the page (a reload does not pay again) and the page is the record of it', async t => {
  const w = await world(t)
  const url = await w.link('1')
  const posted = await w.app.inject({ method: 'POST', url, headers: { origin: ORIGIN }, payload: { method: `${w.card}:0` } })
  t.equal(posted.statusCode, 303, 'POST/redirect/GET')
  const location = String(posted.headers.location)
  t.match(location, new RegExp(`^${url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\?paid=[0-9a-f-]{36}$`))
  const page = await w.app.inject({ url: location, headers: html })
  t.equal(page.statusCode, 200)
  t.match(page.body, /Thank you: your payment of \$1,200\.00 went through/)
  t.notMatch(page.body, /receipt is on its way/i, 'no receipt is promised: none is sent')
  t.match(page.body, /no receipt is emailed/)
  t.match(page.body, /Paid in full/)
  const again = await w.app.inject({ url: location, headers: html })
  t.equal(again.statusCode, 200, 'reloading the result page')
  t.equal(w.payments.charged.length, 1, 'charges nothing more')
  t.notMatch(page.body, /Email for receipts/, 'no field promises receipts either')
})

t.test('after a statement payment the page lists the invoices paid and the total', async t => {
  const w = await world(t)
  const url = await w.link('1')
  const before = await w.app.inject({ url, headers: html })
  t.match(before.body, /Pay all 2 invoices: \$1,500\.00/)
  const posted = await w.app.inject({ method: 'POST', url: `${url}/statement`, headers: { origin: ORIGIN }, payload: { method: `${w.card}:0` } })
  t.equal(posted.statusCode, 303)
  const page = await w.app.inject({ url: String(posted.headers.location), headers: html })
  const receipt = /<div class="receipt"[\s\S]*?<\/div>/.exec(page.body)?.[0] ?? ''
  t.match(receipt, /INV-1<\/td><td class="num">\$1,200\.00/, 'the first invoice and what it got')
  t.match(receipt, /INV-2<\/td><td class="num">\$300\.00/, 'the second')
  t.match(receipt, /Total<\/th><td class="num">\$1,500\.00/, 'and the total')
  t.match(page.body, /your payment of \$1,500\.00 went through/)
})

t.test('during an installment plan the page does not offer to pay the planned invoice in full', async t => {
  const w = await world(t)
  await setInstallmentSettings(w.db, w.tenantId, { minAmount: 50_000, maxParts: 6 })
  const url = await w.link('1')
  const offer = await w.app.inject({ url, headers: html })
  t.match(offer.body, /Pay \$1,200\.00<\/button>/, 'before a plan: pay in full')
  const preview = await w.app.inject({ method: 'POST', url: `${url}/installments/preview`, headers: { origin: ORIGIN }, payload: { parts: '3' } })
  const text = /name="text_shown" value="([^"]+)"/.exec(preview.body)?.[1]?.replace(/&#x27;/g, "'").replace(/&amp;/g, '&').replace(/&quot;/g, '"') ?? ''
  t.ok(text !== '', 'the schedule was shown')
  const agreed = await w.app.inject({ method: 'POST', url: `${url}/installments`, headers: { origin: ORIGIN }, payload: { method: w.card, parts: '3', text_shown: text, name: 'Dana Ortiz' } })
  t.equal(agreed.statusCode, 303, agreed.body.slice(0, 300))
  const page = await w.app.inject({ url: String(agreed.headers.location), headers: html })
  t.match(page.body, /Your plan of 3 payments is set up/)
  t.match(page.body, /The first payment of \$400\.00 went through/)
  t.notMatch(page.body, /Pay \$[\d,.]+<\/button>/, 'no pay-in-full button')
  t.notMatch(page.body, /Pay all \d+ invoices/, 'nor a statement that would pay it again')
  t.notMatch(page.body, /Or pay in monthly installments/, 'nor another plan')
  t.match(page.body, /being paid in installments/)
})

t.test('an expired link: the MSP\'s page with its contact and a way to a new link, the same answer for any address', async t => {
  const w = await world(t)
  const url = await w.link('1', new Date(Date.now() - 60_000))
  const page = await w.app.inject({ url, headers: html })
  t.equal(page.statusCode, 410)
  t.match(page.body, /This payment link has expired/)
  t.match(page.body, /class="pay-brand">Brightline Managed IT</, 'the MSP\'s brand')
  t.match(page.body, /mailto:billing@brightline\.example/, 'and contact')
  t.notMatch(page.body, /class="brand"|Overview|Back to the overview|Settle home/, 'not Settle\'s navigation')
  t.match(page.body, new RegExp(`action="${url}/renew"`), 'a form for a new link')

  const ask = async (email: string): Promise<{ status: number, body: string }> => {
    const posted = await w.app.inject({ method: 'POST', url: `${url}/renew`, headers: { origin: ORIGIN }, payload: { email } })
    const shown = await w.app.inject({ url: String(posted.headers.location), headers: html })
    return { status: posted.statusCode, body: shown.body }
  }
  const stranger = await ask('someone@else.example')
  const contact = await ask('AP@harbor.example ')
  t.equal(stranger.status, 303)
  t.equal(contact.status, 303)
  t.equal(stranger.body, contact.body, 'the same answer whether or not the address is known')
  t.match(contact.body, /If that address is a billing contact for this invoice, a new link is on its way/)
  const jobs = await w.db('jobs').where({ tenant_id: w.tenantId, queue: 'pay-link.resend' })
  t.equal(jobs.length, 1, 'one fresh link queued, for the billing contact only')

  const worker = new Worker({ db: w.db, handlers: w.app.jobHandlers, log: pino({ level: 'silent' }), concurrency: 1 })
  while (await worker.runOnce() > 0) { /* drain */ }
  const sent = w.mail.filter(m => m.kind === 'pay_link.resent')
  t.equal(sent.length, 1, 'through the mailer')
  t.equal(sent[0]?.to, 'ap@harbor.example', 'to the address on file')
  const fresh = new RegExp(`${ORIGIN}/pay/(\\S+)`).exec(sent[0]?.text ?? '')?.[1] ?? ''
  t.equal(verifyPayLink(w.app.keyring, fresh, new Date()).invoiceId, await w.invoiceId('1'), 'a working link to the same invoice')
  t.match(sent[0]?.text ?? '', /works until [A-Z][a-z]{2} \d{1,2}, \d{4}/, 'its validity in words')
})

t.test('a garbled link: a plain page without Settle\'s navigation', async t => {
  const w = await world(t)
  const page = await w.app.inject({ url: '/pay/not-a-token', headers: html })
  t.equal(page.statusCode, 404)
  t.match(page.body, /This payment link does not work/)
  t.match(page.body, /Contact the company that sent you this link/)
  t.notMatch(page.body, /class="brand"|Overview|Settle home/)
  const renew = await w.app.inject({ method: 'POST', url: '/pay/not-a-token/renew', headers: { origin: ORIGIN }, payload: { email: 'ap@harbor.example' } })
  t.equal(renew.statusCode, 303, 'asking anyway is answered like any other ask')
  t.equal((await w.db('jobs').where({ queue: 'pay-link.resend' })).length, 0)
})
