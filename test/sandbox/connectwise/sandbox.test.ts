import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, connectwiseSandboxSite, createConnectWiseStore, SANDBOX_API_MEMBER, type ConnectWiseStore } from '../../../src/sandbox/connectwise/index.js'
import { createConnectWisePsa, type ConnectWisePsaOptions } from '../../../src/adapters/connectwise/psa.js'
import type { PsaInvoice } from '../../../src/ports/psa.js'

async function start (t: { teardown: (fn: () => Promise<void>) => void }, store: ConnectWiseStore): Promise<{ app: FastifyInstance, site: string }> {
  const app = Fastify()
  await app.register(connectwiseSandbox, { prefix: '/sandbox/connectwise', store, credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { app, site: connectwiseSandboxSite(app.server.address() as AddressInfo) }
}

const adapter = (site: string, extra: Partial<ConnectWisePsaOptions> = {}): ReturnType<typeof createConnectWisePsa> =>
  createConnectWisePsa({ site, ...CONNECTWISE_SANDBOX_CREDENTIALS, sleep: async () => {}, ...extra })

async function all (iter: AsyncIterable<PsaInvoice[]>): Promise<{ invoices: PsaInvoice[], pages: number }> {
  const invoices: PsaInvoice[] = []
  let pages = 0
  for await (const page of iter) { invoices.push(...page); pages++ }
  return { invoices, pages }
}

t.test('store is deterministic and realistic', async t => {
  const a = createConnectWiseStore({ seed: 3 })
  const b = createConnectWiseStore({ seed: 3 })
  t.same(a.invoices.map(i => [i.id, i.subtotalCents, i.lastUpdatedMs]), b.invoices.map(i => [i.id, i.subtotalCents, i.lastUpdatedMs]))
  t.equal(a.companies.length, 40)
  t.equal(a.invoices.length, 400)
  t.equal(a.invoices.filter(i => i.type === 'CreditMemo').length, 1)
  t.equal(a.invoices.filter(i => i.statusId === 4).length, 1, 'one voided')
  const now = a.now.getTime()
  t.ok(a.invoices.some(i => a.balanceCents(i) > 0 && i.dueMs < now), 'some overdue')
  t.ok(a.invoices.some(i => a.paidCents(i) > 0 && a.balanceCents(i) > 0), 'some partially paid')
  t.ok(a.invoices.some(i => a.paidCents(i) > 0 && a.balanceCents(i) === 0), 'some fully paid')
  t.ok(new Set(a.companies.map(c => c.identifier)).size === 40, 'unique identifiers')
})

t.test('the real adapter against the stand-in', async t => {
  const store = createConnectWiseStore({ seed: 11, invoices: 2300 })
  const { site } = await start(t, store)

  await t.test('wrong credentials and a missing clientId are 401', async t => {
    await t.rejects(adapter(site, { privateKey: 'wrong' }).getInvoice({ externalId: '1001' }), { code: 'http_401', retryable: false })
    await t.rejects(adapter(site, { clientId: '' }).getInvoice({ externalId: '1001' }), { code: 'http_401' })
    await t.rejects(adapter(site).getInvoice({ externalId: '999999' }), { code: 'http_404', message: /NotFound/ })
  })

  await t.test('full listing across pages equals the store, ordered by lastUpdated then id', async t => {
    const psa = adapter(site)
    const { invoices, pages } = await all(psa.listInvoicesChangedSince({ since: null }))
    t.equal(pages, 3, '2300 invoices at 1000 a page')
    t.same(invoices.map(i => i.externalId).sort(), store.invoices.map(i => String(i.id)).sort())
    t.equal(new Set(invoices.map(i => i.externalId)).size, invoices.length, 'no duplicates')
    const ordered = invoices.every((inv, k) => k === 0 || (invoices[k - 1]!.updatedAt.getTime() < inv.updatedAt.getTime()) || (invoices[k - 1]!.updatedAt.getTime() === inv.updatedAt.getTime() && Number(invoices[k - 1]!.externalId) < Number(inv.externalId)))
    t.ok(ordered)
    const sample = store.invoices[500]!
    const mapped = invoices.find(i => i.externalId === String(sample.id))!
    t.equal(mapped.total.amount, store.totalCents(sample))
    t.equal(mapped.balance?.amount, store.balanceCents(sample))
    t.equal(psa.callsMade(), 4, 'companyinfo + 3 pages')
  })

  await t.test('incremental: only what changed since, including a touched invoice', async t => {
    const cutoff = new Date(store.byLastUpdated()[2000]!.lastUpdatedMs)
    const expected = store.invoices.filter(i => i.lastUpdatedMs >= cutoff.getTime()).length
    const touched = store.touchInvoice(1003, { customerPO: 'PO-"quoted"' })
    const { invoices } = await all(adapter(site).listInvoicesChangedSince({ since: cutoff }))
    t.equal(invoices.length, expected + 1)
    t.equal(invoices[invoices.length - 1]?.externalId, String(touched.id), 'the touched invoice comes last')
    t.equal(invoices[invoices.length - 1]?.poNumber, 'PO-"quoted"')
    t.ok(invoices.every(i => i.updatedAt.getTime() >= cutoff.getTime()))
  })

  await t.test('companies list', async t => {
    const names: string[] = []
    for await (const page of adapter(site).listCompanies()) names.push(...page.map(c => c.identifier ?? ''))
    t.same(names, store.companies.map(c => c.identifier))
  })

  await t.test('lines add up to every invoice total', async t => {
    const psa = adapter(site)
    const ids = store.invoices.slice(0, 40).map(i => String(i.id))
    const lines = await psa.getInvoiceLines({ invoiceExternalIds: ids })
    t.equal(lines.size, 40)
    for (const inv of store.invoices.slice(0, 40)) {
      const sum = (lines.get(String(inv.id)) ?? []).reduce((s, l) => s + l.amount.amount, 0)
      if (sum !== store.totalCents(inv)) t.fail(`invoice ${inv.id}: lines ${sum} != total ${store.totalCents(inv)}`)
    }
    t.pass('checked 40 invoices')
    const credit = store.invoices.find(i => i.type === 'CreditMemo')!
    const creditLines = await psa.getInvoiceLines({ invoiceExternalIds: [String(credit.id)] })
    t.ok((creditLines.get(String(credit.id)) ?? []).every(l => l.amount.amount < 0), 'credit memo lines are negative')
  })

  await t.test('recordPayment is idempotent by the ids from before; markPaid writes nothing; appliedBy is the API member', async t => {
    const open = store.invoices.find(i => i.type !== 'CreditMemo' && i.statusId !== 4 && store.paidCents(i) === 0 && store.balanceCents(i) > 500)!
    const psa = adapter(site)
    const input = { invoiceExternalId: String(open.id), amount: { amount: 500, currency: 'USD' as const }, paidOn: '2026-11-14', reference: 'att_1', method: 'card' as const }
    let before: readonly string[] | undefined
    const first = await psa.recordPayment({ ...input, beforePost: async ids => { before = ids } })
    const second = await psa.recordPayment({ ...input, paymentIdsBefore: before ?? [] })
    t.equal(first.alreadyRecorded, false)
    t.equal(second.alreadyRecorded, true)
    t.equal(second.externalId, first.externalId)
    t.equal(store.paymentsOf(open.id).length, 1, 'one payment stored')
    t.equal(store.paymentsOf(open.id)[0]?.appliedBy, SANDBOX_API_MEMBER, 'posted with the API key: applied by its API member')
    const balance = store.balanceCents(open)
    await psa.markPaid({ invoiceExternalId: String(open.id), paidOn: '2026-11-15', reference: 'att_2' })
    t.equal(store.balanceCents(open), balance, 'markPaid records no money Settle did not collect')
    await psa.recordPayment({ ...input, amount: { amount: balance, currency: 'USD' }, paidOn: '2026-11-15', reference: 'att_2' })
    const after = await psa.getInvoice({ externalId: String(open.id) })
    t.equal(after.paidOn, '2026-11-15', 'paidOn is the latest payment date')
    t.equal(after.balance?.amount, 0)
    await t.rejects(psa.recordPayment({ ...input, amount: { amount: 1, currency: 'USD' }, paidOn: '2026-11-16' }), { code: 'http_400', message: /exceeds the invoice balance/ })
  })

  await t.test('callback registration is idempotent and removable', async t => {
    const psa = adapter(site)
    const url = 'https://settle.example/webhooks/connectwise/"t1"'
    const a = await psa.registerInvoiceCallback({ url, description: 'Settle' })
    const b = await psa.registerInvoiceCallback({ url, description: 'Settle (renamed)' })
    t.equal(a.created, true)
    t.equal(b.created, false)
    t.equal(store.callbacks.filter(c => c.url === url).length, 1)
    t.equal(store.callbacks[0]?.description, 'Settle (renamed)')
    t.same(await psa.removeInvoiceCallback({ url }), { removed: 1 })
    t.equal(store.callbacks.length, 0)
  })

  await t.test('faults: a 429 burst and 500s are ridden out by the adapter', async t => {
    const slept: number[] = []
    const psa = adapter(site, { sleep: async ms => { slept.push(ms) } })
    store.faults.burst429 = 2
    const invoice = await psa.getInvoice({ externalId: '1002' })
    t.equal(invoice.externalId, '1002')
    t.same(slept.slice(0, 2), [1000, 1000], 'Retry-After: 1 honoured twice')
    store.faults.errorRate = 0.5
    const again = await psa.getInvoice({ externalId: '1004' })
    store.faults.errorRate = 0
    t.equal(again.externalId, '1004')
    t.ok(slept.length >= 3, 'backed off after a 500')
  })
})

// How fast and how compact is measured by `npm run bench -- standins`, not asserted here.
t.test('50,000 invoices generate deterministically', async t => {
  const store = createConnectWiseStore({ invoices: 50_000 })
  t.equal(store.invoices.length, 50_000)
  const again = createConnectWiseStore({ invoices: 50_000 })
  t.same(again.invoices[49_999], store.invoices[49_999])
  t.same(again.linesOf(again.invoices[30_000]!), store.linesOf(store.invoices[30_000]!))
})
