import t from 'tap'
import type { Knex } from 'knex'
import { testDb } from '../helpers/db.js'
import { countRows, makeTenant } from '../helpers/fixtures.js'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, createConnectWiseStore } from '../../src/sandbox/connectwise/index.js'
import autotaskSandbox, { AUTOTASK_SANDBOX_CREDENTIALS, createAutotaskStore } from '../../src/sandbox/autotask/index.js'
import { createConnectWisePsa } from '../../src/adapters/connectwise/psa.js'
import { createAutotaskPsa } from '../../src/adapters/autotask/psa.js'
import { syncInvoices } from '../../src/services/sync.js'
import { fast, serve } from '../helpers/serve.js'
import { customerBalance } from '../../src/db/ledger.js'
import { listCustomers } from '../../src/db/customers.js'
import { invoicesByPsaIds, psaOpenBalances } from '../../src/db/invoices.js'

/** Receivable per customer equals the PSA's open balances, and no entry was written twice. */
async function tiesOut (db: Knex, tenantId: string): Promise<{ mismatched: number, duplicateKeys: number }> {
  const open = await psaOpenBalances(db, tenantId)
  let mismatched = 0
  for (const customer of await listCustomers(db, tenantId)) {
    if (((await customerBalance(db, tenantId, customer.id)).total[0]?.amount ?? 0) !== (open.get(customer.id) ?? 0)) mismatched++
  }
  const dupes = await db('journal_entries').where({ tenant_id: tenantId }).select('idempotency_key').groupBy('idempotency_key').havingRaw('count(*) > 1')
  return { mismatched, duplicateKeys: dupes.length }
}


t.test('sync against the ConnectWise stand-in, through the real adapter', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const store = createConnectWiseStore({ seed: 3, companies: 12, invoices: 120 })
  const base = await serve(t, async app => { await app.register(connectwiseSandbox, { prefix: '/cw', store, credentials: CONNECTWISE_SANDBOX_CREDENTIALS }) })
  const psa = (): ReturnType<typeof createConnectWisePsa> => createConnectWisePsa({ site: `${base}/cw`, ...CONNECTWISE_SANDBOX_CREDENTIALS, pageSize: 25, sleep: fast, attempts: 2 })

  await t.test('full sync, then a crash mid-sync and a resume: no duplicates, no gaps', async t => {
    const first = await syncInvoices({ db, tenantId: tenant.id, psa: psa(), trigger: 'test' })
    t.equal(first.status, 'ok', first.error ?? '')
    t.equal(first.created, store.invoices.length)
    t.same(await tiesOut(db, tenant.id), { mismatched: 0, duplicateKeys: 0 })

    // 40 more invoices change; the stand-in starts failing once the first page has committed.
    for (const invoice of store.invoices.slice(0, 40)) store.touchInvoice(invoice.id, { customerPO: `PO-${invoice.id}` })
    const crashed = await syncInvoices({ db, tenantId: tenant.id, psa: psa(), trigger: 'test', onProgress: () => { store.faults.errorRate = 1 } })
    t.equal(crashed.status, 'failed')
    t.equal(crashed.pages, 1, 'one page committed before the failure')
    store.faults.errorRate = 0
    const resumed = await syncInvoices({ db, tenantId: tenant.id, psa: psa(), trigger: 'test' })
    t.equal(resumed.status, 'ok', resumed.error ?? '')
    t.equal(crashed.invoicesSeen + resumed.invoicesSeen >= 40, true, 'every changed invoice was read')
    const mirrored = await invoicesByPsaIds(db, tenant.id, 'connectwise', store.invoices.slice(0, 40).map(i => String(i.id)))
    t.equal([...mirrored.values()].filter(i => i.poNumber?.startsWith('PO-') === true).length, 40, 'no gaps: all 40 changes landed')
    t.equal(await countRows(db, 'invoices'), store.invoices.length, 'no duplicates')
    t.same(await tiesOut(db, tenant.id), { mismatched: 0, duplicateKeys: 0 })
  })

  await t.test('payments and voids in the PSA flow into the ledger on the next sync', async t => {
    const open = store.invoices.filter(i => store.balanceCents(i) > 0 && i.type !== 'CreditMemo' && i.statusId !== 4)
    const [toPay, toVoid] = open
    if (toPay === undefined || toVoid === undefined) throw new Error('stand-in has no open invoices')
    store.addPayment(toPay.id, { amountCents: store.balanceCents(toPay), paymentDate: new Date('2026-11-20T12:00:00Z') })
    store.touchInvoice(toPay.id)
    store.touchInvoice(toVoid.id, { statusId: 4 })
    const result = await syncInvoices({ db, tenantId: tenant.id, psa: psa(), trigger: 'test' })
    t.equal(result.voided, 1)
    const byId = await invoicesByPsaIds(db, tenant.id, 'connectwise', [String(toPay.id), String(toVoid.id)])
    t.equal(byId.get(String(toPay.id))?.status, 'paid')
    t.equal(byId.get(String(toVoid.id))?.status, 'voided')
    t.same(await tiesOut(db, tenant.id), { mismatched: 0, duplicateKeys: 0 })
    const calls = psa()
    const idle = await syncInvoices({ db, tenantId: tenant.id, psa: calls, trigger: 'test' })
    t.ok(idle.calls <= 3, `an incremental sync with nothing new took ${idle.calls} calls`)
  })
})

t.test('sync against the Autotask stand-in, through the real adapter', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const store = createAutotaskStore({ seed: 5, companies: 12, invoices: 1200 })
  const base = await serve(t, async app => { await app.register(autotaskSandbox, { prefix: '/at', store, credentials: AUTOTASK_SANDBOX_CREDENTIALS }) })
  const psa = (): ReturnType<typeof createAutotaskPsa> => createAutotaskPsa({ ...AUTOTASK_SANDBOX_CREDENTIALS, zoneDiscoveryUrl: `${base}/at/ATServicesRest/V1.0/zoneInformation`, sleep: fast, attempts: 2 })

  await t.test('full sync batches line detail', async t => {
    const result = await syncInvoices({ db, tenantId: tenant.id, psa: psa(), trigger: 'test' })
    t.equal(result.status, 'ok', result.error ?? '')
    t.equal(result.created, 1200)
    t.ok(result.calls <= 1 + 1 + 3 + 12, `${result.calls} calls: zone, companies, 3 invoice pages, batched lines`)
    t.same(await tiesOut(db, tenant.id), { mismatched: 0, duplicateKeys: 0 })
  })

  await t.test('a crash mid-sync resumes; payments and voids are found by re-reading open invoices', async t => {
    for (let i = 0; i < 600; i++) store.addInvoice()
    const crashed = await syncInvoices({ db, tenantId: tenant.id, psa: psa(), trigger: 'test', onProgress: () => { store.faults.errorRate = 1 } })
    t.equal(crashed.status, 'failed')
    store.faults.errorRate = 0
    const resumed = await syncInvoices({ db, tenantId: tenant.id, psa: psa(), trigger: 'test' })
    t.equal(resumed.status, 'ok', resumed.error ?? '')
    t.equal(await countRows(db, 'invoices'), 1800, 'no gaps, no duplicates')

    const openIds = (await db('invoices').where({ tenant_id: tenant.id, status: 'open' }).whereRaw('total > 0').limit(2).pluck('psa_invoice_id')) as string[]
    const [paid, voided] = openIds.map(Number)
    if (paid === undefined || voided === undefined) throw new Error('no open invoices')
    store.touchInvoice(paid, { paidDate: '2026-11-21T00:00:00Z' })
    store.touchInvoice(voided, { isVoided: true })
    const withoutRecheck = await syncInvoices({ db, tenantId: tenant.id, psa: psa(), trigger: 'test' })
    t.equal(withoutRecheck.changed + withoutRecheck.voided, 0, 'Autotask changes no stamp when an invoice is paid or voided')
    const recheck = await syncInvoices({ db, tenantId: tenant.id, psa: psa(), trigger: 'test', recheckOpen: true })
    t.equal(recheck.status, 'ok', recheck.error ?? '')
    const byId = await invoicesByPsaIds(db, tenant.id, 'autotask', [String(paid), String(voided)])
    t.equal(byId.get(String(paid))?.status, 'paid')
    t.equal(byId.get(String(voided))?.status, 'voided')
    t.same(await tiesOut(db, tenant.id), { mismatched: 0, duplicateKeys: 0 })
  })
})
