import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import quickbooksSandbox, { createQuickBooksStore, QUICKBOOKS_SANDBOX_PREFIX, quickbooksSandboxUrls, type QuickBooksStore } from '../../../src/sandbox/quickbooks/index.js'
import { createQboClient } from '../../../src/adapters/quickbooks/client.js'
import { createQuickBooksAccounting } from '../../../src/adapters/quickbooks/accounting.js'
import { RetryLaterError } from '../../../src/jobs/worker.js'
import type { AccountingPort } from '../../../src/ports/accounting.js'

const REALM = '9341453050298761'
type Obj = Record<string, any>
const usd = (amount: number): { amount: number, currency: 'USD' } => ({ amount, currency: 'USD' })

interface Rig { app: FastifyInstance, store: QuickBooksStore, port: AccountingPort, clock: { ms: number }, hits: string[], token: string, origin: string, id: (entity: 'Account' | 'Customer' | 'Invoice', pred: (o: Obj) => boolean) => string }

async function rig (t: { teardown: (fn: () => Promise<void>) => void }): Promise<Rig> {
  const clock = { ms: Date.parse('2026-12-03T17:00:00Z') }
  const store = createQuickBooksStore({
    seed: 1, realmId: REALM, now: () => clock.ms, rateLimit: false,
    customers: [{ displayName: 'Harbor Cafe' }],
    invoices: [
      { docNumber: '1001', customerName: 'Harbor Cafe', total: 25_000, balance: 25_000, txnDate: '2026-11-01', dueDate: '2026-12-01' },
      { docNumber: '1002', customerName: 'Harbor Cafe', total: 10_000, balance: 10_000, txnDate: '2026-11-05', dueDate: '2026-12-05' }
    ],
    creditMemos: [{ docNumber: 'CM-7', customerName: 'Harbor Cafe', total: 5_000, txnDate: '2026-11-07' }]
  })
  const app = Fastify()
  const hits: string[] = []
  app.addHook('onRequest', async req => { hits.push(`${req.method} ${req.url.split('?')[0] ?? ''}`) })
  await app.register(quickbooksSandbox, { prefix: QUICKBOOKS_SANDBOX_PREFIX, store })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const token = store.issueTokens(REALM).access_token
  const client = createQboClient({ apiBase: quickbooksSandboxUrls(origin).apiBase, realmId: REALM, accessToken: async () => token, onAuthFault: async () => {}, sleep: async () => {} })
  const port = createQuickBooksAccounting({ client })
  const id = (entity: 'Account' | 'Customer' | 'Invoice', pred: (o: Obj) => boolean): string => (store.find(REALM, entity, pred) as Obj).Id
  return { app, store, port, clock, hits, token, origin, id }
}

const post = async (r: Rig, path: string, body: string, contentType = 'application/json'): Promise<{ status: number, body: Obj }> => {
  const res = await r.app.inject({ method: 'POST', url: `${QUICKBOOKS_SANDBOX_PREFIX}/v3/company/${REALM}/${path}`, payload: body, headers: { authorization: `Bearer ${r.token}`, 'content-type': contentType } })
  return { status: res.statusCode, body: res.json() }
}
const query = async (r: Rig, statement: string): Promise<{ status: number, body: Obj }> => {
  const res = await r.app.inject({ method: 'GET', url: `${QUICKBOOKS_SANDBOX_PREFIX}/v3/company/${REALM}/query?query=${encodeURIComponent(statement)}`, headers: { authorization: `Bearer ${r.token}` } })
  return { status: res.statusCode, body: res.json() }
}

t.test('bodies are checked against the entity shapes: unknown properties and wrong types are 2010 Faults, nothing written', async t => {
  const r = await rig(t)
  const customer = r.id('Customer', c => c.DisplayName === 'Harbor Cafe')
  const invoice = r.id('Invoice', i => i.DocNumber === '1001')
  const payments = (): number => r.store.all(REALM, 'Payment').length
  for (const [label, body, element] of [
    ['unknown top-level property', { CustomerRef: { value: customer }, TotalAmt: 10, Currency: 'USD' }, 'Payment.Currency'],
    ['unknown property in a ref', { CustomerRef: { value: customer, id: customer }, TotalAmt: 10 }, 'Payment.CustomerRef.id'],
    ['unknown property on a line', { CustomerRef: { value: customer }, TotalAmt: 10, Line: [{ Amount: 10, Invoice: invoice }] }, 'Payment.Line[0].Invoice'],
    ['a decimal that is not a number', { CustomerRef: { value: customer }, TotalAmt: 'ten' }, 'Payment.TotalAmt'],
    ['a ref sent as a bare id', { CustomerRef: customer, TotalAmt: 10 }, 'Payment.CustomerRef'],
    ['an array sent as one object', { CustomerRef: { value: customer }, TotalAmt: 10, Line: { Amount: 10 } }, 'Payment.Line'],
    ['a date that is not a date', { CustomerRef: { value: customer }, TotalAmt: 10, TxnDate: 20261201 }, 'Payment.TxnDate']
  ] as const) {
    const res = await post(r, 'payment', JSON.stringify(body))
    t.equal(res.status, 400, label)
    t.match(res.body, { Fault: { Error: [{ code: '2010', Message: 'Request has invalid or unsupported property', element }], type: 'ValidationFault' }, time: String }, label)
  }
  t.equal(payments(), 0, 'nothing was written')
})

t.test('malformed JSON is a QuickBooks Fault body', async t => {
  const r = await rig(t)
  const res = await post(r, 'payment', '{"CustomerRef": {"value": "1"}, "TotalAmt": 10')
  t.equal(res.status, 400)
  t.match(res.body, { Fault: { Error: [{ code: '2010', Detail: /Failed to parse JSON/ }], type: 'ValidationFault' }, time: String })
  t.notOk('error' in res.body || 'statusCode' in res.body, 'not the host\'s error format')
})

t.test('a LinkedTxn whose TxnType is not an entity name is refused, not left unapplied', async t => {
  const r = await rig(t)
  const customer = r.id('Customer', c => c.DisplayName === 'Harbor Cafe')
  const invoice = r.id('Invoice', i => i.DocNumber === '1001')
  for (const TxnType of ['invoice', 'Bogus', 'ReceivePayment']) {
    const res = await post(r, 'payment', JSON.stringify({ CustomerRef: { value: customer }, TotalAmt: 10, Line: [{ Amount: 10, LinkedTxn: [{ TxnId: invoice, TxnType }] }] }))
    t.equal(res.status, 400, TxnType)
    t.match(res.body.Fault.Error[0], { code: '2010', element: 'Payment.Line[0].LinkedTxn[0].TxnType' }, TxnType)
  }
  const memo = (r.store.find(REALM, 'CreditMemo', () => true) as Obj).Id
  const credit = await post(r, 'payment', JSON.stringify({ CustomerRef: { value: customer }, TotalAmt: 10, Line: [{ Amount: 10, LinkedTxn: [{ TxnId: memo, TxnType: 'CreditMemo' }] }] }))
  t.equal(credit.status, 400, 'a link the stand-in does not model is refused loudly')
  t.equal(r.store.all(REALM, 'Payment').length, 0)
  t.equal((r.store.find(REALM, 'Invoice', i => i.DocNumber === '1001') as Obj).Balance, 250)
})

t.test('a query on an unknown or non-filterable field is a 400 QueryValidationError, not an empty result', async t => {
  const r = await rig(t)
  for (const [statement, detail] of [
    ["select * from Invoice where DocNum = '1001'", /QueryValidationError: Property DocNum not found for Entity Invoice/],
    ["select * from CreditMemo where RemainingCredit > '0'", /QueryValidationError: property 'RemainingCredit' is not queryable/],
    ["select * from Payment where PrivateNote = 'x'", /not queryable/],
    ['select * from Invoice orderby Nope', /Property Nope not found/],
    ["select * from Invoice where MetaData.Nope > '2026-01-01'", /not found/]
  ] as const) {
    const res = await query(r, statement)
    t.equal(res.status, 400, statement)
    t.match(res.body, { Fault: { Error: [{ code: '4001', Message: 'Invalid query', Detail: detail }], type: 'ValidationFault' } }, statement)
  }
  for (const ok of ["select * from Invoice where Balance > '0' and CustomerRef = '1' orderby TxnDate", "select * from Customer where DisplayName in ('Harbor Cafe') and Active = true", "select * from Invoice where MetaData.LastUpdatedTime > '2026-01-01T00:00:00-08:00'"]) {
    t.equal((await query(r, ok)).status, 200, ok)
  }
})

t.test('the adapter\'s own bodies are accepted: payments, deposits with payment and fee lines, journal entries, credit-memo queries, batches', async t => {
  const r = await rig(t)
  const customer = r.id('Customer', c => c.DisplayName === 'Harbor Cafe')
  const i1 = r.id('Invoice', i => i.DocNumber === '1001')
  const i2 = r.id('Invoice', i => i.DocNumber === '1002')
  const uf = r.id('Account', a => a.AccountSubType === 'UndepositedFunds')
  const bank = r.id('Account', a => a.AccountType === 'Bank')
  const fees = r.id('Account', a => a.AccountSubType === 'BankCharges')
  const ar = r.id('Account', a => a.AccountType === 'Accounts Receivable')
  const card = (r.store.find(REALM, 'PaymentMethod', m => m.Name === 'Visa') as Obj).Id
  const payment = (requestId: string, invoiceId: string, cents: number): Parameters<AccountingPort['createPayment']>[0] => ({
    requestId, customerId: customer, amount: usd(cents), txnDate: '2026-12-02', paymentMethodId: card, reference: `pi_${requestId}`, depositToAccountId: uf, note: 'Settle payment',
    applications: [{ invoiceId, amount: usd(cents) }]
  })
  const p1 = await r.port.createPayment(payment('p1', i1, 20_000))
  const updated = await r.port.updatePayment({ requestId: 'p1-u', id: p1.id, amount: usd(19_000), applications: [{ invoiceId: i1, amount: usd(19_000) }], note: 'Settle payment, partly refunded' })
  t.equal(updated.id, p1.id)
  const dep = await r.port.createDeposit({
    requestId: 'd1', bankAccountId: bank, txnDate: '2026-12-04', currency: 'USD', note: 'Stripe payout po_1',
    lines: [{ paymentId: p1.id, amount: usd(19_000) }, { accountId: fees, amount: usd(-580), description: 'Stripe fees' }]
  })
  t.equal((r.store.read(REALM, 'Deposit', dep.id)).TotalAmt, 184.2)
  const je = await r.port.createJournalEntry({
    requestId: 'j1', txnDate: '2026-12-05', currency: 'USD', note: 'Write-off',
    lines: [{ accountId: fees, amount: usd(1_000), description: 'Bad debt' }, { accountId: ar, amount: usd(-1_000), customerId: customer }]
  })
  t.ok(je.id)
  const open = []
  for await (const page of r.port.listOpenCreditMemos()) open.push(...page)
  t.same(open.map(m => m.remainingCredit.amount), [5_000])
  t.same((await r.port.findCreditMemos({ docNumbers: ['CM-7', 'nope'] })).map(m => m.docNumber), ['CM-7'])
  t.same((await r.port.findCustomers({ names: ['harbor cafe'], ids: [customer] })).map(c => c.id), [customer])
  t.same((await r.port.findInvoices({ docNumbers: ['1002'], ids: [i1] })).map(i => i.docNumber).sort(), ['1001', '1002'])
  const listed = []
  for await (const page of r.port.listCustomers()) listed.push(...page)
  t.equal(listed.length, 1)
  const batch = await r.port.batch([
    { kind: 'payment', posting: payment('p2', i2, 10_000) },
    { kind: 'journal', posting: { requestId: 'j2', txnDate: '2026-12-05', currency: 'USD', note: 'Adjustment', lines: [{ accountId: fees, amount: usd(100) }, { accountId: bank, amount: usd(-100) }] } }
  ])
  t.same(batch.map(b => b.ok), [true, true], JSON.stringify(batch.map(b => b.ok ? null : b.error.message)))
  const p2 = batch[0]?.ok === true ? batch[0].write.id : ''
  const dep2 = await r.port.batch([{ kind: 'deposit', posting: { requestId: 'd2', bankAccountId: bank, txnDate: '2026-12-06', currency: 'USD', note: 'po_2', lines: [{ paymentId: p2, amount: usd(10_000) }] } }])
  t.same(dep2.map(b => b.ok), [true], JSON.stringify(dep2.map(b => b.ok ? null : b.error.message)))
})

t.test('batch throttle: 40 batch requests a minute per realm, then 429 with the wait; the adapter hands the wait to the job', async t => {
  const r = await rig(t)
  const statement = (n: number): Parameters<AccountingPort['batch']>[0] => [{ kind: 'journal', posting: { requestId: `j${n}`, txnDate: '2026-12-05', currency: 'USD', note: `n${n}`, lines: [{ accountId: r.id('Account', a => a.AccountSubType === 'BankCharges'), amount: usd(1) }, { accountId: r.id('Account', a => a.AccountType === 'Bank'), amount: usd(-1) }] } }]
  for (let n = 0; n < 40; n++) {
    r.clock.ms += 500
    t.ok((await r.port.batch(statement(n)))[0]?.ok, `batch ${n + 1}`)
  }
  const before = r.hits.length
  const refused = await r.port.batch(statement(40)).catch((e: unknown) => e)
  t.type(refused, RetryLaterError)
  t.equal(r.hits.length - before, 1, 'a 429 is not retried in a loop')
  // The first batch went out at 0.5 s, it is now 20 s: the window frees in 40.5 s (41 whole seconds), and the job waits that long, not a blind minute.
  t.equal((refused as RetryLaterError).retryAfterMs, 41_000)
  t.equal((await r.port.listAccounts()).length > 0, true, 'other requests are not throttled by it')
  r.clock.ms += 41_000
  t.ok((await r.port.batch(statement(41)))[0]?.ok, 'a minute after the first, batches go through again')
})

t.test('lost answers of performed writes: the requestid replay posts each payment once', async t => {
  const r = await rig(t)
  const customer = r.id('Customer', c => c.DisplayName === 'Harbor Cafe')
  const i1 = r.id('Invoice', i => i.DocNumber === '1001')
  const uf = r.id('Account', a => a.AccountSubType === 'UndepositedFunds')
  const control = `${r.origin}${QUICKBOOKS_SANDBOX_PREFIX}/_sandbox/faults`
  const bad = await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ lostAnswerMode: 'sometimes' }) })
  t.equal(bad.status, 400)
  t.match(await bad.json(), { Fault: { Error: [{ code: '2010' }] } })
  for (const [lostAnswerMode, cents] of [['bad_gateway', 1_000], ['drop', 2_000]] as const) {
    await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ burstLostAnswers: 1, lostAnswerMode }) })
    const before = r.store.all(REALM, 'Payment').length
    const written = await r.port.createPayment({ requestId: `lost-${lostAnswerMode}`, customerId: customer, amount: usd(cents), txnDate: '2026-12-02', paymentMethodId: null, reference: null, depositToAccountId: uf, note: 'Settle', applications: [{ invoiceId: i1, amount: usd(cents) }] })
    const after = r.store.all(REALM, 'Payment')
    t.equal(after.length, before + 1, `${lostAnswerMode}: one payment, though the first answer was lost`)
    t.equal(written.id, after.at(-1)?.Id, `${lostAnswerMode}: the retry got the first answer back`)
  }
  t.match(await (await fetch(control)).json(), { burstLostAnswers: 0, seed: 1 })
  await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ errorRate: 1, seed: 5 }) })
  const unavailable = await fetch(`${r.origin}${QUICKBOOKS_SANDBOX_PREFIX}/v3/company/${REALM}/account/1`, { headers: { authorization: `Bearer ${r.token}` } })
  t.equal(unavailable.status, 503, 'an error rate of 1 answers every request 503')
  await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ errorRate: 0 }) })
  t.equal((r.store.find(REALM, 'Invoice', i => i.DocNumber === '1001') as Obj).Balance, 220)
})
