import t from 'tap'
import fc from 'fast-check'
import { money, percentOf, type Money } from '../../src/domain/money.js'
import {
  checkSurchargeSettings, formatRate, MAX_SURCHARGE_BP, parseRatePercent, splitReturned, surchargeFor, US_STATES, usStateCode, type SurchargeInput
} from '../../src/domain/surcharge.js'

const credit = { type: 'card' as const, funding: 'credit' }
const base: SurchargeInput = { rateBp: 250, blockedStates: ['CT', 'MA'], billingState: 'TX', method: credit, amount: money(100_000, 'USD') }

t.test('a credit card pays the tenant\'s rate, rounded down to the cent', async t => {
  const quote = surchargeFor(base)
  t.same(quote.surcharge, money(2500, 'USD'))
  t.match(quote.reason, /2\.5% surcharge/)
  t.same(surchargeFor({ ...base, amount: money(333, 'USD'), rateBp: 300 }).surcharge, money(9, 'USD'), '9.99 cents is 9, never 10')
  t.same(surchargeFor({ ...base, amount: money(100_039, 'CAD') }).surcharge, money(2500, 'CAD'), 'keeps the currency; 2500.975 rounds down')
  t.same(surchargeFor({ ...base, rateBp: 1000 }).surcharge, money(3000, 'USD'), 'a rate above the cap is held to 3%')
  const tiny = surchargeFor({ ...base, amount: money(39, 'USD') })
  t.equal(tiny.surcharge.amount, 0)
  t.match(tiny.reason, /less than a cent/)
  t.equal(surchargeFor({ ...base, amount: money(0, 'USD') }).surcharge.amount, 0)
})

t.test('no surcharge, with a plain reason, where it is not allowed', async t => {
  const none = (over: Partial<SurchargeInput>): { amount: number, reason: string } => {
    const quote = surchargeFor({ ...base, ...over })
    return { amount: quote.surcharge.amount, reason: quote.reason }
  }
  t.match(none({ rateBp: 0 }), { amount: 0, reason: /off/ })
  t.match(none({ rateBp: 2.5 }), { amount: 0, reason: /off/ }, 'a rate that is not whole basis points charges nothing')
  t.match(none({ method: { type: 'ach', funding: null } }), { amount: 0, reason: /ACH/ })
  t.match(none({ method: { type: 'card', funding: 'debit' } }), { amount: 0, reason: /debit/ })
  t.match(none({ method: { type: 'card', funding: 'prepaid' } }), { amount: 0, reason: /prepaid/ })
  t.match(none({ method: { type: 'card', funding: 'unknown' } }), { amount: 0, reason: /could not be confirmed as a credit card/ })
  t.match(none({ method: { type: 'card', funding: null } }), { amount: 0, reason: /could not be confirmed/ })
  t.match(none({ billingState: 'CT' }), { amount: 0, reason: /billed in CT/ })
  t.match(none({ billingState: 'ma' }), { amount: 0, reason: /billed in MA/ }, 'stored codes are read case-insensitively')
  t.match(none({ billingState: 'Massachusetts' }), { amount: 0, reason: /billed in MA/ })
  t.match(none({ billingState: null }), { amount: 0, reason: /not known/ }, 'unknown state while some states are blocked: none')
  t.match(none({ billingState: 'Ontario' }), { amount: 0, reason: /not known/ }, 'not a US state counts as unknown')
  t.equal(none({ billingState: null, blockedStates: [] }).amount, 2500, 'unknown state with nothing blocked: the rate applies')
})

const methods = fc.oneof(
  fc.constant({ type: 'ach' as const, funding: null }),
  fc.record({ type: fc.constant('card' as const), funding: fc.constantFrom<string | null>('credit', 'debit', 'prepaid', 'unknown', null) })
)
const codes = Object.keys(US_STATES)
const inputs = fc.record({
  rateBp: fc.integer({ min: -50, max: 2000 }),
  blockedStates: fc.uniqueArray(fc.constantFrom(...codes), { maxLength: 6 }),
  billingState: fc.option(fc.constantFrom(...codes, 'Texas', 'Ontario', ''), { nil: null }),
  method: methods,
  amount: fc.integer({ min: 0, max: 1e12 }).map(cents => money(cents, 'USD'))
})

t.test('property: never above 3%, nor above the tenant\'s rate', async t => {
  fc.assert(fc.property(inputs, input => {
    const { surcharge } = surchargeFor(input)
    return surcharge.amount >= 0 &&
      surcharge.amount * 10_000 <= input.amount.amount * MAX_SURCHARGE_BP &&
      surcharge.amount * 10_000 <= input.amount.amount * Math.max(0, input.rateBp) &&
      surcharge.currency === input.amount.currency
  }), { numRuns: 2000 })
  t.pass('held for 2000 random inputs')
})

t.test('property: zero for debit, prepaid, ACH and blocked states; the full rounded-down rate otherwise', async t => {
  fc.assert(fc.property(inputs, input => {
    const { surcharge } = surchargeFor(input)
    const state = usStateCode(input.billingState)
    const excluded = input.method.type !== 'card' || input.method.funding !== 'credit' ||
      (state === null ? input.blockedStates.length > 0 : input.blockedStates.includes(state)) || input.rateBp <= 0
    const expected = excluded ? 0 : percentOf(input.amount, Math.min(input.rateBp, MAX_SURCHARGE_BP), 'toward-zero').amount
    return surcharge.amount === expected
  }), { numRuns: 2000 })
  t.pass('held for 2000 random inputs')
})

t.test('money going back is split pro rata in exact cents', async t => {
  const charged = { amount: money(100_000, 'USD'), surcharge: money(2500, 'USD') }
  const none = money(0, 'USD')
  t.same(splitReturned(charged, none, money(102_500, 'USD')), { invoice: money(100_000, 'USD'), surcharge: money(2500, 'USD') }, 'all of it: all of each')
  t.same(splitReturned(charged, none, money(41_000, 'USD')), { invoice: money(40_000, 'USD'), surcharge: money(1000, 'USD') })
  t.same(splitReturned({ amount: money(5000, 'USD'), surcharge: money(0, 'USD') }, none, money(1234, 'USD')), { invoice: money(1234, 'USD'), surcharge: money(0, 'USD') }, 'no surcharge: all to the invoice')
  t.throws(() => splitReturned(charged, money(100_000, 'USD'), money(2501, 'USD')), { code: 'INVALID_ALLOCATION' }, 'never more than was charged')
  t.throws(() => splitReturned(charged, none, money(-1, 'USD')), { code: 'INVALID_ALLOCATION' })
  t.throws(() => splitReturned(charged, none, money(1, 'CAD')), { code: 'CURRENCY_MISMATCH' })
})

t.test('property: any run of partial returns ends exactly at the amount and the surcharge', async t => {
  const cases = fc.integer({ min: 1, max: 10_000_000 }).chain(amount => fc.record({
    amount: fc.constant(amount),
    surcharge: fc.integer({ min: 0, max: Math.floor(amount * 3 / 100) }),
    cuts: fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 8 })
  }))
  fc.assert(fc.property(cases, ({ amount, surcharge, cuts }) => {
    const charged = { amount: money(amount, 'USD'), surcharge: money(surcharge, 'USD') }
    const total = amount + surcharge
    // Cut the total into pieces proportional to `cuts`; the last piece takes what is left.
    const weight = cuts.reduce((a, b) => a + b, 0)
    let before = 0
    let invoice = 0
    let income = 0
    for (let i = 0; i < cuts.length; i++) {
      const piece = i === cuts.length - 1 ? total - before : Math.floor(total * (cuts[i] as number) / weight)
      const share = splitReturned(charged, money(before, 'USD'), money(piece, 'USD'))
      if (share.invoice.amount < 0 || share.surcharge.amount < 0 || share.invoice.amount + share.surcharge.amount !== piece) return false
      invoice += share.invoice.amount
      income += share.surcharge.amount
      before += piece
    }
    return invoice === amount && income === surcharge
  }), { numRuns: 1000 })
  t.pass('held for 1000 random charges and refund runs')
})

t.test('billing states from PSA text', async t => {
  t.equal(usStateCode('CT'), 'CT')
  t.equal(usStateCode(' ct. '), 'CT')
  t.equal(usStateCode('Connecticut'), 'CT')
  t.equal(usStateCode('new york'), 'NY')
  t.equal(usStateCode('District of Columbia'), 'DC')
  t.equal(usStateCode('ON'), null, 'a Canadian province is not a US state')
  t.equal(usStateCode('XX'), null)
  t.equal(usStateCode(''), null)
  t.equal(usStateCode(null), null)
  t.equal(usStateCode(42), null)
  for (const [code, name] of Object.entries(US_STATES)) t.equal(usStateCode(name), code, `${name} is ${code}`)
})

t.test('tenant settings are checked before anything is stored', async t => {
  t.same(checkSurchargeSettings({ rateBp: 250, blockedStates: [' ma', 'CT', 'MA'] }), { ok: true, settings: { rateBp: 250, blockedStates: ['CT', 'MA'] } }, 'upper case, deduplicated, sorted')
  t.same(checkSurchargeSettings({ rateBp: 0, blockedStates: [] }), { ok: true, settings: { rateBp: 0, blockedStates: [] } })
  t.same(checkSurchargeSettings({ rateBp: 300, blockedStates: [] }), { ok: true, settings: { rateBp: 300, blockedStates: [] } })
  for (const rateBp of [301, -1, 2.5, Number.NaN, '250', null]) {
    const checked = checkSurchargeSettings({ rateBp, blockedStates: [] })
    t.match(checked, { ok: false, problem: /from 0 \(off\) to 3% \(300 basis points\)/ }, `rate ${String(rateBp)} refused`)
  }
  t.match(checkSurchargeSettings({ rateBp: 350, blockedStates: [] }), { ok: false, problem: /got 3\.5% \(350 basis points\)/ })
  t.match(checkSurchargeSettings({ rateBp: 250, blockedStates: ['CT', 'Connecticut', 'XX', 'C'] }), { ok: false, problem: /"CONNECTICUT", "XX", "C"/ })
  t.match(checkSurchargeSettings({ rateBp: 250, blockedStates: 'CT' }), { ok: false, problem: /list/ })
  t.match(checkSurchargeSettings({ rateBp: 250, blockedStates: [7] }), { ok: false, problem: /list/ })
})

t.test('rates as people type them', async t => {
  t.equal(parseRatePercent('2.5'), 250)
  t.equal(parseRatePercent('2.75%'), 275)
  t.equal(parseRatePercent(' 3 '), 300)
  t.equal(parseRatePercent('0'), 0)
  t.equal(parseRatePercent('off'), 0)
  t.equal(parseRatePercent('3.5'), 350, 'parsed; the settings check refuses it')
  t.equal(parseRatePercent('2.555'), null)
  t.equal(parseRatePercent('-1'), null)
  t.equal(parseRatePercent('2,5'), null)
  t.equal(parseRatePercent(''), null)
  t.equal(formatRate(250), '2.5')
  t.equal(formatRate(300), '3')
  t.equal(formatRate(275), '2.75')
  t.equal(formatRate(5), '0.05')
})

t.test('percentOf rounds toward zero when asked', async t => {
  const m = (cents: number): Money => money(cents, 'USD')
  t.same(percentOf(m(333), 300, 'toward-zero'), m(9))
  t.same(percentOf(m(-333), 300, 'toward-zero'), m(-9))
  t.same(percentOf(m(333), 300), m(10), 'the default is unchanged')
})
