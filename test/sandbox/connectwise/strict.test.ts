import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, connectwiseSandboxSite, createConnectWiseStore } from '../../../src/sandbox/connectwise/index.js'
import { SANDBOX_API_MEMBER } from '../../../src/sandbox/connectwise/store.js'
import { createConnectWisePsa } from '../../../src/adapters/connectwise/psa.js'

const c = CONNECTWISE_SANDBOX_CREDENTIALS
const headers = { authorization: `Basic ${Buffer.from(`${c.companyId}+${c.publicKey}:${c.privateKey}`).toString('base64')}`, clientid: c.clientId }

async function rig (t: { teardown: (fn: () => Promise<void>) => void }): Promise<{ api: string, site: string, store: ReturnType<typeof createConnectWiseStore> }> {
  const store = createConnectWiseStore({ seed: 3 })
  const app = Fastify()
  await app.register(connectwiseSandbox, { prefix: '/sandbox/connectwise', store, credentials: c })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const site = connectwiseSandboxSite(app.server.address() as AddressInfo)
  const { port } = app.server.address() as AddressInfo
  return { api: `http://127.0.0.1:${port}/sandbox/connectwise/v4_6_release/apis/3.0`, site, store }
}

t.test('conditions or orderBy naming an unknown field: 400 InvalidObject, not an empty page', async t => {
  const { api, store } = await rig(t)
  const q = (path: string, params: Record<string, string>): Promise<Response> => fetch(`${api}${path}?${new URLSearchParams(params).toString()}`, { headers })
  for (const [path, params] of [
    ['/finance/invoices', { conditions: 'invoiceNumbr = "9001"' }],
    ['/finance/invoices', { conditions: 'id > 1 and company/idd = 3' }],
    ['/finance/invoices', { orderBy: 'lastUpdatd asc' }],
    ['/finance/invoices/count', { conditions: 'balanse > 0' }],
    ['/company/companies', { conditions: 'nme like "A%"' }],
    ['/system/callbacks', { conditions: 'uri = "https://x"' }],
    [`/finance/invoices/${store.invoices[0]?.id ?? 0}/payments`, { orderBy: 'amont desc' }]
  ] as const) {
    const res = await q(path, params)
    t.equal(res.status, 400, `${path} ${JSON.stringify(params)}`)
    t.match(await res.json(), { code: 'InvalidObject', message: /is not a valid field/, errors: [{ code: 'InvalidField' }] })
  }
  const known = await q('/finance/invoices', { conditions: 'company/id = 1 and balance > 0', orderBy: 'lastUpdated asc, id asc' })
  t.equal(known.status, 200, 'known fields, nested paths and the _info stamp are accepted')
  const callbacks = await q('/system/callbacks', { conditions: 'url = "https://x"' })
  t.equal(callbacks.status, 200, 'checked against the model even with no records')
})

t.test('fault switch: the payment is recorded and its answer lost; the adapter recognises its own payment on retry', async t => {
  const { api, site, store } = await rig(t)
  const control = `${api.replace(/\/v4_6_release\/apis\/3\.0$/, '')}/_sandbox/faults`
  const inv = store.invoices.find(i => store.balanceCents(i) > 10_000 && i.type !== 'CreditMemo' && i.statusId !== 4)
  if (inv === undefined) throw new Error('no open invoice')
  // The connection learned its API member from an earlier post (as psa-connections keeps it).
  const psa = createConnectWisePsa({ site, ...c, sleep: async () => {}, apiMember: SANDBOX_API_MEMBER })
  const before = store.paymentsOf(inv.id).length
  for (const [lostAnswerMode, cents] of [['bad_gateway', 1_000], ['drop', 1_500]] as const) {
    const put = await fetch(control, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ burstLostAnswers: 1, lostAnswerMode }) })
    t.equal(put.status, 200)
    const ref = `settle-${lostAnswerMode}`
    // As the push job does: the ids seen before the first try are kept and handed to every retry.
    let idsBefore: readonly string[] = []
    const payment = { invoiceExternalId: String(inv.id), amount: { amount: cents, currency: 'USD' }, paidOn: '2026-12-01', reference: ref, beforePost: async (ids: readonly string[]) => { idsBefore = ids } }
    const first = await psa.recordPayment(payment as never).catch((e: unknown) => e)
    t.ok(first instanceof Error, `${lostAnswerMode}: the caller saw a failure`)
    const recorded = store.paymentsOf(inv.id).length
    t.equal(recorded, before + (lostAnswerMode === 'drop' ? 2 : 1), `${lostAnswerMode}: the payment was recorded`)
    // The outbox retries the job: the adapter must find the payment it already made, not post another.
    const retry = { ...payment, paymentIdsBefore: idsBefore }
    // Without knowing its API member the adapter cannot tell its payment from a person's: it refuses rather than post again.
    const blind = createConnectWisePsa({ site, ...c, sleep: async () => {} })
    t.match(await blind.recordPayment(retry as never).catch((e: unknown) => e), { code: 'payment_owner_unknown' }, `${lostAnswerMode}: an adapter that cannot tell refuses`)
    t.equal(store.paymentsOf(inv.id).length, recorded, `${lostAnswerMode}: and posts nothing`)
    const found = await psa.recordPayment(retry as never)
    t.equal(found.alreadyRecorded, true, `${lostAnswerMode}: the retry finds its own payment`)
    t.equal(store.paymentsOf(inv.id).length, recorded, `${lostAnswerMode}: no second payment`)
  }
})
