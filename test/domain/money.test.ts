import t from 'tap'
import fc from 'fast-check'
import {
  add, allocate, formatMoney, money, negate, parseAmount, percentOf, split, subtract, sum, toDecimalString
} from '../../src/domain/money.js'
import { DomainError } from '../../src/domain/errors.js'

const code = (fn: () => unknown): string | undefined => {
  try { fn() } catch (error) { return error instanceof DomainError ? error.code : `not a DomainError: ${String(error)}` }
  return undefined
}

t.test('parseAmount reads wire decimals exactly', async t => {
  t.same(parseAmount('1234.56', 'USD'), { amount: 123456, currency: 'USD' })
  t.same(parseAmount(1234.5, 'USD'), { amount: 123450, currency: 'USD' })
  t.same(parseAmount('-0.07', 'CAD'), { amount: -7, currency: 'CAD' })
  t.same(parseAmount('1.500', 'USD'), { amount: 150, currency: 'USD' }, 'trailing zeros are not extra precision')
  t.same(parseAmount(0.1 + 0.2, 'USD', 'half-away-from-zero'), { amount: 30, currency: 'USD' }, 'binary noise is rounded away')
  t.same(parseAmount('12', 'USD'), { amount: 1200, currency: 'USD' })
  t.same(parseAmount(1e-7, 'USD', 'half-away-from-zero'), { amount: 0, currency: 'USD' })
  t.equal(Object.is(parseAmount('-0.00', 'USD').amount, -0), false, 'no negative zero')
})

t.test('rounding is half away from zero, only when asked', async t => {
  t.equal(parseAmount('12.345', 'USD', 'half-away-from-zero').amount, 1235)
  t.equal(parseAmount('-12.345', 'USD', 'half-away-from-zero').amount, -1235)
  t.equal(parseAmount('12.3449', 'USD', 'half-away-from-zero').amount, 1234)
  t.equal(code(() => parseAmount('12.345', 'USD')), 'INVALID_AMOUNT')
})

t.test('bad amounts get their own codes', async t => {
  t.equal(code(() => parseAmount(Number.NaN, 'USD')), 'INVALID_AMOUNT')
  t.equal(code(() => parseAmount(Number.POSITIVE_INFINITY, 'USD')), 'INVALID_AMOUNT')
  t.equal(code(() => parseAmount('1.001', 'USD')), 'INVALID_AMOUNT')
  t.equal(code(() => parseAmount('12,50', 'USD')), 'INVALID_AMOUNT')
  t.equal(code(() => parseAmount('', 'USD')), 'INVALID_AMOUNT')
  t.equal(code(() => parseAmount(null, 'USD')), 'INVALID_AMOUNT')
  t.equal(code(() => parseAmount('1e3', 'USD')), 'INVALID_AMOUNT', 'strings must be plain decimals')
  t.equal(code(() => parseAmount('99999999999999999', 'USD')), 'INVALID_AMOUNT', 'beyond safe integer cents')
  t.equal(code(() => parseAmount('1.00', 'XYZ')), 'UNKNOWN_CURRENCY')
  t.equal(code(() => money(1.5, 'USD')), 'INVALID_AMOUNT')
  t.match(String((() => { try { parseAmount('1.001', 'USD') } catch (e) { return (e as Error).message } })()), /more than 2 decimal places/)
})

t.test('currencies never mix', async t => {
  t.equal(code(() => add(money(1, 'USD'), money(1, 'CAD'))), 'CURRENCY_MISMATCH')
  t.equal(code(() => subtract(money(1, 'USD'), money(1, 'CAD'))), 'CURRENCY_MISMATCH')
  t.equal(code(() => sum([money(1, 'USD'), money(1, 'CAD')], 'USD')), 'CURRENCY_MISMATCH')
  t.same(sum([money(1, 'USD'), money(2, 'USD')], 'USD'), money(3, 'USD'))
})

t.test('formatting for people and for the wire', async t => {
  t.equal(formatMoney(money(123456789, 'USD')), '$1,234,567.89')
  t.equal(formatMoney(money(-5, 'USD')), '-$0.05')
  t.equal(formatMoney(money(100, 'CAD')), 'CA$1.00')
  t.equal(toDecimalString(money(-5, 'USD')), '-0.05')
  t.equal(toDecimalString(money(9007199254740991, 'USD')), '90071992547409.91', 'exact at the safe-integer edge')
  t.equal(formatMoney(money(9007199254740991, 'USD')), '$90,071,992,547,409.91')
})

t.test('percentOf rounds half away from zero', async t => {
  t.same(percentOf(money(50000, 'USD'), 290), money(1450, 'USD'))
  t.same(percentOf(money(-5, 'USD'), 5000), money(-3, 'USD'))
  t.same(percentOf(money(5, 'USD'), 5000), money(3, 'USD'))
  t.same(percentOf(money(4, 'USD'), 5000), money(2, 'USD'))
})

t.test('allocate and split are deterministic and exact', async t => {
  t.same(split(money(100, 'USD'), 3).map(m => m.amount), [34, 33, 33])
  t.same(split(money(-100, 'USD'), 3).map(m => m.amount), [-34, -33, -33])
  t.same(allocate(money(1000, 'USD'), [1, 2, 7]).map(m => m.amount), [100, 200, 700])
  t.same(allocate(money(5, 'USD'), [1, 1, 1, 1, 1, 1]).map(m => m.amount), [1, 1, 1, 1, 1, 0])
  t.equal(code(() => allocate(money(5, 'USD'), [])), 'INVALID_ALLOCATION')
  t.equal(code(() => allocate(money(5, 'USD'), [0, 0])), 'INVALID_ALLOCATION')
  t.equal(code(() => allocate(money(5, 'USD'), [1, -1])), 'INVALID_ALLOCATION')
  t.equal(code(() => split(money(5, 'USD'), 0)), 'INVALID_ALLOCATION')
})

t.test('property: allocation of N parts always sums to the whole', async t => {
  fc.assert(fc.property(
    fc.integer({ min: -1e12, max: 1e12 }),
    fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 40 }).filter(ws => ws.some(w => w > 0)),
    (cents, weights) => {
      const parts = allocate(money(cents, 'USD'), weights)
      const total = parts.reduce((s, p) => s + p.amount, 0)
      const weightSum = weights.reduce((a, b) => a + b, 0)
      // Each part is within one cent of its exact share.
      const fair = parts.every((p, i) => Math.abs(p.amount - (cents * (weights[i] ?? 0)) / weightSum) < 1 + 1e-6)
      return total === cents && parts.length === weights.length && fair
    }), { numRuns: 500 })
  fc.assert(fc.property(fc.integer({ min: -1e12, max: 1e12 }), fc.integer({ min: 1, max: 400 }), (cents, n) => {
    const parts = split(money(cents, 'USD'), n)
    const max = Math.max(...parts.map(p => Math.abs(p.amount)))
    const min = Math.min(...parts.map(p => Math.abs(p.amount)))
    return parts.reduce((s, p) => s + p.amount, 0) === cents && max - min <= 1
  }), { numRuns: 300 })
  t.pass('allocations sum to the whole')
})

t.test('property: decimal string round-trips through parseAmount', async t => {
  fc.assert(fc.property(fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), cents => {
    const m = money(cents, 'USD')
    return parseAmount(toDecimalString(m), 'USD').amount === cents && negate(negate(m)).amount === cents
  }), { numRuns: 1000 })
  t.pass('round trip holds')
})
