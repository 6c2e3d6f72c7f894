import t from 'tap'
import { Accounts, fingerprintEntry, normalSide, validateEntry, type EntryInput } from '../../src/domain/ledger.js'
import { DomainError } from '../../src/domain/errors.js'
import { money } from '../../src/domain/money.js'

const base: EntryInput = {
  idempotencyKey: 'psa:invoice:1001',
  kind: 'invoice.billed',
  effectiveAt: new Date('2026-11-01T00:00:00Z'),
  postings: [
    { account: Accounts.receivable('c1'), amount: money(50000, 'USD') },
    { account: Accounts.billed(), amount: money(-50000, 'USD') }
  ]
}

const code = (input: EntryInput): string | undefined => {
  try { validateEntry(input) } catch (error) { return error instanceof DomainError ? error.code : String(error) }
  return undefined
}

t.test('a balanced entry validates, with its accounts sorted and a fingerprint', async t => {
  const valid = validateEntry(base)
  t.same(valid.accounts.map(a => a.code), ['billed', 'receivable:c1'])
  t.match(valid.fingerprint, /^[0-9a-f]{64}$/)
})

t.test('balance is per currency', async t => {
  t.equal(code({ ...base, postings: [...base.postings, { account: Accounts.bank('op'), amount: money(100, 'CAD') }, { account: Accounts.billed(), amount: money(-100, 'CAD') }] }), undefined, 'two balanced currencies are fine')
  t.equal(code({ ...base, postings: [{ account: Accounts.receivable('c1'), amount: money(100, 'USD') }, { account: Accounts.billed(), amount: money(-100, 'CAD') }] }), 'UNBALANCED_ENTRY', 'USD debit against CAD credit')
  t.equal(code({ ...base, postings: [{ account: Accounts.receivable('c1'), amount: money(100, 'USD') }, { account: Accounts.billed(), amount: money(-99, 'USD') }] }), 'UNBALANCED_ENTRY')
})

t.test('malformed entries are refused with a code', async t => {
  t.equal(code({ ...base, idempotencyKey: '' }), 'INVALID_ENTRY')
  t.equal(code({ ...base, idempotencyKey: 'x'.repeat(201) }), 'INVALID_ENTRY')
  t.equal(code({ ...base, kind: 'Invoice' }), 'INVALID_ENTRY')
  t.equal(code({ ...base, effectiveAt: new Date('nope') }), 'INVALID_ENTRY')
  t.equal(code({ ...base, postings: base.postings.slice(0, 1) }), 'INVALID_ENTRY')
  t.equal(code({ ...base, postings: [{ account: Accounts.receivable('c1'), amount: money(0, 'USD') }, { account: Accounts.billed(), amount: money(0, 'USD') }] }), 'INVALID_AMOUNT', 'zero postings say nothing')
  t.equal(code({ ...base, postings: [{ account: Accounts.receivable('c1'), amount: { amount: 1.5, currency: 'USD' } }, { account: Accounts.billed(), amount: { amount: -1.5, currency: 'USD' } }] }), 'INVALID_AMOUNT')
  t.equal(code({ ...base, postings: [{ account: Accounts.receivable('c1'), amount: { amount: Number.NaN, currency: 'USD' } }, { account: Accounts.billed(), amount: money(-1, 'USD') }] }), 'INVALID_AMOUNT')
  t.equal(code({ ...base, postings: [{ account: Accounts.receivable('c1'), amount: { amount: 1, currency: 'XXX' as 'USD' } }, { account: Accounts.billed(), amount: { amount: -1, currency: 'XXX' as 'USD' } }] }), 'UNKNOWN_CURRENCY')
  t.equal(code({ ...base, postings: [{ account: { code: 'Bad Code', kind: 'asset' }, amount: money(1, 'USD') }, { account: Accounts.billed(), amount: money(-1, 'USD') }] }), 'INVALID_ACCOUNT')
  t.equal(code({ ...base, postings: [{ account: { code: 'bank:x', kind: 'nonsense' as 'asset' }, amount: money(1, 'USD') }, { account: Accounts.billed(), amount: money(-1, 'USD') }] }), 'INVALID_ACCOUNT')
  t.equal(code({ ...base, postings: [{ account: { code: 'billed', kind: 'asset' }, amount: money(1, 'USD') }, { account: Accounts.billed(), amount: money(-1, 'USD') }] }), 'INVALID_ACCOUNT', 'one code, two kinds')
})

t.test('the fingerprint ignores posting order and the key, not the content', async t => {
  const reordered = { ...base, idempotencyKey: 'other', postings: [...base.postings].reverse() }
  t.equal(fingerprintEntry(reordered), fingerprintEntry(base))
  t.not(fingerprintEntry({ ...base, effectiveAt: new Date('2026-11-02T00:00:00Z') }), fingerprintEntry(base))
  t.not(fingerprintEntry({ ...base, postings: [{ account: Accounts.receivable('c1'), amount: money(50001, 'USD') }, { account: Accounts.billed(), amount: money(-50001, 'USD') }] }), fingerprintEntry(base))
})

t.test('normal sides', async t => {
  t.equal(normalSide('asset'), 'debit')
  t.equal(normalSide('expense'), 'debit')
  t.equal(normalSide('liability'), 'credit')
  t.equal(normalSide('income'), 'credit')
})
