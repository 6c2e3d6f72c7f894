import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import quickbooksSandbox, { createQuickBooksStore, QUICKBOOKS_SANDBOX_CREDENTIALS, QUICKBOOKS_SANDBOX_PREFIX } from '../../src/sandbox/quickbooks/index.js'
import { testDb } from '../helpers/db.js'
import { makeTenant, testKeyring } from '../helpers/fixtures.js'
import { FakePsa } from '../helpers/fake-psa.js'
import { syncInvoices } from '../../src/services/sync.js'
import { invoicesByPsaIds, openBalance } from '../../src/db/invoices.js'
import { connectQuickBooks, createAccountingFactory } from '../../src/services/accounting-connections.js'
import { pullQuickBooksPayments } from '../../src/services/quickbooks-payments.js'

const REALM = '9341453050298762'
type Obj = Record<string, any>

// The real adapter against the QuickBooks stand-in: CDC's wire shape, CustomerRef names, LinkedTxn to DocNumber.
t.test('against the QuickBooks stand-in: a check entered by hand is applied, Settle\'s own payment is not', async t => {
  const clock = { ms: Date.now() }
  const store = createQuickBooksStore({
    seed: 2, realmId: REALM, now: () => clock.ms,
    customers: [{ displayName: 'Harbor Cafe' }],
    invoices: [
      { docNumber: '1001', customerName: 'Harbor Cafe', total: 25_000, balance: 25_000, txnDate: '2026-11-01', dueDate: '2026-12-01' },
      { docNumber: '1002', customerName: 'Harbor Cafe', total: 10_000, balance: 10_000, txnDate: '2026-11-05', dueDate: '2026-12-05' }
    ]
  })
  const server = Fastify()
  await server.register(quickbooksSandbox, { prefix: QUICKBOOKS_SANDBOX_PREFIX, store })
  await server.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await server.close() })
  const origin = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`

  const db = await testDb(t)
  const keyring = testKeyring()
  const tenant = await makeTenant(db)
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Cafe')
  psa.put('1', { company: '1', total: 25_000, number: '1001' })
  psa.put('2', { company: '1', total: 10_000, number: '1002' })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const ours = async (psaId: string): Promise<string> => (await invoicesByPsaIds(db, tenant.id, 'connectwise', [psaId])).get(psaId)?.id as string

  await connectQuickBooks(db, keyring, { tenantId: tenant.id, realmId: REALM, sandbox: true, tokens: store.issueTokens(REALM) }, clock.ms)
  const port = await createAccountingFactory({ db, keyring, sandboxOrigin: () => origin, app: QUICKBOOKS_SANDBOX_CREDENTIALS, now: () => clock.ms })(tenant.id)
  if (port === null) throw new Error('no port')
  const customer = store.find(REALM, 'Customer', x => x.DisplayName === 'Harbor Cafe') as Obj
  const invoice = (doc: string): string => (store.find(REALM, 'Invoice', x => x.DocNumber === doc) as Obj).Id
  const uf = (store.find(REALM, 'Account', x => x.AccountSubType === 'UndepositedFunds') as Obj).Id

  clock.ms += 60_000
  // The bookkeeper records a check against 1002 in QuickBooks.
  const byHand = await port.createPayment({
    requestId: 'person-1', customerId: customer.Id, amount: { amount: 10_000, currency: 'USD' }, txnDate: '2026-11-28', paymentMethodId: null, reference: '7781',
    depositToAccountId: uf, note: 'check in the mail', applications: [{ invoiceId: invoice('1002'), amount: { amount: 10_000, currency: 'USD' } }]
  })
  // Settle's card payment for 1001, posted and recorded.
  const settle = await port.createPayment({
    requestId: 'stl-p-standin-1', customerId: customer.Id, amount: { amount: 25_000, currency: 'USD' }, txnDate: '2026-11-28', paymentMethodId: null, reference: 'pi_9',
    depositToAccountId: uf, note: 'card', applications: [{ invoiceId: invoice('1001'), amount: { amount: 25_000, currency: 'USD' } }]
  })
  await db('accounting_postings').insert({ tenant_id: tenant.id, source_kind: 'payment', source_id: 'att-9', request_id: 'stl-p-standin-1', external_id: settle.id, external_type: 'Payment', amount: 25_000, currency: 'USD', status: 'posted' })
  clock.ms += 60_000

  const r = await pullQuickBooksPayments(db, tenant.id, port, { now: new Date(clock.ms) })
  t.match(r, { seen: 2, imported: 1, skippedOwn: 1, autoApplied: 1, exceptions: 0 })
  const row = await db('outside_payments').where({ tenant_id: tenant.id, source: 'quickbooks' }).first()
  t.equal(row.source_ref, byHand.id)
  t.equal(row.payer, 'Harbor Cafe', 'CustomerRef.name from the wire')
  t.match(row.memo, /^invoice 1002; 7781; check in the mail$/)
  t.equal(openBalance(await db('invoices').where({ tenant_id: tenant.id, id: await ours('2') }).first()), 0)
  t.equal(openBalance(await db('invoices').where({ tenant_id: tenant.id, id: await ours('1') }).first()), 25_000)

  clock.ms += 60_000
  const again = await pullQuickBooksPayments(db, tenant.id, port, { now: new Date(clock.ms) })
  t.match(again, { imported: 0, autoApplied: 0, exceptions: 0 })
  t.equal((await db('outside_payments').where({ tenant_id: tenant.id })).length, 1)
})
