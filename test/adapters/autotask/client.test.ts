import t from 'tap'
import nock from 'nock'
import { readFileSync } from 'node:fs'
import { createAutotaskClient, f } from '../../../src/adapters/autotask/client.js'
import { createTokenBucket, RateBudgetExhausted } from '../../../src/adapters/autotask/budget.js'
import { UpstreamError } from '../../../src/adapters/http.js'

nock.disableNetConnect()
nock.enableNetConnect('127.0.0.1')

const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(new URL(`../../fixtures/autotask/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>
const ZONE_HOST = 'https://webservices5.autotask.net'
const ZONE = `${ZONE_HOST}/ATServicesRest/`
const creds = { apiUser: 'api@msp.test', secret: 's3cret', integrationCode: 'CODE123' }
const noSleep = async (): Promise<void> => {}

t.afterEach(() => { nock.cleanAll() })

t.test('zone discovery runs once, is cached and reported; auth headers on every call', async t => {
  const discovery = nock('https://webservices.autotask.net', { reqheaders: { ApiIntegrationcode: 'CODE123', UserName: 'api@msp.test', Secret: 's3cret' } })
    .get('/ATServicesRest/V1.0/zoneInformation').query({ user: 'api@msp.test' })
    .reply(200, fixture('zone-information.json'))
  const zone = nock(ZONE_HOST, { reqheaders: { ApiIntegrationcode: 'CODE123', UserName: 'api@msp.test', Secret: 's3cret', 'Content-Type': /application\/json/ } })
    .get('/ATServicesRest/V1.0/Companies/29683000').reply(200, { item: { id: 29683000, companyName: 'Brightline Dental' } })
    .get('/ATServicesRest/V1.0/Companies/1').reply(200, { item: null })
    .get('/ATServicesRest/V1.0/Companies/2').reply(404, { errors: ['Not found'] })
  const discovered: string[] = []
  const client = createAutotaskClient({ ...creds, onZoneDiscovered: url => { discovered.push(url) } })
  const [a, b] = await Promise.all([client.get<{ companyName: string }>('Companies', 29683000), client.get('Companies', 1)])
  t.equal(a?.companyName, 'Brightline Dental')
  t.equal(b, null, '{item:null} is not found')
  t.equal(await client.get('Companies', 2), null, '404 is not found')
  t.same(discovered, [ZONE], 'reported once for the caller to persist')
  t.equal(client.callsMade(), 4, 'one discovery + three gets')
  discovery.done()
  zone.done()
})

t.test('a known zone skips discovery', async t => {
  const scope = nock(ZONE_HOST).post('/ATServicesRest/V1.0/Invoices/query/count').reply(200, { queryCount: 7 })
  const client = createAutotaskClient({ ...creds, zoneUrl: 'https://webservices5.autotask.net/ATServicesRest' })
  t.equal(await client.count('Invoices', { filter: [f.exist('paidDate')] }), 7)
  scope.done()
})

t.test('query sends the filter exactly and follows nextPageUrl across 3 pages', async t => {
  const filter = [f.eq('companyID', 12345), f.or(f.gte('invoiceDateTime', '2024-01-01T00:00:00Z'), f.exist('paidDate')), f.in('id', [1, 2, 3])]
  const expected = {
    filter: [
      { op: 'eq', field: 'companyID', value: 12345 },
      { op: 'or', items: [{ op: 'gte', field: 'invoiceDateTime', value: '2024-01-01T00:00:00Z' }, { op: 'exist', field: 'paidDate' }] },
      { op: 'in', field: 'id', value: [1, 2, 3] }
    ],
    IncludeFields: ['id', 'invoiceTotal'],
    MaxRecords: 2
  }
  const next = (n: number): string => `${ZONE}V1.0/Invoices/query/next?paging=${encodeURIComponent(JSON.stringify({ pageSize: 2, nextIds: [n] }))}`
  const scope = nock(ZONE_HOST)
    .post('/ATServicesRest/V1.0/Invoices/query', expected)
    .reply(200, { items: [{ id: 1 }, { id: 2 }], pageDetails: { count: 2, requestCount: 2, prevPageUrl: null, nextPageUrl: next(2) } })
    .post('/ATServicesRest/V1.0/Invoices/query/next', expected).query({ paging: JSON.stringify({ pageSize: 2, nextIds: [2] }) })
    .reply(200, { items: [{ id: 3 }, { id: 4 }], pageDetails: { count: 2, requestCount: 2, prevPageUrl: null, nextPageUrl: next(4) } })
    .post('/ATServicesRest/V1.0/Invoices/query/next', expected).query({ paging: JSON.stringify({ pageSize: 2, nextIds: [4] }) })
    .reply(200, { items: [{ id: 5 }], pageDetails: { count: 1, requestCount: 2, prevPageUrl: null, nextPageUrl: null } })
  const client = createAutotaskClient({ ...creds, zoneUrl: ZONE })
  const pages: number[][] = []
  for await (const page of client.query<{ id: number }>('Invoices', { filter, includeFields: ['invoiceTotal'], maxRecords: 2 })) pages.push(page.map(i => i.id))
  t.same(pages, [[1, 2], [3, 4], [5]])
  scope.done()
})

t.test('next pages are POSTed with the original body, never tried with GET first', async t => {
  const body = { filter: [{ op: 'gte', field: 'id', value: 0 }], MaxRecords: 500 }
  const scope = nock(ZONE_HOST)
    .post('/ATServicesRest/V1.0/Companies/query', body).reply(200, { items: [{ id: 1 }], pageDetails: { nextPageUrl: `${ZONE}V1.0/Companies/query/next?p=1` } })
    .post('/ATServicesRest/V1.0/Companies/query/next', body).query({ p: '1' }).reply(200, { items: [{ id: 2 }], pageDetails: { nextPageUrl: `${ZONE}V1.0/Companies/query/next?p=2` } })
    .post('/ATServicesRest/V1.0/Companies/query/next', body).query({ p: '2' }).reply(200, { items: [{ id: 3 }], pageDetails: { nextPageUrl: null } })
  const client = createAutotaskClient({ ...creds, zoneUrl: ZONE })
  const ids: number[] = []
  for await (const page of client.query<{ id: number }>('Companies', { filter: [] })) ids.push(...page.map(c => c.id))
  t.same(ids, [1, 2, 3], 'an empty filter becomes the documented match-all')
  scope.done()
})

t.test('a nextPageUrl on another host is refused (the secret would travel)', async t => {
  const scope = nock(ZONE_HOST).post('/ATServicesRest/V1.0/Companies/query')
    .reply(200, { items: [], pageDetails: { nextPageUrl: 'https://evil.example/steal' } })
  const client = createAutotaskClient({ ...creds, zoneUrl: ZONE })
  await t.rejects((async () => { for await (const _ of client.query('Companies', { filter: [] })) { /* drain */ } })(), { code: 'malformed_response' })
  scope.done()
})

t.test('429 then success: Retry-After is honoured through the shared request function', async t => {
  const scope = nock(ZONE_HOST)
    .get('/ATServicesRest/V1.0/Invoices/5').reply(429, { errors: ['Too many requests'] }, { 'Retry-After': '7' })
    .get('/ATServicesRest/V1.0/Invoices/5').reply(200, { item: { id: 5 } })
  const slept: number[] = []
  const client = createAutotaskClient({ ...creds, zoneUrl: ZONE, sleep: async ms => { slept.push(ms) } })
  t.same(await client.get('Invoices', 5), { id: 5 })
  t.same(slept, [7000])
  t.equal(client.callsMade(), 2)
  scope.done()
})

t.test('malformed JSON on a 200 is a non-retryable malformed_response', async t => {
  const scope = nock(ZONE_HOST).post('/ATServicesRest/V1.0/Invoices/query').reply(200, '{"items": [', { 'Content-Type': 'application/json' })
  const client = createAutotaskClient({ ...creds, zoneUrl: ZONE, sleep: noSleep })
  const error = await (async () => { for await (const _ of client.query('Invoices', { filter: [] })) { /* drain */ } })().catch((e: unknown) => e)
  t.ok(error instanceof UpstreamError)
  t.match(error, { code: 'malformed_response', retryable: false })
  t.equal(client.callsMade(), 1, 'not retried')
  scope.done()
})

t.test('401 and the HTTP 500 bad-integration-code answer are auth_failed and not retried', async t => {
  const scope = nock(ZONE_HOST)
    .get('/ATServicesRest/V1.0/Invoices/1').reply(401, fixture('error-401.json'))
    .get('/ATServicesRest/V1.0/Invoices/2').reply(500, fixture('error-500-integration-code.json'))
  const client = createAutotaskClient({ ...creds, zoneUrl: ZONE, sleep: noSleep })
  await t.rejects(client.get('Invoices', 1), { code: 'auth_failed', status: 401, retryable: false })
  await t.rejects(client.get('Invoices', 2), { code: 'auth_failed', status: 500, retryable: false, message: /IntegrationCode is invalid/ })
  t.equal(client.callsMade(), 2, 'one call each')
  scope.done()
})

t.test('a plain 500 is still retried, and an errors array in a 200 fails', async t => {
  const scope = nock(ZONE_HOST)
    .get('/ATServicesRest/V1.0/Invoices/3').reply(500, { errors: ['Timeout expired'] })
    .get('/ATServicesRest/V1.0/Invoices/3').reply(200, { item: { id: 3 } })
    .patch('/ATServicesRest/V1.0/Invoices', { id: 3, paidDate: '2026-11-01T00:00:00Z' }).reply(200, { itemId: 3, errors: ['paidDate: value rejected'] })
  const client = createAutotaskClient({ ...creds, zoneUrl: ZONE, sleep: noSleep })
  t.same(await client.get('Invoices', 3), { id: 3 })
  await t.rejects(client.update('Invoices', { id: 3, paidDate: '2026-11-01T00:00:00Z' }), { code: 'upstream_error', message: /value rejected/ })
  scope.done()
})

t.test('never more than maxConcurrent (3) requests in flight', async t => {
  let inFlight = 0
  let peak = 0
  const scope = nock(ZONE_HOST).get(/\/ATServicesRest\/V1\.0\/Invoices\/\d+$/).times(10).reply(async uri => {
    inFlight++
    peak = Math.max(peak, inFlight)
    await new Promise(resolve => setTimeout(resolve, 25))
    inFlight--
    return [200, { item: { id: Number(uri.split('/').pop()) } }]
  })
  const client = createAutotaskClient({ ...creds, zoneUrl: ZONE })
  const items = await Promise.all(Array.from({ length: 10 }, async (_, i) => await client.get<{ id: number }>('Invoices', i + 1)))
  t.same(items.map(i => i?.id), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  t.equal(peak, 3, 'three at once, never four')
  scope.done()
})

t.test('every call takes from the shared budget; an empty one stops calls with a typed error', async t => {
  const scope = nock(ZONE_HOST).get('/ATServicesRest/V1.0/Invoices/1').times(2).reply(200, { item: { id: 1 } })
  let clock = 0
  const budget = createTokenBucket({ capacityPerHour: 2, maxWaitMs: 60_000, now: () => clock })
  const client = createAutotaskClient({ ...creds, zoneUrl: ZONE, budget })
  await client.get('Invoices', 1)
  await client.get('Invoices', 1)
  t.equal(budget.available(), 0)
  const error = await client.get('Invoices', 1).catch((e: unknown) => e)
  t.ok(error instanceof RateBudgetExhausted, 'typed error')
  t.match(error, { code: 'rate_budget_exhausted', retryAfterMs: 1_800_000 })
  t.equal(client.callsMade(), 2, 'the refused call never went out')
  clock += 1_800_000
  t.equal(budget.available(), 1, 'refills continuously')
  scope.done()
})

t.test('token bucket: a short wait sleeps instead of failing, and waiters queue', async t => {
  const clock = 0
  const slept: number[] = []
  const budget = createTokenBucket({ capacityPerHour: 3600, initialTokens: 0, maxWaitMs: 5000, now: () => clock, sleep: async ms => { slept.push(ms) } })
  await budget.take()
  await budget.take()
  t.same(slept, [1000, 2000], 'second caller waits behind the first')
  await t.rejects(budget.take(10), RateBudgetExhausted)
})
