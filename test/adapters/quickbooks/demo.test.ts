import t from 'tap'
import { startDemoApp } from '../../helpers/demo-app.js'
import { getAccountingConnection } from '../../../src/services/accounting-connections.js'
import { runTieout } from '../../../src/services/tieout.js'
import { createConnectWiseStore } from '../../../src/sandbox/connectwise/index.js'
import { seedFromConnectWise } from '../../../src/sandbox/quickbooks/index.js'

t.test('demo: brightline reads its books from the QuickBooks stand-in through app.accountingFor; the other tenant has none', async t => {
  const { app, db, tenants } = await startDemoApp(t)
  const brightline = tenants.find(x => x.slug === 'brightline')
  const other = tenants.find(x => x.slug !== 'brightline')
  if (brightline === undefined || other === undefined) throw new Error('demo tenants missing')
  const port = await app.accountingFor(brightline.id)
  t.ok(port)
  const accounts = await port!.listAccounts()
  t.ok(accounts.some(a => a.subType === 'UndepositedFunds'))
  const open: number[] = []
  for await (const page of port!.listOpenInvoices()) open.push(...page.map(i => i.balance.amount))
  t.ok(open.length > 0 && open.every(c => Number.isInteger(c) && c > 0))
  const c = await getAccountingConnection(db, brightline.id)
  t.equal(c?.status, 'active')
  t.ok((c?.accessExpiresAt?.getTime() ?? 0) > Date.now(), 'the first call refreshed the demo pair')
  t.equal(await app.accountingFor(other.id), null)
})

t.test('demo tie-out: exactly the three planted differences; the PSA credit memo matches its QBO CreditMemo', async t => {
  const { app, db, tenants } = await startDemoApp(t)
  const brightline = tenants.find(x => x.slug === 'brightline')
  if (brightline === undefined) throw new Error('demo tenant missing')
  // The same seed the mounted stand-ins use.
  const planted = seedFromConnectWise(createConnectWiseStore({ seed: 7 })).differences
  const outcome = await runTieout(db, brightline.id, await app.accountingFor(brightline.id), { trigger: 'manual' })
  const numbers = new Map((await db('invoices').where({ tenant_id: brightline.id }).select('id', 'number', 'kind') as Array<{ id: string, number: string, kind: string }>).map(i => [i.id, i]))
  t.same(outcome.differences.map(d => [d.cause, numbers.get(d.invoiceId ?? '')?.number]).sort(), [
    ['edited_after_sync', planted.editedAfterSync.docNumber],
    ['missing_in_qbo', planted.missingInQbo],
    ['payment_applied_in_qbo', planted.paidByHandInQbo.docNumber]
  ].sort())
  const memos = [...numbers.values()].filter(i => i.kind === 'credit_memo')
  t.ok(memos.length > 0, 'the demo PSA has a credit memo')
  t.notOk(outcome.differences.some(d => memos.some(m => m.id === d.invoiceId)), 'no credit-memo difference')
  t.equal(outcome.run.summary.qboOpenCreditMemos, memos.length, 'read through the real adapter from the stand-in')
})
