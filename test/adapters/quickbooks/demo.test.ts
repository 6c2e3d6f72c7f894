import t from 'tap'
import { startDemoApp } from '../../helpers/demo-app.js'
import { getAccountingConnection } from '../../../src/services/accounting-connections.js'

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
