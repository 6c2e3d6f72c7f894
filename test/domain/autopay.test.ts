import t from 'tap'
import fc from 'fast-check'
import { chargeDay, decideAutopay, DEFAULT_AUTOPAY_RULE, effectiveRule, validateRule, type StoredMethod } from '../../src/domain/autopay.js'

const card: StoredMethod = { id: 'pm_card', type: 'card', isDefault: true, expires: '2028-04', authorised: true }
const bank: StoredMethod = { id: 'pm_bank', type: 'ach', isDefault: false, expires: null, authorised: true }
const invoice = { kind: 'agreement', agreementName: 'Managed Gold', open: 250_000, issuedOn: '2026-11-01', dueOn: '2026-11-30' }

t.test('timing', async t => {
  t.equal(chargeDay({ kind: 'on_due' }, invoice), '2026-11-30')
  t.equal(chargeDay({ kind: 'days_before_due', days: 5 }, invoice), '2026-11-25')
  t.equal(chargeDay({ kind: 'days_before_due', days: 60 }, invoice), '2026-11-01', 'never before issue')
  t.equal(chargeDay({ kind: 'days_after_issue', days: 10 }, invoice), '2026-11-11')
  t.equal(chargeDay({ kind: 'day_of_month', day: 15 }, invoice), '2026-11-15')
  t.equal(chargeDay({ kind: 'day_of_month', day: 15 }, { issuedOn: '2026-11-20', dueOn: null }), '2026-12-15', 'next month when the day has passed')
  t.equal(chargeDay({ kind: 'day_of_month', day: 31 }, { issuedOn: '2026-02-02', dueOn: null }), '2026-02-28', 'short months use their last day')
  t.equal(chargeDay({ kind: 'on_due' }, { issuedOn: '2026-11-01', dueOn: null }), '2026-11-01', 'no due date: the issue date')
})

t.test('decisions', async t => {
  const rule = { ...DEFAULT_AUTOPAY_RULE, approvalAbove: null }
  t.same(decideAutopay(rule, invoice, [card, bank], '2026-11-29'), { action: 'wait', until: '2026-11-30' })
  t.same(decideAutopay(rule, invoice, [card, bank], '2026-11-30'), { action: 'charge', method: bank, amount: 250_000, runOn: '2026-11-30' }, 'ACH first')
  t.equal((decideAutopay({ ...rule, methodPreference: 'card_first' }, invoice, [card, bank], '2026-11-30') as { method: StoredMethod }).method.id, 'pm_card')
  t.equal((decideAutopay(rule, invoice, [card, { ...bank, authorised: false }], '2026-11-30') as { method: StoredMethod }).method.id, 'pm_card', 'no mandate, no ACH')
  t.match(decideAutopay({ ...rule, methodPreference: 'ach_only' }, invoice, [card], '2026-11-30'), { action: 'skip', reason: /no authorised/ })
  t.match(decideAutopay(rule, invoice, [{ ...card, expires: '2026-10' }], '2026-11-30'), { action: 'skip' }, 'expired card')
  t.match(decideAutopay({ ...rule, paused: true }, invoice, [card], '2026-11-30'), { action: 'skip', reason: /paused/ })
  t.match(decideAutopay({ ...rule, invoiceKinds: ['standard'] }, invoice, [card], '2026-11-30'), { action: 'skip', reason: /agreement invoices/ })
  t.match(decideAutopay({ ...rule, agreements: ['Managed Silver'] }, invoice, [card], '2026-11-30'), { action: 'skip' })
  t.match(decideAutopay({ ...rule, amountCap: 100_000 }, invoice, [card], '2026-11-30'), { action: 'skip', reason: /cap/ })
  t.match(decideAutopay({ ...rule, approvalAbove: 200_000 }, invoice, [card], '2026-11-30'), { action: 'needs_approval', amount: 250_000 })
  t.match(decideAutopay(rule, { ...invoice, open: 0 }, [card], '2026-11-30'), { action: 'skip' })
})

t.test('the customer rule wins field by field', async t => {
  const merged = effectiveRule(DEFAULT_AUTOPAY_RULE, { methodPreference: 'card_only', timing: undefined })
  t.equal(merged.methodPreference, 'card_only')
  t.same(merged.timing, DEFAULT_AUTOPAY_RULE.timing, 'an unset customer field keeps the tenant value')
  t.equal(effectiveRule(DEFAULT_AUTOPAY_RULE, null), DEFAULT_AUTOPAY_RULE)
})

t.test('validation names the field', async t => {
  t.same(validateRule(DEFAULT_AUTOPAY_RULE), [])
  t.same(validateRule({ ...DEFAULT_AUTOPAY_RULE, timing: { kind: 'day_of_month', day: 32 } }).map(p => p.field), ['timing.day'])
  t.same(validateRule({ ...DEFAULT_AUTOPAY_RULE, amountCap: -5, approvalAbove: 1.5 }).map(p => p.field), ['amountCap', 'approvalAbove'])
})

t.test('property: a charge is never for more than is open, never before its day, never on an unauthorised method', async t => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: -1000, max: 5_000_000 }), fc.integer({ min: 0, max: 90 }),
    fc.array(fc.record({ type: fc.constantFrom<'card' | 'ach'>('card', 'ach'), authorised: fc.boolean(), isDefault: fc.boolean() }), { maxLength: 4 }),
    (issueOffset, terms, open, todayOffset, methods) => {
      const issuedOn = new Date(Date.UTC(2026, 0, 1 + issueOffset)).toISOString().slice(0, 10)
      const dueOn = new Date(Date.UTC(2026, 0, 1 + issueOffset + terms)).toISOString().slice(0, 10)
      const today = new Date(Date.UTC(2026, 0, 1 + todayOffset)).toISOString().slice(0, 10)
      const stored = methods.map((m, i) => ({ ...m, id: `pm_${i}`, expires: m.type === 'card' ? '2030-01' : null }))
      const d = decideAutopay(DEFAULT_AUTOPAY_RULE, { kind: 'standard', agreementName: null, open, issuedOn, dueOn }, stored, today)
      if (d.action !== 'charge' && d.action !== 'needs_approval') return true
      return d.amount === open && open > 0 && d.runOn <= today && d.method.authorised
    }), { numRuns: 500 })
  t.pass('charges stay within bounds')
})
