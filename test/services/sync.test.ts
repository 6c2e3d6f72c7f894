import t, { type Test } from 'tap'
import fc from 'fast-check'
import { testDb } from '../helpers/db.js'
import { countRows, makeTenant } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { syncInvoices, syncOneInvoice } from '../../src/services/sync.js'
import { customerBalance, trialBalance } from '../../src/db/ledger.js'
import { invoiceLines, invoicesByPsaIds, psaOpenBalances } from '../../src/db/invoices.js'
import { claimSync, getSyncState, listSyncRuns } from '../../src/db/psa.js'
import { listCustomers } from '../../src/db/customers.js'
import type { Knex } from 'knex'

/** The ledger's receivable per customer must equal the PSA's open balances. */
async function assertTiesOut (t: Test, db: Knex, tenantId: string): Promise<void> {
  const open = await psaOpenBalances(db, tenantId)
  for (const customer of await listCustomers(db, tenantId)) {
    const ledger = (await customerBalance(db, tenantId, customer.id)).total[0]?.amount ?? 0
    t.equal(ledger, open.get(customer.id) ?? 0, `${customer.name}: ledger receivable equals PSA open balance`)
  }
  t.same((await trialBalance(db, tenantId)).totals.map(m => m.amount).filter(a => a !== 0), [], 'trial balance nets to zero')
}

t.test('sync engine', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const psa = new FakePsa()
  psa.addCompany('10', 'Harbor Dental')
  psa.addCompany('11', 'Summit Logistics')
  for (let i = 1; i <= 25; i++) psa.put(String(i), { company: i % 2 === 0 ? '10' : '11', total: 10_000 * i })

  await t.test('a full first sync mirrors every invoice, its lines and its ledger entry', async t => {
    const progress: number[] = []
    const result = await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test', onProgress: p => progress.push(p.invoicesSeen) })
    t.equal(result.status, 'ok')
    t.equal(result.created, 25)
    t.equal(result.pages, 3)
    t.same(progress, [10, 20, 25], 'progress reported per page')
    t.equal(await countRows(db, 'invoices'), 25)
    t.equal(await countRows(db, 'invoice_lines'), 50)
    t.equal(psa.lineCalls, 25, 'lines fetched once per new invoice')
    t.equal(result.calls, 3 + 1 + 25, 'pages + one company lookup + lines')
    const [inv] = (await invoicesByPsaIds(db, tenant.id, 'connectwise', ['3'])).values()
    const lines = await invoiceLines(db, tenant.id, inv!.id)
    t.equal(lines.reduce((s, l) => s + l.amount, 0), 30_000, 'lines add up to the total')
    t.same((await listCustomers(db, tenant.id)).map(c => c.name).sort(), ['Harbor Dental', 'Summit Logistics'])
    await assertTiesOut(t, db, tenant.id)
  })

  await t.test('re-running changes nothing and an incremental sync with nothing new is cheap', async t => {
    const entries = await countRows(db, 'journal_entries')
    const calls = psa.callsMade()
    const again = await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    t.equal(again.created, 0)
    t.equal(await countRows(db, 'journal_entries'), entries, 'no new entries')
    t.ok(psa.callsMade() - calls <= 3, `incremental sync used ${psa.callsMade() - calls} calls`)
    const full = await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test', full: true })
    t.equal(full.unchanged, 25, 'a forced full sync finds everything unchanged')
    t.equal(await countRows(db, 'journal_entries'), entries)
  })

  await t.test('changed totals, payments outside Settle and voids post only the difference', async t => {
    psa.put('2', { company: '10', total: 25_000 }) // was 20,000
    psa.put('4', { company: '10', total: 40_000, balance: 15_000 }) // a check for 25,000 entered in the PSA
    psa.put('6', { company: '10', total: 60_000, balance: 0 }) // paid in full elsewhere
    psa.put('7', { company: '11', total: 70_000, voided: true })
    psa.put('26', { company: '11', total: -5_000 }) // a credit memo
    const lineCallsBefore = psa.lineCalls
    const result = await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    t.equal(result.created, 1)
    t.equal(result.voided, 1)
    t.equal(result.changed, 3)
    t.equal(psa.lineCalls - lineCallsBefore, 2, 'lines re-fetched only for the new invoice and the changed total')
    const byId = await invoicesByPsaIds(db, tenant.id, 'connectwise', ['2', '4', '6', '7', '26'])
    t.equal(byId.get('2')?.ledgerBilled, 25_000)
    t.equal(byId.get('4')?.status, 'partially_paid')
    t.equal(byId.get('6')?.status, 'paid')
    t.equal(byId.get('7')?.status, 'voided')
    t.equal(byId.get('7')?.ledgerBilled, 0)
    t.equal(byId.get('26')?.kind, 'credit_memo')
    const kinds = await db('journal_entries').where({ tenant_id: tenant.id }).whereNot({ kind: 'invoice.billed' }).pluck('kind')
    t.same([...kinds].sort(), ['invoice.adjusted', 'invoice.paid_elsewhere', 'invoice.paid_elsewhere', 'invoice.voided'])
    await assertTiesOut(t, db, tenant.id)
  })

  await t.test('a crash mid-sync resumes from the last committed page: no duplicates, no gaps', async t => {
    for (let i = 100; i < 130; i++) psa.put(String(i), { company: '11', total: 1_000 + i })
    psa.failOnPage = 2
    const failed = await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    t.equal(failed.status, 'failed')
    t.match(failed.error, /Service Unavailable/)
    t.equal(failed.pages, 1, 'one page committed before the failure')
    const state = await getSyncState(db, tenant.id, 'connectwise')
    t.equal(state?.lastStatus, 'failed')
    t.match(state?.lastError, /Service Unavailable/)
    const [run] = await listSyncRuns(db, tenant.id)
    t.equal(run?.status, 'failed', 'the failure is visible in the run history')
    const afterCrash = await countRows(db, 'invoices')
    // The cursor is inclusive, so page 1 repeats the last committed invoice (a no-op) before 9 new ones.
    t.equal(afterCrash, 26 + 9, 'exactly the committed page landed')
    psa.failOnPage = null
    const resumed = await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
    t.equal(resumed.status, 'ok')
    t.equal(resumed.created, 21, 'the rest arrive')
    t.equal(await countRows(db, 'invoices'), 56)
    const dupes = await db('journal_entries').where({ tenant_id: tenant.id }).select('idempotency_key').count('* as n').groupBy('idempotency_key').havingRaw('count(*) > 1')
    t.same(dupes, [])
    await assertTiesOut(t, db, tenant.id)
  })

  await t.test('one sync per tenant at a time', async t => {
    const held = await claimSync(db, tenant.id, 'connectwise', 'another-process', 60_000)
    t.ok(held)
    await t.rejects(syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' }), { code: 'SYNC_IN_PROGRESS' })
    await db('sync_state').where({ tenant_id: tenant.id }).update({ locked_until: new Date(Date.now() - 1000) })
    t.equal((await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })).status, 'ok', 'an expired lease is taken over')
  })

  await t.test('a webhook re-sync of one invoice applies just that invoice', async t => {
    psa.put('5', { company: '11', total: 50_000, balance: 20_000 })
    t.equal(await syncOneInvoice(db, tenant.id, psa, '5'), 'changed')
    t.equal(await syncOneInvoice(db, tenant.id, psa, '5'), 'unchanged')
    await assertTiesOut(t, db, tenant.id)
  })
})

t.test('property: after every sync the ledger ties out to the PSA', async t => {
  const db = await testDb(t)
  let round = 0
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({
      id: fc.integer({ min: 1, max: 12 }).map(String),
      company: fc.constantFrom('a', 'b', 'c'),
      total: fc.integer({ min: -50_000, max: 500_000 }),
      paidPct: fc.constantFrom(0, 0, 25, 100),
      voided: fc.integer({ min: 0, max: 9 }).map(n => n === 0)
    }), { minLength: 1, maxLength: 25 }),
    async changes => {
      const tenant = await makeTenant(db, `Prop ${round++}`)
      const psa = new FakePsa()
      psa.pageSize = 4
      for (const c of ['a', 'b', 'c']) psa.addCompany(c, `Client ${c}`)
      // Apply the changes in a few batches with a sync after each.
      for (let i = 0; i < changes.length; i += 5) {
        for (const c of changes.slice(i, i + 5)) {
          const company = psa.invoices.get(c.id)?.companyExternalId ?? c.company
          psa.put(c.id, { company, total: c.total, balance: c.total - Math.trunc(c.total * c.paidPct / 100), voided: c.voided })
        }
        const result = await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
        if (result.status !== 'ok') return false
        const open = await psaOpenBalances(db, tenant.id)
        for (const customer of await listCustomers(db, tenant.id)) {
          const ledger = (await customerBalance(db, tenant.id, customer.id)).total[0]?.amount ?? 0
          if (ledger !== (open.get(customer.id) ?? 0)) return false
        }
      }
      return true
    }), { numRuns: 12 })
  t.pass('receivable equalled open balances after every sync')
})
