import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, connectwiseSandboxSite, createConnectWiseStore } from '../../../src/sandbox/connectwise/index.js'
import { createConnectWisePsa } from '../../../src/adapters/connectwise/psa.js'
import { toPsaInvoiceLines, type CwInvoiceInfo } from '../../../src/adapters/connectwise/mapper.js'
import type { PsaInvoice, PsaInvoiceLine } from '../../../src/ports/psa.js'

/** The stand-in, with hooks to play a tenant that differs from it. */
async function start (t: { teardown: (fn: () => Promise<void>) => void }, hooks: { refuseBatched?: boolean, dropProductOf?: number } = {}): Promise<{ site: string, store: ReturnType<typeof createConnectWiseStore>, paths: string[] }> {
  const store = createConnectWiseStore({ seed: 7 })
  const paths: string[] = []
  const app = Fastify()
  app.addHook('onRequest', async (request, reply) => {
    paths.push(request.url.split('?')[0]!.replace(/^.*apis\/3\.0/, ''))
    if (hooks.refuseBatched === true && /\/(procurement\/products|time\/entries|expense\/entries)/.test(request.url)) {
      return await reply.code(400).send({ code: 'InvalidObject', message: 'conditions: in is not supported here' })
    }
  })
  app.addHook('onSend', async (request, _reply, payload) => {
    if (hooks.dropProductOf === undefined || !request.url.includes('/procurement/products') || typeof payload !== 'string') return payload
    return JSON.stringify((JSON.parse(payload) as Array<{ invoice: { id: number } }>).filter(p => p.invoice.id !== hooks.dropProductOf))
  })
  await app.register(connectwiseSandbox, { prefix: '/sandbox/connectwise', store, credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { site: connectwiseSandboxSite(app.server.address() as AddressInfo), store, paths }
}

const adapter = (site: string): ReturnType<typeof createConnectWisePsa> => createConnectWisePsa({ site, ...CONNECTWISE_SANDBOX_CREDENTIALS, sleep: async () => {} })
const comparable = (lines: readonly PsaInvoiceLine[] | undefined): unknown => (lines ?? []).map(l => ({ externalId: l.externalId, kind: l.kind, description: l.description, quantity: l.quantity, unitPrice: l.unitPrice, amount: l.amount }))

async function headers (psa: ReturnType<typeof createConnectWisePsa>): Promise<PsaInvoice[]> {
  const out: PsaInvoice[] = []
  for await (const page of psa.listInvoicesChangedSince({ since: null })) out.push(...page)
  return out
}

/** What /finance/info/invoice/{id} gives for each invoice: the exact way, one call each. */
async function exact (psa: ReturnType<typeof createConnectWisePsa>, ids: readonly string[]): Promise<Map<string, PsaInvoiceLine[]>> {
  const out = new Map<string, PsaInvoiceLine[]>()
  for (const id of ids) out.set(id, toPsaInvoiceLines((await psa.client.get<CwInvoiceInfo>(`/finance/info/invoice/${id}`)).data))
  return out
}

t.test('batched line records give exactly the lines of /finance/info/invoice, in 3 calls per 100 invoices', async t => {
  const { site, paths } = await start(t)
  const psa = adapter(site)
  const listed = await headers(psa)
  const ids = listed.map(i => i.externalId)
  const before = psa.callsMade()
  const lines = await psa.getInvoiceLines({ invoiceExternalIds: ids, headers: listed })
  const calls = psa.callsMade() - before
  t.equal(calls, 3 * Math.ceil(ids.length / 100), `${calls} calls for ${ids.length} invoices`)
  t.notOk(paths.some(p => p.startsWith('/finance/info/invoice/')), 'no per-invoice call')
  const reference = await exact(psa, ids)
  const differing = ids.filter(id => JSON.stringify(comparable(lines.get(id))) !== JSON.stringify(comparable(reference.get(id))))
  t.same(differing, [], 'every one of the 400 invoices has the same lines both ways (agreement, products, time, tax; the credit memo negative)')
})

t.test('without headers, they are read in one batched call first', async t => {
  const { site } = await start(t)
  const psa = adapter(site)
  const ids = ['1001', '1002', '1003']
  await psa.client.codebase()
  const before = psa.callsMade()
  const lines = await psa.getInvoiceLines({ invoiceExternalIds: ids })
  t.equal(psa.callsMade() - before, 4, 'headers, products, time, expenses')
  t.same(comparable(lines.get('1002')), comparable((await exact(psa, ['1002'])).get('1002')))
})

t.test('an invoice whose batched lines do not add up is read the exact way', async t => {
  // The stand-in's data is seeded, so this invoice is the same in every store built from seed 7.
  const seeded = createConnectWiseStore({ seed: 7 })
  const withProducts = seeded.invoices.find(i => i.type === 'Standard' && seeded.linesOf(i).products.length > 0 && i.statusId !== 4)!
  const { site: site2, paths: paths2 } = await start(t, { dropProductOf: withProducts.id })
  const psa = adapter(site2)
  const listed = (await headers(psa)).slice(0, 100)
  const lines = await psa.getInvoiceLines({ invoiceExternalIds: listed.map(i => i.externalId), headers: listed })
  t.same(paths2.filter(p => p.startsWith('/finance/info/invoice/')), [`/finance/info/invoice/${withProducts.id}`], 'only the invoice that did not add up')
  t.same(comparable(lines.get(String(withProducts.id))), comparable((await exact(psa, [String(withProducts.id)])).get(String(withProducts.id))), 'with its product line')
})

t.test('a tenant that refuses the batched conditions gets one call per invoice, from then on', async t => {
  const { site, paths } = await start(t, { refuseBatched: true })
  const psa = adapter(site)
  const listed = (await headers(psa)).slice(0, 20)
  const lines = await psa.getInvoiceLines({ invoiceExternalIds: listed.map(i => i.externalId), headers: listed })
  t.equal(lines.size, 20)
  t.equal(paths.filter(p => p.startsWith('/finance/info/invoice/')).length, 20)
  const refusedBefore = paths.filter(p => p.startsWith('/procurement/products')).length
  await psa.getInvoiceLines({ invoiceExternalIds: ['1001'], headers: listed.slice(0, 1) })
  t.equal(paths.filter(p => p.startsWith('/procurement/products')).length, refusedBefore, 'not asked again')
})
