import { createHash } from 'node:crypto'
import { DomainError } from './errors.js'
import { asCurrency, type Currency, type Money } from './money.js'

/**
 * Settle's double-entry book. A posting amount is signed: debits positive,
 * credits negative, so a balanced entry sums to zero in each currency.
 */
export type AccountKind = 'asset' | 'liability' | 'income' | 'expense' | 'control'

export interface AccountRef {
  /** Stable code, e.g. `receivable:6f1c…` or `processor:stripe:pending`. */
  readonly code: string
  readonly kind: AccountKind
  /** Set on per-customer accounts so customer balances are one indexed query. */
  readonly customerId?: string
}

/** The chart every tenant starts with; a tenant may add more accounts of these kinds. */
export const Accounts = {
  receivable: (customerId: string): AccountRef => ({ code: `receivable:${customerId}`, kind: 'asset', customerId }),
  customerCredit: (customerId: string): AccountRef => ({ code: `credit:${customerId}`, kind: 'liability', customerId }),
  billed: (): AccountRef => ({ code: 'billed', kind: 'control' }),
  processorPending: (processor: string): AccountRef => ({ code: `processor:${processor}:pending`, kind: 'asset' }),
  processorFees: (): AccountRef => ({ code: 'fees:processor', kind: 'expense' }),
  bank: (account: string): AccountRef => ({ code: `bank:${account}`, kind: 'asset' }),
  surchargeIncome: (): AccountRef => ({ code: 'surcharge:income', kind: 'income' }),
  writeOff: (): AccountRef => ({ code: 'writeoff', kind: 'expense' }),
  disputes: (): AccountRef => ({ code: 'disputes', kind: 'asset' }),
  returns: (): AccountRef => ({ code: 'returns', kind: 'asset' }),
  /** Money the PSA says was received outside Settle (check, wire): cleared when reconciliation matches it to a deposit. */
  collectedElsewhere: (system: string): AccountRef => ({ code: `collected_elsewhere:${system}`, kind: 'asset' })
} as const

/** Debit-normal kinds show a positive balance when they hold value. */
export function normalSide (kind: AccountKind): 'debit' | 'credit' {
  return kind === 'asset' || kind === 'expense' ? 'debit' : 'credit'
}

export interface PostingInput {
  readonly account: AccountRef
  readonly amount: Money
}

export interface EntryInput {
  /** Unique per tenant and taken from the source event, so a replay writes nothing new. */
  readonly idempotencyKey: string
  /** What happened, dotted: `invoice.billed`, `payment.succeeded`, `payout.paid`. */
  readonly kind: string
  /** When it happened in business terms; balances "as of" a date use this. */
  readonly effectiveAt: Date
  readonly postings: readonly PostingInput[]
  readonly memo?: string
  /** Reference to the source event (system, id), kept for the audit trail. */
  readonly source?: Readonly<Record<string, string | number | boolean | null>>
}

export interface ValidEntry extends EntryInput {
  readonly fingerprint: string
  readonly accounts: readonly AccountRef[]
}

const ACCOUNT_CODE = /^[a-z][a-z0-9_-]*(?::[A-Za-z0-9_.-]+)*$/
const ENTRY_KIND = /^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$/
const KINDS: readonly AccountKind[] = ['asset', 'liability', 'income', 'expense', 'control']
export const MAX_POSTINGS = 200

/**
 * Checks an entry before anything touches the database: a key, a kind, a real
 * date, at least two postings of non-zero whole cents in known currencies,
 * consistent accounts, and a zero sum per currency.
 */
export function validateEntry (input: EntryInput): ValidEntry {
  if (typeof input.idempotencyKey !== 'string' || input.idempotencyKey.trim() === '' || input.idempotencyKey.length > 200) {
    throw new DomainError('INVALID_ENTRY', 'Every ledger entry needs an idempotency key of 1 to 200 characters taken from its source event.')
  }
  if (typeof input.kind !== 'string' || !ENTRY_KIND.test(input.kind)) {
    throw new DomainError('INVALID_ENTRY', `Entry kind ${JSON.stringify(input.kind)} must be dotted lower case, like "invoice.billed".`)
  }
  if (!(input.effectiveAt instanceof Date) || Number.isNaN(input.effectiveAt.getTime())) {
    throw new DomainError('INVALID_ENTRY', 'Entry effectiveAt must be a valid date.')
  }
  if (!Array.isArray(input.postings) || input.postings.length < 2 || input.postings.length > MAX_POSTINGS) {
    throw new DomainError('INVALID_ENTRY', `An entry needs between 2 and ${MAX_POSTINGS} postings.`)
  }
  const accounts = new Map<string, AccountRef>()
  const totals = new Map<Currency, number>()
  for (const posting of input.postings) {
    const account = checkAccount(posting.account)
    const seen = accounts.get(account.code)
    if (seen !== undefined && (seen.kind !== account.kind || seen.customerId !== account.customerId)) {
      throw new DomainError('INVALID_ACCOUNT', `Account ${account.code} appears twice with different kinds or customers.`)
    }
    accounts.set(account.code, account)
    const currency = asCurrency(posting.amount?.currency)
    const amount = posting.amount.amount
    if (!Number.isSafeInteger(amount) || amount === 0) {
      throw new DomainError('INVALID_AMOUNT', `Posting to ${account.code} must be a non-zero whole number of cents; got ${String(amount)}.`)
    }
    totals.set(currency, (totals.get(currency) ?? 0) + amount)
  }
  for (const [currency, total] of totals) {
    if (total !== 0) {
      throw new DomainError('UNBALANCED_ENTRY',
        `Entry ${input.idempotencyKey} does not balance in ${currency}: debits exceed credits by ${total} cents.`)
    }
  }
  return {
    ...input,
    accounts: [...accounts.values()].sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0)),
    fingerprint: fingerprintEntry(input)
  }
}

function checkAccount (account: AccountRef | undefined): AccountRef {
  if (account === undefined || typeof account.code !== 'string' || !ACCOUNT_CODE.test(account.code) || account.code.length > 200) {
    throw new DomainError('INVALID_ACCOUNT', `Account code ${JSON.stringify(account?.code)} is not valid; use lower-case segments joined by ":".`)
  }
  if (!KINDS.includes(account.kind)) {
    throw new DomainError('INVALID_ACCOUNT', `Account ${account.code} has unknown kind ${JSON.stringify(account.kind)}.`)
  }
  return account
}

/**
 * A digest of what the entry says (not its key), so a replay with the same
 * key can be told apart from a different event wrongly reusing the key.
 */
export function fingerprintEntry (input: EntryInput): string {
  const postings = input.postings
    .map(p => `${p.account.code}|${p.amount.currency}|${p.amount.amount}`)
    .sort()
  const canonical = JSON.stringify([input.kind, input.effectiveAt.toISOString(), postings])
  return createHash('sha256').update(canonical).digest('hex')
}

export interface PostedEntry {
  readonly id: string
  readonly tenantId: string
  readonly idempotencyKey: string
  readonly kind: string
  readonly memo: string | null
  readonly effectiveAt: Date
  readonly recordedAt: Date
  readonly reversesEntryId: string | null
  readonly postings: ReadonlyArray<{ accountCode: string, amount: Money }>
}

/** The postings that undo an entry: same accounts, opposite signs. */
export function reversalPostings (original: PostedEntry, accounts: ReadonlyMap<string, AccountRef>): PostingInput[] {
  return original.postings.map(p => {
    const account = accounts.get(p.accountCode)
    if (account === undefined) {
      throw new DomainError('INVALID_ACCOUNT', `Account ${p.accountCode} of entry ${original.id} is missing.`)
    }
    return { account, amount: { amount: -p.amount.amount + 0, currency: p.amount.currency } }
  })
}
