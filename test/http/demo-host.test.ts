import t from 'tap'
import { setUpDemoCollection, startDemoApp } from '../helpers/demo-app.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS } from '../../src/sandbox/connectwise/index.js'

t.test('the demo host frames the embedded pages and serves its host script', async t => {
  const { app, db, base, tenants } = await startDemoApp(t)
  const brightline = tenants.find(x => x.slug === 'brightline')!

  // Before stored methods exist, the host still shows an invoice to frame.
  const early = await app.inject({ method: 'GET', url: '/demo/cw/invoice' })
  t.equal(early.statusCode, 200)
  t.match(early.body, /<iframe data-hosted="invoice-pod"[^>]*\n?\s*src="\/embedded\/cw\/invoice\?tenant=brightline&amp;id=\d+"/)

  // The demo's collection setup gives clients a card and a bank account.
  await setUpDemoCollection({ app, db, base }, brightline.id)

  const redirect = await app.inject({ method: 'GET', url: '/demo' })
  t.equal(redirect.statusCode, 302)
  t.equal(redirect.headers.location, '/demo/cw/invoice')

  const res = await app.inject({ method: 'GET', url: '/demo/cw/invoice' })
  t.equal(res.statusCode, 200)
  const html = res.body
  t.match(html, /<script src="\/assets\/demo-host\.js"><\/script>/)
  t.notMatch(html, /<script>(?!<)/, 'no inline script (the CSP forbids it)')
  t.match(html, /id="charge-card-button"[^>]*>Charge card</)
  t.match(html, /data-lazy-src="\/embedded\/cw\/invoice\?tenant=brightline&amp;id=\d+"/)
  t.match(html, /data-hosted="quickbooks-pod"/)
  t.match(html, new RegExp(`data-company-id="${CONNECTWISE_SANDBOX_CREDENTIALS.companyId}"`))
  t.match(html, /card payer: .+ #\S+/)
  t.match(html, /ACH payer: .+ #\S+/)

  // The picked invoices are ConnectWise invoices of brightline with money owed and a method of the right type.
  const achId = /href="\/demo\/cw\/invoice\?id=(\d+)" id="ach-invoice-link"/.exec(html)?.[1]
  t.ok(achId !== undefined)
  const row = await db('invoices as i').join('payment_methods as m', function () { this.on('m.tenant_id', 'i.tenant_id').andOn('m.customer_id', 'i.customer_id') })
    .where({ 'i.tenant_id': brightline.id, 'i.psa_system': 'connectwise', 'i.psa_invoice_id': achId }).first('m.type')
  t.equal(row?.type, 'ach')
  const ach = await app.inject({ method: 'GET', url: `/demo/cw/invoice?id=${achId}` })
  t.match(ach.body, new RegExp(`src="/embedded/cw/invoice\\?tenant=brightline&amp;id=${achId}"`))

  t.equal((await app.inject({ method: 'GET', url: '/demo/cw/invoice?id=abc' })).statusCode, 400, 'ids are numbers')

  const company = await app.inject({ method: 'GET', url: '/demo/cw/company' })
  t.equal(company.statusCode, 200)
  t.match(company.body, /data-hosted="company-tab"[^>]*\n?\s*src="\/embedded\/cw\/company\?tenant=brightline&amp;id=\d+"/)
  t.match(company.body, /Settle: Payment status/)

  const script = await app.inject({ method: 'GET', url: '/assets/demo-host.js' })
  t.equal(script.statusCode, 200)
  t.match(script.headers['content-type'], /javascript/)
  t.match(script.body, /MessageFrameID/)
  t.match(script.body, /getmemberauthentication|toLowerCase/)
  t.equal((await app.inject({ method: 'GET', url: '/assets/demo-host.css' })).statusCode, 200)
})

t.test('no demo host outside the embedded default', async t => {
  const { buildApp } = await import('../../src/app.js')
  const { testDb } = await import('../helpers/db.js')
  const { testConfig, testKeyring } = await import('../helpers/fixtures.js')
  const app = await buildApp(testConfig(), { db: await testDb(t), keyring: testKeyring() })
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject({ method: 'GET', url: '/demo/cw/invoice' })).statusCode, 404)
})
