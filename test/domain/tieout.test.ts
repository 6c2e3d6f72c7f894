import t from 'tap'
import { compareTieout, docNumbersToLookUp, isCreditMemo, mapQboCustomer, type OurInvoiceView, type PayoutView, type QboCreditMemoView, type QboInvoiceView, type TieoutInput } from '../../src/domain/tieout.js'

const ours = (number: string, fields: Partial<OurInvoiceView> = {}): OurInvoiceView => ({
  invoiceId: `inv-${number}`, customerId: 'c1', customerName: 'Harbor Dental', number, currency: 'USD', voided: false,
  psaTotal: 50_000, psaBalance: 50_000, settleOpen: 50_000, paidViaSettle: 0, ...fields
})
const qbo = (doc: string | null, total: number, balance: number, fields: Partial<QboInvoiceView> = {}): QboInvoiceView => ({
  id: `q${doc ?? 'x'}`, docNumber: doc, customerId: 'qc1', customerName: 'Harbor Dental',
  total: { amount: total, currency: 'USD' }, balance: { amount: balance, currency: 'USD' }, ...fields
})
const payout = (id: string, fields: Partial<PayoutView> = {}): PayoutView => ({
  payoutId: id, processorPayoutRef: `po_${id}`, currency: 'USD', net: 97_000, arrivalDate: '2026-11-20', bankPosting: 97_000,
  posting: { status: 'posted', externalId: `d${id}`, lastError: null }, qboDeposit: { id: `d${id}`, total: { amount: 97_000, currency: 'USD' }, txnDate: '2026-11-20' }, ...fields
})
const input = (over: Partial<TieoutInput>): TieoutInput => ({
  invoices: [], customers: [], qboInvoices: [], qboCustomers: [], payouts: [], docNumberPrefix: '', today: '2026-12-03', ...over
})

t.test('everything agrees: clean, with totals per source', async t => {
  const r = compareTieout(input({
    invoices: [ours('1001'), ours('1002', { psaTotal: 20_000, psaBalance: 0, settleOpen: 0 })],
    customers: [{ customerId: 'c1', name: 'Harbor Dental', receivable: [{ amount: 50_000, currency: 'USD' }] }],
    qboInvoices: [qbo('1001', 50_000, 50_000)],
    qboCustomers: [{ id: 'qc1', displayName: 'Harbor Dental', balance: { amount: 50_000, currency: 'USD' }, settleCustomerId: 'c1' }],
    payouts: [payout('p1')]
  }))
  t.equal(r.status, 'clean')
  t.same(r.differences, [])
  t.same(r.totals, { USD: { psa: 50_000, settle: 50_000, qbo: 50_000, stripePayouts: 97_000, bankPostings: 97_000, qboDeposits: 97_000 } })
  t.same(r.lines, [{ customerId: 'c1', name: 'Harbor Dental', currency: 'USD', psa: 50_000, settle: 50_000, qbo: 50_000, differences: 0 }])
})

t.test('each planted invoice difference is found with its cause', async t => {
  const r = compareTieout(input({
    invoices: [
      ours('1001'), // missing in QBO
      ours('1002'), // total edited in QBO
      ours('1003', { psaBalance: 12_000, settleOpen: 12_000 }), // QBO shows 0: paid by hand there
      ours('1004', { psaBalance: 0, settleOpen: 0 }), // QBO still shows open
      ours('1005', { psaBalance: 50_000, settleOpen: 30_000, paidViaSettle: 20_000 }), // PSA not told yet
      ours('1006', { psaBalance: 40_000, settleOpen: 50_000 }), // drift
      ours('1007', { voided: true, settleOpen: 0 }) // voided in the PSA, open in QBO
    ],
    qboInvoices: [
      qbo('1002', 45_000, 45_000), qbo('1003', 50_000, 0), qbo('1004', 50_000, 12_000),
      qbo('1005', 50_000, 30_000), qbo('1006', 50_000, 50_000), qbo('1007', 50_000, 50_000), qbo('2001', 9_900, 9_900)
    ]
  }))
  const by = (n: string): string[] => r.differences.filter(d => d.invoiceId === `inv-${n}`).map(d => d.cause)
  t.same(by('1001'), ['missing_in_qbo'])
  t.same(by('1002'), ['edited_after_sync'])
  t.same(by('1003'), ['payment_applied_in_qbo'])
  t.same(by('1004'), ['payment_missing_in_qbo'])
  t.same(by('1005'), ['psa_not_updated'], 'QuickBooks agrees with Settle: only the PSA is behind')
  t.same(by('1006'), ['settle_psa_drift'])
  t.same(by('1007'), ['voided_in_psa'])
  const stray = r.differences.find(d => d.cause === 'not_in_psa')
  t.match(stray, { subject: { type: 'qbo_invoice', id: 'q2001' }, difference: { amount: 9_900, currency: 'USD' }, dedupeKey: 'tieout:qbo_invoice:q2001:not_in_psa' })
  const applied = r.differences.find(d => d.cause === 'payment_applied_in_qbo')
  t.match(applied, {
    summary: "QuickBooks shows Harbor Dental's invoice 1003 with $0.00 open; Settle shows $120.00 and the PSA $120.00.",
    likelyCause: /payment or credit of \$120\.00 was probably applied by hand in QuickBooks/,
    suggestedRepair: /QBO invoice q1003.*record the payment in the PSA/,
    difference: { amount: -12_000, currency: 'USD' },
    figures: { psa: 12_000, settle: 12_000, qbo: 0 }
  })
  t.match(r.differences.find(d => d.cause === 'missing_in_qbo'), { suggestedRepair: /Create invoice 1001 for Harbor Dental in QuickBooks for \$500\.00/ })
  t.match(r.differences.find(d => d.cause === 'edited_after_sync'), { summary: /totals \$500\.00 in the PSA but \$450\.00 in QuickBooks/, difference: { amount: -5_000 } })
  t.equal(r.status, 'differences')
  t.equal(new Set(r.differences.map(d => d.dedupeKey)).size, r.differences.length, 'one key per finding')
})

t.test('the DocNumber prefix, duplicates and currency mismatches', async t => {
  const r = compareTieout(input({
    docNumberPrefix: 'CW-',
    invoices: [ours('1001'), ours('1002'), ours('1003', { currency: 'CAD' })],
    qboInvoices: [qbo('CW-1001', 50_000, 50_000), qbo('CW-1002', 50_000, 50_000), qbo('cw-1002', 50_000, 50_000, { id: 'qdup' }), qbo('CW-1003', 50_000, 50_000)]
  }))
  t.same(r.differences.map(d => [d.invoiceId, d.cause]), [['inv-1002', 'duplicate_in_qbo'], ['inv-1003', 'currency_mismatch']])
  t.same(r.totals.USD?.qbo, 200_000, 'QuickBooks\' own figures, duplicate and mis-currencied invoice included')
  t.same(r.totals.CAD?.psa, 50_000, 'never summed across currencies')
  t.same(r.totals.USD?.psa, 100_000)
})

t.test('an invoice on a QuickBooks customer linked to someone else', async t => {
  const r = compareTieout(input({
    invoices: [ours('1001')],
    customers: [{ customerId: 'c1', name: 'Harbor Dental', receivable: [{ amount: 50_000, currency: 'USD' }] }, { customerId: 'c2', name: 'Summit Logistics', receivable: [] }],
    qboInvoices: [qbo('1001', 50_000, 50_000, { customerId: 'qc2' })],
    qboCustomers: [{ id: 'qc2', displayName: 'Summit Logistics', balance: { amount: 50_000, currency: 'USD' }, settleCustomerId: 'c2' }]
  }))
  t.same(r.differences.map(d => d.cause), ['wrong_customer_in_qbo'])
  t.match(r.differences[0], { summary: /on Summit Logistics in QuickBooks \(QBO invoice q1001\), which is linked to Summit Logistics in Settle/, suggestedRepair: /change its customer in QuickBooks to Harbor Dental/ })
})

t.test('which DocNumbers need a lookup', async t => {
  const list = [ours('1001'), ours('1002', { psaBalance: 0, settleOpen: 0 }), ours('1003'), ours('1004', { voided: true, settleOpen: 0 })]
  t.same(docNumbersToLookUp(list, [qbo('1003', 50_000, 50_000)], 'X'), ['X1001', 'X1003'], 'the prefix is part of the DocNumber')
  t.same(docNumbersToLookUp(list, [qbo('1003', 50_000, 50_000)], ''), ['1001'], 'listed and paid-everywhere invoices need no call')
})

t.test('customer mapping: link first, then exact name', async t => {
  const links = new Map([['q1', 'c-linked']])
  const names = new Map([['harbor dental', 'c-name']])
  t.equal(mapQboCustomer({ id: 'q1', displayName: 'Harbor Dental' }, links, names), 'c-linked')
  t.equal(mapQboCustomer({ id: 'q2', displayName: ' HARBOR dental ' }, links, names), 'c-name')
  t.equal(mapQboCustomer({ id: 'q3', displayName: 'Harbor Dental LLC' }, links, names), null)
})

t.test('customer-level: ledger out of step, unapplied credit in QuickBooks', async t => {
  const r = compareTieout(input({
    invoices: [ours('1001')],
    customers: [{ customerId: 'c1', name: 'Harbor Dental', receivable: [{ amount: 55_000, currency: 'USD' }] }],
    qboInvoices: [qbo('1001', 50_000, 50_000)],
    qboCustomers: [{ id: 'qc1', displayName: 'Harbor Dental', balance: { amount: 30_000, currency: 'USD' }, settleCustomerId: 'c1' }]
  }))
  t.same(r.differences.map(d => d.cause), ['ledger_out_of_step', 'qbo_customer_balance_differs'])
  t.match(r.differences[1], { difference: { amount: -20_000 }, likelyCause: /\$200\.00 of credit sits unapplied/, dedupeKey: 'tieout:customer:c1:USD:qbo_customer_balance_differs' })
  t.match(r.lines, [{ customerId: 'c1', psa: 50_000, settle: 55_000, qbo: 50_000, differences: 2 }])
})

t.test('payouts: Stripe net, Settle bank posting, QuickBooks deposit', async t => {
  const r = compareTieout(input({
    payouts: [
      payout('ok'),
      payout('nodeposit', { posting: null, qboDeposit: null }),
      payout('failed', { posting: { status: 'failed', externalId: null, lastError: 'Account 44 is inactive' }, qboDeposit: null }),
      payout('inflight', { arrivalDate: '2026-12-03', posting: { status: 'pending', externalId: null, lastError: null }, qboDeposit: null }),
      payout('inflight2', { arrivalDate: '2026-12-02', posting: null, qboDeposit: null }),
      payout('stale', { arrivalDate: '2026-11-25', posting: { status: 'pending', externalId: null, lastError: null }, qboDeposit: null }),
      payout('edited', { qboDeposit: { id: 'd9', total: { amount: 96_500, currency: 'USD' }, txnDate: '2026-11-20' } }),
      payout('deleted', { qboDeposit: null }),
      payout('nobank', { bankPosting: null }),
      payout('bankdiff', { bankPosting: 95_000 })
    ]
  }))
  const by = (id: string): string[] => r.differences.filter(d => d.payoutId === id).map(d => d.cause)
  t.same(by('ok'), [])
  t.same(by('nodeposit'), ['missing_deposit'])
  t.match(r.differences.find(d => d.payoutId === 'failed'), { cause: 'missing_deposit', likelyCause: /failed: Account 44 is inactive/ })
  t.same(by('inflight'), [], 'queued today: in flight, not missing')
  t.same(by('inflight2'), [], 'booked yesterday, deposit not queued yet: in flight')
  t.same(by('stale'), ['missing_deposit'])
  t.same(by('edited'), ['deposit_amount_differs'])
  t.match(r.differences.find(d => d.payoutId === 'edited'), { difference: { amount: -500 }, summary: /deposit d9 in QuickBooks for \$965\.00/, suggestedRepair: /back to \$970\.00/ })
  t.same(by('deleted'), ['deposit_deleted_in_qbo'])
  t.same(by('nobank'), ['bank_posting_missing'])
  t.same(by('bankdiff'), ['bank_posting_differs'])
  t.equal(r.totals.USD?.stripePayouts, 10 * 97_000)
})

t.test('a PSA figure behind a push-back still in flight is not a difference; once the push is done it is', async t => {
  const invoice = { psaBalance: 50_000, settleOpen: 30_000, paidViaSettle: 20_000 }
  const base = {
    customers: [{ customerId: 'c1', name: 'Harbor Dental', receivable: [{ amount: 30_000, currency: 'USD' as const }] }],
    qboInvoices: [qbo('1005', 50_000, 30_000)],
    qboCustomers: [{ id: 'qc1', displayName: 'Harbor Dental', balance: { amount: 30_000, currency: 'USD' as const }, settleCustomerId: 'c1' }]
  }
  const inFlight = compareTieout(input({ ...base, invoices: [ours('1005', { ...invoice, pushInFlight: true })] }))
  t.notOk(inFlight.differences.some(d => d.cause === 'psa_not_updated'), 'the queued push will tell the PSA')
  const stuck = compareTieout(input({ ...base, invoices: [ours('1005', { ...invoice, pushInFlight: false })] }))
  t.ok(stuck.differences.some(d => d.cause === 'psa_not_updated'), 'no push on its way: a person should look')
})

t.test('paid in Settle, open in the PSA and in QuickBooks alike: named as paid in Settle, not recorded in the PSA', async t => {
  // The push-back was taken for a client's check (or failed), so the PSA and the books made from it still show the invoice open.
  const r = compareTieout(input({
    invoices: [ours('1006', { psaBalance: 50_000, settleOpen: 0, paidViaSettle: 50_000, pushInFlight: false })],
    customers: [{ customerId: 'c1', name: 'Harbor Dental', receivable: [] }],
    qboInvoices: [qbo('1006', 50_000, 50_000)],
    qboCustomers: [{ id: 'qc1', displayName: 'Harbor Dental', balance: { amount: 50_000, currency: 'USD' }, settleCustomerId: 'c1' }]
  }))
  const onInvoice = r.differences.filter(d => d.invoiceId === 'inv-1006')
  t.same(onInvoice.map(d => d.cause), ['psa_not_updated'], 'one difference, on the PSA side')
  t.match(onInvoice[0]?.likelyCause, /^Paid in Settle, not recorded in the PSA/)
  t.notOk(r.differences.some(d => /has not reached QuickBooks/.test(d.likelyCause)))
})

t.test('QuickBooks behind a payment Settle is still posting is not a difference; once the posting is done it is', async t => {
  // Settle collected 20,000; the PSA heard; QuickBooks still shows the whole invoice open.
  const invoice = { psaBalance: 30_000, settleOpen: 30_000, paidViaSettle: 20_000 }
  const base = {
    customers: [{ customerId: 'c1', name: 'Harbor Dental', receivable: [{ amount: 30_000, currency: 'USD' as const }] }],
    qboInvoices: [qbo('1005', 50_000, 50_000)],
    qboCustomers: [{ id: 'qc1', displayName: 'Harbor Dental', balance: { amount: 50_000, currency: 'USD' as const }, settleCustomerId: 'c1' }]
  }
  const posting = compareTieout(input({ ...base, invoices: [ours('1005', { ...invoice, postingInFlight: true })] }))
  t.notOk(posting.differences.some(d => d.cause === 'payment_missing_in_qbo'), 'the queued posting will tell QuickBooks')
  const stuck = compareTieout(input({ ...base, invoices: [ours('1005', { ...invoice, postingInFlight: false })] }))
  t.ok(stuck.differences.some(d => d.cause === 'payment_missing_in_qbo'), 'nothing on its way: a person should look')
})

const memo = (doc: string, total: number, remaining: number, fields: Partial<QboCreditMemoView> = {}): QboCreditMemoView => ({
  id: `m${doc}`, docNumber: doc, customerId: 'qc1', customerName: 'Harbor Dental',
  total: { amount: total, currency: 'USD' }, remainingCredit: { amount: remaining, currency: 'USD' }, ...fields
})
const credit = (number: string, cents: number, fields: Partial<OurInvoiceView> = {}): OurInvoiceView =>
  ours(number, { creditMemo: true, psaTotal: -cents, psaBalance: -cents, settleOpen: -cents, ...fields })

t.test('credit memos: matched against QBO CreditMemos by DocNumber, signed negative', async t => {
  const customers = [{ customerId: 'c1', name: 'Harbor Dental', receivable: [{ amount: 50_000 - 2_699, currency: 'USD' as const }] }]
  const qboCustomers = [{ id: 'qc1', displayName: 'Harbor Dental', balance: { amount: 50_000 - 2_699, currency: 'USD' as const }, settleCustomerId: 'c1' }]

  await t.test('a matched credit memo is no difference; QBO customer balance is net of its credit', async t => {
    const r = compareTieout(input({ invoices: [ours('1001'), credit('1014', 2_699)], customers, qboInvoices: [qbo('1001', 50_000, 50_000)], qboCreditMemos: [memo('1014', 2_699, 2_699)], qboCustomers }))
    t.same(r.differences, [])
    t.match(r.totals, { USD: { psa: 47_301, settle: 47_301, qbo: 47_301 } })
    t.match(r.lines, [{ psa: 47_301, settle: 47_301, qbo: 47_301, differences: 0 }])
  })

  await t.test('an Invoice with the same number is not its twin: the credit memo is missing, with a credit-memo repair', async t => {
    const r = compareTieout(input({ invoices: [ours('1001'), credit('1014', 2_699)], customers, qboInvoices: [qbo('1001', 50_000, 50_000)], qboCustomers: [{ ...qboCustomers[0]!, balance: { amount: 50_000, currency: 'USD' } }] }))
    t.equal(r.differences.length, 1)
    t.match(r.differences[0], {
      cause: 'missing_in_qbo', dedupeKey: 'tieout:invoice:inv-1014:missing_in_qbo', difference: { amount: -2_699, currency: 'USD' },
      summary: "Harbor Dental's credit memo 1014 (-$26.99 open) is not in QuickBooks.",
      likelyCause: /as a credit memo \(QuickBooks keeps credits as Credit Memos, not invoices\)/,
      suggestedRepair: /Create credit memo 1014 for Harbor Dental in QuickBooks .* for \$26\.99/
    })
  })

  await t.test('different remaining credit: applied on one side only, each way', async t => {
    const byHand = compareTieout(input({ invoices: [credit('1014', 2_699)], qboCreditMemos: [memo('1014', 2_699, 699)] }))
    t.match(byHand.differences, [{ cause: 'credit_remaining_differs', difference: { amount: 2_000 }, figures: { psa: -2_699, settle: -2_699, qbo: -699 }, likelyCause: /\$20\.00 of the credit was applied to an invoice in QuickBooks by hand/ }])
    const inPsa = compareTieout(input({ invoices: [credit('1014', 2_699, { psaBalance: -699, settleOpen: -699 })], qboCreditMemos: [memo('1014', 2_699, 2_699)] }))
    t.match(inPsa.differences, [{ cause: 'credit_remaining_differs', difference: { amount: -2_000 }, likelyCause: /applied to an invoice in the PSA and not in QuickBooks/, suggestedRepair: /apply QBO credit memo m1014/ }])
    const edited = compareTieout(input({ invoices: [credit('1014', 2_699)], qboCreditMemos: [memo('1014', 3_000, 3_000)] }))
    t.match(edited.differences, [{ cause: 'edited_after_sync', summary: /credit memo 1014 totals -\$26\.99 in the PSA but -\$30\.00 in QuickBooks \(QBO credit memo m1014\)/ }])
  })

  await t.test('look-ups: a credit memo by a negative total alone; only open ones the listing missed', async t => {
    t.ok(isCreditMemo(ours('1', { psaTotal: -1 })))
    t.notOk(isCreditMemo(ours('1')))
    t.same(docNumbersToLookUp([credit('1014', 2_699), credit('1015', 100), credit('1016', 100, { psaBalance: 0, settleOpen: 0 })], [memo('1014', 2_699, 2_699)], ''), ['1015'])
  })
})
