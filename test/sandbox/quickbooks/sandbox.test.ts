import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import QB from 'node-quickbooks'
import OAuthClient from 'intuit-oauth'
import quickbooksSandbox, { createQuickBooksStore, QUICKBOOKS_SANDBOX_CREDENTIALS, QUICKBOOKS_SANDBOX_PREFIX, quickbooksSandboxUrls, seedFromConnectWise, type QuickBooksStore, type QuickBooksStoreOptions } from '../../../src/sandbox/quickbooks/index.js'
import { createConnectWiseStore } from '../../../src/sandbox/connectwise/store.js'

type Obj = Record<string, any>
interface QboClient { endpoint: string, token: string, [method: string]: any }
const QuickBooks = QB as unknown as (new (...args: unknown[]) => QboClient) & { V3_ENDPOINT_BASE_URL: string, TOKEN_URL: string, REVOKE_URL: string }

const REALM = '9341453050298761'
const seed: Partial<QuickBooksStoreOptions> = {
  realmId: REALM,
  customers: [{ displayName: 'Harbor Cafe' }, { displayName: 'Northwind Dental' }],
  invoices: [
    { docNumber: '1001', customerName: 'Harbor Cafe', total: 25_000, balance: 25_000, txnDate: '2026-11-01', dueDate: '2026-12-01' },
    { docNumber: '1002', customerName: 'Harbor Cafe', total: 10_000, balance: 4_000, txnDate: '2026-11-05', dueDate: '2026-12-05' },
    { docNumber: '2001', customerName: 'Northwind Dental', total: 99_999, balance: 99_999, txnDate: '2026-11-10', dueDate: '2026-12-10' }
  ]
}

interface Rig { app: FastifyInstance, store: QuickBooksStore, origin: string, clock: { ms: number }, qbo: QboClient, call: (method: string, ...args: unknown[]) => Promise<Obj> }

async function start (t: { teardown: (fn: () => Promise<void>) => void }, extra: Partial<QuickBooksStoreOptions> = {}): Promise<Rig> {
  const clock = { ms: Date.parse('2026-12-03T17:00:00Z') }
  const store = createQuickBooksStore({ seed: 1, ...seed, now: () => clock.ms, ...extra })
  const app = Fastify()
  await app.register(quickbooksSandbox, { prefix: QUICKBOOKS_SANDBOX_PREFIX, store })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const { port } = app.server.address() as AddressInfo
  const origin = `http://127.0.0.1:${port}`
  const urls = quickbooksSandboxUrls(origin)
  QuickBooks.V3_ENDPOINT_BASE_URL = urls.apiBase
  QuickBooks.TOKEN_URL = urls.tokenUrl
  QuickBooks.REVOKE_URL = urls.revokeUrl
  const tokens = store.issueTokens(REALM)
  const qbo = new QuickBooks(QUICKBOOKS_SANDBOX_CREDENTIALS.clientId, QUICKBOOKS_SANDBOX_CREDENTIALS.clientSecret, tokens.access_token, false, REALM, true, false, 75, '2.0', tokens.refresh_token)
  qbo.endpoint = urls.apiBase
  const call = async (method: string, ...args: unknown[]): Promise<Obj> => await new Promise((resolve, reject) => {
    qbo[method](...args, (err: unknown, data: Obj) => { if (err !== null && err !== undefined) reject(err); else resolve(data) })
  })
  return { app, store, origin, clock, qbo, call }
}

const inj = async (r: Rig, method: 'GET' | 'POST', path: string, payload?: unknown, token?: string): Promise<{ status: number, body: Obj }> => {
  const res = await r.app.inject({ method, url: `${QUICKBOOKS_SANDBOX_PREFIX}${path}`, payload: payload as Obj, headers: { authorization: `Bearer ${token ?? r.qbo.token}` } })
  return { status: res.statusCode, body: res.json() }
}
const invoice = (r: Rig, doc: string): Obj => r.store.find(REALM, 'Invoice', i => i.DocNumber === doc) as Obj
const customer = (r: Rig, name: string): Obj => r.store.find(REALM, 'Customer', c => c.DisplayName === name) as Obj
const faultOf = (err: any): Obj => err?.Fault ?? err?.response?.data?.Fault

t.test('seed: chart of accounts, payment methods, items, customers and invoices', async t => {
  const r = await start(t)
  const accounts = r.store.all(REALM, 'Account')
  t.equal(accounts.find(a => a.AccountSubType === 'UndepositedFunds')?.Name, 'Undeposited Funds')
  t.equal(accounts.find(a => a.Name === 'Operating Checking')?.AccountType, 'Bank')
  t.equal(accounts.find(a => a.Name === 'Merchant Fees')?.AccountSubType, 'BankCharges')
  t.ok(accounts.find(a => a.Name === 'Bad Debt' && a.AccountType === 'Expense'))
  t.ok(accounts.find(a => a.AccountType === 'Accounts Receivable'))
  t.ok(accounts.find(a => a.Name === 'Sales' && a.AccountType === 'Income'))
  t.same(r.store.all(REALM, 'PaymentMethod').map(m => [m.Name, m.Type]), [['Visa', 'CREDIT_CARD'], ['MasterCard', 'CREDIT_CARD'], ['American Express', 'CREDIT_CARD'], ['ACH', 'NON_CREDIT_CARD'], ['Check', 'NON_CREDIT_CARD']])
  t.ok(r.store.find(REALM, 'Item', i => i.Name === 'Card surcharge'))
  t.equal(customer(r, 'Harbor Cafe').Balance, 290, 'customer balance = open invoice balances')
  t.equal(invoice(r, '1002').Balance, 40)
  t.equal(invoice(r, '2001').TotalAmt, 999.99)
})

t.test('query through node-quickbooks and raw HTTP', async t => {
  const r = await start(t)
  const open = await r.call('findInvoices', [{ field: 'Balance', value: '0', operator: '>' }, { field: 'CustomerRef', value: customer(r, 'Harbor Cafe').Id, operator: '=' }])
  t.same(open.QueryResponse.Invoice.map((i: Obj) => i.DocNumber), ['1001', '1002'])
  t.equal(open.QueryResponse.startPosition, 1)
  t.equal(open.QueryResponse.maxResults, 2)
  const counted = await r.call('findInvoices', { count: true })
  t.same(counted.QueryResponse, { totalCount: 3 })
  const inList = await r.call('findInvoices', [{ field: 'DocNumber', value: ['1001', '2001'], operator: 'IN' }])
  t.same(inList.QueryResponse.Invoice.map((i: Obj) => i.DocNumber), ['1001', '2001'])
  const like = await r.call('findCustomers', [{ field: 'DisplayName', value: '%wind%', operator: 'LIKE' }])
  t.same(like.QueryResponse.Customer.map((c: Obj) => c.DisplayName), ['Northwind Dental'])

  const paged = await inj(r, 'GET', `/v3/company/${REALM}/query?query=${encodeURIComponent('select * from Invoice orderby TotalAmt desc startposition 2 maxresults 1')}&minorversion=75`)
  t.equal(paged.status, 200)
  t.same(paged.body.QueryResponse, { Invoice: [invoice(r, '1001')], startPosition: 2, maxResults: 1 })
  t.match(paged.body.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-08:00$/)
  const none = await inj(r, 'GET', `/v3/company/${REALM}/query?query=${encodeURIComponent("select * from Invoice where DocNumber = 'nope'")}`)
  t.same(none.body.QueryResponse, {}, 'no matches: an empty QueryResponse')
  const bad = await inj(r, 'GET', `/v3/company/${REALM}/query?query=${encodeURIComponent('select * from Invoice where')}`)
  t.equal(bad.status, 400)
  t.equal(bad.body.Fault.Error[0].code, '4000')
  t.match(bad.body.Fault.Error[0].Detail, /^QueryParserError/)
  t.equal(bad.body.Fault.type, 'ValidationFault')
})

t.test('create + read a payment; requestid replay writes nothing twice', async t => {
  const r = await start(t)
  const inv = invoice(r, '1001')
  const cust = customer(r, 'Harbor Cafe')
  const body = () => ({ CustomerRef: { value: cust.Id }, TotalAmt: 300, Line: [{ Amount: 250, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }], requestId: 'settle-attempt-42' })
  const first = await r.call('createPayment', body())
  t.equal(first.TotalAmt, 300)
  t.equal(first.UnappliedAmt, 50)
  t.equal(first.DepositToAccountRef.name, 'Undeposited Funds', 'defaults to Undeposited Funds')
  t.equal(first.SyncToken, '0')
  const again = await r.call('createPayment', body())
  t.same(again, first, 'same requestid: the original answer')
  t.equal(r.store.all(REALM, 'Payment').length, 1, 'one payment')
  const read = await r.call('getPayment', first.Id)
  t.same(read, first)
  const after = invoice(r, '1001')
  t.equal(after.Balance, 0)
  t.same(after.LinkedTxn, [{ TxnId: first.Id, TxnType: 'Payment' }])
  t.equal(after.SyncToken, '1')
  t.equal(customer(r, 'Harbor Cafe').Balance, -10, '290 - 250 applied - 50 unapplied credit')

  // Raw: the same requestid on another body still answers the first result.
  const raw = await inj(r, 'POST', `/v3/company/${REALM}/payment?requestid=settle-attempt-42&minorversion=75`, { CustomerRef: { value: cust.Id }, TotalAmt: 1 })
  t.same(raw.body.Payment, first)
  const missing = await inj(r, 'GET', `/v3/company/${REALM}/payment/9999`)
  t.equal(missing.status, 400)
  t.equal(missing.body.Fault.Error[0].code, '610')
})

t.test('over-application is refused and changes nothing', async t => {
  const r = await start(t)
  const inv = invoice(r, '1002')
  const cust = customer(r, 'Harbor Cafe')
  const err = await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 50, Line: [{ Amount: 50, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }] }).then(() => null, e => e)
  const f = faultOf(err)
  t.equal(f.type, 'ValidationFault')
  t.equal(f.Error[0].code, '6000')
  t.match(f.Error[0].Detail, /more than its open balance/)
  t.equal(invoice(r, '1002').Balance, 40)
  t.equal(invoice(r, '1002').SyncToken, '0')
  t.equal(r.store.all(REALM, 'Payment').length, 0)
  const more = await inj(r, 'POST', `/v3/company/${REALM}/payment`, { CustomerRef: { value: cust.Id }, TotalAmt: 10, Line: [{ Amount: 20, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }] })
  t.equal(more.status, 400)
  t.match(more.body.Fault.Error[0].Detail, /more than the payment amount/)
  const other = await inj(r, 'POST', `/v3/company/${REALM}/payment`, { CustomerRef: { value: customer(r, 'Northwind Dental').Id }, TotalAmt: 10, Line: [{ Amount: 10, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }] })
  t.equal(other.body.Fault.Error[0].code, '620', "another customer's invoice")
  // With the fault switch, QBO-style HTTP 200 carrying a Fault; node-quickbooks reports it as an error.
  r.store.faults.faultsAs200 = true
  const as200 = await inj(r, 'POST', `/v3/company/${REALM}/payment`, { CustomerRef: { value: cust.Id }, TotalAmt: 50, Line: [{ Amount: 50, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }] })
  t.equal(as200.status, 200)
  t.equal(as200.body.Fault.Error[0].code, '6000')
  const viaClient = await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 50, Line: [{ Amount: 50, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }] }).then(() => null, e => e)
  t.equal(viaClient?.Fault?.Error?.[0]?.code, '6000', 'a 200 with a Fault arrives as the error')
})

t.test('update: sparse, SyncToken 5010, payment re-applies', async t => {
  const r = await start(t)
  const inv1 = invoice(r, '1001')
  const inv2 = invoice(r, '1002')
  const cust = customer(r, 'Harbor Cafe')
  const p = await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 40, Line: [{ Amount: 40, LinkedTxn: [{ TxnId: inv2.Id, TxnType: 'Invoice' }] }] })
  t.equal(invoice(r, '1002').Balance, 0)
  const moved = await r.call('updatePayment', { Id: p.Id, SyncToken: p.SyncToken, sparse: true, Line: [{ Amount: 40, LinkedTxn: [{ TxnId: inv1.Id, TxnType: 'Invoice' }] }] })
  t.equal(moved.SyncToken, '1')
  t.equal(moved.TotalAmt, 40, 'sparse keeps fields not sent')
  t.equal(invoice(r, '1002').Balance, 40, 'old application reversed')
  t.equal(invoice(r, '1001').Balance, 210, 'new application made')
  const stale = await r.call('updatePayment', { Id: p.Id, SyncToken: '0', sparse: true, PrivateNote: 'late' }).then(() => null, e => e)
  t.equal(stale.response.status, 400)
  t.equal(faultOf(stale).Error[0].code, '5010')
  t.equal(faultOf(stale).Error[0].Message, 'Stale Object Error')
  const c = await r.call('updateCustomer', { Id: cust.Id, SyncToken: customer(r, 'Harbor Cafe').SyncToken, sparse: true, CompanyName: 'Harbor Cafe LLC', Balance: 1_000_000 })
  t.equal(c.CompanyName, 'Harbor Cafe LLC')
  t.equal(c.Balance, 250, 'Balance is read-only')
  const staleCustomer = await inj(r, 'POST', `/v3/company/${REALM}/customer?operation=update`, { Id: cust.Id, SyncToken: cust.SyncToken, sparse: true, Notes: 'x' })
  t.equal(staleCustomer.body.Fault.Error[0].code, '5010')
  const del = await r.call('deletePayment', { Id: p.Id, SyncToken: moved.SyncToken })
  t.equal(del.Payment.status, 'Deleted')
  t.equal(invoice(r, '1001').Balance, 250)
  t.equal(customer(r, 'Harbor Cafe').Balance, 290)
})

t.test('deposits: payments from Undeposited Funds plus fee lines; totals; no double deposit', async t => {
  const r = await start(t)
  const cust = customer(r, 'Harbor Cafe')
  const bank = r.store.find(REALM, 'Account', a => a.Name === 'Operating Checking') as Obj
  const fees = r.store.find(REALM, 'Account', a => a.Name === 'Merchant Fees') as Obj
  const p1 = await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 250, Line: [{ Amount: 250, LinkedTxn: [{ TxnId: invoice(r, '1001').Id, TxnType: 'Invoice' }] }] })
  const p2 = await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 40, Line: [{ Amount: 40, LinkedTxn: [{ TxnId: invoice(r, '1002').Id, TxnType: 'Invoice' }] }] })
  const direct = await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 5, DepositToAccountRef: { value: bank.Id } })
  const dep = await r.call('createDeposit', {
    DepositToAccountRef: { value: bank.Id },
    TxnDate: '2026-12-03',
    Line: [
      { Amount: 250, LinkedTxn: [{ TxnId: p1.Id, TxnType: 'Payment', TxnLineId: '0' }] },
      { Amount: 40, LinkedTxn: [{ TxnId: p2.Id, TxnType: 'Payment', TxnLineId: '0' }] },
      { Amount: -8.71, DetailType: 'DepositLineDetail', DepositLineDetail: { AccountRef: { value: fees.Id } }, Description: 'Stripe fees po_123' }
    ]
  })
  t.equal(dep.TotalAmt, 281.29, '250 + 40 - 8.71, in cents')
  t.equal(dep.DepositToAccountRef.name, 'Operating Checking')
  t.equal(dep.Line[2].DepositLineDetail.AccountRef.name, 'Merchant Fees')
  const twice = await inj(r, 'POST', `/v3/company/${REALM}/deposit`, { DepositToAccountRef: { value: bank.Id }, Line: [{ Amount: 40, LinkedTxn: [{ TxnId: p2.Id, TxnType: 'Payment' }] }] })
  t.match(twice.body.Fault.Error[0].Detail, /already been deposited/)
  const notUndeposited = await inj(r, 'POST', `/v3/company/${REALM}/deposit`, { DepositToAccountRef: { value: bank.Id }, Line: [{ Amount: 5, LinkedTxn: [{ TxnId: direct.Id, TxnType: 'Payment' }] }] })
  t.match(notUndeposited.body.Fault.Error[0].Detail, /not received into Undeposited Funds/)
  const wrongAmount = await inj(r, 'POST', `/v3/company/${REALM}/deposit`, { DepositToAccountRef: { value: bank.Id }, Line: [{ Amount: 1, LinkedTxn: [{ TxnId: p1.Id, TxnType: 'Payment' }] }] })
  t.equal(wrongAmount.status, 400)
  t.equal(r.store.all(REALM, 'Deposit').length, 1)
  const blocked = await inj(r, 'POST', `/v3/company/${REALM}/payment?operation=delete`, { Id: p1.Id, SyncToken: p1.SyncToken })
  t.match(blocked.body.Fault.Error[0].Detail, /deposited/)
  await r.call('deleteDeposit', { Id: dep.Id, SyncToken: dep.SyncToken })
  const redeposit = await inj(r, 'POST', `/v3/company/${REALM}/deposit`, { DepositToAccountRef: { value: bank.Id }, Line: [{ Amount: 40, LinkedTxn: [{ TxnId: p2.Id, TxnType: 'Payment' }] }] })
  t.equal(redeposit.body.Deposit.TotalAmt, 40, 'deleting the deposit frees its payments')
})

t.test('journal entries must balance; A/R lines move the customer balance', async t => {
  const r = await start(t)
  const ar = r.store.find(REALM, 'Account', a => a.AccountType === 'Accounts Receivable') as Obj
  const bad = r.store.find(REALM, 'Account', a => a.Name === 'Bad Debt') as Obj
  const cust = customer(r, 'Northwind Dental')
  const line = (type: 'Debit' | 'Credit', amount: number, account: Obj, entity?: Obj): Obj => ({ Amount: amount, DetailType: 'JournalEntryLineDetail', JournalEntryLineDetail: { PostingType: type, AccountRef: { value: account.Id }, ...(entity === undefined ? {} : { Entity: { Type: 'Customer', EntityRef: { value: entity.Id } } }) } })
  const unbalanced = await inj(r, 'POST', `/v3/company/${REALM}/journalentry`, { Line: [line('Debit', 100, bad), line('Credit', 99.99, ar, cust)] })
  t.equal(unbalanced.status, 400)
  t.match(unbalanced.body.Fault.Error[0].Detail, /must balance/)
  const noName = await inj(r, 'POST', `/v3/company/${REALM}/journalentry`, { Line: [line('Debit', 100, bad), line('Credit', 100, ar)] })
  t.match(noName.body.Fault.Error[0].Detail, /choose a customer/)
  const je = await r.call('createJournalEntry', { TxnDate: '2026-12-03', PrivateNote: 'write-off', Line: [line('Debit', 100, bad), line('Credit', 100, ar, cust)] })
  t.equal(je.TotalAmt, 100)
  t.equal(customer(r, 'Northwind Dental').Balance, 899.99)
})

t.test('batch: creates, updates, queries, faults per item, 30 at most', async t => {
  const r = await start(t)
  const cust = customer(r, 'Harbor Cafe')
  const inv = invoice(r, '1002')
  const res = await r.call('batch', [
    { bId: 'b1', operation: 'create', Payment: { CustomerRef: { value: cust.Id }, TotalAmt: 40, Line: [{ Amount: 40, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }] } },
    { bId: 'b2', operation: 'create', Payment: { CustomerRef: { value: cust.Id }, TotalAmt: 1, Line: [{ Amount: 1, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }] } },
    { bId: 'b3', operation: 'update', Customer: { Id: cust.Id, SyncToken: '99', sparse: true, Notes: 'x' } },
    { bId: 'b4', Query: "select * from Invoice where Balance > '0'" }
  ])
  const by = Object.fromEntries(res.BatchItemResponse.map((i: Obj) => [i.bId, i]))
  t.equal(by.b1.Payment.UnappliedAmt, 0)
  t.equal(by.b2.Fault.Error[0].code, '6000', 'the second sees the first one applied')
  t.equal(by.b3.Fault.Error[0].code, '5010')
  t.same(by.b4.QueryResponse.Invoice.map((i: Obj) => i.DocNumber), ['1001', '2001'])
  const tooMany = await inj(r, 'POST', `/v3/company/${REALM}/batch`, { BatchItemRequest: Array.from({ length: 31 }, (_, i) => ({ bId: `q${i}`, Query: 'select * from Item' })) })
  t.equal(tooMany.status, 400)
  t.equal(r.store.all(REALM, 'Payment').length, 1)
})

t.test('CDC: changes since a time, deletions as tombstones', async t => {
  const r = await start(t)
  const since = new Date(r.clock.ms + 1000)
  r.clock.ms += 60_000
  const cust = customer(r, 'Harbor Cafe')
  const p = await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 40, Line: [{ Amount: 40, LinkedTxn: [{ TxnId: invoice(r, '1002').Id, TxnType: 'Invoice' }] }] })
  const gone = await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 1 })
  r.clock.ms += 60_000
  await r.call('deletePayment', { Id: gone.Id, SyncToken: gone.SyncToken })
  const res = await r.call('changeDataCapture', ['Invoice', 'Payment', 'Deposit'], since)
  const [inv, pay, dep] = res.CDCResponse[0].QueryResponse
  t.same(inv.Invoice.map((i: Obj) => i.DocNumber), ['1002'])
  t.same(pay.Payment.map((x: Obj) => [x.Id, x.status]), [[p.Id, undefined], [gone.Id, 'Deleted']])
  t.same(dep, {}, 'no changes: an empty object')
  const old = await inj(r, 'GET', `/v3/company/${REALM}/cdc?entities=Invoice&changedSince=2026-10-01T00:00:00Z`)
  t.equal(old.status, 400, '30-day look-back')
})

t.test('OAuth: authorize redirect, code exchange with intuit-oauth, 401 on expiry, rotation with grace, revoke', async t => {
  const r = await start(t, { accessTokenTtlS: 60, refreshGraceS: 120 })
  const urls = quickbooksSandboxUrls(r.origin)
  const redirectUri = 'http://127.0.0.1:9/callback'
  const auth = await r.app.inject({ method: 'GET', url: `${QUICKBOOKS_SANDBOX_PREFIX}/connect/oauth2?client_id=${QUICKBOOKS_SANDBOX_CREDENTIALS.clientId}&redirect_uri=${encodeURIComponent(redirectUri)}&response_type=code&scope=com.intuit.quickbooks.accounting&state=xyz` })
  t.equal(auth.statusCode, 302)
  const back = new URL(auth.headers.location as string)
  t.equal(back.searchParams.get('state'), 'xyz')
  t.equal(back.searchParams.get('realmId'), REALM)
  const O = OAuthClient as unknown as { tokenEndpoint: string, revokeEndpoint: string } & (new (o: Obj) => any)
  O.tokenEndpoint = urls.tokenUrl
  O.revokeEndpoint = urls.revokeUrl
  const client = new O({ clientId: QUICKBOOKS_SANDBOX_CREDENTIALS.clientId, clientSecret: QUICKBOOKS_SANDBOX_CREDENTIALS.clientSecret, environment: 'sandbox', redirectUri })
  const created = await client.createToken(back.toString())
  const tok = created.getJson?.() ?? created.json
  t.equal(tok.token_type, 'bearer')
  t.equal(tok.expires_in, 60)
  t.equal(client.getToken().realmId, REALM)

  r.qbo.token = tok.access_token
  t.ok((await r.call('getInvoice', invoice(r, '1001').Id)).Id, 'the new access token works')
  r.clock.ms += 61_000
  const expired = await r.call('getInvoice', invoice(r, '1001').Id).then(() => null, e => e)
  t.equal(expired.response.status, 401)
  t.same(expired.response.data.fault.error[0].code, '3200')
  t.equal(expired.response.data.fault.type, 'AUTHENTICATION')
  t.equal(expired.response.data.fault.error[0].message, 'message=AuthenticationFailed; errorCode=003200; statusCode=401')
  t.match(expired.response.data.fault.error[0].detail, /^Token expired/)

  // node-quickbooks refresh: a new pair; the old refresh token still works during the grace period, then invalid_grant.
  r.qbo.refreshToken = tok.refresh_token
  const refreshed = await new Promise<Obj>((resolve, reject) => { r.qbo.refreshAccessToken((e: unknown, d: Obj) => { if (e !== null && e !== undefined) reject(e); else resolve(d) }) })
  t.not(refreshed.refresh_token, tok.refresh_token, 'rotated')
  t.ok((await r.call('getInvoice', invoice(r, '1001').Id)).Id, 'refreshAccessToken stores the new token on the client')
  const form = (rt: string): Promise<{ statusCode: number, json: () => Obj }> => r.app.inject({ method: 'POST', url: `${QUICKBOOKS_SANDBOX_PREFIX}/oauth2/v1/tokens/bearer`, headers: { authorization: 'Basic ' + Buffer.from(`${QUICKBOOKS_SANDBOX_CREDENTIALS.clientId}:${QUICKBOOKS_SANDBOX_CREDENTIALS.clientSecret}`).toString('base64'), 'content-type': 'application/x-www-form-urlencoded' }, payload: `grant_type=refresh_token&refresh_token=${encodeURIComponent(rt)}` })
  r.clock.ms += 60_000
  t.equal((await form(tok.refresh_token)).statusCode, 200, 'old refresh token inside the grace period')
  r.clock.ms += 61_000
  const late = await form(tok.refresh_token)
  t.equal(late.statusCode, 400)
  t.same(late.json(), { error: 'invalid_grant' })
  const badClient = await r.app.inject({ method: 'POST', url: `${QUICKBOOKS_SANDBOX_PREFIX}/oauth2/v1/tokens/bearer`, headers: { authorization: 'Basic ' + Buffer.from('x:y').toString('base64'), 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=refresh_token&refresh_token=x' })
  t.equal(badClient.statusCode, 401)
  const codeAgain = await client.createToken(back.toString()).then(() => null, (e: unknown) => e)
  t.ok(codeAgain, 'an authorization code works once')

  // Revoking a refresh token ends its whole grant.
  await client.revoke({ token: refreshed.refresh_token })
  const afterRevoke = await inj(r, 'GET', `/v3/company/${REALM}/invoice/${String(invoice(r, '1001').Id)}`, undefined, r.qbo.token)
  t.equal(afterRevoke.status, 401)
  t.equal((await form(refreshed.refresh_token)).statusCode, 400)
  const noToken = await r.app.inject({ method: 'GET', url: `${QUICKBOOKS_SANDBOX_PREFIX}/v3/company/${REALM}/account/1` })
  t.equal(noToken.statusCode, 401)
  const otherRealm = await inj(r, 'GET', `/v3/company/123/account/1`, undefined, r.store.issueTokens().access_token)
  t.equal(otherRealm.status, 401, 'a token opens only its own company')
})

t.test('rate limit per realm (10/s, 500/min) and the 429 / 5xx switches', async t => {
  const r = await start(t)
  const path = `/v3/company/${REALM}/account/1`
  const statuses: number[] = []
  for (let i = 0; i < 11; i++) statuses.push((await inj(r, 'GET', path)).status)
  t.same(statuses, [...Array(10).fill(200), 429])
  const limited = await inj(r, 'GET', path)
  t.equal(limited.body.Fault.Error[0].code, '3001')
  r.clock.ms += 1001
  t.equal((await inj(r, 'GET', path)).status, 200, 'the next second is open again')
  for (let s = 0; s < 60; s++) { r.clock.ms += 1001; for (let i = 0; i < 9; i++) await inj(r, 'GET', path) }
  t.equal((await inj(r, 'GET', path)).status, 429, '500 in a minute')

  const r2 = await start(t, { rateLimit: false })
  r2.store.faults.burst429 = 1
  const viaClient = await r2.call('getAccount', '1').then(() => null, e => e)
  t.equal(viaClient.response.status, 429)
  t.equal(viaClient.response.headers['retry-after'], '1')
  t.equal((await inj(r2, 'GET', path)).status, 200, 'only the next N')
  r2.store.faults.burst5xx = 1
  const down = await r2.app.inject({ method: 'GET', url: `${QUICKBOOKS_SANDBOX_PREFIX}${path}`, headers: { authorization: `Bearer ${r2.qbo.token}` } })
  t.equal(down.statusCode, 503)
  t.equal((await inj(r2, 'GET', path)).status, 200)
})

t.test('seedFromConnectWise: the QBO side of the demo with three known differences', async t => {
  const cw = createConnectWiseStore({ seed: 7 })
  const derived = seedFromConnectWise(cw)
  const store = createQuickBooksStore({ seed: 7, realmId: REALM, ...derived })
  const d = derived.differences
  const docs = new Set(store.all(REALM, 'Invoice').map(i => i.DocNumber))
  t.notOk(docs.has(d.missingInQbo), 'one invoice missing in QBO')
  const cwInv = (doc: string): any => cw.invoices.find(i => String(i.id + 9000) === doc)
  const qbInv = (doc: string): Obj => store.find(REALM, 'Invoice', i => i.DocNumber === doc) as Obj
  t.equal(Math.round(qbInv(d.editedAfterSync.docNumber).TotalAmt * 100), cw.totalCents(cwInv(d.editedAfterSync.docNumber)) + d.editedAfterSync.deltaCents)
  const hand = qbInv(d.paidByHandInQbo.docNumber)
  t.equal(Math.round(hand.Balance * 100), cw.balanceCents(cwInv(d.paidByHandInQbo.docNumber)) - d.paidByHandInQbo.amountCents)
  t.equal(store.all(REALM, 'Payment').length, 1)
  t.equal(store.all(REALM, 'Payment')[0]?.PaymentMethodRef?.name, 'Check')
  // Everything else matches ConnectWise exactly.
  let same = 0
  for (const i of cw.invoices) {
    const doc = String(i.id + 9000)
    if (i.type === 'CreditMemo' || i.statusId === 4 || doc === d.missingInQbo || doc === d.editedAfterSync.docNumber || doc === d.paidByHandInQbo.docNumber) continue
    const q = qbInv(doc)
    if (Math.round(q.TotalAmt * 100) === cw.totalCents(i) && Math.round(q.Balance * 100) === cw.balanceCents(i) && q.CustomerRef.name === cw.companyOf(i).name) same++
  }
  t.equal(same, docs.size - 2)
  // Credit memos are QBO CreditMemos with the same (positive) credit, never invoices.
  const cwMemos = cw.invoices.filter(i => i.type === 'CreditMemo' && i.statusId !== 4)
  t.ok(cwMemos.length > 0, 'the demo has a credit memo')
  t.same(store.all(REALM, 'CreditMemo').map(m => [m.DocNumber, Math.round(m.TotalAmt * 100), Math.round(m.RemainingCredit * 100), m.CustomerRef.name]),
    cwMemos.map(i => [String(i.id + 9000), -cw.totalCents(i), -cw.balanceCents(i), cw.companyOf(i).name]))
  t.notOk(cwMemos.some(i => docs.has(String(i.id + 9000))))
  const memoCustomer = store.find(REALM, 'Customer', c => c.DisplayName === cw.companyOf(cwMemos[0]!).name) as Obj
  const open = store.all(REALM, 'Invoice').filter(i => i.CustomerRef.value === memoCustomer.Id).reduce((s, i) => s + Math.round(i.Balance * 100), 0)
  const credit = store.all(REALM, 'CreditMemo').filter(m => m.CustomerRef.value === memoCustomer.Id).reduce((s, m) => s + Math.round(m.RemainingCredit * 100), 0)
  t.equal(Math.round(memoCustomer.Balance * 100), open - credit, 'the customer balance is net of the credit')
  t.equal(store.query(REALM, "select * from CreditMemo where Balance > '0'").CreditMemo.length, cwMemos.length, 'the adapter\'s query works on the stand-in')
  t.equal(store.all(REALM, 'Customer').length, cw.companies.length)
})

t.test('the demo refresh token keeps working after use (it never retires)', async t => {
  const r = await start(t, { demoRefreshToken: 'RT1-demo' })
  const first = r.store.refresh('RT1-demo')
  r.store.refresh(first.refresh_token)
  r.clock.ms += 10 * 86_400_000
  const second = r.store.refresh('RT1-demo')
  t.not(first.refresh_token, second.refresh_token)
  t.equal(r.store.checkAccess(second.access_token, REALM), 'ok')
  t.throws(() => r.store.refresh(first.refresh_token), { message: 'invalid_grant' }, 'ordinary rotated tokens still retire')
})

t.test('invoices: create totals the lines; an edited total moves the open balance; POST query; batch requestid', async t => {
  const r = await start(t)
  const cust = customer(r, 'Northwind Dental')
  const item = r.store.find(REALM, 'Item', i => i.Name === 'Services') as Obj
  const line = (amount: number): Obj => ({ Amount: amount, DetailType: 'SalesItemLineDetail', SalesItemLineDetail: { ItemRef: { value: item.Id } } })
  const inv = await r.call('createInvoice', { CustomerRef: { value: cust.Id }, DocNumber: '3001', Line: [line(100), line(23.45)], Balance: 1 })
  t.equal(inv.TotalAmt, 123.45)
  t.equal(inv.Balance, 123.45, 'Balance is computed, not taken from the body')
  t.equal(customer(r, 'Northwind Dental').Balance, 1123.44)
  await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 23.45, Line: [{ Amount: 23.45, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }] })
  const current = invoice(r, '3001')
  const edited = await r.call('updateInvoice', { Id: inv.Id, SyncToken: current.SyncToken, sparse: true, Line: [line(150)] })
  t.equal(edited.TotalAmt, 150)
  t.equal(edited.Balance, 126.55, 'new total less what was paid')
  const tooSmall = await inj(r, 'POST', `/v3/company/${REALM}/invoice?operation=update`, { Id: inv.Id, SyncToken: edited.SyncToken, sparse: true, Line: [line(10)] })
  t.match(tooSmall.body.Fault.Error[0].Detail, /less than the payments/)
  t.equal(invoice(r, '3001').TotalAmt, 150, 'unchanged after the fault')

  const posted = await r.app.inject({ method: 'POST', url: `${QUICKBOOKS_SANDBOX_PREFIX}/v3/company/${REALM}/query?minorversion=75`, headers: { authorization: `Bearer ${r.qbo.token}`, 'content-type': 'application/text' }, payload: "select * from Invoice where DocNumber = '3001'" })
  t.equal(posted.json().QueryResponse.Invoice[0].Id, inv.Id)

  const items = { BatchItemRequest: [{ bId: 'p', operation: 'create', Payment: { CustomerRef: { value: cust.Id }, TotalAmt: 5 } }] }
  const b1 = await inj(r, 'POST', `/v3/company/${REALM}/batch?requestid=batch-1`, items)
  const b2 = await inj(r, 'POST', `/v3/company/${REALM}/batch?requestid=batch-1`, items)
  t.same(b2.body, b1.body)
  t.equal(r.store.all(REALM, 'Payment').filter(p => p.TotalAmt === 5).length, 1, 'replayed batch wrote nothing')
})

t.test('void: a payment reopens its invoices; an invoice with payments cannot be voided', async t => {
  const r = await start(t)
  const cust = customer(r, 'Harbor Cafe')
  const inv = invoice(r, '1002')
  const p = await r.call('createPayment', { CustomerRef: { value: cust.Id }, TotalAmt: 40, Line: [{ Amount: 40, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }] })
  const refused = await inj(r, 'POST', `/v3/company/${REALM}/invoice?operation=void`, { Id: inv.Id, SyncToken: invoice(r, '1002').SyncToken })
  t.match(refused.body.Fault.Error[0].Detail, /payments applied/)
  const voided = await r.call('voidPayment', { Id: p.Id, SyncToken: p.SyncToken })
  t.equal(voided.TotalAmt, 0)
  t.equal(voided.PrivateNote, 'Voided')
  t.equal(invoice(r, '1002').Balance, 40, 'invoice reopened')
  t.ok(r.store.read(REALM, 'Payment', p.Id), 'the voided payment stays')
  const inv1 = invoice(r, '1001')
  const vi = await inj(r, 'POST', `/v3/company/${REALM}/invoice?operation=void`, { Id: inv1.Id, SyncToken: inv1.SyncToken })
  t.equal(vi.body.Invoice.Balance, 0)
  t.equal(customer(r, 'Harbor Cafe').Balance, 40)
  const batch = await inj(r, 'POST', `/v3/company/${REALM}/batch`, { BatchItemRequest: [{ bId: 'v', operation: 'update', optionsData: 'void', Payment: { Id: p.Id, SyncToken: '0', sparse: true } }] })
  t.equal(batch.body.BatchItemResponse[0].Fault.Error[0].code, '5010')
})
