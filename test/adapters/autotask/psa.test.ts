import t from 'tap'
import nock from 'nock'
import { readFileSync } from 'node:fs'
import { createAutotaskPsa } from '../../../src/adapters/autotask/psa.js'
import { mapInvoice, mapBillingItem, type AtInvoice, type AtBillingItem } from '../../../src/adapters/autotask/mapper.js'

nock.disableNetConnect()
nock.enableNetConnect('127.0.0.1')

const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../../fixtures/autotask/${name}`, import.meta.url), 'utf8')) as T
const ZONE_HOST = 'https://webservices5.autotask.net'
const ZONE = `${ZONE_HOST}/ATServicesRest/`
const options = { apiUser: 'api@msp.test', secret: 's3cret', integrationCode: 'CODE123', zoneUrl: ZONE, sleep: async () => {} }
const invoices = fixture<AtInvoice[]>('invoices.json')
const items = fixture<AtBillingItem[]>('billing-items.json')
const page = (list: unknown[]): Record<string, unknown> => ({ items: list, pageDetails: { count: list.length, requestCount: 500, prevPageUrl: null, nextPageUrl: null } })

t.afterEach(() => { nock.cleanAll() })

t.test('mapper: invoice totals, credit memos, dates and the change stamp', async t => {
  const [first, , paid, voided, credit] = invoices.map(raw => mapInvoice(raw, { currency: 'USD' }))
  t.same(first?.total, { amount: 198067, currency: 'USD' }, 'invoiceTotal is the grand total in cents')
  t.equal(first?.kind, 'standard')
  t.equal(first?.balance, null, 'Autotask tracks no balance')
  t.match(first?.issuedOn, /^\d{4}-\d{2}-\d{2}$/)
  t.equal(first?.updatedAt.toISOString(), new Date(invoices[0]!.createDateTime!).toISOString())
  t.equal(paid?.paidOn, '2026-06-12')
  t.equal(voided?.voided, true)
  t.equal(credit?.kind, 'credit_memo')
  t.equal(credit?.total.amount, -118900)
  const noDue = mapInvoice({ ...invoices[0]!, dueDate: null, createDateTime: '2026-01-02T03:04:05' }, { currency: 'USD' })
  t.equal(noDue.dueOn, null)
  t.equal(noDue.updatedAt.toISOString(), '2026-01-02T03:04:05.000Z', 'a stamp without zone is UTC')
})

t.test('mapper: BillingItems kinds, quantities and amounts; lines plus tax equal the total', async t => {
  const lines = items.filter(i => i.invoiceID === 1000).map(i => mapBillingItem(i, 'USD'))
  t.same(lines.map(l => l.kind), ['agreement', 'time', 'product', 'expense'])
  t.equal(lines[1]?.quantity, '0.75', 'labour hours as the decimal string sent')
  t.same(lines[1]?.amount, { amount: 16875, currency: 'USD' })
  const net = lines.reduce((s, l) => s + l.amount.amount, 0)
  t.equal(net + 3960, 198067, 'extendedPrice sum + totalTaxValue = invoiceTotal')
  t.equal(mapBillingItem({ ...items[0]!, contractServiceID: null, serviceID: null, billingItemType: 2 }, 'USD').kind, 'expense', 'falls back to the picklist code')
  t.equal(mapBillingItem({ ...items[0]!, contractServiceID: null, serviceID: null, billingItemType: 99 }, 'USD').kind, 'other')
})

t.test('incremental listing filters on createDateTime and sorts each page by (updatedAt, id)', async t => {
  const shuffled = [invoices[2], invoices[0], invoices[1]]
  const scope = nock(ZONE_HOST)
    .post('/ATServicesRest/V1.0/Invoices/query', { filter: [{ op: 'gte', field: 'createDateTime', value: '2025-01-01T00:00:00Z' }], MaxRecords: 500 })
    .reply(200, page(shuffled))
    .post('/ATServicesRest/V1.0/Invoices/query', { filter: [{ op: 'notExist', field: 'paidDate' }, { op: 'eq', field: 'isVoided', value: false }], MaxRecords: 500 })
    .reply(200, page([invoices[0]]))
  const psa = createAutotaskPsa(options)
  const pages = []
  for await (const p of psa.listInvoicesChangedSince({ since: new Date('2025-01-01T00:00:00.123Z') })) pages.push(p)
  t.equal(pages.length, 1)
  const stamps = pages[0]!.map(i => i.updatedAt.getTime())
  t.same(stamps, [...stamps].sort((a, b) => a - b), 'ascending change stamps')
  const open = []
  for await (const p of psa.listOpenInvoices()) open.push(...p)
  t.same(open.map(i => i.externalId), ['1000'])
  scope.done()
})

t.test('getInvoiceLines: 1,200 invoice ids → 3 BillingItems queries with `in`, grouped by invoice', async t => {
  const ids = Array.from({ length: 1200 }, (_, i) => String(1000 + i))
  const bodies: Array<{ filter: Array<{ op: string, field: string, value: number[] }> }> = []
  const scope = nock(ZONE_HOST).post('/ATServicesRest/V1.0/BillingItems/query').times(3).reply((_uri, body) => {
    const parsed = body as { filter: Array<{ op: string, field: string, value: number[] }> }
    bodies.push(parsed)
    const wanted = new Set(parsed.filter[0]!.value)
    return [200, page(items.filter(i => wanted.has(i.invoiceID!)))]
  })
  const psa = createAutotaskPsa(options)
  const lines = await psa.getInvoiceLines({ invoiceExternalIds: ids })
  t.same(bodies.map(b => b.filter[0]!.value.length).sort(), [200, 500, 500])
  t.ok(bodies.every(b => b.filter[0]!.op === 'in' && b.filter[0]!.field === 'invoiceID'))
  t.equal(lines.size, 1200, 'every asked id has an entry')
  t.equal(lines.get('1000')?.length, 4)
  t.equal(lines.get('1011')?.[0]?.amount.amount, -118900)
  t.same(lines.get('1999'), [])
  t.equal(psa.callsMade(), 3)
  scope.done()
})

t.test('markPaid PATCHes paidDate and webServiceDate once; already paid writes nothing', async t => {
  const unpaid = invoices[0]!
  const scope = nock(ZONE_HOST)
    .get('/ATServicesRest/V1.0/Invoices/1000').reply(200, { item: unpaid })
    .patch('/ATServicesRest/V1.0/Invoices', { id: 1000, paidDate: '2026-11-20T00:00:00Z', webServiceDate: '2026-11-20T10:00:00Z' }).reply(200, { itemId: 1000 })
    .get('/ATServicesRest/V1.0/Invoices/1000').reply(200, { item: { ...unpaid, paidDate: '2026-11-20T00:00:00Z' } })
  const psa = createAutotaskPsa({ ...options, now: () => new Date('2026-11-20T10:00:00.500Z') })
  await psa.markPaid({ invoiceExternalId: '1000', paidOn: '2026-11-20', reference: 'pay_1' })
  const again = await psa.markPaid({ invoiceExternalId: '1000', paidOn: '2026-11-20', reference: 'pay_1' })
  t.equal((again.raw as AtInvoice).paidDate, '2026-11-20T00:00:00Z')
  t.equal(psa.callsMade(), 3, 'get, patch, get: no second patch')
  scope.done()
})

t.test('recordPayment writes a CompanyNote tagged with our reference, and finds it next time', async t => {
  const inv = invoices[0]!
  let created: Record<string, unknown> | undefined
  const scope = nock(ZONE_HOST)
    .get('/ATServicesRest/V1.0/Invoices/1000').times(2).reply(200, { item: inv })
    .post('/ATServicesRest/V1.0/CompanyNotes/query', { filter: [{ op: 'eq', field: 'companyID', value: inv.companyID }, { op: 'contains', field: 'name', value: '[att_42]' }], MaxRecords: 500 })
    .reply(200, page([]))
    .post(`/ATServicesRest/V1.0/Companies/${String(inv.companyID)}/Notes`, body => { created = body as Record<string, unknown>; return true })
    .reply(200, { itemId: 30000001 })
    .post('/ATServicesRest/V1.0/CompanyNotes/query')
    .reply(200, () => page([{ id: 30000001, ...created }]))
  const psa = createAutotaskPsa(options)
  const input = { invoiceExternalId: '1000', amount: { amount: 50000, currency: 'USD' as const }, paidOn: '2026-11-20', reference: 'att_42', method: 'card' as const }
  const first = await psa.recordPayment(input)
  t.same({ id: first.externalId, again: first.alreadyRecorded }, { id: '30000001', again: false })
  t.match(created, { companyID: inv.companyID, name: /500\.00 USD.*\[att_42\]/, actionType: 3 })
  const second = await psa.recordPayment(input)
  t.same({ id: second.externalId, again: second.alreadyRecorded }, { id: '30000001', again: true })
  scope.done()
})

t.test('a non-numeric id is refused before any call', async t => {
  const psa = createAutotaskPsa(options)
  await t.rejects(psa.getInvoice({ externalId: '1; DROP' }), { code: 'VALIDATION_FAILED' })
  t.equal(psa.callsMade(), 0)
})
