import t from 'tap'
import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { FakePayments } from '../helpers/fake-payments.js'
import { buildApp } from '../../src/app.js'
import { Keyring } from '../../src/security/keyring.js'
import { signPayLink, verifyPayLink } from '../../src/security/pay-links.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'
import { syncInvoices } from '../../src/services/sync.js'
import { chargeInvoice } from '../../src/services/charge.js'
import { Worker } from '../../src/jobs/worker.js'
import type { OutgoingMail } from '../../src/ports/mailer.js'

t.test('signed pay links', async t => {
  const old = Keyring.generateEntry('old')
  const keyring = new Keyring(old)
  const link = { tenantId: randomUUID(), invoiceId: randomUUID(), expiresAt: new Date('2026-12-10T00:00:00Z') }
  const token = signPayLink(keyring, link)
  t.same(verifyPayLink(keyring, token, new Date('2026-12-01T00:00:00Z')), link)
  const code = (fn: () => unknown): string => { try { fn(); return 'ok' } catch (e) { return (e as { code: string }).code } }
  t.equal(code(() => verifyPayLink(keyring, token, new Date('2026-12-11T00:00:00Z'))), 'PAY_LINK_EXPIRED')
  const [payload, keyId, mac] = token.split('.')
  const forged = Buffer.from(JSON.stringify({ t: link.tenantId, i: randomUUID(), e: 1_900_000_000 })).toString('base64url')
  t.equal(code(() => verifyPayLink(keyring, `${forged}.${keyId ?? ''}.${mac ?? ''}`, new Date())), 'PAY_LINK_INVALID', 'another invoice under the same signature')
  t.equal(code(() => verifyPayLink(keyring, `${payload ?? ''}.nokey.${mac ?? ''}`, new Date())), 'PAY_LINK_INVALID')
  t.equal(code(() => verifyPayLink(keyring, 'garbage', new Date())), 'PAY_LINK_INVALID')
  t.equal(code(() => verifyPayLink(new Keyring(`${Keyring.generateEntry('new')},${old}`), token, new Date('2026-12-01T00:00:00Z'))), 'ok', 'old links survive a key rotation')
})

t.test('a collection that gives up tells the client, whose link pays the invoice', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  const payments = new FakePayments()
  const mail: OutgoingMail[] = []
  const app = await buildApp(testConfig({ PUBLIC_URL: 'https://pay.brightline.example' }), { db, keyring, paymentsFor: async () => payments, mailer: { send: async m => { mail.push(m); return { id: String(mail.length) } } } })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Brightline Managed IT')
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.put('1', { company: '1', total: 123_456 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const invoice = (await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1'])).get('1')!
  const card = await savePaymentMethod(db, tenant.id, { customerId: invoice.customerId, processorCustomerRef: 'cus_1', processorMethodRef: 'pm_1', type: 'card', brand: 'visa', last4: '4242', expMonth: 8, expYear: 2030, funding: 'credit', isDefault: true })

  payments.script = () => ({ status: 'failed', intentId: 'pi_f', failure: { code: 'card_declined', declineCode: 'fraudulent', adviceCode: 'do_not_try_again', message: 'Declined.' }, raw: {} })
  await chargeInvoice(db, payments, { tenantId: tenant.id, invoiceId: invoice.id, paymentMethodId: card.id, actor: 'autopay', trigger: 'autopay' })
  const worker = new Worker({ db, handlers: app.jobHandlers, log: pino({ level: 'silent' }), concurrency: 1 })
  while (await worker.runOnce() > 0) { /* drain */ }

  const exception = await db('collection_exceptions').where({ tenant_id: tenant.id }).first()
  t.match(exception, { reason: /never_retry/, explanation: /never to retry/, next_step: /another payment method/ }, 'on the exceptions list with the reason')
  t.equal(mail.length, 1, 'the client was told once')
  t.match(mail[0]?.subject, /invoice INV-1 did not go through/)
  t.match(mail[0]?.text, /\$1,234\.56/)
  const url = /https:\/\/pay\.brightline\.example(\/pay\/\S+)/.exec(mail[0]?.text ?? '')?.[1]
  t.ok(url, 'with a pay link')

  const page = await app.inject({ url: url ?? '', headers: { accept: 'text/html' } })
  t.equal(page.statusCode, 200, page.statusCode === 200 ? '' : (/<p>([^<]*)<\/p>/.exec(page.body)?.[1] ?? page.body.slice(0, 200)))
  t.match(page.body, /Invoice INV-1/)
  t.match(page.body, /\$1,234\.56 due/)
  t.match(page.body, /Visa ending 4242, expires 08\/2030/)
  t.notMatch(page.body, /class="brand"|Overview/, 'white-label: no Settle navigation')
  t.equal(page.headers['cache-control'], 'no-store')

  const foreign = await app.inject({ method: 'POST', url: url ?? '', headers: { origin: 'https://evil.example' }, payload: { method: `${card.id}:0` } })
  t.equal(foreign.statusCode, 400, 'a form posted from another site is refused')

  payments.script = input => ({ status: 'succeeded', intentId: 'pi_ok', chargeId: 'ch_ok', fee: { amount: 3610, currency: input.amount.currency }, raw: {} })
  const posted = await app.inject({ method: 'POST', url: url ?? '', headers: { origin: 'https://pay.brightline.example' }, payload: { method: `${card.id}:0` } })
  t.equal(posted.statusCode, 303, 'the post redirects to the page')
  const paid = await app.inject({ url: String(posted.headers.location), headers: { accept: 'text/html' } })
  t.match(paid.body, /Thank you: your payment of \$1,234\.56 went through/)
  t.match(paid.body, /Paid in full/)
  t.equal(payments.charged.at(-1)?.amount.amount, 123_456)
  t.equal((await invoicesByPsaIds(db, tenant.id, 'connectwise', ['1'])).get('1')?.status, 'paid')
  const again = await app.inject({ method: 'POST', url: url ?? '', payload: { method: `${card.id}:0` } })
  t.equal(again.statusCode, 409, 'paying twice is refused with a reason')
  t.match(again.body, /nothing open/)

  t.equal((await app.inject({ url: '/pay/not-a-token', headers: { accept: 'text/html' } })).statusCode, 404)
})
