import t from 'tap'
import { readFileSync } from 'node:fs'
import { toDeposit, toPayment, paymentBody, journalBody, depositBody } from '../../../src/adapters/quickbooks/mapper.js'
import { faultOf, QuickBooksError } from '../../../src/adapters/quickbooks/client.js'

const fixture = (name: string): any => JSON.parse(readFileSync(new URL(`../../fixtures/quickbooks/${name}`, import.meta.url), 'utf8'))

t.test('payment: multi-invoice, partial and unapplied, exact cents and dates', async t => {
  const p = toPayment(fixture('payment-multi.json').Payment, 'USD')
  t.same(p.total, { amount: 35_010, currency: 'USD' })
  t.same(p.unapplied, { amount: 2_005, currency: 'USD' })
  t.same(p.applications, [{ invoiceId: '130', amount: { amount: 25_005, currency: 'USD' } }, { invoiceId: '131', amount: { amount: 8_000, currency: 'USD' } }])
  t.equal(p.txnDate, '2026-11-20')
  t.equal(p.reference, 'pi_3Qx')
  t.equal(p.depositToAccountId, '2')
  t.equal(p.syncToken, '2')
  t.equal(p.updatedAt.toISOString(), '2026-11-21T18:15:00.000Z')
})

t.test('deposit: a payment line and a negative fee line', async t => {
  const d = toDeposit(fixture('deposit-fee.json').Deposit, 'USD')
  t.same(d.total, { amount: 33_994, currency: 'USD' })
  t.equal(d.bankAccountId, '1')
  t.same(d.lines, [
    { amount: { amount: 35_010, currency: 'USD' }, paymentId: '145' },
    { amount: { amount: -1_016, currency: 'USD' }, accountId: '6', description: 'Stripe fees' }
  ])
  t.equal(d.lines.reduce((s, l) => s + l.amount.amount, 0), d.total.amount)
})

t.test('bodies out: decimals from cents, journal signs become PostingType', async t => {
  const body = paymentBody({ requestId: 'r1', customerId: '58', amount: { amount: 35_010, currency: 'USD' }, txnDate: '2026-11-20', paymentMethodId: '1', reference: 'pi_1', depositToAccountId: '2', note: 'n', applications: [{ invoiceId: '130', amount: { amount: 10, currency: 'USD' } }] })
  t.equal(body.TotalAmt, 350.1)
  t.equal(body.Line[0].Amount, 0.1)
  t.same(body.Line[0].LinkedTxn, [{ TxnId: '130', TxnType: 'Invoice' }])
  const dep = depositBody({ requestId: 'd', bankAccountId: '1', txnDate: '2026-11-22', currency: 'USD', note: 'x', lines: [{ paymentId: '145', amount: { amount: 35_010, currency: 'USD' } }, { accountId: '6', amount: { amount: -1_016, currency: 'USD' } }] })
  t.equal(dep.Line[1].Amount, -10.16)
  t.equal(dep.Line[1].DepositLineDetail.AccountRef.value, '6')
  const j = journalBody({ requestId: 'j', txnDate: '2026-11-22', currency: 'USD', note: 'w', lines: [{ accountId: '7', amount: { amount: 500, currency: 'USD' } }, { accountId: '3', amount: { amount: -500, currency: 'USD' }, customerId: '58' }] })
  t.same(j.Line.map((l: any) => [l.Amount, l.JournalEntryLineDetail.PostingType]), [[5, 'Debit'], [5, 'Credit']])
  t.equal(j.Line[1].JournalEntryLineDetail.Entity.EntityRef.value, '58')
})

t.test('faults: upper-case Fault, lower-case auth fault', async t => {
  const v = faultOf(200, { Fault: { Error: [{ Message: 'Object Not Found', Detail: 'Something you are trying to use has been made inactive', code: '610' }], type: 'ValidationFault' } })
  t.ok(v instanceof QuickBooksError)
  t.equal(v?.qboCode, '610')
  t.equal(v?.kind, 'validation')
  t.match(v?.message, /Object Not Found/)
  const a = faultOf(401, { fault: { error: [{ message: 'message=AuthenticationFailed; errorCode=003200; statusCode=401', detail: 'Token expired', code: '3200' }], type: 'AUTHENTICATION' } })
  t.equal(a?.kind, 'auth')
  t.equal(a?.detail, 'Token expired')
  t.equal(faultOf(400, { Fault: { Error: [{ Message: 'Stale Object Error', code: '5010' }] } })?.kind, 'stale')
  t.equal(faultOf(400, { Fault: { Error: [{ Message: 'Duplicate', code: '6240' }] } })?.kind, 'duplicate')
  t.equal(faultOf(200, { Payment: {} }), null)
})
