import t from 'tap'
import Fastify from 'fastify'
import autotaskSandbox, { AUTOTASK_SANDBOX_CREDENTIALS, createAutotaskStore } from '../../../src/sandbox/autotask/index.js'
import { createAutotaskClient } from '../../../src/adapters/autotask/client.js'
import { createAutotaskPsa } from '../../../src/adapters/autotask/psa.js'

const headers = { username: AUTOTASK_SANDBOX_CREDENTIALS.apiUser, secret: AUTOTASK_SANDBOX_CREDENTIALS.secret, apiintegrationcode: AUTOTASK_SANDBOX_CREDENTIALS.integrationCode, 'content-type': 'application/json' }

async function rig (t: { teardown: (fn: () => Promise<void>) => void }): Promise<{ origin: string, base: string, hits: string[], store: ReturnType<typeof createAutotaskStore> }> {
  const store = createAutotaskStore({ seed: 7, companies: 12, invoices: 1234 })
  const app = Fastify()
  const hits: string[] = []
  app.addHook('onRequest', async req => { hits.push(`${req.method} ${req.url.split('?')[0] ?? ''}`) })
  await app.register(autotaskSandbox, { prefix: '/sandbox/autotask', store })
  const origin = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { origin, base: `${origin}/sandbox/autotask`, hits, store }
}

t.test('paths match without regard to case, as Autotask does', async t => {
  const { base } = await rig(t)
  const zone = await fetch(`${base}/ATServicesRest/v1.0/zoneInformation?user=x`)
  t.equal(zone.status, 200)
  const lower = await fetch(`${base}/atservicesrest/V1.0/Invoices/1000`, { headers })
  t.equal(lower.status, 200)
  t.equal(((await lower.json()) as { item: { id: number } }).item.id, 1000)
  const mixed = await fetch(`${base}/ATSERVICESREST/v1.0/invoices/query`, { method: 'POST', headers, body: JSON.stringify({ filter: [{ op: 'eq', field: 'id', value: 1000 }] }) })
  t.equal(mixed.status, 200)
  t.equal(((await mixed.json()) as { items: unknown[] }).items.length, 1)
})

t.test('GET on a posted query\'s nextPageUrl answers 405 in ASP.NET\'s format', async t => {
  const { base } = await rig(t)
  const first = await fetch(`${base}/ATServicesRest/V1.0/Invoices/query`, { method: 'POST', headers, body: JSON.stringify({ filter: [{ op: 'gte', field: 'id', value: 0 }] }) })
  const next = ((await first.json()) as { pageDetails: { nextPageUrl: string } }).pageDetails.nextPageUrl
  const got = await fetch(next, { headers })
  t.equal(got.status, 405)
  t.same(await got.json(), { Message: "The requested resource does not support http method 'GET'." })
  const posted = await fetch(next, { method: 'POST', headers, body: JSON.stringify({ filter: [{ op: 'gte', field: 'id', value: 0 }] }) })
  t.equal(posted.status, 200)
})

t.test('the adapter POSTs next pages directly: one request per page at the stand-in', async t => {
  const { base, hits } = await rig(t)
  const client = createAutotaskClient({ ...AUTOTASK_SANDBOX_CREDENTIALS, zoneDiscoveryUrl: `${base}/ATServicesRest/V1.0/zoneInformation`, sleep: async () => {} })
  const sizes: number[] = []
  for await (const page of client.query('Invoices', { filter: [] })) sizes.push(page.length)
  t.same(sizes, [500, 500, 234])
  t.same(hits.filter(h => !h.includes('zoneInformation')), [
    'POST /sandbox/autotask/ATServicesRest/V1.0/Invoices/query',
    'POST /sandbox/autotask/ATServicesRest/V1.0/Invoices/query/next',
    'POST /sandbox/autotask/ATServicesRest/V1.0/Invoices/query/next'
  ])
  t.equal(client.callsMade(), 4, 'discovery + three pages')
})

t.test('fault switch over HTTP: a performed write whose answer is lost', async t => {
  const { base, store } = await rig(t)
  const control = `${base}/_sandbox/faults`
  const refused = await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ lostAnswerRate: 2 }) })
  t.equal(refused.status, 400)
  t.match(await refused.json(), { errors: [/from 0 to 1/] })
  const unknown = await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ explode: true }) })
  t.equal(unknown.status, 400)
  const set = await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ burstLostAnswers: 1, seed: 9 }) })
  t.match(await set.json(), { burstLostAnswers: 1, seed: 9, lostAnswerMode: 'bad_gateway' })

  const read = await fetch(`${base}/ATServicesRest/V1.0/Invoices/1000`, { headers })
  t.equal(read.status, 200, 'reads keep their answers')
  const lost = await fetch(`${base}/ATServicesRest/V1.0/Invoices`, { method: 'PATCH', headers, body: JSON.stringify({ id: 1000, paidDate: '2026-12-01T00:00:00Z' }) })
  t.equal(lost.status, 502)
  t.match(await lost.text(), /502/)
  t.match(store.invoice(1000), { paidDate: /^2026-12-01/ }, 'the change was made')

  await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ burstLostAnswers: 1, lostAnswerMode: 'drop' }) })
  const before = store.notes().length
  await t.rejects(fetch(`${base}/ATServicesRest/V1.0/CompanyNotes`, { method: 'POST', headers, body: JSON.stringify({ companyID: store.companies()[0]?.id, actionType: 3, name: 'Settle payment' }) }), 'the connection is dropped')
  t.equal(store.notes().length, before + 1, 'the note was created')
  t.match(await (await fetch(control)).json(), { burstLostAnswers: 0 })
})

t.test('a payment note whose answer was lost is found by its reference on retry, never written twice', async t => {
  const { base, store } = await rig(t)
  const psa = createAutotaskPsa({ ...AUTOTASK_SANDBOX_CREDENTIALS, zoneDiscoveryUrl: `${base}/ATServicesRest/V1.0/zoneInformation`, sleep: async () => {} })
  const invoiceId = store.invoiceIds()[0] ?? 0
  for (const lostAnswerMode of ['bad_gateway', 'drop'] as const) {
    await fetch(`${base}/_sandbox/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ burstLostAnswers: 1, lostAnswerMode }) })
    const before = store.notes().length
    const payment = { invoiceExternalId: String(invoiceId), amount: { amount: 2_500, currency: 'USD' }, paidOn: '2026-12-01', reference: `settle-${lostAnswerMode}`, method: 'card' }
    t.ok(await psa.recordPayment(payment as never).then(() => null, (e: unknown) => e) instanceof Error, `${lostAnswerMode}: the caller saw a failure`)
    t.equal(store.notes().length, before + 1, `${lostAnswerMode}: the note was written`)
    const retry = await psa.recordPayment(payment as never)
    t.equal(retry.alreadyRecorded, true, `${lostAnswerMode}: recognised by its reference`)
    t.equal(store.notes().length, before + 1, `${lostAnswerMode}: no second note`)
  }
})
