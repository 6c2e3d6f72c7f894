import t from 'tap'
import type { Knex } from 'knex'
import { testDb } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, createConnectWiseStore } from '../../src/sandbox/connectwise/index.js'
import autotaskSandbox, { AUTOTASK_SANDBOX_CREDENTIALS, createAutotaskStore } from '../../src/sandbox/autotask/index.js'
import { createConnectWisePsa } from '../../src/adapters/connectwise/psa.js'
import { createAutotaskPsa } from '../../src/adapters/autotask/psa.js'
import { syncInvoices } from '../../src/services/sync.js'
import { fast, serve } from '../helpers/serve.js'
import type { PsaPort } from '../../src/ports/psa.js'


/** Counts company listings, to show the billing state costs no extra PSA call. */
function countingCompanyReads<P extends PsaPort> (psa: P): { psa: P, reads: () => number } {
  let reads = 0
  const list = psa.listCompanies.bind(psa)
  psa.listCompanies = () => { reads++; return list() }
  return { psa, reads: () => reads }
}

async function statesByCompany (db: Knex, tenantId: string): Promise<Map<string, string | null>> {
  const rows = await db('customers').where({ tenant_id: tenantId }).select('psa_company_id', 'billing_state') as Array<{ psa_company_id: string, billing_state: string | null }>
  return new Map(rows.map(r => [r.psa_company_id, r.billing_state]))
}

t.test('ConnectWise: billing states come from the invoices\' billing site, with no company call', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const store = createConnectWiseStore({ seed: 3, companies: 8, invoices: 60 })
  const base = await serve(t, async app => { await app.register(connectwiseSandbox, { prefix: '/cw', store, credentials: CONNECTWISE_SANDBOX_CREDENTIALS }) })
  const psa = (): ReturnType<typeof createConnectWisePsa> => createConnectWisePsa({ site: `${base}/cw`, ...CONNECTWISE_SANDBOX_CREDENTIALS, pageSize: 25, sleep: fast, attempts: 2 })

  const first = countingCompanyReads(psa())
  t.equal((await syncInvoices({ db, tenantId: tenant.id, psa: first.psa, trigger: 'test' })).status, 'ok')
  t.equal(first.reads(), 0, 'the company list was never read')
  const states = await statesByCompany(db, tenant.id)
  t.ok(states.size > 0)
  for (const [companyId, state] of states) t.equal(state, store.company(Number(companyId))?.state, `company ${companyId} is billed in ${String(state)}`)

  // The client moves: its next changed invoice carries the new billing site.
  const moved = store.invoices[0]
  if (moved === undefined) throw new Error('stand-in has no invoices')
  const company = store.companyOf(moved)
  company.state = company.state === 'CT' ? 'MA' : 'CT'
  store.touchInvoice(moved.id)
  const again = countingCompanyReads(psa())
  t.equal((await syncInvoices({ db, tenantId: tenant.id, psa: again.psa, trigger: 'test' })).status, 'ok')
  t.equal(again.reads(), 0)
  t.equal((await statesByCompany(db, tenant.id)).get(String(company.id)), company.state, 'a known client\'s state follows the PSA')
})

t.test('Autotask: billing states come from the company list the sync reads for names anyway', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const store = createAutotaskStore({ seed: 5, companies: 12, invoices: 6 })
  const base = await serve(t, async app => { await app.register(autotaskSandbox, { prefix: '/at', store, credentials: AUTOTASK_SANDBOX_CREDENTIALS }) })
  const { psa, reads } = countingCompanyReads(createAutotaskPsa({ ...AUTOTASK_SANDBOX_CREDENTIALS, zoneDiscoveryUrl: `${base}/at/ATServicesRest/V1.0/zoneInformation`, sleep: fast, attempts: 2 }))
  t.equal((await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })).status, 'ok')
  t.equal(reads(), 1, 'one company listing, as before')
  const states = await statesByCompany(db, tenant.id)
  t.ok(states.size > 0)
  for (const [companyId, state] of states) t.equal(state, store.company(Number(companyId))?.billToState, `company ${companyId} is billed in ${String(state)}`)

  // A company first invoiced later: the adapter still holds the list, so name and state come without a call.
  const fresh = store.companies().find(c => !states.has(String(c.id)))
  if (fresh === undefined) throw new Error('every stand-in company already has an invoice')
  store.addInvoice({ companyId: Number(fresh.id) })
  t.equal((await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })).status, 'ok')
  t.equal(reads(), 1, 'no second company listing')
  t.equal((await statesByCompany(db, tenant.id)).get(String(fresh.id)), fresh.billToState, 'the new client has its state')
})

t.test('PSA text becomes a two-letter code; nothing said leaves the stored state alone', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.addCompany('2', 'Maple Leaf IT')
  Object.assign(psa.companies.get('1') ?? {}, { state: 'Connecticut' })
  Object.assign(psa.companies.get('2') ?? {}, { state: 'Ontario' })
  psa.put('1', { company: '1', total: 10_000 })
  psa.put('2', { company: '2', total: 10_000 })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  t.same(Object.fromEntries(await statesByCompany(db, tenant.id)), { 1: 'CT', 2: null }, 'a full name is read; a province is not a US state')

  psa.put('1', { company: '1', total: 12_000 }) // changed, with no billing state on the invoice
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  t.equal((await statesByCompany(db, tenant.id)).get('1'), 'CT', 'an invoice that says nothing does not clear it')

  Object.assign(psa.put('1', { company: '1', total: 12_500 }), { billingState: 'ma' })
  const calls = psa.callsMade()
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  t.equal((await statesByCompany(db, tenant.id)).get('1'), 'MA', 'the invoice\'s bill-to wins')
  t.equal(psa.callsMade() - calls, 2, 'one listing page and one line fetch: no company call for known clients')
})
