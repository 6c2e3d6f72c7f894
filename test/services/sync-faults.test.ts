import t, { type Test } from 'tap'
import type { Knex } from 'knex'
import { testDb } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { fast, serve } from '../helpers/serve.js'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, createConnectWiseStore } from '../../src/sandbox/connectwise/index.js'
import autotaskSandbox, { AUTOTASK_SANDBOX_CREDENTIALS, createAutotaskStore } from '../../src/sandbox/autotask/index.js'
import { createConnectWisePsa } from '../../src/adapters/connectwise/psa.js'
import { createAutotaskPsa } from '../../src/adapters/autotask/psa.js'
import type { PsaPort } from '../../src/ports/psa.js'
import { syncInvoices } from '../../src/services/sync.js'

/** Every mirrored invoice of a tenant with the PSA ids of its lines, in line order. */
async function mirror (db: Knex, tenantId: string): Promise<Map<string, string[]>> {
  const rows = await db('invoices as i').leftJoin('invoice_lines as l', function () { this.on('l.invoice_id', 'i.id').andOn('l.tenant_id', 'i.tenant_id') })
    .where('i.tenant_id', tenantId).orderBy(['i.psa_invoice_id', 'l.line_no']).select('i.psa_invoice_id', 'l.psa_line_id') as Array<{ psa_invoice_id: string, psa_line_id: string | null }>
  const out = new Map<string, string[]>()
  for (const r of rows) {
    const lines = out.get(r.psa_invoice_id) ?? []
    if (r.psa_line_id !== null) lines.push(r.psa_line_id)
    out.set(r.psa_invoice_id, lines)
  }
  return out
}

async function duplicates (db: Knex, tenantId: string): Promise<{ invoices: number, lines: number, entries: number }> {
  const count = async (q: Knex.QueryBuilder): Promise<number> => (await q).length
  return {
    invoices: await count(db('invoices').where({ tenant_id: tenantId }).select('psa_system', 'psa_invoice_id').groupBy('psa_system', 'psa_invoice_id').havingRaw('count(*) > 1')),
    lines: await count(db('invoice_lines').where({ tenant_id: tenantId }).select('invoice_id', 'psa_line_id').groupBy('invoice_id', 'psa_line_id').havingRaw('count(*) > 1')),
    entries: await count(db('journal_entries').where({ tenant_id: tenantId }).select('idempotency_key').groupBy('idempotency_key').havingRaw('count(*) > 1'))
  }
}

/**
 * A full sync on a bad day: 15% of the PSA's answers are errors and another
 * 15% are 429s. It completes, with every invoice and every line exactly once,
 * the same as a sync on a good day. Each call is tried only twice, so the
 * sync itself must keep its progress and retry what failed.
 */
async function survivesFaults (t: Test, system: string, makePsa: () => PsaPort, faults: (on: boolean) => void, invoices: number): Promise<void> {
  const db = await testDb(t)
  const calm = await makeTenant(db, `${system} on a good day`)
  const stormy = await makeTenant(db, `${system} on a bad day`)
  const reference = await syncInvoices({ db, tenantId: calm.id, psa: makePsa(), trigger: 'test', full: true })
  t.equal(reference.status, 'ok', reference.error ?? 'reference sync without faults')
  faults(true)
  const result = await syncInvoices({ db, tenantId: stormy.id, psa: makePsa(), trigger: 'test', full: true, sleep: fast })
  faults(false)
  t.equal(result.status, 'ok', result.error ?? 'the full sync completed under 30% faults')
  t.equal(result.created, invoices, 'every invoice created')
  const expected = await mirror(db, calm.id)
  const got = await mirror(db, stormy.id)
  t.equal(got.size, invoices, 'every invoice mirrored')
  t.same(got, expected, 'every invoice with exactly its lines')
  t.ok([...got.values()].some(lines => lines.length > 0), 'lines were synced')
  t.same(await duplicates(db, stormy.id), { invoices: 0, lines: 0, entries: 0 }, 'nothing twice')
}

t.test('ConnectWise full sync at 30% errors and 429s', async t => {
  const store = createConnectWiseStore({ seed: 13, companies: 12, invoices: 400 })
  const base = await serve(t, async app => { await app.register(connectwiseSandbox, { prefix: '/cw', store, credentials: CONNECTWISE_SANDBOX_CREDENTIALS }) })
  await survivesFaults(t, 'ConnectWise', () => createConnectWisePsa({ site: `${base}/cw`, ...CONNECTWISE_SANDBOX_CREDENTIALS, pageSize: 100, sleep: fast, attempts: 2 }),
    on => { store.faults.errorRate = on ? 0.15 : 0; store.faults.rate429 = on ? 0.15 : 0 }, 400)
})

t.test('Autotask full sync at 30% errors and 429s', async t => {
  const store = createAutotaskStore({ seed: 17, companies: 12, invoices: 1200 })
  const base = await serve(t, async app => { await app.register(autotaskSandbox, { prefix: '/at', store, credentials: AUTOTASK_SANDBOX_CREDENTIALS }) })
  await survivesFaults(t, 'Autotask', () => createAutotaskPsa({ ...AUTOTASK_SANDBOX_CREDENTIALS, zoneDiscoveryUrl: `${base}/at/ATServicesRest/V1.0/zoneInformation`, sleep: fast, attempts: 2 }),
    on => { store.faults.errorRate = on ? 0.15 : 0; store.faults.rate429 = on ? 0.15 : 0 }, 1200)
})
