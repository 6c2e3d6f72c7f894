import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import quickbooksSandbox, { createQuickBooksStore, QUICKBOOKS_SANDBOX_CREDENTIALS, QUICKBOOKS_SANDBOX_PREFIX, type QuickBooksStore } from '../../../src/sandbox/quickbooks/index.js'
import { testDb } from '../../helpers/db.js'
import { makeTenant, testKeyring } from '../../helpers/fixtures.js'
import { connectQuickBooks, createAccountingFactory, discoverSettings, getAccountingConnection, getAccountingSettings, saveAccountingSettings } from '../../../src/services/accounting-connections.js'
import { getSecret, putSecret } from '../../../src/db/secrets.js'
import { RetryLaterError } from '../../../src/jobs/worker.js'
import { QuickBooksError, type QboClient } from '../../../src/adapters/quickbooks/client.js'
import { createQuickBooksAccounting } from '../../../src/adapters/quickbooks/accounting.js'
import { AppError } from '../../../src/errors.js'
import type { AccountingPort, PaymentPosting } from '../../../src/ports/accounting.js'

const REALM = '9341453050298761'
type Obj = Record<string, any>

async function rig (t: { teardown: (fn: () => Promise<void> | void) => void }): Promise<{ store: QuickBooksStore, port: AccountingPort, db: any, tenantId: string, keyring: ReturnType<typeof testKeyring>, clock: { ms: number }, factory: ReturnType<typeof createAccountingFactory>, hits: string[] }> {
  const clock = { ms: Date.now() }
  const store = createQuickBooksStore({
    seed: 1, realmId: REALM, now: () => clock.ms,
    customers: [{ displayName: 'Harbor Cafe' }],
    invoices: [
      { docNumber: '1001', customerName: 'Harbor Cafe', total: 25_000, balance: 25_000, txnDate: '2026-11-01', dueDate: '2026-12-01' },
      { docNumber: '1002', customerName: 'Harbor Cafe', total: 10_000, balance: 10_000, txnDate: '2026-11-05', dueDate: '2026-12-05' }
    ]
  })
  const app = Fastify()
  const hits: string[] = []
  app.addHook('onRequest', async req => { hits.push(`${req.method} ${req.url}`) })
  await app.register(quickbooksSandbox, { prefix: QUICKBOOKS_SANDBOX_PREFIX, store })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const db = await testDb(t)
  const keyring = testKeyring()
  const tenant = await makeTenant(db)
  await connectQuickBooks(db, keyring, { tenantId: tenant.id, realmId: REALM, sandbox: true, tokens: store.issueTokens(REALM) }, clock.ms)
  const factory = createAccountingFactory({ db, keyring, sandboxOrigin: () => origin, app: QUICKBOOKS_SANDBOX_CREDENTIALS, now: () => clock.ms })
  const port = await factory(tenant.id)
  if (port === null) throw new Error('no port')
  return { store, port, db, tenantId: tenant.id, keyring, clock, factory, hits }
}

const posting = (port: AccountingPort, store: QuickBooksStore, requestId: string): PaymentPosting => {
  const c = store.find(REALM, 'Customer', x => x.DisplayName === 'Harbor Cafe') as Obj
  const i1 = store.find(REALM, 'Invoice', x => x.DocNumber === '1001') as Obj
  const i2 = store.find(REALM, 'Invoice', x => x.DocNumber === '1002') as Obj
  const uf = store.find(REALM, 'Account', x => x.AccountSubType === 'UndepositedFunds') as Obj
  return {
    requestId, customerId: c.Id, amount: { amount: 30_050, currency: 'USD' }, txnDate: '2026-11-20', paymentMethodId: null, reference: 'pi_1', depositToAccountId: uf.Id, note: 'Settle',
    applications: [{ invoiceId: i1.Id, amount: { amount: 25_000, currency: 'USD' } }, { invoiceId: i2.Id, amount: { amount: 4_000, currency: 'USD' } }]
  }
}

t.test('discovers settings from the chart of accounts and saves them per tenant', async t => {
  const r = await rig(t)
  const s = await discoverSettings(r.port)
  const acct = (name: string): string => (r.store.find(REALM, 'Account', a => a.Name === name) as Obj).Id
  t.equal(s.undepositedFundsAccountId, acct('Undeposited Funds'))
  t.equal(s.bankAccountId, acct('Operating Checking'))
  t.equal(s.feesAccountId, acct('Merchant Fees'))
  t.equal(s.writeOffAccountId, acct('Bad Debt'))
  t.equal(s.receivableAccountId, acct('Accounts Receivable (A/R)'))
  t.equal(s.cardPaymentMethodId, (r.store.find(REALM, 'PaymentMethod', m => m.Name === 'Visa') as Obj).Id)
  t.equal(s.achPaymentMethodId, (r.store.find(REALM, 'PaymentMethod', m => m.Name === 'ACH') as Obj).Id)
  t.equal(s.surchargeItemId, (r.store.find(REALM, 'Item', m => m.Name === 'Card surcharge') as Obj).Id)
  await saveAccountingSettings(r.db, r.tenantId, s)
  t.same(await getAccountingSettings(r.db, r.tenantId), s)
  // Tenant isolation: another tenant has no connection, no port, default settings.
  const other = await makeTenant(r.db, 'Other MSP')
  t.equal(await r.factory(other.id), null)
  t.equal((await getAccountingSettings(r.db, other.id)).bankAccountId, null)
  t.equal(await getSecret(r.db, r.keyring, other.id, 'quickbooks.access_token'), null)
})

t.test('every API call spends a token from the tenant\'s quickbooks row in psa_call_budget (shared by all processes)', async t => {
  const r = await rig(t)
  await discoverSettings(r.port)
  const second = await r.factory(r.tenantId) // another process's port: same row
  await second?.listAccounts()
  const api = r.hits.filter(h => h.includes('/v3/company/')).length
  const [row] = await r.db('psa_call_budget').where({ tenant_id: r.tenantId, system: 'quickbooks' }) as Obj[]
  t.ok(api >= 4, `${api} API calls`)
  t.equal(Number(row?.calls_total), api)
})

t.test('payment: created once per requestId, read back exact, partial + unapplied', async t => {
  const r = await rig(t)
  const p = posting(r.port, r.store, 'settle-pay-1')
  const first = await r.port.createPayment(p)
  const again = await r.port.createPayment(p)
  t.equal(again.id, first.id, 'the same requestid answers the first result')
  t.equal(r.store.all(REALM, 'Payment').length, 1)
  t.ok(r.hits.filter(h => h.startsWith('POST') && h.includes('/payment')).every(h => h.includes('requestid=settle-pay-1')))
  const read = await r.port.getPayment({ id: first.id })
  t.same(read?.total, { amount: 30_050, currency: 'USD' })
  t.same(read?.unapplied, { amount: 1_050, currency: 'USD' })
  t.equal(read?.applications.length, 2)
  const [inv] = await r.port.findInvoices({ docNumbers: ['1002'] })
  t.same(inv?.balance, { amount: 6_000, currency: 'USD' })
  t.equal(await r.port.getPayment({ id: '999999' }), null)
})

t.test('503s are retried with the same requestid; 429 becomes RetryLaterError after QBO\'s Retry-After', async t => {
  const r = await rig(t)
  r.store.faults.burst5xx = 2
  const w = await r.port.createPayment(posting(r.port, r.store, 'settle-pay-5xx'))
  const posts = r.hits.filter(h => h.startsWith('POST') && h.includes('/payment'))
  t.equal(posts.length, 3)
  t.ok(posts.every(h => h.includes('requestid=settle-pay-5xx')))
  t.equal(r.store.all(REALM, 'Payment').length, 1)
  t.ok(w.id)
  r.store.faults.burst429 = 1
  const err = await r.port.listAccounts().catch(e => e)
  t.ok(err instanceof RetryLaterError)
  t.equal(err.retryAfterMs, 1000, 'the stand-in\'s per-second throttle says Retry-After: 1')
})

t.test('a Fault in an HTTP 200 body is a typed QuickBooksError', async t => {
  const r = await rig(t)
  r.store.faults.faultsAs200 = true
  const p = { ...posting(r.port, r.store, 'settle-bad'), customerId: '987654' }
  const err = await r.port.createPayment(p).catch(e => e)
  t.ok(err instanceof QuickBooksError, String(err))
  t.ok(err.qboCode !== '')
  t.equal(r.store.all(REALM, 'Payment').length, 0)
})

t.test('tokens: refreshed before expiry under a lock, the newest refresh token kept; a failed refresh asks for reconnecting', async t => {
  const r = await rig(t)
  const before = await getSecret(r.db, r.keyring, r.tenantId, 'quickbooks.refresh_token')
  r.clock.ms += 56 * 60_000 // 4 minutes left of the hour
  await Promise.all([r.port.listAccounts(), r.port.listItems()])
  const after = await getSecret(r.db, r.keyring, r.tenantId, 'quickbooks.refresh_token')
  t.not(after, before, 'rotated refresh token stored')
  t.equal(r.hits.filter(h => h.includes('/oauth2/v1/tokens/bearer')).length, 1, 'two concurrent callers refresh once')
  const c = await getAccountingConnection(r.db, r.tenantId)
  t.ok((c?.accessExpiresAt?.getTime() ?? 0) > r.clock.ms + 50 * 60_000)

  // Our row thinks the token is good, QBO says expired: the auth fault forces one refresh, then the call succeeds.
  await r.db('accounting_connections').where({ tenant_id: r.tenantId }).update({ access_expires_at: new Date(r.clock.ms + 10 * 3600_000) })
  r.clock.ms += 61 * 60_000
  const refreshesBefore = r.hits.filter(h => h.includes('/oauth2/v1/tokens/bearer')).length
  t.ok((await r.port.listAccounts()).length > 0)
  t.equal(r.hits.filter(h => h.includes('/oauth2/v1/tokens/bearer')).length, refreshesBefore + 1)

  const bogus = 'RT1-not-a-real-refresh-token-xyz'
  await putSecret(r.db, r.keyring, r.tenantId, 'quickbooks.refresh_token', bogus)
  r.clock.ms += 2 * 3600_000
  const err = await r.port.listAccounts().catch(e => e)
  t.ok(err instanceof AppError)
  t.equal(err.code, 'ACCOUNTING_RECONNECT_REQUIRED')
  t.match(err.message, /^QuickBooks needs reconnecting: /)
  t.notMatch(err.message, bogus, 'no secret in the message')
  const c2 = await getAccountingConnection(r.db, r.tenantId)
  t.equal(c2?.status, 'reconnect_required')
  t.ok(c2?.lastError)
  t.notMatch(c2?.lastError ?? '', bogus)
})

t.test('updatePayment re-reads and retries after a stale SyncToken (5010)', async t => {
  let reads = 0
  const writes: Array<{ body: Obj, requestId: string }> = []
  const client: QboClient = {
    realmId: 'r',
    query: async () => ({}),
    read: async () => { reads++; return { Payment: { Id: '7', SyncToken: String(reads), TotalAmt: 100, Line: [] } } },
    write: async (_e, body, requestId) => {
      writes.push({ body, requestId })
      if (writes.length === 1) throw new QuickBooksError(400, '5010', 'Stale Object Error', 'You and someone else edited', 'stale', {})
      return { Payment: { Id: '7', SyncToken: String(Number(body.SyncToken) + 1) } }
    },
    batch: async () => ({}),
    cdc: async () => ({}),
    calls: () => 0
  }
  const port = createQuickBooksAccounting({ client })
  const w = await port.updatePayment({ requestId: 'upd-1', id: '7', amount: { amount: 5_000, currency: 'USD' }, applications: [{ invoiceId: '3', amount: { amount: 5_000, currency: 'USD' } }] })
  t.equal(reads, 2)
  t.equal(writes[1]?.body.SyncToken, '2', 'the second write carries the re-read SyncToken')
  t.equal(writes[1]?.body.TotalAmt, 50)
  t.not(writes[1]?.requestId, writes[0]?.requestId)
  t.equal(w.syncToken, '3')
})

t.test('credit memos: the open listing and the DocNumber look-up, RemainingCredit in cents, through the wire', async t => {
  const r = await rig(t)
  const c = r.store.find(REALM, 'Customer', x => x.DisplayName === 'Harbor Cafe') as Obj
  const item = r.store.find(REALM, 'Item', x => x.Name === 'Services') as Obj
  const line = (amount: number): Obj => ({ Amount: amount, DetailType: 'SalesItemLineDetail', SalesItemLineDetail: { ItemRef: { value: item.Id } } })
  const open = r.store.write(REALM, 'CreditMemo', 'create', { CustomerRef: { value: c.Id }, DocNumber: 'CM-1', TxnDate: '2026-11-10', Line: [line(26.99)], RemainingCredit: 1 })
  const used = r.store.write(REALM, 'CreditMemo', 'create', { CustomerRef: { value: c.Id }, DocNumber: 'CM-2', Line: [line(10)] })
  r.store.realm(REALM)!.entities.get('CreditMemo')!.get(used.Id)!.RemainingCredit = 0 // applied in full (the stand-in does not apply credit itself)
  r.store.realm(REALM)!.entities.get('CreditMemo')!.get(used.Id)!.Balance = 0
  t.equal(Math.round((r.store.find(REALM, 'Customer', x => x.Id === c.Id) as Obj).Balance * 100), 35_000 - 2_699 - 1_000, 'customer balance is net of credit (RemainingCredit is not taken from the body)')
  const listed: unknown[] = []
  for await (const page of r.port.listOpenCreditMemos()) listed.push(...page)
  t.match(listed, [{ id: open.Id, docNumber: 'CM-1', customerId: c.Id, customerName: 'Harbor Cafe', total: { amount: 2_699, currency: 'USD' }, remainingCredit: { amount: 2_699, currency: 'USD' }, txnDate: '2026-11-10' }])
  t.ok(r.hits.some(h => new URLSearchParams(h.split('?')[1] ?? '').get('query')?.startsWith("select * from CreditMemo where Balance > '0'") === true), 'the real query')
  const found = await r.port.findCreditMemos({ docNumbers: ['CM-2', 'CM-9'] })
  t.match(found, [{ id: used.Id, docNumber: 'CM-2', total: { amount: 1_000 }, remainingCredit: { amount: 0 } }])
})
