import t from 'tap'
import nock from 'nock'
import { readFileSync } from 'node:fs'
import { createConnectWisePsa } from '../../../src/adapters/connectwise/psa.js'
import { and, cond, literal, or } from '../../../src/adapters/connectwise/conditions.js'
import { parseNextLink } from '../../../src/adapters/connectwise/client.js'
import { UpstreamError } from '../../../src/adapters/http.js'

nock.disableNetConnect()
nock.enableNetConnect('127.0.0.1')

const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`../../fixtures/connectwise/${name}`, import.meta.url), 'utf8'))
const SITE = 'https://api-na.myconnectwise.net'
const BASE = '/v4_6_release/apis/3.0'
const creds = { site: SITE, companyId: 'settledemo', publicKey: 'pub', privateKey: 'priv', clientId: 'client-guid' }
const AUTH = `Basic ${Buffer.from('settledemo+pub:priv').toString('base64')}`

t.afterEach(() => { nock.cleanAll() })

t.test('conditions escape quotes and backslashes and format dates', async t => {
  t.equal(literal('say "hi" \\ bye'), '"say \\"hi\\" \\\\ bye"')
  t.equal(literal(new Date('2026-11-01T00:00:00.789Z')), '[2026-11-01T00:00:00Z]')
  t.equal(literal(null), 'null')
  t.equal(literal(false), 'false')
  t.equal(cond('company/id', '=', 250).toString(), 'company/id = 250')
  t.equal(cond('id', 'in', [1, 2]).toString(), 'id in (1, 2)')
  t.equal(and(cond('a', '=', 1), undefined, or(cond('b', 'like', 'x%'), cond('c', '!=', null)))?.toString(), '(a = 1) and ((b like "x%") or (c != null))')
  t.throws(() => cond('url" or 1=1 or x', '=', 'y'), TypeError, 'field names are checked')
  t.equal(and(), undefined)
})

t.test('parseNextLink finds rel="next" among several links', async t => {
  t.equal(parseNextLink('<https://h/x?page=1>; rel="first", <https://h/x?page=3>; rel="next"'), 'https://h/x?page=3')
  t.equal(parseNextLink('<https://h/x?page=1>; rel="prev"'), null)
  t.equal(parseNextLink(undefined), null)
})

t.test('lists invoices across three forward-only pages and discovers the codebase once', async t => {
  const since = new Date('2025-11-01T00:00:00Z')
  const scope = nock(SITE, { reqheaders: { authorization: AUTH, clientid: 'client-guid', accept: /application\/vnd\.connectwise\.com\+json; version=2025\.1/ } })
    .get('/login/companyinfo/settledemo').once().reply(200, fixture('companyinfo.json') as object)
    .get('/v2025_1/apis/3.0/finance/invoices')
    .matchHeader('pagination-type', 'forward-only')
    .query({ conditions: 'lastUpdated >= [2025-11-01T00:00:00Z]', orderBy: 'lastUpdated asc, id asc', pageSize: '1000' })
    .reply(200, fixture('invoices-page-1.json') as object, { Link: `<${SITE}/v2025_1/apis/3.0/finance/invoices?pageSize=1000&pageId=1002>; rel="next"` })
    .get('/v2025_1/apis/3.0/finance/invoices').query({ pageSize: '1000', pageId: '1002' })
    .reply(200, fixture('invoices-page-2.json') as object, { Link: `<${SITE}/v2025_1/apis/3.0/finance/invoices?pageSize=1000&pageId=1004>; rel="next"` })
    .get('/v2025_1/apis/3.0/finance/invoices').query({ pageSize: '1000', pageId: '1004' })
    .reply(200, fixture('invoices-page-3.json') as object)
  const psa = createConnectWisePsa(creds)
  const pages: string[][] = []
  for await (const page of psa.listInvoicesChangedSince({ since })) pages.push(page.map(i => i.externalId))
  t.same(pages, [['1001', '1002'], ['1003', '1004'], ['1005']])
  t.equal(psa.callsMade(), 4, 'companyinfo once plus three pages')
  t.equal(await psa.client.codebase(), 'v2025_1/', 'cached: no second companyinfo call (nock would fail)')
  scope.done()
})

t.test('a user value with quotes and backslashes is escaped in the query', async t => {
  const url = 'https://x.example/hook?a="b"\\c'
  const scope = nock(SITE)
    .get(`${BASE}/system/callbacks`)
    .query({ conditions: 'url = "https://x.example/hook?a=\\"b\\"\\\\c"', orderBy: 'id asc', pageSize: '1000' })
    .reply(200, [])
  const psa = createConnectWisePsa({ ...creds, codebase: 'v4_6_release' })
  t.same(await psa.removeInvoiceCallback({ url }), { removed: 0 })
  scope.done()
})

t.test('429 then success: Retry-After honoured through the injected sleep', async t => {
  const slept: number[] = []
  const scope = nock(SITE)
    .get(`${BASE}/finance/invoices/1001`).reply(429, { code: 'TooManyRequests', message: 'slow down' }, { 'Retry-After': '3' })
    .get(`${BASE}/finance/invoices/1001`).reply(200, { ...(fixture('invoice-paid.json') as object), balance: 12 })
  const psa = createConnectWisePsa({ ...creds, codebase: 'v4_6_release/', sleep: async ms => { slept.push(ms) } })
  const invoice = await psa.getInvoice({ externalId: '1001' })
  t.equal(invoice.balance?.amount, 1200)
  t.same(slept, [3000])
  t.equal(psa.callsMade(), 2)
  scope.done()
})

t.test('malformed JSON becomes malformed_response', async t => {
  const scope = nock(SITE).get(`${BASE}/finance/invoices/1001`).reply(200, '{"id": 1001, "total": ', { 'Content-Type': 'application/json' })
  const psa = createConnectWisePsa({ ...creds, codebase: 'v4_6_release/', sleep: async () => {} })
  await t.rejects(psa.getInvoice({ externalId: '1001' }), { name: 'UpstreamError', code: 'malformed_response' })
  scope.done()
})

t.test('401 is http_401, carries the ConnectWise message, and is not retried', async t => {
  const scope = nock(SITE).get(`${BASE}/finance/invoices/1001`).once().reply(401, fixture('error-401.json') as object)
  const psa = createConnectWisePsa({ ...creds, codebase: 'v4_6_release/', sleep: async () => { t.fail('must not sleep') } })
  const error = await psa.getInvoice({ externalId: '1001' }).catch((e: unknown) => e)
  t.ok(error instanceof UpstreamError)
  t.match(error, { code: 'http_401', status: 401, retryable: false, message: /Unauthorized: The credentials are not valid/ })
  t.equal(psa.callsMade(), 1)
  scope.done()
})

t.test('a Link header pointing off-site is refused (credentials stay home)', async t => {
  const scope = nock(SITE).get(`${BASE}/company/companies`).query(true).reply(200, fixture('companies.json') as object, { Link: '<https://evil.example/steal>; rel="next"' })
  const psa = createConnectWisePsa({ ...creds, codebase: 'v4_6_release/' })
  const seen: number[] = []
  await t.rejects((async () => { for await (const page of psa.listCompanies()) seen.push(page.length) })(), { code: 'malformed_response' })
  t.same(seen, [3], 'the first page was delivered before the bad link')
  scope.done()
})

t.test('ids are checked before they reach a URL path', async t => {
  const psa = createConnectWisePsa({ ...creds, codebase: 'v4_6_release/' })
  await t.rejects(psa.getInvoice({ externalId: '../system/members' }), TypeError)
  t.equal(psa.callsMade(), 0)
})
