import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { startDemoApp } from '../helpers/demo-app.js'
import { client } from '../helpers/stripe-harness.js'
import { countRows, makeTenant } from '../helpers/fixtures.js'
import { savePsaConnection, updatePsaSettings } from '../../src/db/psa.js'
import { savePaymentMethod } from '../../src/db/payments.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS, CONNECTWISE_SANDBOX_MEMBER } from '../../src/sandbox/connectwise/index.js'
import { connectWiseEmbedding, grantMember, liveLinkKey, liveLinkTemplates, signedLiveLinkUrl } from '../../src/services/embedded.js'
import { signLiveLink } from '../../src/security/embedded-sessions.js'
import { createApiKey } from '../../src/security/api-keys.js'

const member = (over: Record<string, string> = {}): Record<string, string> => ({
  tenant: 'brightline', site: 'ignored', companyid: CONNECTWISE_SANDBOX_CREDENTIALS.companyId,
  memberid: CONNECTWISE_SANDBOX_MEMBER.memberId, memberHash: CONNECTWISE_SANDBOX_MEMBER.memberHash, memberContext: CONNECTWISE_SANDBOX_MEMBER.memberContext, ...over
})

async function signIn (app: FastifyInstance, over: Record<string, string> = {}): Promise<{ statusCode: number, body: any }> {
  const res = await app.inject({ method: 'POST', url: '/embedded/cw/session', payload: member(over) })
  return { statusCode: res.statusCode, body: res.json() }
}

t.test('embedded pages: handshake-verified sessions, CSRF, permissions, framing, escaping, Charge card', async t => {
  const { app, db, base, tenants } = await startDemoApp(t)
  const cw = tenants.find(x => x.slug === 'brightline')!
  const at = tenants.find(x => x.slug === 'cobalt')!
  const origin = new URL(base).origin

  // A ConnectWise invoice with a balance, its client given a stored card in the Stripe stand-in.
  const row = await db('invoices').where({ tenant_id: cw.id, voided: false }).whereRaw('ledger_billed - paid_via_settle - ledger_paid_elsewhere > 5000').orderBy('psa_invoice_id').first() as { id: string, psa_invoice_id: string, customer_id: string, number: string }
  const stripe = client(Number(new URL(base).port))
  const sc = await stripe.customers.create({ name: 'Embedded test' })
  const pm = await stripe.paymentMethods.attach('pm_card_visa', { customer: sc.id })
  const card = await savePaymentMethod(db, cw.id, { customerId: row.customer_id, processorCustomerRef: sc.id, processorMethodRef: pm.id, type: 'card', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030, funding: 'credit', isDefault: true })
  const psaCompany = (await db('customers').where({ tenant_id: cw.id, id: row.customer_id }).first('psa_company_id') as { psa_company_id: string }).psa_company_id
  // XSS attempts in PSA data.
  await db('customers').where({ tenant_id: cw.id, id: row.customer_id }).update({ name: '<script>alert("co")</script>' })
  await db('invoices').where({ tenant_id: cw.id, id: row.id }).update({ number: '<img src=x onerror=alert(1)>' })

  await t.test('the shell carries no data and frames only for the tenant\'s ConnectWise origin', async t => {
    for (const surface of ['invoice', 'company', 'quickbooks']) {
      const res = await app.inject({ method: 'GET', url: `/embedded/cw/${surface}?tenant=brightline&id=${surface === 'company' ? psaCompany : row.psa_invoice_id}`, headers: { host: new URL(base).host } })
      t.equal(res.statusCode, 200, surface)
      const csp = String(res.headers['content-security-policy'])
      t.match(csp, new RegExp(`frame-ancestors ${origin.replace(/[.]/g, '\\.')}$`), `${surface}: frame-ancestors names only the tenant's origin`)
      t.notOk(/frame-ancestors[^;]*'self'/.test(csp))
      t.equal(res.headers['x-frame-options'], undefined, 'no X-Frame-Options to contradict it')
      t.match(res.body, `data-origins="${origin}"`)
      t.notMatch(res.body, /script>alert|4242|onerror/, 'no PSA data before the member is verified')
    }
    t.equal((await app.inject({ method: 'GET', url: '/embedded/cw/invoice?tenant=nobody&id=1' })).statusCode, 404)
    t.equal((await app.inject({ method: 'GET', url: '/embedded/cw/invoice?tenant=brightline&id=1%20or%201' })).statusCode, 400)
  })

  await t.test('a real ConnectWise site: framed only from its browser origin (api-na → na), or the origins the connection lists', async t => {
    const other = await makeTenant(db, 'Real Site MSP')
    await savePsaConnection(db, other.id, 'connectwise', { site: 'https://api-na.myconnectwise.net', companyId: 'realco', publicKey: 'p', clientId: 'c' })
    t.same((await connectWiseEmbedding(db, other.id, null))?.origins, ['https://na.myconnectwise.net'])
    const res = await app.inject({ method: 'GET', url: `/embedded/cw/invoice?tenant=${other.slug}&id=1` })
    t.match(String(res.headers['content-security-policy']), /frame-ancestors https:\/\/na\.myconnectwise\.net$/)
    await updatePsaSettings(db, other.id, 'connectwise', { embedOrigins: 'https://eu.myconnectwise.net, javascript:alert(1)' })
    t.same((await connectWiseEmbedding(db, other.id, null))?.origins, ['https://eu.myconnectwise.net'], 'only https origins survive')
  })

  await t.test('the stand-in rejects a wrong memberHash: no session, no data', async t => {
    const wrong = await signIn(app, { memberHash: 'forged-hash' })
    t.equal(wrong.statusCode, 401)
    t.equal(wrong.body.error.code, 'UNAUTHENTICATED')
    t.equal((await signIn(app, { companyid: 'othercompany' })).statusCode, 401, 'another company\'s member')
    t.equal((await signIn(app, { memberid: 'someone.else' })).statusCode, 401, 'the hash of another member')
    t.equal((await app.inject({ method: 'GET', url: `/embedded/cw/invoice/view?id=${row.psa_invoice_id}` })).statusCode, 401, 'no session header')
    t.equal((await app.inject({ method: 'GET', url: `/embedded/cw/invoice/view?id=${row.psa_invoice_id}`, headers: { 'x-settle-session': 'e30.k.x' } })).statusCode, 401, 'a forged token')
    t.ok(await db('audit_log').where({ tenant_id: cw.id, action: 'embedded.sign_in_refused' }).first(), 'refusals are audited')
  })

  const ok = await signIn(app)
  t.equal(ok.statusCode, 200, 'the demo member is verified')
  t.same(ok.body.permissions, ['view', 'charge', 'sync', 'paylink'])
  const session = ok.body.session as string
  const csrf = ok.body.csrf as string
  const headers = { 'x-settle-session': session, 'x-csrf-token': csrf }

  await t.test('every page renders with the session, PSA data escaped', async t => {
    const inv = await app.inject({ method: 'GET', url: `/embedded/cw/invoice/view?id=${row.psa_invoice_id}`, headers })
    t.equal(inv.statusCode, 200)
    t.match(inv.body, 'Visa ····4242')
    t.match(inv.body, 'id="charge-form"')
    t.match(inv.body, '&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;')
    t.match(inv.body, '&lt;script&gt;alert(&quot;co&quot;)&lt;/script&gt;')
    t.notMatch(inv.body, '<img src=x')
    t.notMatch(inv.body, '<script>alert')
    t.match(inv.body, /class="badge badge-(open|overdue)">(Open|Overdue)/)
    const co = await app.inject({ method: 'GET', url: `/embedded/cw/company/view?id=${psaCompany}`, headers })
    t.equal(co.statusCode, 200)
    t.match(co.body, '&lt;script&gt;alert(&quot;co&quot;)&lt;/script&gt;')
    t.notMatch(co.body, '<script>alert')
    t.match(co.body, 'Open invoices')
    t.match(co.body, 'Not enrolled in auto-pay')
    const qb = await app.inject({ method: 'GET', url: '/embedded/cw/quickbooks/view', headers })
    t.equal(qb.statusCode, 200)
    // The demo tenant keeps its books on the QuickBooks stand-in.
    t.match(qb.body, 'Connected')
    t.match(qb.body, 'Sync now')
    const sync = await app.inject({ method: 'POST', url: '/embedded/cw/quickbooks/sync', headers, payload: {} })
    t.equal(sync.statusCode, 200)
    t.match(sync.json(), { connected: true, message: /posted, \d+ failed/ })
    t.ok(await db('audit_log').where({ tenant_id: cw.id, actor: `cw:${CONNECTWISE_SANDBOX_MEMBER.memberId}`, action: 'quickbooks.sync' }).first(), 'sync audited with the member')
    t.equal((await app.inject({ method: 'GET', url: '/embedded/cw/invoice/view?id=999999999', headers })).statusCode, 404, 'an invoice not synced yet')
  })

  await t.test('CSRF missing or wrong: 403 and nothing charged', async t => {
    const before = await countRows(db, 'payment_attempts')
    const payload = { invoiceId: row.id, paymentMethodId: card.id, amount: 1000 }
    const none = await app.inject({ method: 'POST', url: '/embedded/cw/invoice/charge', headers: { 'x-settle-session': session }, payload })
    t.equal(none.statusCode, 403)
    const other = (await signIn(app)).body.csrf as string
    t.not(other, csrf)
    t.equal((await app.inject({ method: 'POST', url: '/embedded/cw/invoice/charge', headers: { 'x-settle-session': session, 'x-csrf-token': other }, payload })).statusCode, 403, 'another session\'s token')
    t.equal((await app.inject({ method: 'POST', url: '/embedded/cw/invoice/charge', headers: { 'x-settle-session': session, 'x-csrf-token': csrf + 'x' }, payload })).statusCode, 403)
    t.equal(await countRows(db, 'payment_attempts'), before)
  })

  await t.test('a view-only member cannot charge', async t => {
    await db('embedded_member_permissions').where({ tenant_id: cw.id }).delete()
    const view = await signIn(app)
    t.same(view.body.permissions, ['view'])
    const h = { 'x-settle-session': view.body.session, 'x-csrf-token': view.body.csrf }
    const page = await app.inject({ method: 'GET', url: `/embedded/cw/invoice/view?id=${row.psa_invoice_id}`, headers: h })
    t.notMatch(page.body, 'id="charge-form"', 'no Charge card form')
    const res = await app.inject({ method: 'POST', url: '/embedded/cw/invoice/charge', headers: h, payload: { invoiceId: row.id, paymentMethodId: card.id } })
    t.equal(res.statusCode, 403)
    t.match(res.json().error.message, /charge/)
    t.equal((await app.inject({ method: 'POST', url: '/embedded/cw/quickbooks/sync', headers: h, payload: {} })).statusCode, 403, 'nor sync')
    t.equal(await db('payment_attempts').where({ tenant_id: cw.id, invoice_id: row.id }).count('* as n').first().then(r => Number(r?.n)), 0)
    await grantMember(db, cw.id, 'connectwise', CONNECTWISE_SANDBOX_MEMBER.memberId, ['charge', 'sync'])
  })

  await t.test('Charge card through the pod: quote, confirm, attempt and audit with the member, status poll', async t => {
    const quote = await app.inject({ method: 'POST', url: '/embedded/cw/invoice/quote', headers, payload: { invoiceId: row.id, paymentMethodId: card.id, amount: 2500 } })
    t.equal(quote.statusCode, 200)
    t.match(quote.json().text, /^Charge \$25\.00 to visa ending 4242/)
    const res = await app.inject({ method: 'POST', url: '/embedded/cw/invoice/charge', headers, payload: { invoiceId: row.id, paymentMethodId: card.id, amount: 2500, expectedSurcharge: quote.json().surchargeCents } })
    t.equal(res.statusCode, 201)
    t.match(res.json(), { outcome: 'succeeded', attempt: { status: 'succeeded', statusLabel: 'Paid' } })
    const attempt = await db('payment_attempts').where({ tenant_id: cw.id, invoice_id: row.id }).first() as { id: string, actor: string, amount: number, trigger: string }
    t.match(attempt, { actor: `cw:${CONNECTWISE_SANDBOX_MEMBER.memberId}`, amount: 2500, trigger: 'charge_card' })
    const auditRow = await db('audit_log').where({ tenant_id: cw.id, action: 'payment.charge', subject: row.id }).first() as { actor: string }
    t.equal(auditRow.actor, `cw:${CONNECTWISE_SANDBOX_MEMBER.memberId}`)
    const status = await app.inject({ method: 'GET', url: `/embedded/cw/attempts/${attempt.id}`, headers: { 'x-settle-session': session } })
    t.match(status.json(), { done: true, attempt: { status: 'succeeded' }, amountText: '$25.00' })
    const page = await app.inject({ method: 'GET', url: `/embedded/cw/invoice/view?id=${row.psa_invoice_id}`, headers })
    t.match(page.body, /\$25\.00/, 'the history shows the attempt')
    const tooMuch = await app.inject({ method: 'POST', url: '/embedded/cw/invoice/charge', headers, payload: { invoiceId: row.id, paymentMethodId: card.id, amount: 999_999_999 } })
    t.equal(tooMuch.statusCode, 422)
    const link = await app.inject({ method: 'POST', url: '/embedded/cw/invoice/pay-link', headers, payload: { invoiceId: row.id } })
    t.equal(link.statusCode, 200)
    t.match(link.json().url, /\/pay\//)
  })

  await t.test('Charge statement on the company tab: the ticked invoices in one charge, oldest due first, audited', async t => {
    const owed = await db('invoices').where({ tenant_id: cw.id, customer_id: row.customer_id, voided: false }).whereRaw('ledger_billed - paid_via_settle - ledger_paid_elsewhere > 0')
      .orderBy([{ column: 'due_on' }, { column: 'issued_on' }]).select('id', 'psa_invoice_id', 'number') as Array<{ id: string, psa_invoice_id: string, number: string }>
    t.ok(owed.length >= 2, 'the demo client owes more than one invoice')
    const page = await app.inject({ method: 'GET', url: `/embedded/cw/company/view?id=${psaCompany}`, headers })
    t.match(page.body, 'Charge statement')
    t.equal(page.body.match(/name="invoiceIds"/g)?.length, owed.length, 'a tick box per open invoice')
    const payload = { customerId: row.customer_id, invoiceIds: owed.map(o => o.id), paymentMethodId: card.id }
    t.equal((await app.inject({ method: 'POST', url: '/embedded/cw/company/charge', headers: { 'x-settle-session': session }, payload })).statusCode, 403, 'CSRF still required')
    t.equal((await app.inject({ method: 'POST', url: '/embedded/cw/company/quote', headers, payload: { ...payload, invoiceIds: [] } })).json().error.code, 'VALIDATION_FAILED', 'nothing ticked')
    const quote = await app.inject({ method: 'POST', url: '/embedded/cw/company/quote', headers, payload })
    t.equal(quote.statusCode, 200)
    t.match(quote.json().text, new RegExp(`to visa ending 4242 in one payment over ${owed.length} invoices, oldest due first`))
    t.equal(quote.json().lines.length, owed.length)
    t.match(quote.json().lines[0], /\(pays it in full\)/)
    const res = await app.inject({ method: 'POST', url: '/embedded/cw/company/charge', headers, payload: { ...payload, expectedSurcharge: quote.json().surchargeCents } })
    t.equal(res.statusCode, 201)
    t.match(res.json(), { outcome: 'succeeded', attempt: { status: 'succeeded' } })
    const attempt = await db('payment_attempts').where({ tenant_id: cw.id, id: res.json().attempt.id }).first() as { invoice_id: string | null, actor: string, amount: string }
    t.equal(attempt.invoice_id, null, 'one statement attempt')
    t.equal(attempt.actor, `cw:${CONNECTWISE_SANDBOX_MEMBER.memberId}`)
    t.equal(await db('payment_attempt_allocations').where({ attempt_id: res.json().attempt.id }).count('* as n').first().then(r => Number(r?.n)), owed.length)
    const auditRow = await db('audit_log').where({ tenant_id: cw.id, action: 'payment.charge_statement', subject: row.customer_id }).first() as { actor: string }
    t.equal(auditRow.actor, `cw:${CONNECTWISE_SANDBOX_MEMBER.memberId}`)
    const pod = await app.inject({ method: 'GET', url: `/embedded/cw/invoice/view?id=${owed[1]!.psa_invoice_id}`, headers })
    t.match(pod.body, /statement payment/, 'each invoice\'s pod shows its share of the statement payment')
    t.match(pod.body, /class="badge badge-paid">Paid/)
    const again = await app.inject({ method: 'POST', url: '/embedded/cw/company/charge', headers, payload })
    t.equal(again.json().error.code, 'NOTHING_TO_CHARGE', 'paid invoices cannot be charged again')
    t.notMatch((await app.inject({ method: 'GET', url: `/embedded/cw/company/view?id=${psaCompany}`, headers })).body, 'Charge statement', 'nothing open: no form')
  })

  await t.test('Autotask: unsigned or stale LiveLink → sign-in; signed → page; API-key sign-in', async t => {
    const inv = await db('invoices').where({ tenant_id: at.id }).orderBy('psa_invoice_id').first() as { psa_invoice_id: string }
    const unsigned = await app.inject({ method: 'GET', url: `/embedded/autotask/invoice?tenant=cobalt&id=${inv.psa_invoice_id}` })
    t.equal(unsigned.statusCode, 200)
    t.match(unsigned.body, 'Sign in to Settle')
    t.notMatch(unsigned.body, 'data-session')
    const key = await liveLinkKey(db, app.keyring, at.id)
    const stale = signLiveLink(key, { tenantSlug: 'cobalt', kind: 'invoice', recordId: inv.psa_invoice_id, expiresAt: new Date(Date.now() - 1000) })
    const staleRes = await app.inject({ method: 'GET', url: `/embedded/autotask/invoice?tenant=cobalt&id=${inv.psa_invoice_id}&exp=${stale.exp}&sig=${stale.sig}` })
    t.match(staleRes.body, 'This link has expired')
    const good = signLiveLink(key, { tenantSlug: 'cobalt', kind: 'invoice', recordId: inv.psa_invoice_id, expiresAt: new Date(Date.now() + 600_000) })
    const other = await app.inject({ method: 'GET', url: `/embedded/autotask/invoice?tenant=cobalt&id=1${inv.psa_invoice_id}&exp=${good.exp}&sig=${good.sig}` })
    t.match(other.body, 'Sign in to Settle', 'a signature for another record')
    const signed = await app.inject({ method: 'GET', url: `/embedded/autotask/invoice?tenant=cobalt&id=${inv.psa_invoice_id}&exp=${good.exp}&sig=${good.sig}` })
    t.match(signed.body, 'data-session="')
    const token = /data-session="([^"]+)"/.exec(signed.body)![1]!
    const view = await app.inject({ method: 'GET', url: `/embedded/autotask/invoice/view?id=${inv.psa_invoice_id}`, headers: { 'x-settle-session': token } })
    t.equal(view.statusCode, 200)
    t.match(view.body, 'Payment history')
    t.notMatch(view.body, 'id="charge-form"', 'a LiveLink alone may only view')
    t.equal((await app.inject({ method: 'GET', url: `/embedded/cw/invoice/view?id=${row.psa_invoice_id}`, headers: { 'x-settle-session': token } })).statusCode, 401, 'an Autotask session is not a ConnectWise one')

    const bad = await app.inject({ method: 'POST', url: '/embedded/autotask/sign-in', payload: { tenant: 'cobalt', surface: 'company', id: '1', apiKey: 'nope' } })
    t.equal(bad.statusCode, 401)
    t.match(bad.body, 'That key was not accepted')
    const cwKey = await createApiKey(db, cw.id, 'wrong tenant', ['payments:read'])
    t.equal((await app.inject({ method: 'POST', url: '/embedded/autotask/sign-in', payload: { tenant: 'cobalt', surface: 'company', id: '1', apiKey: cwKey.key } })).statusCode, 401, 'another tenant\'s key')
    const staff = await createApiKey(db, at.id, 'finance', ['payments:read', 'payments:charge'])
    const company = await db('customers').where({ tenant_id: at.id }).first('psa_company_id') as { psa_company_id: string }
    const inRes = await app.inject({ method: 'POST', url: '/embedded/autotask/sign-in', payload: { tenant: 'cobalt', surface: 'company', id: company.psa_company_id, apiKey: staff.key } })
    t.equal(inRes.statusCode, 200)
    const staffToken = /data-session="([^"]+)"/.exec(inRes.body)![1]!
    const co = await app.inject({ method: 'GET', url: `/embedded/autotask/company/view?id=${company.psa_company_id}`, headers: { 'x-settle-session': staffToken } })
    t.equal(co.statusCode, 200)
    t.match(co.body, 'Auto-pay')
    t.match(liveLinkTemplates('https://settle.example', 'cobalt').invoice, 'https://settle.example/embedded/autotask/invoice?tenant=cobalt&id=')
    const made = await signedLiveLinkUrl(db, app.keyring, 'https://settle.example', at, 'invoice', inv.psa_invoice_id)
    const viaService = await app.inject({ method: 'GET', url: made.replace('https://settle.example', '') })
    t.match(viaService.body, 'data-session="', 'a link from signedLiveLinkUrl opens the page')
    const rotated = await liveLinkKey(db, app.keyring, at.id, { rotate: true })
    t.not(rotated, key)
    t.match((await app.inject({ method: 'GET', url: made.replace('https://settle.example', '') })).body, 'Sign in to Settle', 'rotating the key retires old links')
  })

  await t.test('a page left open renews its session; permissions are read again; 12 hours after sign-in it must sign in again', async t => {
    const { issueSession, verifySession, SIGN_IN_MAX_AGE_MS } = await import('../../src/security/embedded-sessions.js')
    const renew = async (h: Record<string, string>, psa = 'cw'): Promise<{ statusCode: number, body: any }> => {
      const res = await app.inject({ method: 'POST', url: `/embedded/${psa}/session/renew`, headers: h, payload: {} })
      return { statusCode: res.statusCode, body: res.json() }
    }
    t.equal((await renew({ 'x-settle-session': session })).statusCode, 403, 'a renewal needs the CSRF token')
    const first = verifySession(app.keyring, session)
    const renewed = await renew(headers)
    t.equal(renewed.statusCode, 200)
    const next = verifySession(app.keyring, renewed.body.session)
    t.equal(next.member, first.member)
    t.equal(next.signedInAt.getTime(), first.signedInAt.getTime(), 'the sign-in time is carried, not reset')
    t.ok(next.expiresAt >= first.expiresAt)
    t.equal((await app.inject({ method: 'GET', url: `/embedded/cw/invoice/view?id=${row.psa_invoice_id}`, headers: { 'x-settle-session': renewed.body.session } })).statusCode, 200, 'the renewed session works')

    const revoked = await db('embedded_member_permissions').where({ tenant_id: cw.id, member_ref: CONNECTWISE_SANDBOX_MEMBER.memberId, permission: 'sync' }).delete().returning('id')
    const fewer = await renew({ 'x-settle-session': renewed.body.session, 'x-csrf-token': renewed.body.csrf })
    t.equal(revoked.length, 1, 'the demo member holds sync by name')
    t.same(fewer.body.permissions, ['view', 'charge'], 'a revoked grant is gone at the next renewal')
    await grantMember(db, cw.id, 'connectwise', CONNECTWISE_SANDBOX_MEMBER.memberId, ['sync'])

    const old = issueSession(app.keyring, { tenantId: cw.id, system: 'connectwise', member: first.member, permissions: ['view'], signedInAt: new Date(Date.now() - SIGN_IN_MAX_AGE_MS - 60_000) })
    const tooOld = await renew({ 'x-settle-session': old.token, 'x-csrf-token': old.csrf })
    t.equal(tooOld.statusCode, 401, 'past 12 hours the member is proven again (the handshake), not renewed')
    t.equal(tooOld.body.error.code, 'UNAUTHENTICATED')

    const staff = await createApiKey(db, at.id, 'renewing staff', ['payments:read', 'payments:charge'])
    const company = await db('customers').where({ tenant_id: at.id }).first('psa_company_id') as { psa_company_id: string }
    const signedIn = await app.inject({ method: 'POST', url: '/embedded/autotask/sign-in', payload: { tenant: 'cobalt', surface: 'company', id: company.psa_company_id, apiKey: staff.key } })
    const token = /data-session="([^"]+)"/.exec(signedIn.body)![1]!
    const csrfToken = /data-csrf="([^"]+)"/.exec(signedIn.body)![1]!
    const ok = await renew({ 'x-settle-session': token, 'x-csrf-token': csrfToken }, 'autotask')
    t.same(ok.body.permissions, ['view', 'charge'], 'an API-key session renews with its key\'s scopes')
    await db('api_keys').where({ tenant_id: at.id, name: 'renewing staff' }).update({ revoked_at: new Date() })
    t.equal((await renew({ 'x-settle-session': ok.body.session, 'x-csrf-token': ok.body.csrf }, 'autotask')).statusCode, 401, 'a revoked key does not renew')
  })

  await t.test('QuickBooks pod: a refused sign-in shows Reconnect, which runs Intuit\'s OAuth in a new window and comes back connected', async t => {
    await db('accounting_connections').where({ tenant_id: cw.id }).update({ status: 'reconnect_required', last_error: 'the token endpoint answered 400 invalid_grant.' })
    const pod = await app.inject({ method: 'GET', url: '/embedded/cw/quickbooks/view', headers })
    t.match(pod.body, 'Reconnect needed')
    t.match(pod.body, 'id="qbo-connect"')
    t.match(pod.body, 'invalid_grant')
    t.notMatch(pod.body, 'id="qbo-sync"', 'no Sync now while nothing can post')
    t.equal((await app.inject({ method: 'POST', url: '/embedded/cw/quickbooks/connect', headers: { 'x-settle-session': session }, payload: {} })).statusCode, 403, 'needs the CSRF token')
    const started = await app.inject({ method: 'POST', url: '/embedded/cw/quickbooks/connect', headers, payload: {} })
    t.equal(started.statusCode, 200)
    const begin = new URL(started.json().url)
    t.equal(begin.pathname, '/connect/quickbooks/begin', 'the new window opens Settle first, which binds the flow to that browser')
    const opened = await app.inject({ url: begin.pathname + begin.search })
    const cookie = String(opened.headers['set-cookie']).split(';')[0]!
    const authorize = new URL(String(opened.headers.location))
    t.match(authorize.pathname, /\/sandbox\/quickbooks\/connect\/oauth2$/, 'the demo tenant reconnects to its stand-in')
    t.equal(authorize.searchParams.get('scope'), 'com.intuit.quickbooks.accounting')
    const consent = await app.inject({ url: authorize.pathname + authorize.search })
    const back = new URL(String(consent.headers.location))
    const done = await app.inject({ url: back.pathname + back.search, headers: { accept: 'text/html', cookie } })
    t.equal(done.statusCode, 200)
    t.match(done.headers['content-type'], /text\/html/)
    t.match(done.body, 'QuickBooks is connected')
    t.equal((await db('accounting_connections').where({ tenant_id: cw.id }).first('status')).status, 'active')
    t.match((await app.inject({ method: 'GET', url: '/embedded/cw/quickbooks/view', headers })).body, 'id="qbo-sync"', 'connected again: Sync now is back')
    t.ok(await db('audit_log').where({ tenant_id: cw.id, action: 'quickbooks.connect_started' }).first(), 'audited with the member')
  })

  await t.test('the invoice pod is rebuilt whenever a row behind it changes, and only then', async t => {
    const pod = async (): Promise<string> => (await app.inject({ method: 'GET', url: `/embedded/cw/invoice/view?id=${row.psa_invoice_id}`, headers })).body
    const first = await pod()
    t.equal(await pod(), first, 'nothing changed: the same page')
    await db('customers').where({ tenant_id: cw.id, id: row.customer_id }).update({ name: 'Renamed Dental LLC' })
    t.match(await pod(), 'Renamed Dental LLC', 'a customer renamed')
    await db('invoices').where({ tenant_id: cw.id, id: row.id }).update({ number: 'INV-REBUILT-1' })
    t.match(await pod(), 'INV-REBUILT-1', 'an invoice changed')
    const method = await db('payment_methods').where({ tenant_id: cw.id, customer_id: row.customer_id, status: 'active' }).first('id', 'last4') as { id: string, last4: string }
    await db('payment_methods').where({ id: method.id }).update({ last4: '0007' })
    t.match(await pod(), '····0007', 'a stored method changed')
    const [attempt] = await db('payment_attempts').insert({
      tenant_id: cw.id, invoice_id: row.id, customer_id: row.customer_id, payment_method_id: method.id, amount: 1234, currency: 'USD', status: 'failed',
      trigger: 'charge_card', actor: 'member:cw:cache-test', failure_code: 'card_declined', decline_code: 'insufficient_funds', created_at: new Date(Date.now() + 60_000)
    }).returning('id') as Array<{ id: string }>
    t.match(await pod(), 'cache-test (ConnectWise)', 'a new attempt')
    await db('payment_attempts').where({ id: attempt!.id }).update({ actor: 'member:cw:cache-test-2' })
    t.match(await pod(), 'cache-test-2 (ConnectWise)', 'an attempt changed')
    t.notMatch(await pod(), 'Retries scheduled')
    await db('jobs').insert({ tenant_id: cw.id, queue: 'payments.retry', payload: { attemptId: attempt!.id }, run_at: new Date(Date.now() + 86_400_000), dedupe_key: `retry:${attempt!.id}`, state: 'pending' })
    t.match(await pod(), 'Retries scheduled', 'a retry scheduled')
    await db('jobs').where({ tenant_id: cw.id, dedupe_key: `retry:${attempt!.id}` }).update({ state: 'done' })
    t.notMatch(await pod(), 'Retries scheduled', 'the retry ran')
    await db('payment_methods').where({ id: method.id }).update({ last4: method.last4 })
  })
})
