import t from 'tap'
import fc from 'fast-check'
import { DEFAULT_MATCHING_CONFIG, matchBatch, memoTokens, normaliseRef, type CustomerView, type MatchingConfig, type OpenInvoiceView, type OutsidePaymentView, type RuleName } from '../../src/domain/matching.js'
import * as reference from '../helpers/matching-reference.js'
import { generate } from '../../bench/matching.js'

/**
 * The engine is tuned for speed; its decisions must not move. Every batch here
 * is matched by src/domain/matching.ts and by the engine as it was before the
 * tuning (test/helpers/matching-reference.ts), and the two results must be the
 * same down to reasons, suggestion order and property order (compared as JSON).
 */
function firstDifference (payments: readonly OutsidePaymentView[], invoices: readonly OpenInvoiceView[], customers: readonly CustomerView[], config: MatchingConfig): string | null {
  const got = matchBatch(payments, invoices, customers, config)
  const want = reference.matchBatch(payments, invoices, customers, config)
  if (got.length !== want.length) return `${got.length} results, reference ${want.length}`
  for (let i = 0; i < got.length; i++) {
    const a = JSON.stringify(got[i])
    const b = JSON.stringify(want[i])
    if (a !== b) return `payment ${i}:\n  got  ${a}\n  want ${b}`
  }
  return null
}

t.test('same decisions as the reference engine on the bench generator (typos, fees, splits, same-amount pairs, unknown payers)', async t => {
  for (const [n, customers, seed] of [[6000, 120, 1], [4000, 40, 2], [3000, 1500, 3], [2000, 7, 4]] as const) {
    const g = generate(n, customers, seed)
    t.equal(firstDifference(g.payments, g.invoices, g.customers, DEFAULT_MATCHING_CONFIG), null, `n=${n} customers=${customers} seed=${seed}`)
  }
  const g = generate(3000, 60, 5)
  const configs: Array<Partial<MatchingConfig>> = [
    { rules: ['exact_amount', 'fuzzy_reference', 'reference', 'tolerance', 'customer', 'subset_sum'] },
    { rules: ['subset_sum', 'tolerance', 'reference', 'date_window'], maxSubsetSize: 3, subsetSearchCap: 50 },
    { maxSuggestions: 12, autoMargin: 0.2, toleranceCents: 100_00, toleranceBasisPoints: 1000 },
    { rules: ['fuzzy_reference', 'exact_amount'], maxSuggestions: 1, dateWindowDays: 10 }
  ]
  for (const over of configs) t.equal(firstDifference(g.payments, g.invoices, g.customers, { ...DEFAULT_MATCHING_CONFIG, ...over }), null, JSON.stringify(over))
})

t.test('same decisions as the reference engine on generated batches', async t => {
  const customers: CustomerView[] = [
    { id: 'c1', name: 'Harbor Dental, Inc.', aliases: ['HD Group'], bankAccounts: ['acct-1'] },
    { id: 'c2', name: 'Summit Legal LLC', aliases: [], bankAccounts: ['acct-2'] },
    { id: 'c3', name: 'The Summit Legal', aliases: ['Harbor Dental'], bankAccounts: ['acct-2'] }
  ]
  const arbRef = fc.oneof(
    fc.integer({ min: 1000, max: 1040 }).map(String),
    fc.integer({ min: 100_000, max: 100_030 }).map(String),
    fc.integer({ min: 1, max: 99 }).map(n => `00${n}`),
    fc.constantFrom('INV-1005', 'inv1012', '77-A', 'PO 1020', 'A1B2', '10O5', 'REF1033', '#1007', '123456789012345', '1234567890123456')
  )
  const arbInvoice = fc.record({
    customer: fc.constantFrom('c1', 'c2', 'c3'), currency: fc.constantFrom('USD', 'USD', 'CAD'), open: fc.oneof(fc.integer({ min: -100, max: 30_000 }), fc.constantFrom(5_000, 10_000, 2_500)),
    number: arbRef, po: fc.option(arbRef, { freq: 3 }), due: fc.constantFrom('2026-09-01', '2026-11-01', '2026-11-20', '2025-01-01', 'not a date')
  })
  // Memo words: references as written, with one edit, behind prefixes, among words without digits.
  const arbWord = fc.oneof(
    arbRef,
    arbRef.chain(r => fc.integer({ min: 0, max: Math.max(0, r.length - 1) }).chain(at => fc.constantFrom(r.slice(0, at) + r.slice(at + 1), r.slice(0, at) + '9' + r.slice(at + 1), r.slice(0, at) + '3' + r.slice(at)))),
    arbRef.map(r => `INV ${r}`), arbRef.map(r => `#${r}`), arbRef.map(r => `Invoice:${r}`),
    fc.constantFrom('ACH', 'DEPOSIT', 'thanks', 'no', 'po#', 'ref.', '(x)', '/', 'Payment for')
  )
  const arbPayment = fc.record({
    amount: fc.oneof(fc.integer({ min: 0, max: 60_000 }), fc.constantFrom(5_000, 10_000, 7_500, 15_000, 2_500, 4_900, 9_800)),
    currency: fc.constantFrom('USD', 'USD', 'CAD'),
    memo: fc.option(fc.array(arbWord, { maxLength: 4 }).chain(words => fc.constantFrom(' ', ', ', '; ', '-').map(sep => words.join(sep))), { freq: 4 }),
    payer: fc.constantFrom(null, 'Harbor Dental', 'SUMMIT LEGAL, LLC', 'HD Group', 'Someone Else'),
    bankAccount: fc.constantFrom(null, null, 'acct-1', 'acct-2', 'acct-9'),
    customerId: fc.constantFrom(null, null, null, 'c1', 'c2', 'c9'),
    receivedOn: fc.constantFrom('2026-11-10', '2027-06-01')
  })
  const allRules: RuleName[] = ['reference', 'fuzzy_reference', 'exact_amount', 'tolerance', 'subset_sum', 'customer', 'date_window']
  const arbConfig = fc.oneof(
    fc.constant(DEFAULT_MATCHING_CONFIG),
    fc.record({
      rules: fc.shuffledSubarray(allRules), toleranceCents: fc.constantFrom(0, 100, 2500), toleranceBasisPoints: fc.constantFrom(0, 300, 10_000),
      dateWindowDays: fc.constantFrom(0, 90), maxSubsetSize: fc.integer({ min: 1, max: 7 }), subsetSearchCap: fc.constantFrom(5, 100, 4000),
      autoThreshold: fc.constantFrom(0.5, 0.8, 0.95), autoMargin: fc.constantFrom(0, 0.1, 0.3), maxSuggestions: fc.integer({ min: 0, max: 8 })
    })
  )
  fc.assert(fc.property(fc.array(arbInvoice, { maxLength: 40 }), fc.array(arbPayment, { minLength: 1, maxLength: 20 }), arbConfig, (rawInvoices, rawPayments, config) => {
    const invoices: OpenInvoiceView[] = rawInvoices.map((r, i) => ({ id: `i${i}`, customerId: r.customer, number: r.number, poNumber: r.po, openBalance: r.open, currency: r.currency as 'USD', dueOn: r.due }))
    // Every third payment's amount is the sum of two open balances, to reach the multi-invoice rules.
    const amountOf = (i: number, drawn: number): number => i % 3 === 0 && i + 1 < invoices.length ? invoices[i]!.openBalance + invoices[i + 1]!.openBalance : drawn
    const payments: OutsidePaymentView[] = rawPayments.map((r, i) => ({ id: `p${i}`, amount: { amount: amountOf(i, r.amount), currency: r.currency as 'USD' }, receivedOn: r.receivedOn, memo: r.memo, payer: r.payer, bankAccount: r.bankAccount, customerId: r.customerId }))
    const diff = firstDifference(payments, invoices, customers, config)
    if (diff !== null) throw new Error(diff)
    return true
  }), { numRuns: 1500 })
  t.pass('same decisions')
})

t.test('same memo tokens and normalised references as the reference engine', async t => {
  const arbText = fc.string({ unit: fc.constantFrom(...'0123456789abcINVPOREFnorx #:-.,;/()&'.split('')), maxLength: 30 })
  fc.assert(fc.property(fc.option(arbText), memo => {
    t.same(memoTokens(memo), reference.memoTokens(memo))
    if (memo !== null) t.equal(normaliseRef(memo), reference.normaliseRef(memo))
  }), { numRuns: 3000 })
})
