import t from 'tap'
import fc from 'fast-check'
import {
  installmentEligibility, installmentPlanLines, installmentSchedule, splitInstallments, MAX_INSTALLMENTS, MIN_INSTALLMENTS, type EligibilityInput
} from '../../src/domain/installments.js'
import { installmentsAuthorisationText } from '../../src/domain/consents.js'
import { money } from '../../src/domain/money.js'
import { DomainError } from '../../src/domain/errors.js'

const code = (fn: () => unknown): string | undefined => {
  try { fn() } catch (error) { return error instanceof DomainError ? error.code : `not a DomainError: ${String(error)}` }
  return undefined
}

const partCount = fc.integer({ min: MIN_INSTALLMENTS, max: MAX_INSTALLMENTS })

t.test('splitInstallments: parts always add up to the balance', async t => {
  fc.assert(fc.property(partCount, fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (parts, extra) => {
    const total = money(Math.min(parts + extra, Number.MAX_SAFE_INTEGER), 'USD')
    const split = splitInstallments(total, parts)
    const amounts = split.map(p => p.amount)
    const sum = amounts.reduce((a, b) => BigInt(a) + BigInt(b), 0n)
    const max = Math.max(...amounts)
    const min = Math.min(...amounts)
    return split.length === parts &&
      sum === BigInt(total.amount) &&
      min > 0 &&
      max - min <= 1 &&
      split.every(p => p.currency === 'USD' && Number.isSafeInteger(p.amount)) &&
      // Remainder cents go to the earliest parts: the amounts never increase.
      amounts.every((a, i) => i === 0 || a <= (amounts[i - 1] as number))
  }), { numRuns: 2000 })
  t.pass('2000 random balances and part counts split exactly')
})

t.test('splitInstallments is deterministic', async t => {
  fc.assert(fc.property(partCount, fc.integer({ min: 12, max: 10_000_000_000 }), (parts, cents) =>
    JSON.stringify(splitInstallments(money(cents, 'CAD'), parts)) === JSON.stringify(splitInstallments(money(cents, 'CAD'), parts))))
  t.same(splitInstallments(money(100_000, 'USD'), 3).map(p => p.amount), [33_334, 33_333, 33_333], 'the extra cent is on part 1')
  t.same(splitInstallments(money(100_002, 'USD'), 4).map(p => p.amount), [25_001, 25_001, 25_000, 25_000])
  t.same(splitInstallments(money(12, 'USD'), 12).map(p => p.amount), Array(12).fill(1), 'one cent each is still a split')
})

t.test('splitInstallments refuses what cannot be a plan', async t => {
  t.equal(code(() => splitInstallments(money(1000, 'USD'), 1)), 'INVALID_ALLOCATION', 'one part is not a plan')
  t.equal(code(() => splitInstallments(money(1000, 'USD'), 13)), 'INVALID_ALLOCATION')
  t.equal(code(() => splitInstallments(money(1000, 'USD'), 2.5)), 'INVALID_ALLOCATION')
  t.equal(code(() => splitInstallments(money(11, 'USD'), 12)), 'INVALID_ALLOCATION', 'a part of zero cents')
  t.equal(code(() => splitInstallments(money(-500, 'USD'), 2)), 'INVALID_ALLOCATION')
})

t.test('installmentSchedule: monthly, keeping the anchor day through short months', async t => {
  t.same(installmentSchedule('2026-11-26', 3), ['2026-11-26', '2026-12-26', '2027-01-26'], 'across a year end')
  t.same(installmentSchedule('2027-01-31', 4), ['2027-01-31', '2027-02-28', '2027-03-31', '2027-04-30'], 'Jan 31 → Feb 28 → Mar 31 (not Mar 28)')
  t.same(installmentSchedule('2028-01-31', 3), ['2028-01-31', '2028-02-29', '2028-03-31'], 'leap year')
  t.same(installmentSchedule('2100-01-29', 2), ['2100-01-29', '2100-02-28'], '2100 is not a leap year')
  t.same(installmentSchedule('2000-01-30', 2), ['2000-01-30', '2000-02-29'], '2000 is')
  t.same(installmentSchedule('2026-08-31', 12).slice(-2), ['2027-06-30', '2027-07-31'], 'twelve parts')
  t.equal(code(() => installmentSchedule('2027-02-29', 2)), 'INVALID_DATE')
  t.equal(code(() => installmentSchedule('2027-13-01', 2)), 'INVALID_DATE')
  t.equal(code(() => installmentSchedule('27-1-5', 2)), 'INVALID_DATE')
  t.equal(code(() => installmentSchedule('2027-01-05', 13)), 'INVALID_ALLOCATION')
})

t.test('installmentSchedule: property — one date per month, in order, never past the anchor day', async t => {
  const day = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2200-12-31T00:00:00Z'), noInvalidDate: true }).map(d => d.toISOString().slice(0, 10))
  fc.assert(fc.property(day, partCount, (first, parts) => {
    const dates = installmentSchedule(first, parts)
    const anchor = Number(first.slice(8))
    return dates.length === parts && dates[0] === first && dates.every((d, i) => {
      const [y, m, dd] = d.split('-').map(Number) as [number, number, number]
      const monthIndex = (Number(first.slice(0, 4)) * 12 + Number(first.slice(5, 7)) - 1) + i
      const last = new Date(Date.UTC(y, m, 0)).getUTCDate()
      return y * 12 + m - 1 === monthIndex && dd === Math.min(anchor, last)
    })
  }), { numRuns: 1000 })
  t.pass('1000 random first dates')
})

t.test('installmentPlanLines pairs amounts with dates', async t => {
  t.same(installmentPlanLines(money(100_000, 'USD'), 3, '2027-01-31'), [
    { seq: 1, dueOn: '2027-01-31', amount: money(33_334, 'USD') },
    { seq: 2, dueOn: '2027-02-28', amount: money(33_333, 'USD') },
    { seq: 3, dueOn: '2027-03-31', amount: money(33_333, 'USD') }
  ])
})

t.test('installmentEligibility: which part counts, or why none', async t => {
  const base: EligibilityInput = { minAmount: money(50_000, 'USD'), maxParts: 6, open: money(120_000, 'USD'), invoiceVoided: false, activePlan: false, paymentInFlight: false }
  t.same(installmentEligibility(base), { eligible: true, partCounts: [2, 3, 4, 5, 6] })
  t.same(installmentEligibility({ ...base, maxParts: 12 }), { eligible: true, partCounts: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] })
  t.same(installmentEligibility({ ...base, open: money(50_000, 'USD') }), { eligible: true, partCounts: [2, 3, 4, 5, 6] }, 'exactly the minimum qualifies')
  t.same(installmentEligibility({ ...base, minAmount: money(1, 'USD'), open: money(3, 'USD') }), { eligible: true, partCounts: [2, 3] }, 'never a zero-cent part')
  const reason = (input: Partial<EligibilityInput>): string | undefined => {
    const result = installmentEligibility({ ...base, ...input })
    return result.eligible ? undefined : result.reason
  }
  t.equal(reason({ minAmount: money(1, 'USD'), open: money(1, 'USD') }), 'below_minimum', 'one cent cannot be split')
  t.equal(reason({ minAmount: null }), 'disabled')
  t.equal(reason({ open: money(49_999, 'USD') }), 'below_minimum')
  t.equal(reason({ open: money(0, 'USD') }), 'nothing_open')
  t.equal(reason({ open: money(-100, 'USD') }), 'nothing_open', 'a credit balance')
  t.equal(reason({ invoiceVoided: true }), 'voided')
  t.equal(reason({ activePlan: true }), 'plan_active')
  t.equal(reason({ paymentInFlight: true }), 'payment_in_flight')
  t.equal(reason({ open: money(120_000, 'CAD') }), 'currency', 'the minimum is never converted')
  const below = installmentEligibility({ ...base, open: money(10_000, 'USD') })
  t.match(below, { eligible: false, message: /\$500\.00 or more/ }, 'the message names the minimum')
})

t.test('the installment authorisation names every amount and date', async t => {
  const lines = installmentPlanLines(money(100_000, 'USD'), 3, '2027-01-31')
  const text = installmentsAuthorisationText('Brightline IT', lines)
  t.match(text, /^I authorise Brightline IT to charge my saved payment method \$1,000\.00 in 3 installments: /)
  t.match(text, '1. $333.34 on 2027-01-31; 2. $333.33 on 2027-02-28; 3. $333.33 on 2027-03-31.')
  t.match(text, /cancel the remaining installments/)
  t.equal(installmentsAuthorisationText('Brightline IT', lines), text, 'the same plan, the same words')
  t.equal(code(() => installmentsAuthorisationText('Brightline IT', [])), 'INVALID_ALLOCATION')
})
