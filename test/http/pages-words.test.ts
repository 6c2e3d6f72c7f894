import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { setUpDemoCollection, startDemoApp } from '../helpers/demo-app.js'
import { testConfig } from '../helpers/fixtures.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS, CONNECTWISE_SANDBOX_MEMBER } from '../../src/sandbox/connectwise/index.js'
import { grantMember } from '../../src/services/embedded.js'
import { startupBanner } from '../../src/startup.js'

async function signIn (app: FastifyInstance): Promise<Record<string, string>> {
  const res = await app.inject({
    method: 'POST',
    url: '/embedded/cw/session',
    payload: { tenant: 'brightline', companyid: CONNECTWISE_SANDBOX_CREDENTIALS.companyId, memberid: CONNECTWISE_SANDBOX_MEMBER.memberId, memberHash: CONNECTWISE_SANDBOX_MEMBER.memberHash, memberContext: CONNECTWISE_SANDBOX_MEMBER.memberContext }
  })
  const body = res.json() as { session: string, csrf: string }
  return { 'x-settle-session': body.session, 'x-csrf-token': body.csrf }
}

const ISO_DATE = /\b20\d\d-\d\d-\d\d\b/
const html = { accept: 'text/html' }

t.test('the startup banner says where the data is', async t => {
  const demo = startupBanner(testConfig({ SETTLE_DEMO: 'true' }), 'http://127.0.0.1:3000')
  t.match(demo, /Database: PGlite \(in memory\); every start begins fresh/)
  t.notMatch(demo, /\.\/data/, 'not "./data" when the data is in memory')
  t.match(startupBanner(testConfig({ SETTLE_DEMO: 'false', DATA_DIR: '/var/lib/settle' }), 'http://x'), /Database: PGlite \(\/var\/lib\/settle\/pglite\)/)
})

t.test('pages a person reads: words, not codes; one date style; a status page; a favicon', async t => {
  const { app, db, base, tenants } = await startDemoApp(t)
  const brightline = tenants.find(x => x.slug === 'brightline')!
  await setUpDemoCollection({ app, db, base }, brightline.id, { withAccounting: true })

  await t.test('favicon and status', async t => {
    const icon = await app.inject({ url: '/favicon.ico' })
    t.equal(icon.statusCode, 200, '/favicon.ico is served')
    t.match(String(icon.headers['content-type']), /^image\/svg\+xml/)
    const status = await app.inject({ url: '/status', headers: html })
    t.equal(status.statusCode, 200)
    t.match(String(status.headers['content-type']), /text\/html/)
    t.match(status.body, /Settle is ready/)
    t.match(status.body, /Every migration has run/)
    t.match(status.body, /PGlite \(in memory\)/)
    const home = await app.inject({ url: '/', headers: html })
    t.match(home.body, /<a href="\/status">Status<\/a>/, 'the navigation opens the page, not raw JSON')
    t.same((await app.inject({ url: '/ready' })).json(), { status: 'ready', database: 'ok', migrations: 'current' }, 'the JSON stays for machines')
  })

  await t.test('the overview: ledger events and payouts in words, the pay link validity from PAY_LINK_DAYS', async t => {
    const home = await app.inject({ url: '/', headers: html })
    const events = [...home.body.matchAll(/<span class="kind kind-[^"]+">([^<]+)<\/span>/g)].map(m => m[1] ?? '')
    t.ok(events.length > 0, 'ledger entries are listed')
    t.same(events.filter(e => /[._]/.test(e)), [], `no codes such as payment.succeeded: ${[...new Set(events)].join(', ')}`)
    t.notMatch(home.body, />po_\w+</, 'no Stripe payout ids')
    t.match(home.body, /Each link is signed and expires in 14 days/)
  })

  await t.test('the pods: dates in words, who in words, an open invoice after a decline is not "Failed"', async t => {
    const headers = await signIn(app)
    await grantMember(db, brightline.id, 'connectwise', CONNECTWISE_SANDBOX_MEMBER.memberId, ['charge', 'sync'])
    const charged = await db('payment_attempts as a').join('invoices as i', function () { this.on('i.tenant_id', 'a.tenant_id').andOn('i.id', 'a.invoice_id') })
      .where('a.tenant_id', brightline.id).whereNotNull('a.invoice_id').first('i.psa_invoice_id', 'i.customer_id') as { psa_invoice_id: string, customer_id: string }
    const pod = await app.inject({ url: `/embedded/cw/invoice/view?id=${charged.psa_invoice_id}`, headers: await signIn(app) })
    t.equal(pod.statusCode, 200)
    t.notMatch(pod.body, ISO_DATE, 'no ISO dates in the invoice pod')
    t.match(pod.body, /<dt>Due<\/dt><dd>[A-Z][a-z]{2} \d{1,2}, \d{4}/, 'the due date in the one date style')
    t.notMatch(pod.body, /member:|cw:/, 'who acted, in words')

    // A technician charges the demo's declining card: the invoice stays open.
    const declining = await db('payment_methods').where({ tenant_id: brightline.id, last4: '9995', status: 'active' }).first('id', 'customer_id') as { id: string, customer_id: string }
    const target = await db('invoices').where({ tenant_id: brightline.id, customer_id: declining.customer_id }).whereIn('status', ['open', 'partially_paid']).first('id', 'psa_invoice_id') as { id: string, psa_invoice_id: string }
    const refused = await app.inject({ method: 'POST', url: '/embedded/cw/invoice/charge', headers, payload: { invoiceId: target.id, paymentMethodId: declining.id } })
    t.equal(refused.statusCode, 402, 'declined')
    const declined = await app.inject({ url: `/embedded/cw/invoice/view?id=${target.psa_invoice_id}`, headers })
    const badge = /<span class="badge badge-[a-z_]+">([^<]+)<\/span>/.exec(declined.body)?.[1]
    t.match(badge, /^(Open|Overdue)$/, `an open invoice is badged open, not "Failed" (got ${badge ?? 'none'})`)
    t.match(declined.body, /Declined/, 'the decline is in its history')

    const company = await db('customers as c').join('autopay_rules as r', function () { this.on('r.tenant_id', 'c.tenant_id').andOn('r.customer_id', 'c.id') })
      .where({ 'c.tenant_id': brightline.id, 'r.enrolled': true }).first('c.psa_company_id') as { psa_company_id: string }
    const tab = await app.inject({ url: `/embedded/cw/company/view?id=${company.psa_company_id}`, headers })
    t.equal(tab.statusCode, 200)
    t.notMatch(tab.body, ISO_DATE, 'no ISO dates on the company tab')
    t.notMatch(tab.body, /ach first|card first|ach mandate/i, 'auto-pay rule and authorisations in words')
    t.match(tab.body, /Charges (bank account first, then card|card first, then bank account|bank account only|card only)/)

    const qbo = await app.inject({ url: '/embedded/cw/quickbooks/view', headers })
    t.notMatch(qbo.body, /\b0 waiting/, 'never "0 waiting"')
    const sync = await app.inject({ method: 'POST', url: '/embedded/cw/quickbooks/sync', headers, payload: {} })
    const result = sync.json() as { posted: Array<{ url: string | null }>, message: string }
    t.notMatch(result.message, /\b0 still/, 'nor "0 still pending" after a sync')
    const urls = result.posted.map(p => p.url).filter((u): u is string => u !== null)
    t.ok(urls.length > 0, 'the sync posted documents with links')
    t.same(urls.filter(u => !u.startsWith('https://app.sandbox.qbo.intuit.com/')), [], 'sandbox books open in sandbox QuickBooks, not production')
    const after = await app.inject({ url: '/embedded/cw/quickbooks/view', headers })
    t.match(after.body, /Nothing waiting to post|\d+ documents? waiting to post/)
  })
})
