import t from 'tap'
import nock from 'nock'
import { readFileSync } from 'node:fs'
import { createConnectWisePsa } from '../../../src/adapters/connectwise/psa.js'
import { toPsaInvoice, toPsaInvoiceLines, type CwInvoice, type CwInvoiceInfo } from '../../../src/adapters/connectwise/mapper.js'

nock.disableNetConnect()
nock.enableNetConnect('127.0.0.1')

const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../../fixtures/connectwise/${name}`, import.meta.url), 'utf8')) as T
const SITE = 'https://api-na.myconnectwise.net'
const BASE = '/v4_6_release/apis/3.0'
const creds = { site: SITE, companyId: 'settledemo', publicKey: 'pub', privateKey: 'priv', clientId: 'client-guid', codebase: 'v4_6_release/' }

t.afterEach(() => { nock.cleanAll() })

t.test('mapper: invoice header to domain', async t => {
  const paid = toPsaInvoice(fixture<CwInvoice>('invoice-paid.json'))
  t.match(paid, { externalId: '1001', number: '10001', kind: 'standard', currency: 'USD', issuedOn: '2025-11-15', dueOn: '2025-12-15', voided: false, companyExternalId: '254' })
  t.same(paid.total, { amount: 945417, currency: 'USD' })
  t.equal(paid.balance?.amount, 0)
  t.equal(paid.paidOn, '2025-11-20', 'settled without payments: date of lastUpdated')
  t.equal(paid.updatedAt.toISOString(), '2025-11-20T14:00:00.000Z')
  const withPayments = toPsaInvoice({ ...fixture<CwInvoice>('invoice-paid.json') }, [{ id: 1, amount: 10, paymentDate: '2025-11-18T00:00:00Z' }, { id: 2, amount: 20, paymentDate: '2025-11-19T00:00:00Z' }])
  t.equal(withPayments.paidOn, '2025-11-19', 'latest payment date')
  const open = toPsaInvoice({ ...fixture<CwInvoice>('invoice-paid.json'), balance: 100.005 })
  t.equal(open.balance?.amount, 10001, 'half away from zero at the edge')
  t.equal(open.paidOn, null)
  const voided = toPsaInvoice({ ...fixture<CwInvoice>('invoice-paid.json'), status: { id: 4, name: 'Void', isClosed: true } })
  t.equal(voided.voided, true)
  t.equal(voided.paidOn, null, 'a voided invoice is not paid')
  t.throws(() => toPsaInvoice({ ...fixture<CwInvoice>('invoice-paid.json'), type: 'Mystery' }), { code: 'malformed_response' })
  t.throws(() => toPsaInvoice({ ...fixture<CwInvoice>('invoice-paid.json'), currency: { currencyCode: 'JPY' } }), { code: 'malformed_response' })
})

t.test('mapper: credit memos are negative whichever sign the wire uses', async t => {
  const wire = fixture<CwInvoice>('invoice-credit-memo.json')
  const negative = toPsaInvoice(wire)
  t.equal(negative.kind, 'credit_memo')
  t.ok(negative.total.amount < 0)
  const positive = toPsaInvoice({ ...wire, total: Math.abs(wire.total ?? 0), balance: Math.abs(wire.balance ?? 0) })
  t.same(positive.total, negative.total)
  t.same(positive.balance, negative.balance)
})

t.test('mapper: lines add up to the total (tax as its own line)', async t => {
  for (const name of ['invoice-info-standard.json', 'invoice-info-agreement.json']) {
    const info = fixture<CwInvoiceInfo>(name)
    const lines = toPsaInvoiceLines(info)
    const header = toPsaInvoice(info.invoice as CwInvoice)
    t.equal(lines.reduce((s, l) => s + l.amount.amount, 0), header.total.amount, name)
    t.ok(lines.every(l => typeof l.quantity === 'string' && l.raw !== undefined))
  }
  const standard = toPsaInvoiceLines(fixture<CwInvoiceInfo>('invoice-info-standard.json'))
  t.match(standard.find(l => l.kind === 'product'), { quantity: '20', unitPrice: { amount: 43333 }, amount: { amount: 866667 } })
  t.match(standard.find(l => l.kind === 'time'), { quantity: '1.75', unitPrice: { amount: 15000 }, amount: { amount: 26250 } })
  const agreement = toPsaInvoiceLines(fixture<CwInvoiceInfo>('invoice-info-agreement.json'))
  t.ok(agreement.some(l => l.kind === 'agreement' && l.externalId.startsWith('agreement-')))
  const info = fixture<CwInvoiceInfo>('invoice-info-standard.json')
  const noExtended = { ...info, timeEntries: [{ id: 9, hoursBilled: 1.5, hourlyRate: 33.335 }] }
  t.match(toPsaInvoiceLines(noExtended).find(l => l.kind === 'time'), { amount: { amount: 5000 } }, '1.5 × 33.335 = 50.0025 → 50.00')
})

t.test('recordPayment: a repeat adopts only a payment new since the first try and applied by our API member', async t => {
  const payments = fixture<Array<Record<string, unknown>>>('invoice-paid-payments.json')
  const ours = payments[0] as Record<string, unknown>
  // A person's check for the same cents on the same day, entered before Settle's post.
  const check = { ...ours, id: 4999, source: 'Check', appliedBy: 'jsmith', _info: { updatedBy: 'jsmith' } }
  const list = `${BASE}/finance/invoices/1001/payments`
  const scope = nock(SITE)
    .get(list).query({ orderBy: 'id asc', pageSize: '1000' }).reply(200, [check])
    .post(list, { type: 'Payment', amount: 9454.17, paymentDate: '2025-11-20T00:00:00Z', invoice: { id: 1001 } }).reply(201, ours)
    .get(list).query({ orderBy: 'id asc', pageSize: '1000' }).reply(200, [check, ours])
  const learned: string[] = []
  const psa = createConnectWisePsa({ ...creds, onApiMemberLearned: async m => { learned.push(m) } })
  const input = { invoiceExternalId: '1001', amount: { amount: 945417, currency: 'USD' as const }, paidOn: '2025-11-20', reference: 'att_1', method: 'card' as const }
  let before: readonly string[] = []
  const first = await psa.recordPayment({ ...input, beforePost: async ids => { before = ids } })
  t.same({ id: first.externalId, again: first.alreadyRecorded }, { id: '5000', again: false }, 'the check is not taken for ours: we post')
  t.same(before, ['4999'], 'the ids already there are handed over before the post')
  t.same(learned, ['SettleAPI'], 'the API member is learned from our own post')
  const second = await psa.recordPayment({ ...input, paymentIdsBefore: before })
  t.same({ id: second.externalId, again: second.alreadyRecorded }, { id: '5000', again: true })
  scope.done()
})

t.test('recordPayment: after a lost answer, with our API member unknown, a new payment of the same amount is not guessed at', async t => {
  const stranger = { id: 5001, amount: 100, paymentDate: '2026-11-01T00:00:00Z', appliedBy: 'jsmith' }
  const scope = nock(SITE).get(`${BASE}/finance/invoices/1001/payments`).query(true).reply(200, [stranger])
  const psa = createConnectWisePsa(creds)
  await t.rejects(psa.recordPayment({ invoiceExternalId: '1001', amount: { amount: 10000, currency: 'USD' }, paidOn: '2026-11-01', reference: 'r', method: 'ach', paymentIdsBefore: [] }), { code: 'payment_owner_unknown', retryable: false })
  scope.done()
})

t.test('reversePayment deletes only a payment our API member applied', async t => {
  const list = `${BASE}/finance/invoices/1001/payments`
  const scope = nock(SITE)
    .get(list).query(true).reply(200, [{ id: 4999, amount: 10, appliedBy: 'jsmith' }, { id: 5000, amount: 10, appliedBy: 'SettleAPI' }])
    .delete(`${list}/5000`).reply(204)
    .get(list).query(true).reply(200, [{ id: 4999, amount: 10, appliedBy: 'jsmith' }])
  const psa = createConnectWisePsa({ ...creds, apiMember: 'SettleAPI' })
  t.match(await psa.reversePayment({ invoiceExternalId: '1001', paymentExternalId: '5000', markedPaid: false }), { raw: { deleted: '5000' } })
  t.match(await psa.reversePayment({ invoiceExternalId: '1001', paymentExternalId: '4999', markedPaid: false }), { raw: { kept: '4999', appliedBy: 'jsmith' } })
  scope.done()
})

t.test('the payment POST is never retried (unknown outcome is resolved by the lookup next time)', async t => {
  const scope = nock(SITE)
    .get(`${BASE}/finance/invoices/1001/payments`).query(true).reply(200, [])
    .post(`${BASE}/finance/invoices/1001/payments`).once().reply(503, { code: 'ServiceUnavailable', message: 'down' })
  const psa = createConnectWisePsa({ ...creds, sleep: async () => {} })
  await t.rejects(psa.recordPayment({ invoiceExternalId: '1001', amount: { amount: 100, currency: 'USD' }, paidOn: '2026-11-01', reference: 'r', method: 'ach' }), { code: 'http_503', retryable: true })
  t.equal(psa.callsMade(), 2)
  scope.done()
})

t.test('callback registration: create when absent, update (PUT) when present, never duplicate', async t => {
  const url = 'https://settle.example/webhooks/connectwise/t1'
  const entry = fixture<Record<string, unknown>>('callback-entry.json')
  const body = { url, objectId: 1, type: 'invoice', level: 'owner', description: 'Settle invoice sync', inactiveFlag: false }
  const scope = nock(SITE)
    .get(`${BASE}/system/callbacks`).query({ conditions: `url = "${url}"`, orderBy: 'id asc', pageSize: '1000' }).reply(200, [])
    .post(`${BASE}/system/callbacks`, body).reply(201, entry)
    .get(`${BASE}/system/callbacks`).query({ conditions: `url = "${url}"`, orderBy: 'id asc', pageSize: '1000' }).reply(200, [entry])
    .put(`${BASE}/system/callbacks/17`, { ...body, id: 17 }).reply(200, entry)
  const psa = createConnectWisePsa(creds)
  t.match(await psa.registerInvoiceCallback({ url, description: 'Settle invoice sync' }), { id: 17, created: true })
  t.match(await psa.registerInvoiceCallback({ url, description: 'Settle invoice sync' }), { id: 17, created: false })
  scope.done()
})

t.test('markPaid reads the invoice and writes nothing: ConnectWise closes it when payments reach the total', async t => {
  const paid = fixture<CwInvoice>('invoice-paid.json')
  const scope = nock(SITE)
    .get(`${BASE}/finance/invoices/1001`).reply(200, { ...paid, balance: 54.17, payments: 9400, status: { id: 2, name: 'Sent', isClosed: false } })
  const psa = createConnectWisePsa(creds)
  await psa.markPaid({ invoiceExternalId: '1001', paidOn: '2026-11-02', reference: 'r1' })
  t.equal(psa.callsMade(), 1, 'no payment for the $54.17 Settle did not collect')
  scope.done()
})
