import t from 'tap'
import Fastify from 'fastify'
import autotaskSandbox, { AUTOTASK_SANDBOX_CREDENTIALS, createAutotaskStore } from '../../../src/sandbox/autotask/index.js'
import { createAutotaskPsa } from '../../../src/adapters/autotask/psa.js'
import { createAutotaskClient } from '../../../src/adapters/autotask/client.js'
import type { PsaInvoice } from '../../../src/ports/psa.js'

// The real adapter against the stand-in on a real port: only loopback traffic.
t.test('Autotask adapter against the stand-in', async t => {
  const store = createAutotaskStore({ seed: 7, companies: 12, invoices: 1234 })
  const app = Fastify()
  await app.register(autotaskSandbox, { prefix: '/sandbox/autotask', store })
  const origin = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const zoneDiscoveryUrl = `${origin}/sandbox/autotask/ATServicesRest/V1.0/zoneInformation`
  const discovered: string[] = []
  const slept: number[] = []
  const psa = createAutotaskPsa({
    ...AUTOTASK_SANDBOX_CREDENTIALS,
    zoneDiscoveryUrl,
    onZoneDiscovered: url => { discovered.push(url) },
    sleep: async ms => { slept.push(ms) }
  })
  const drain = async (pages: AsyncIterable<PsaInvoice[]>): Promise<PsaInvoice[][]> => {
    const out: PsaInvoice[][] = []
    for await (const page of pages) out.push(page)
    return out
  }

  await t.test('wrong secret → 401; wrong integration code → HTTP 500 auth_failed, neither retried', async t => {
    const wrongSecret = createAutotaskClient({ ...AUTOTASK_SANDBOX_CREDENTIALS, secret: 'nope', zoneDiscoveryUrl, sleep: async () => {} })
    await t.rejects(wrongSecret.get('Invoices', 1000), { code: 'auth_failed', status: 401 })
    const wrongCode = createAutotaskClient({ ...AUTOTASK_SANDBOX_CREDENTIALS, integrationCode: 'WRONG', zoneDiscoveryUrl, sleep: async () => {} })
    await t.rejects(wrongCode.get('Invoices', 1000), { code: 'auth_failed', status: 500, retryable: false })
    t.equal(wrongCode.callsMade(), 2, 'discovery + one refused call')
    const missing = await fetch(`${origin}/sandbox/autotask/ATServicesRest/V1.0/Invoices/1000`)
    t.equal(missing.status, 401)
    t.same(await missing.json(), { errors: ['Unauthorized'] })
  })

  await t.test('every invoice listed across pages equals the store', async t => {
    const pages = await drain(psa.listInvoicesChangedSince({ since: null }))
    t.same(pages.map(p => p.length), [500, 500, 234], 'MaxRecords 500, then nextPageUrl')
    const listed = pages.flat()
    t.same(listed.map(i => Number(i.externalId)).sort((a, b) => a - b), store.invoiceIds())
    t.same(discovered, [`${origin}/sandbox/autotask/ATServicesRest/`], 'zone discovered once, on this server')
    const voided = listed.filter(i => i.voided)
    const credits = listed.filter(i => i.kind === 'credit_memo')
    t.equal(voided.length, 1)
    t.equal(credits.length, 1)
    t.ok(credits[0]!.total.amount < 0)
    t.ok(listed.some(i => i.paidOn !== null), 'some paid')
    t.ok(listed.some(i => i.paidOn === null && !i.voided && i.dueOn !== null && i.dueOn < '2026-11-20'), 'some overdue')
  })

  await t.test('incremental by change stamp, and open invoices', async t => {
    const all = (await drain(psa.listInvoicesChangedSince({ since: null }))).flat()
    const cutoff = all[all.length - 10]!.updatedAt
    const recent = (await drain(psa.listInvoicesChangedSince({ since: cutoff }))).flat()
    t.same(recent.map(i => i.externalId), all.filter(i => i.updatedAt >= cutoff).map(i => i.externalId))
    t.ok(recent.length >= 10 && recent.length < 20)
    const added = store.addInvoice({ createDateTime: '2026-11-21T09:00:00Z' })
    const after = (await drain(psa.listInvoicesChangedSince({ since: new Date('2026-11-21T00:00:00Z') }))).flat()
    t.same(after.map(i => i.externalId), [String(added.id)])
    const open = (await drain(psa.listOpenInvoices())).flat()
    t.equal(open.length, all.filter(i => i.paidOn === null && !i.voided).length + 1)
    t.ok(open.every(i => i.paidOn === null && !i.voided))
  })

  await t.test('lines add up: extended prices + tax = invoice total, for every invoice', async t => {
    const all = (await drain(psa.listInvoicesChangedSince({ since: null }))).flat()
    const before = psa.callsMade()
    const lines = await psa.getInvoiceLines({ invoiceExternalIds: all.map(i => i.externalId) })
    t.ok(psa.callsMade() - before >= 3, 'batched in queries of ≤ 500 ids')
    let mismatches = 0
    const kinds = new Set<string>()
    for (const inv of all) {
      const raw = inv.raw as { totalTaxValue: number }
      const net = (lines.get(inv.externalId) ?? []).reduce((s, l) => { kinds.add(l.kind); return s + l.amount.amount }, 0)
      if (net + Math.round(raw.totalTaxValue * 100) !== inv.total.amount) mismatches++
    }
    t.equal(mismatches, 0)
    t.same([...kinds].sort(), ['agreement', 'expense', 'product', 'time'])
  })

  await t.test('markPaid sets paidDate and webServiceDate once; a second call writes nothing', async t => {
    const open = (await drain(psa.listOpenInvoices())).flat()
    const target = open.find(i => i.total.amount > 0)!
    await psa.markPaid({ invoiceExternalId: target.externalId, paidOn: '2026-11-20', reference: 'att_1' })
    const stored = store.invoice(Number(target.externalId))!
    t.equal(stored.paidDate, '2026-11-20T00:00:00Z')
    t.type(stored.webServiceDate, 'string', 'our marker is set')
    const calls = psa.callsMade()
    await psa.markPaid({ invoiceExternalId: target.externalId, paidOn: '2026-11-21', reference: 'att_1' })
    t.equal(psa.callsMade() - calls, 1, 'only the read')
    t.equal(store.invoice(Number(target.externalId))!.paidDate, '2026-11-20T00:00:00Z', 'unchanged')
    const read = await psa.getInvoice({ externalId: target.externalId })
    t.equal(read.paidOn, '2026-11-20')
  })

  await t.test('the stand-in refuses read-only invoice fields like Autotask', async t => {
    const res = await fetch(`${origin}/sandbox/autotask/ATServicesRest/V1.0/Invoices`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', ApiIntegrationcode: AUTOTASK_SANDBOX_CREDENTIALS.integrationCode, UserName: AUTOTASK_SANDBOX_CREDENTIALS.apiUser, Secret: AUTOTASK_SANDBOX_CREDENTIALS.secret },
      body: JSON.stringify({ id: 1000, invoiceTotal: 1 })
    })
    t.equal(res.status, 400)
    t.match(await res.json(), { errors: [/invoiceTotal/] })
  })

  await t.test('reversing takes back only a paidDate Settle set, never one a person set', async t => {
    const open = (await drain(psa.listOpenInvoices())).flat().filter(i => i.total.amount > 0)
    const [ours, theirs] = open
    await psa.markPaid({ invoiceExternalId: ours!.externalId, paidOn: '2026-11-20', reference: 'att_r1' })
    await psa.reversePayment({ invoiceExternalId: ours!.externalId, paymentExternalId: '1', markedPaid: true })
    t.equal(store.invoice(Number(ours!.externalId))!.paidDate, null, 'Settle\'s own mark is taken back')
    // A person marked the invoice paid (a check) before Settle's markPaid, which then wrote nothing.
    store.touchInvoice(Number(theirs!.externalId), { paidDate: '2026-11-19T00:00:00Z' })
    await psa.markPaid({ invoiceExternalId: theirs!.externalId, paidOn: '2026-11-20', reference: 'att_r2' })
    await psa.reversePayment({ invoiceExternalId: theirs!.externalId, paymentExternalId: '2', markedPaid: true })
    t.equal(store.invoice(Number(theirs!.externalId))!.paidDate, '2026-11-19T00:00:00Z', 'the person\'s paidDate stays')
  })

  await t.test('a partial payment note is written once per reference', async t => {
    const target = (await drain(psa.listOpenInvoices())).flat().find(i => i.total.amount > 0)!
    const input = { invoiceExternalId: target.externalId, amount: { amount: 2500, currency: 'USD' as const }, paidOn: '2026-11-20', reference: 'att_partial_9', method: 'ach' as const }
    const first = await psa.recordPayment(input)
    const second = await psa.recordPayment(input)
    t.equal(first.alreadyRecorded, false)
    t.equal(second.alreadyRecorded, true)
    t.equal(second.externalId, first.externalId)
    const notes = store.notes().filter(n => n.name.includes('[att_partial_9]'))
    t.equal(notes.length, 1)
    t.equal(String(notes[0]!.companyID), target.companyExternalId)
  })

  await t.test('a burst of 429s is waited out with Retry-After', async t => {
    store.faults.burst429 = 2
    store.faults.retryAfterSeconds = 3
    slept.length = 0
    const pages = await drain(psa.listInvoicesChangedSince({ since: null }))
    t.equal(pages.flat().length, store.invoiceCount())
    t.same(slept, [3000, 3000])
    t.equal(store.faults.burst429, 0)
  })

  await t.test('past the hourly limit the stand-in answers 429', async t => {
    store.hourlyLimit = store.callsThisHour() + 1
    const client = createAutotaskClient({ ...AUTOTASK_SANDBOX_CREDENTIALS, zoneUrl: discovered[0], attempts: 1 })
    t.ok(await client.get('Invoices', 1000))
    await t.rejects(client.get('Invoices', 1000), { code: 'rate_limited', status: 429 })
    store.hourlyLimit = 10_000
  })
})

t.test('store: deterministic at 50,000 invoices', async t => {
  // Build time and memory are measured by `npm run bench -- standins`, not asserted here.
  const big = createAutotaskStore({ seed: 1, companies: 300, invoices: 50_000 })
  t.equal(big.invoiceCount(), 50_000)
  const again = createAutotaskStore({ seed: 1, companies: 300, invoices: 50_000 })
  t.same(again.invoice(49_999), big.invoice(49_999))
  t.same(again.billingItems(30_000), big.billingItems(30_000))
  t.not(JSON.stringify(createAutotaskStore({ seed: 2, invoices: 50 }).invoice(1001)), JSON.stringify(createAutotaskStore({ seed: 1, invoices: 50 }).invoice(1001)), 'the seed matters')
})
