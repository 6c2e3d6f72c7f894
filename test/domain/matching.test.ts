import t from 'tap'
import fc from 'fast-check'
import {
  buildMatchingIndex, DEFAULT_MATCHING_CONFIG, matchBatch, matchPayment, memoTokens, normaliseName, normaliseRef, withinOneEdit,
  type CustomerView, type OpenInvoiceView, type OutsidePaymentView
} from '../../src/domain/matching.js'

const inv = (id: string, number: string, open: number, over: Partial<OpenInvoiceView> = {}): OpenInvoiceView => ({
  id, customerId: 'c1', number, poNumber: null, openBalance: open, currency: 'USD', dueOn: '2026-11-01', ...over
})
const pay = (amount: number, over: Partial<OutsidePaymentView> = {}): OutsidePaymentView => ({
  id: 'p1', amount: { amount, currency: 'USD' }, receivedOn: '2026-11-10', memo: null, payer: null, bankAccount: null, customerId: null, ...over
})
const customers: CustomerView[] = [
  { id: 'c1', name: 'Harbor Dental, Inc.', aliases: ['HD Group'], bankAccounts: ['acct-1'] },
  { id: 'c2', name: 'Summit Legal LLC', aliases: [], bankAccounts: [] }
]
const ids = (d: ReturnType<typeof matchPayment>): string[] => d.kind === 'auto' ? d.candidate.applications.map(a => a.invoiceId) : []
const rules = (d: ReturnType<typeof matchPayment>): string[] => d.kind === 'auto' ? d.candidate.reasons.map(r => r.rule) : []

t.test('normalisation of names and references', async t => {
  t.equal(normaliseName('The Harbor Dental, Inc.'), 'harbor dental')
  t.equal(normaliseName('SUMMIT LEGAL, L.L.C'), 'summit legal l l c')
  t.equal(normaliseName('Summit Legal LLC'), 'summit legal')
  t.equal(normaliseRef('INV-001042'), '1042')
  t.equal(normaliseRef('#1042'), '1042')
  t.same(memoTokens('Payment for INV 1042 and #1043, PO# 77-A'), ['1042', '1043', '77a'])
  t.same(memoTokens('WIRE REF 100234'), ['100234'])
  t.same(memoTokens(null), [])
  t.ok(withinOneEdit('1042', '1043'))
  t.ok(withinOneEdit('1042', '142'))
  t.ok(withinOneEdit('1042', '10442'))
  t.notOk(withinOneEdit('1042', '2401'))
})

t.test('rule: invoice number in the memo, exact', async t => {
  const index = buildMatchingIndex([inv('a', '1042', 50_000), inv('b', '1043', 50_000)], customers)
  const d = matchPayment(pay(50_000, { memo: 'check for INV-1042' }), index)
  t.equal(d.kind, 'auto')
  t.same(ids(d), ['a'])
  t.ok(rules(d).includes('reference'))
})

t.test('rule: PO number in the memo', async t => {
  const index = buildMatchingIndex([inv('a', '1042', 50_000, { poNumber: 'PO-7781' }), inv('b', '1043', 50_000)], customers)
  t.same(ids(matchPayment(pay(50_000, { memo: 'PO 7781' }), index)), ['a'])
})

t.test('rule: fuzzy reference (one edit, numbers of 4+), amount breaks the tie', async t => {
  const index = buildMatchingIndex([inv('a', '10425', 50_000), inv('b', '10426', 20_000)], customers)
  const d = matchPayment(pay(50_000, { memo: 'inv 10428' }), index)
  t.equal(d.kind, 'auto')
  t.same(ids(d), ['a'])
  t.ok(rules(d).includes('fuzzy_reference'))
  // Short numbers are never matched fuzzily.
  const short = buildMatchingIndex([inv('a', '104', 50_000)], [])
  t.equal(matchPayment(pay(50_000, { memo: '105' }), short).kind, 'unmatched')
  // Fuzzy off: no match.
  t.not(matchPayment(pay(50_000, { memo: 'inv 10428' }), index, { ...DEFAULT_MATCHING_CONFIG, rules: ['reference'] }).kind, 'auto')
})

t.test('rule: exact amount with the customer known by name, alias or bank account', async t => {
  const index = buildMatchingIndex([inv('a', '1', 50_000), inv('b', '2', 30_000), inv('x', '3', 50_000, { customerId: 'c2' })], customers)
  for (const hint of [{ payer: 'HARBOR DENTAL LLC' }, { payer: 'hd group' }, { bankAccount: 'acct-1' }]) {
    const d = matchPayment(pay(50_000, hint), index)
    t.same(ids(d), ['a'], JSON.stringify(hint))
    t.ok(rules(d).includes('customer'))
  }
  // Amount alone, no customer: never guessed.
  t.equal(matchPayment(pay(50_000), index).kind, 'unmatched')
})

t.test('rule: amount within tolerance: short-pay written off', async t => {
  const index = buildMatchingIndex([inv('a', '1042', 50_000)], customers)
  const d = matchPayment(pay(49_000, { memo: '1042' }), index)
  t.equal(d.kind, 'auto')
  if (d.kind !== 'auto') return
  t.same(d.candidate.applications, [{ invoiceId: 'a', amount: 49_000 }])
  t.same(d.candidate.writeOffs, [{ invoiceId: 'a', amount: 1_000 }])
  // Beyond tolerance (3% / $25): a partial payment suggestion, not applied.
  const far = matchPayment(pay(40_000, { memo: '1042' }), index)
  t.equal(far.kind, 'ambiguous')
  t.ok(far.suggestions[0]!.confidence < DEFAULT_MATCHING_CONFIG.autoThreshold)
  // Tolerance without a reference: customer known, but only a suggestion.
  const noRef = matchPayment(pay(49_000, { payer: 'Harbor Dental' }), index)
  t.equal(noRef.kind, 'ambiguous')
  t.equal(noRef.suggestions[0]!.writeOffs[0]!.amount, 1_000)
})

t.test('rule: date window lowers confidence outside it', async t => {
  const index = buildMatchingIndex([inv('a', '1042', 50_000, { dueOn: '2025-01-01' })], customers)
  const d = matchPayment(pay(50_000, { payer: 'Harbor Dental' }), index)
  t.equal(d.kind, 'ambiguous')
  const inWindow = matchPayment(pay(50_000, { payer: 'Harbor Dental' }), index, { ...DEFAULT_MATCHING_CONFIG, dateWindowDays: 1000 })
  t.equal(inWindow.kind, 'auto')
})

t.test('rule: one payment over several invoices (bounded subset-sum)', async t => {
  const index = buildMatchingIndex([inv('a', '1001', 10_000), inv('b', '1002', 25_000), inv('c', '1003', 40_001), inv('d', '1004', 7_777)], customers)
  const d = matchPayment(pay(35_000, { payer: 'Harbor Dental' }), index)
  t.equal(d.kind, 'auto')
  t.same(ids(d).sort(), ['a', 'b'])
  t.ok(rules(d).includes('subset_sum'))
  // Memo naming several invoices.
  const named = matchPayment(pay(50_001, { memo: 'inv 1001, 1003' }), index)
  t.same(ids(named).sort(), ['a', 'c'])
  // Two subsets fit: queue with both suggested.
  const two = buildMatchingIndex([inv('a', '1', 10_000), inv('b', '2', 25_000), inv('c', '3', 20_000), inv('d', '4', 15_000)], customers)
  const amb = matchPayment(pay(35_000, { payer: 'Harbor Dental' }), two)
  t.equal(amb.kind, 'ambiguous')
  t.ok(amb.suggestions.length >= 2)
})

t.test('ambiguity goes to the queue, ranked, never guessed', async t => {
  const index = buildMatchingIndex([inv('a', '1', 50_000), inv('b', '2', 50_000)], customers)
  const d = matchPayment(pay(50_000, { payer: 'Harbor Dental' }), index)
  t.equal(d.kind, 'ambiguous')
  t.same(d.suggestions.map(s => s.applications[0]!.invoiceId).sort(), ['a', 'b'])
  t.ok(d.suggestions[0]!.reasons.length > 0)
  t.equal(matchPayment(pay(12_345, { payer: 'Nobody' }), index).kind, 'unmatched')
})

t.test('never crosses customers or currencies', async t => {
  const index = buildMatchingIndex([inv('a', '1042', 50_000, { currency: 'CAD' }), inv('b', '7777', 50_000, { customerId: 'c2' })], customers)
  t.equal(matchPayment(pay(50_000, { memo: '1042' }), index).kind, 'unmatched')
  // Source names customer c1: c2's invoice is out of reach even with its number in the memo.
  t.equal(matchPayment(pay(50_000, { memo: '7777', customerId: 'c1' }), index).kind, 'unmatched')
  // Payer looks like c1 but memo names c2's invoice: suggested, not applied.
  t.equal(matchPayment(pay(50_000, { memo: '7777', payer: 'Harbor Dental' }), index).kind, 'ambiguous')
})

t.test('rule order and on/off are configurable', async t => {
  const index = buildMatchingIndex([inv('a', '1042', 50_000), inv('b', '5678', 60_000)], customers)
  // Memo says 1042, amount and customer say 5678. Reference first → a; amount first → b.
  const p = pay(60_000, { memo: '1042', payer: 'Harbor Dental' })
  const d = matchPayment(p, index)
  t.equal(d.kind, 'ambiguous')
  t.same(d.suggestions.map(s => s.applications[0]!.invoiceId), ['b', 'a'])
  const amountFirst = matchPayment(p, index, { ...DEFAULT_MATCHING_CONFIG, rules: ['exact_amount', 'reference', 'customer'] })
  t.same(ids(amountFirst), ['b'])
})

t.test('batch: the same open balance is never claimed twice', async t => {
  const out = matchBatch([pay(50_000, { id: 'p1', memo: '1042' }), pay(50_000, { id: 'p2', memo: '1042' })], [inv('a', '1042', 50_000)], customers)
  t.equal(out[0]!.decision.kind, 'auto')
  t.not(out[1]!.decision.kind, 'auto')
})

t.test('properties: no money applied twice, totals preserved, same customer and currency, within payment and invoice open', async t => {
  const arbInvoice = fc.record({
    customer: fc.constantFrom('c1', 'c2'), currency: fc.constantFrom('USD', 'CAD'), open: fc.integer({ min: 1, max: 20_000 }), number: fc.integer({ min: 1000, max: 1030 })
  })
  const arbPayment = fc.record({
    amount: fc.integer({ min: 1, max: 40_000 }), currency: fc.constantFrom('USD', 'CAD'), memoNumbers: fc.array(fc.integer({ min: 995, max: 1035 }), { maxLength: 3 }),
    payer: fc.constantFrom(null, 'Harbor Dental', 'Summit Legal', 'HD Group'), customerId: fc.constantFrom(null, 'c1', 'c2')
  })
  fc.assert(fc.property(fc.array(arbInvoice, { maxLength: 25 }), fc.array(arbPayment, { minLength: 1, maxLength: 15 }), (rawInvoices, rawPayments) => {
    const invoices = rawInvoices.map((r, i) => inv(`i${i}`, String(r.number), r.open, { customerId: r.customer, currency: r.currency as 'USD' }))
    const payments = rawPayments.map((r, i) => pay(r.amount, { id: `p${i}`, amount: { amount: r.amount, currency: r.currency as 'USD' }, memo: r.memoNumbers.join(' ') || null, payer: r.payer, customerId: r.customerId }))
    const out = matchBatch(payments, invoices, customers)
    const claimed = new Map<string, number>()
    for (const { paymentId, decision } of out) {
      const p = payments.find(x => x.id === paymentId)!
      const all = decision.kind === 'auto' ? [decision.candidate, ...decision.suggestions] : decision.suggestions
      for (const c of all) {
        for (const a of [...c.applications, ...c.writeOffs]) {
          const i = invoices.find(x => x.id === a.invoiceId)!
          if (i.customerId !== c.customerId || i.currency !== p.amount.currency) return false
          if (p.customerId !== null && i.customerId !== p.customerId) return false
          if (a.amount <= 0) return false
        }
        if (c.applications.reduce((s, a) => s + a.amount, 0) + c.unapplied !== p.amount.amount && c.unapplied === 0 && c.applications.reduce((s, a) => s + a.amount, 0) > p.amount.amount) return false
      }
      if (decision.kind !== 'auto') continue
      const c = decision.candidate
      const applied = c.applications.reduce((s, a) => s + a.amount, 0)
      // Auto-applied money is exactly the payment (over-payments are never auto-applied).
      if (applied !== p.amount.amount || c.unapplied !== 0) return false
      for (const a of [...c.applications, ...c.writeOffs]) claimed.set(a.invoiceId, (claimed.get(a.invoiceId) ?? 0) + a.amount)
    }
    for (const [id, amount] of claimed) if (amount > invoices.find(x => x.id === id)!.openBalance) return false
    return true
  }), { numRuns: 300 })
  t.pass('properties hold')
})
