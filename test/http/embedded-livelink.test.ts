import t from 'tap'
import { startDemoApp } from '../helpers/demo-app.js'
import { makeTenant } from '../helpers/fixtures.js'
import { grantMember, liveLinkKey, signedLiveLinkUrl } from '../../src/services/embedded.js'
import { createApiKey } from '../../src/security/api-keys.js'
import { signLiveLink } from '../../src/security/embedded-sessions.js'

const tokens = (body: string): { session: string, csrf: string } => ({
  session: /data-session="([^"]+)"/.exec(body)![1]!, csrf: /data-csrf="([^"]+)"/.exec(body)![1]!
})

t.test('a LiveLink session reaches only the record it was signed for; a staff sign-in reaches the tenant', async t => {
  const { app, db, tenants } = await startDemoApp(t)
  const at = tenants.find(x => x.slug === 'cobalt')!
  await grantMember(db, at.id, 'autotask', 'livelink', ['charge', 'paylink'])
  // Two companies, each with an invoice.
  const invoices = await db('invoices as i').join('customers as c', 'c.id', 'i.customer_id').where('i.tenant_id', at.id).orderBy('i.psa_invoice_id')
    .select('i.id', 'i.psa_invoice_id', 'i.customer_id', 'c.psa_company_id') as Array<{ id: string, psa_invoice_id: string, customer_id: string, psa_company_id: string }>
  const mine = invoices[0]!
  const theirs = invoices.find(i => i.customer_id !== mine.customer_id)!
  const sibling = invoices.find(i => i.customer_id === mine.customer_id && i.id !== mine.id)
  const open = async (kind: 'invoice' | 'company', record: string): Promise<{ session: string, csrf: string }> => {
    const url = await signedLiveLinkUrl(db, app.keyring, 'https://x.example', at, kind, record)
    const res = await app.inject({ method: 'GET', url: url.replace('https://x.example', '') })
    t.equal(res.statusCode, 200)
    return tokens(res.body)
  }
  const get = async (s: { session: string }, url: string): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'GET', url, headers: { 'x-settle-session': s.session } })
  const post = async (s: { session: string, csrf: string }, url: string, payload: object = {}): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'POST', url, headers: { 'x-settle-session': s.session, 'x-csrf-token': s.csrf }, payload })
  const forbidden = (res: { statusCode: number, json: () => any }, what: string): void => {
    t.equal(res.statusCode, 403, what)
    t.equal(res.json().error.code, 'FORBIDDEN', `${what}: in the catalogue format`)
    t.match(res.json().error.message, /sign in/i, `${what}: says what to do`)
  }

  await t.test('invoice X: its pod and its pay link, nothing else', async t => {
    const s = await open('invoice', mine.psa_invoice_id)
    t.equal((await get(s, `/embedded/autotask/invoice/view?id=${mine.psa_invoice_id}`)).statusCode, 200, 'its own pod')
    forbidden(await get(s, `/embedded/autotask/invoice/view?id=${theirs.psa_invoice_id}`), 'another client\'s invoice')
    if (sibling !== undefined) forbidden(await get(s, `/embedded/autotask/invoice/view?id=${sibling.psa_invoice_id}`), 'another invoice of the same client')
    forbidden(await get(s, `/embedded/autotask/company/view?id=${mine.psa_company_id}`), 'even its own company')
    forbidden(await get(s, '/embedded/autotask/quickbooks/view'), 'the QuickBooks pod')
    t.equal((await post(s, '/embedded/autotask/invoice/pay-link', { invoiceId: mine.id })).statusCode, 200, 'its own pay link')
    forbidden(await post(s, '/embedded/autotask/invoice/pay-link', { invoiceId: theirs.id }), 'a pay link for another client')
    forbidden(await post(s, '/embedded/autotask/invoice/quote', { invoiceId: theirs.id, paymentMethodId: '00000000-0000-4000-8000-000000000000' }), 'a quote on another invoice')
    forbidden(await post(s, '/embedded/autotask/invoice/charge', { invoiceId: theirs.id, paymentMethodId: '00000000-0000-4000-8000-000000000000' }), 'a charge on another invoice')
    forbidden(await post(s, '/embedded/autotask/company/quote', { customerId: mine.customer_id, invoiceIds: [mine.id], paymentMethodId: '00000000-0000-4000-8000-000000000000' }), 'a statement')
    t.equal((await post(s, '/embedded/autotask/quickbooks/sync')).statusCode, 403, 'Sync now')
    const links = await db('audit_log').where({ tenant_id: at.id, action: 'pay_link.create' }).pluck('subject')
    t.same(links, [mine.id], 'only its own link was minted')
  })

  await t.test('company Y: that company and its invoices', async t => {
    const s = await open('company', mine.psa_company_id)
    t.equal((await get(s, `/embedded/autotask/company/view?id=${mine.psa_company_id}`)).statusCode, 200)
    t.equal((await get(s, `/embedded/autotask/invoice/view?id=${mine.psa_invoice_id}`)).statusCode, 200, 'an invoice of the company')
    forbidden(await get(s, `/embedded/autotask/company/view?id=${theirs.psa_company_id}`), 'another company')
    forbidden(await get(s, `/embedded/autotask/invoice/view?id=${theirs.psa_invoice_id}`), 'another company\'s invoice')
    t.equal((await post(s, '/embedded/autotask/invoice/pay-link', { invoiceId: mine.id })).statusCode, 200)
    forbidden(await post(s, '/embedded/autotask/invoice/pay-link', { invoiceId: theirs.id }), 'another company\'s pay link')
    forbidden(await post(s, '/embedded/autotask/company/quote', { customerId: theirs.customer_id, invoiceIds: [theirs.id], paymentMethodId: '00000000-0000-4000-8000-000000000000' }), 'another company\'s statement')
    forbidden(await get(s, '/embedded/autotask/quickbooks/view'), 'the QuickBooks pod')
  })

  await t.test('renewal keeps the binding, and ends once the LiveLink key is rotated', async t => {
    const s = await open('invoice', mine.psa_invoice_id)
    const renewed = await post(s, '/embedded/autotask/session/renew')
    t.equal(renewed.statusCode, 200)
    const next = { session: renewed.json().session as string, csrf: renewed.json().csrf as string }
    forbidden(await get(next, `/embedded/autotask/invoice/view?id=${theirs.psa_invoice_id}`), 'a renewed session is still bound')
    t.equal((await get(next, `/embedded/autotask/invoice/view?id=${mine.psa_invoice_id}`)).statusCode, 200)
    await liveLinkKey(db, app.keyring, at.id, { rotate: true })
    const ended = await post(next, '/embedded/autotask/session/renew')
    t.equal(ended.statusCode, 401, 'a rotated key ends the link\'s sessions at their next renewal')
    t.equal(ended.json().error.code, 'UNAUTHENTICATED')
  })

  await t.test('a staff sign-in is not bound to one record', async t => {
    const staff = await createApiKey(db, at.id, 'staff livelink', ['payments:read'])
    const res = await app.inject({ method: 'POST', url: '/embedded/autotask/sign-in', payload: { tenant: 'cobalt', surface: 'invoice', id: mine.psa_invoice_id, apiKey: staff.key } })
    const s = tokens(res.body)
    t.equal((await get(s, `/embedded/autotask/invoice/view?id=${theirs.psa_invoice_id}`)).statusCode, 200)
    t.equal((await get(s, `/embedded/autotask/company/view?id=${theirs.psa_company_id}`)).statusCode, 200)
    t.equal((await get(s, '/embedded/autotask/quickbooks/view')).statusCode, 200)
    await db('api_keys').where({ id: staff.id }).update({ revoked_at: new Date() })
    const after = await get(s, `/embedded/autotask/invoice/view?id=${mine.psa_invoice_id}`)
    t.equal(after.statusCode, 401, 'revoking the key ends its sessions at once, not at the next renewal')
    t.equal(after.json().error.code, 'UNAUTHENTICATED')
  })

  await t.test('no LiveLink opens the QuickBooks pod, even one signed with the key', async t => {
    const key = await liveLinkKey(db, app.keyring, at.id)
    const { exp, sig } = signLiveLink(key, { tenantSlug: 'cobalt', kind: 'quickbooks', recordId: '', expiresAt: new Date(Date.now() + 600_000) })
    const page = await app.inject({ method: 'GET', url: `/embedded/autotask/quickbooks?tenant=cobalt&exp=${exp}&sig=${sig}` })
    t.match(page.body, 'Sign in to Settle')
    t.notMatch(page.body, 'data-session')
  })

  await t.test('opening an Autotask page without a valid link writes nothing (no LiveLink key is made)', async t => {
    const fresh = await makeTenant(db, 'No Key Yet MSP')
    const secrets = async (): Promise<number> => Number((await db('tenant_secrets').where({ tenant_id: fresh.id }).count('* as n'))[0]!.n)
    const page = await app.inject({ method: 'GET', url: `/embedded/autotask/invoice?tenant=${fresh.slug}&id=1&exp=9999999999&sig=forged` })
    t.match(page.body, 'Sign in to Settle')
    t.equal((await app.inject({ method: 'GET', url: `/embedded/autotask/company?tenant=${fresh.slug}&id=1` })).statusCode, 200)
    t.equal(await secrets(), 0, 'no key was created by a stranger')
  })
})
