// The matching engine as of commit 2512756, before the speed work: the
// differential test (test/domain/matching-differential.test.ts) checks that
// src/domain/matching.ts decides exactly as this does. Kept verbatim apart
// from this note and the import path; do not change its behaviour.
import type { Currency, Money } from '../../src/domain/money.js'

/**
 * Matching money collected elsewhere (checks, wires, QuickBooks payments, bank
 * lines) to open invoices. Pure: the caller loads the tenant's open invoices
 * and customers once, builds an index, then matches each payment against it.
 * Lookups go through maps keyed by reference, (customer, currency, amount) and
 * customer, so a batch costs O(payments × small), never payments × invoices.
 */

export type RuleName = 'reference' | 'fuzzy_reference' | 'exact_amount' | 'tolerance' | 'customer' | 'date_window' | 'subset_sum'

/** Generators produce candidates, in the configured order; 'customer' and 'date_window' only adjust confidence. */
const GENERATORS: ReadonlySet<RuleName> = new Set(['reference', 'fuzzy_reference', 'exact_amount', 'tolerance', 'subset_sum'])

export interface MatchingConfig {
  /** Rules in evaluation order; a rule left out is off. */
  rules: RuleName[]
  /** A short-pay difference is written off only if within BOTH bounds. */
  toleranceCents: number
  toleranceBasisPoints: number
  dateWindowDays: number
  maxSubsetSize: number
  /** Nodes the subset-sum search may visit per payment; past it the search is inconclusive. */
  subsetSearchCap: number
  autoThreshold: number
  /** How far the best candidate must be ahead of the runner-up to be applied automatically. */
  autoMargin: number
  maxSuggestions: number
}

export const DEFAULT_MATCHING_CONFIG: MatchingConfig = {
  rules: ['reference', 'fuzzy_reference', 'exact_amount', 'tolerance', 'subset_sum', 'customer', 'date_window'],
  toleranceCents: 2500,
  toleranceBasisPoints: 300,
  dateWindowDays: 90,
  maxSubsetSize: 6,
  subsetSearchCap: 4000,
  autoThreshold: 0.8,
  autoMargin: 0.1,
  maxSuggestions: 5
}

export interface OutsidePaymentView {
  id: string
  amount: Money
  /** YYYY-MM-DD */
  receivedOn: string
  memo: string | null
  payer: string | null
  bankAccount: string | null
  /** Set when the source already names the customer (e.g. a QuickBooks payment mapped to our customer): a hard filter. */
  customerId: string | null
}

export interface OpenInvoiceView {
  id: string
  customerId: string
  number: string
  poNumber: string | null
  openBalance: number
  currency: Currency
  /** YYYY-MM-DD */
  dueOn: string
}

export interface CustomerView {
  id: string
  name: string
  aliases: string[]
  bankAccounts: string[]
}

export interface Reason { rule: RuleName, detail: string }

export interface Application { invoiceId: string, amount: number }

export interface Candidate {
  customerId: string
  currency: Currency
  applications: Application[]
  /** Short-pay written off, per invoice (its open balance minus what was applied). */
  writeOffs: Application[]
  /** Part of the payment left over (over-payment): never auto-applied. */
  unapplied: number
  reasons: Reason[]
  confidence: number
}

export type Decision =
  | { kind: 'auto', candidate: Candidate, suggestions: Candidate[] }
  | { kind: 'ambiguous', suggestions: Candidate[] }
  | { kind: 'unmatched', suggestions: Candidate[] }

/** One customer's open invoices in one currency. */
interface Pool {
  /** By open balance ascending. */
  sorted: OpenInvoiceView[]
  byAmount: Map<number, OpenInvoiceView[]>
}

type OneOrMany = OpenInvoiceView | OpenInvoiceView[]

/** Key → invoices in insertion order, as linked entries in flat arrays: a small integer per key in the map, no array per key. */
interface Chains {
  /** Key → its first entry. */
  readonly first: Map<number, number>
  /** By entry: the invoice; the next entry of the same key (-1 at the end); for a first entry, the key's last entry. */
  readonly invoice: OpenInvoiceView[]
  readonly next: number[]
  readonly last: number[]
}

function chainAdd (chains: Chains, key: number, inv: OpenInvoiceView): void {
  const entry = chains.invoice.length
  chains.invoice.push(inv)
  chains.next.push(-1)
  chains.last.push(entry)
  const first = chains.first.get(key)
  if (first === undefined) chains.first.set(key, entry)
  else { chains.next[chains.last[first]!] = entry; chains.last[first] = entry }
}

export interface MatchingIndex {
  readonly byRef: Map<string, OpenInvoiceView[]>
  /**
   * (position, reference with that character deleted) → invoices. All-digit
   * keys are numbers (see delKey): hundreds of thousands of keys, and a string
   * per key was most of the index's build time and garbage; their invoices are
   * chained in flat arrays, not an array per key. Others: "i:rest".
   */
  readonly byDeletionNum: Chains
  readonly byDeletion: Map<string, OneOrMany>
  /** customer → currency → pool: nested maps, so a lookup builds no key string. */
  readonly pools: Map<string, Map<Currency, Pool>>
  readonly customersByName: Map<string, string[]>
  readonly customersByBankAccount: Map<string, string[]>
  /**
   * Customer identification, computed once per distinct source customer, bank
   * account and payer text: one map each, keyed by the payment's own string
   * (a prefixed key would be a new string to build and hash per payment).
   */
  readonly whoBySource: Map<string, Identified>
  readonly whoByAccount: Map<string, Identified>
  readonly whoByPayer: Map<string, Identified>
}

const SUFFIXES = new Set(['inc', 'llc', 'ltd', 'limited', 'corp', 'corporation', 'co', 'company', 'the', 'plc', 'pllc', 'lp', 'llp'])

/** "The Harbor Dental, Inc." → "harbor dental" */
export function normaliseName (name: string): string {
  return name.toLowerCase().replace(/&/g, ' and ').replace(/[^a-z0-9]+/g, ' ').trim().split(' ').filter(w => w !== '' && !SUFFIXES.has(w)).join(' ')
}

/** "INV-001042" / "#1042" / "inv1042" → "1042"-style token: prefixes and separators dropped, case folded. */
export function normaliseRef (ref: string): string {
  // Fast paths, same result without the four regexes (every invoice number at
  // index build, most memo tokens): a plain number not starting with 0 is its
  // own token; so is one behind a bare prefix ("inv1042", "ref1042").
  if (digitShape(ref) === 2) return ref
  const rest = afterPrefix(ref)
  if (rest !== '' && digitShape(rest) === 2) return rest
  return ref.toLowerCase().replace(/^(?:inv(?:oice)?|po|no|nr|ref)\b/, '').replace(/^(?:inv(?:oice)?|po|no|nr|ref)(?=\d)/, '').replace(/[^a-z0-9]/g, '').replace(/^0+(?=\d)/, '')
}

const NONE: string[] = []

/** Tokens of a memo that could be invoice or PO references. */
export function memoTokens (memo: string | null): string[] {
  if (memo === null) return NONE
  let out: Set<string> | null = null
  // Join prefixes to their number ("INV 1042", "PO# 77-A") before splitting.
  const text = memo.toLowerCase().replace(/\b(inv(?:oice)?|po|no|nr|ref)[\s.#:-]*(?=[a-z]?\d)/g, '$1')
  for (const raw of text.split(/[\s,;/()]+/)) {
    // Fast paths, same result as normaliseRef without its four regexes:
    // normalising only drops characters, so a word without a digit can never
    // yield a reference; a plain number not starting with 0 is its own token.
    const shape = digitShape(raw)
    if (shape === 0) continue
    const token = shape === 2 ? raw : normaliseRef(raw)
    if (token.length >= 2 && (shape === 2 || /\d/.test(token))) (out ??= new Set()).add(token)
  }
  return out === null ? NONE : [...out]
}

/** The part after a leading lower-case inv/invoice/po/no/nr/ref, or '' without one. */
function afterPrefix (s: string): string {
  for (const prefix of REF_PREFIXES) if (s.startsWith(prefix)) return s.slice(prefix.length)
  return ''
}
// "invoice" before "inv": a longer prefix first, as the regex's alternation tries it.
const REF_PREFIXES = ['invoice', 'inv', 'po', 'no', 'nr', 'ref']

/** 0: no digit; 2: only digits, not starting with 0; 1: anything else. */
function digitShape (raw: string): 0 | 1 | 2 {
  let digits = 0
  for (let i = 0; i < raw.length; i++) { const c = raw.charCodeAt(i); if (c >= 48 && c <= 57) digits++ }
  if (digits === 0) return 0
  return digits === raw.length && raw.charCodeAt(0) !== 48 ? 2 : 1
}

const DEL_NUM_MAX = 14
/**
 * Numeric key of (pos, s without its character at skip; skip -1 keeps all)
 * when that rest is all digits and at most 14 long, else -1. A leading 1 keeps
 * leading zeros apart ("023" ≠ "23"); ×32 + pos stays below 2^53.
 */
function delKey (s: string, skip: number, pos: number): number {
  if (s.length - (skip >= 0 ? 1 : 0) > DEL_NUM_MAX) return -1
  let v = 1
  for (let j = 0; j < s.length; j++) {
    if (j === skip) continue
    const c = s.charCodeAt(j) - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v * 32 + pos
}

/** addFuzzy over the invoices whose reference, without its character at pos, is s without its character at skip (all of s when skip is -1). */
function addDeletionHits (hits: Map<OpenInvoiceView, string> | null, index: MatchingIndex, s: string, skip: number, pos: number, exact: OpenInvoiceView[] | undefined, token: string): Map<OpenInvoiceView, string> | null {
  const k = delKey(s, skip, pos)
  if (k < 0) return addFuzzy(hits, index.byDeletion.get(`${pos}:${skip < 0 ? s : s.slice(0, skip) + s.slice(skip + 1)}`), exact, token)
  const chains = index.byDeletionNum
  for (let e = chains.first.get(k) ?? -1; e >= 0; e = chains.next[e]!) hits = addFuzzy(hits, chains.invoice[e]!, exact, token)
  return hits
}

function addOneOrMany<K> (map: Map<K, OneOrMany>, key: K, inv: OpenInvoiceView): void {
  const prior = map.get(key)
  if (prior === undefined) map.set(key, inv)
  else if (Array.isArray(prior)) prior.push(inv)
  else map.set(key, [prior, inv])
}

/** Levenshtein distance ≤ 1, without building the matrix. */
export function withinOneEdit (a: string, b: string): boolean {
  if (a === b) return true
  const la = a.length
  const lb = b.length
  if (Math.abs(la - lb) > 1) return false
  let i = 0
  while (i < la && i < lb && a[i] === b[i]) i++
  if (la === lb) return a.slice(i + 1) === b.slice(i + 1)
  return la > lb ? a.slice(i + 1) === b.slice(i) : a.slice(i) === b.slice(i + 1)
}

const FUZZY_MIN = 4

function push<K, V> (map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key)
  if (list === undefined) map.set(key, [value])
  else if (!list.includes(value)) list.push(value)
}

export function buildMatchingIndex (invoices: readonly OpenInvoiceView[], customers: readonly CustomerView[]): MatchingIndex {
  const index: MatchingIndex = {
    byRef: new Map(), byDeletionNum: { first: new Map(), invoice: [], next: [], last: [] }, byDeletion: new Map(), pools: new Map(), customersByName: new Map(), customersByBankAccount: new Map(), whoBySource: new Map(), whoByAccount: new Map(), whoByPayer: new Map()
  }
  for (const inv of invoices) {
    if (inv.openBalance <= 0) continue
    for (let r = 0; r < 2; r++) {
      const ref = r === 0 ? inv.number : inv.poNumber
      if (ref === null || ref === '') continue
      const token = normaliseRef(ref)
      if (token === '') continue
      push(index.byRef, token, inv)
      // No de-duplication here: lookups de-duplicate, and these lists can be long.
      // Keyed by position too, so a lookup finds only true one-edit neighbours (no verification pass).
      if (token.length >= FUZZY_MIN) {
        for (let i = 0; i < token.length; i++) {
          const k = delKey(token, i, i)
          if (k >= 0) chainAdd(index.byDeletionNum, k, inv)
          else addOneOrMany(index.byDeletion, `${i}:${token.slice(0, i) + token.slice(i + 1)}`, inv)
        }
      }
    }
    const pool = poolOf(index, inv.customerId, inv.currency, true)!
    if (!pool.sorted.includes(inv)) pool.sorted.push(inv)
    push(pool.byAmount, inv.openBalance, inv)
  }
  for (const byCurrency of index.pools.values()) for (const pool of byCurrency.values()) pool.sorted.sort((a, b) => a.openBalance - b.openBalance || (a.dueOn < b.dueOn ? -1 : 1))
  for (const c of customers) {
    for (const name of [c.name, ...c.aliases]) {
      const key = normaliseName(name)
      if (key !== '') push(index.customersByName, key, c.id)
    }
    for (const account of c.bankAccounts) push(index.customersByBankAccount, account, c.id)
  }
  return index
}

function poolOf (index: MatchingIndex, customerId: string, currency: Currency, create = false): Pool | undefined {
  let byCurrency = index.pools.get(customerId)
  if (byCurrency === undefined) {
    if (!create) return undefined
    byCurrency = new Map()
    index.pools.set(customerId, byCurrency)
  }
  let pool = byCurrency.get(currency)
  if (pool === undefined && create) { pool = { sorted: [], byAmount: new Map() }; byCurrency.set(currency, pool) }
  return pool
}

const DAY_MS = 86_400_000
// Dates repeat across a batch (a few hundred distinct days): parse each once.
const dayCache = new Map<string, number>()
function dayOf (d: string): number {
  let v = dayCache.get(d)
  if (v === undefined) {
    if (dayCache.size > 20_000) dayCache.clear()
    v = Date.parse(`${d}T00:00:00Z`)
    dayCache.set(d, v)
  }
  return v
}

function allowedShort (open: number, config: MatchingConfig): number {
  return Math.min(config.toleranceCents, Math.floor((open * config.toleranceBasisPoints) / 10_000))
}

interface Identified { ids: Set<string>, how: Reason | null, hard: boolean }

const NOBODY: Identified = { ids: new Set(), how: null, hard: false }

/** Who the payment is from. Results are read-only and cached in the index per distinct source customer, bank account and payer text. */
function identifyCustomer (p: OutsidePaymentView, index: MatchingIndex, config: MatchingConfig): Identified {
  if (p.customerId !== null) {
    let who = index.whoBySource.get(p.customerId)
    if (who === undefined) { who = { ids: new Set([p.customerId]), how: { rule: 'customer', detail: 'customer named by the source' }, hard: true }; index.whoBySource.set(p.customerId, who) }
    return who
  }
  if (!config.rules.includes('customer')) return NOBODY
  if (p.bankAccount !== null) {
    let who = index.whoByAccount.get(p.bankAccount)
    if (who === undefined) {
      const ids = index.customersByBankAccount.get(p.bankAccount)
      who = ids !== undefined && ids.length > 0 ? { ids: new Set(ids), how: { rule: 'customer', detail: 'remembered bank account' }, hard: false } : NOBODY
      index.whoByAccount.set(p.bankAccount, who)
    }
    if (who !== NOBODY) return who
  }
  if (p.payer !== null) {
    let who = index.whoByPayer.get(p.payer)
    if (who === undefined) {
      const ids = index.customersByName.get(normaliseName(p.payer))
      who = ids !== undefined && ids.length > 0 ? { ids: new Set(ids), how: { rule: 'customer', detail: `payer name "${p.payer}"` }, hard: false } : NOBODY
      index.whoByPayer.set(p.payer, who)
    }
    return who
  }
  return NOBODY
}

type Fit = 'exact' | 'tolerance' | 'over' | 'partial'
type Settled = Pick<Candidate, 'applications' | 'writeOffs' | 'unapplied'> & { fit: Fit }

/** How the payment fits the invoices' total. No allocation: most candidates are scored and dropped. */
function fitOf (amount: number, invoices: readonly OpenInvoiceView[], config: MatchingConfig): Fit {
  let total = 0
  for (const inv of invoices) total += inv.openBalance
  if (total === amount) return 'exact'
  if (amount > total) return 'over'
  const short = total - amount
  return invoices.length > 0 && short <= allowedShort(total, config) && short <= invoices[invoices.length - 1]!.openBalance ? 'tolerance' : 'partial'
}

/**
 * Applies the payment over the invoices in order; on a tolerance fit the
 * shortfall is written off on the invoices left short. Arrays are made at
 * their exact size (count, then fill): a pushed-to array keeps room for 17,
 * and the caller keeps every returned candidate.
 */
function settle (amount: number, invoices: readonly OpenInvoiceView[], fit: Fit): Settled {
  let count = 0
  let remaining = amount
  let total = 0
  for (const inv of invoices) {
    const take = Math.min(inv.openBalance, remaining)
    if (take > 0) count++
    remaining -= take
    total += inv.openBalance
  }
  const applications = new Array<Application>(count)
  count = 0
  remaining = amount
  for (const inv of invoices) {
    const take = Math.min(inv.openBalance, remaining)
    if (take > 0) applications[count++] = { invoiceId: inv.id, amount: take }
    remaining -= take
  }
  if (fit !== 'tolerance') return { applications, writeOffs: [], unapplied: fit === 'over' ? amount - total : 0, fit }
  count = 0
  for (const inv of invoices) if (appliedTo(applications, inv.id) < inv.openBalance) count++
  const writeOffs = new Array<Application>(count)
  count = 0
  for (const inv of invoices) {
    const applied = appliedTo(applications, inv.id)
    if (applied < inv.openBalance) writeOffs[count++] = { invoiceId: inv.id, amount: inv.openBalance - applied }
  }
  return { applications, writeOffs, unapplied: 0, fit }
}

function appliedTo (applications: readonly Application[], invoiceId: string): number {
  for (const a of applications) if (a.invoiceId === invoiceId) return a.amount
  return 0
}

const BASE = {
  reference: { exact: 0.95, tolerance: 0.86, over: 0.6, partial: 0.55 },
  fuzzy_reference: { exact: 0.88, tolerance: 0.8, over: 0.5, partial: 0.45 },
  exact_amount: { exact: 0.84, tolerance: 0, over: 0, partial: 0 },
  tolerance: { exact: 0, tolerance: 0.6, over: 0, partial: 0 },
  subset_sum: { exact: 0.82, tolerance: 0.6, over: 0, partial: 0 }
} as const

type GeneratorRule = keyof typeof BASE

/** One payment being matched: what every rule and candidate needs, passed as one object rather than closures made per payment. */
interface Run {
  readonly p: OutsidePaymentView
  readonly who: Identified
  readonly tokens: readonly string[]
  readonly config: MatchingConfig
  /** config.rules has 'date_window' (looked up once per payment, not per candidate); then the day received, in ms. */
  readonly dateWindow: boolean
  readonly receivedMs: number
  /** Candidates by keyOf. `changes` counts writes, so ranking is redone only after a rule added or improved one. */
  readonly found: Map<string, Draft>
  changes: number
}

/**
 * A scored candidate whose reasons are not written yet. Reasons are text for
 * a person, and most candidates are dropped (a typo'd memo is one edit from
 * dozens of invoice numbers), so toCandidate writes them only for the few a
 * decision returns. Everything ranking and confident() need is here.
 */
interface Draft {
  rule: GeneratorRule
  /** In application order. */
  invoices: OpenInvoiceView[]
  /** The memo token that named the one invoice (reference rules), else null. */
  token: string | null
  settled: Settled
  /** who.ids has the invoices' customer (meaningful only when who.ids is not empty). */
  sameCustomer: boolean
  inWindow: boolean
  confidence: number
  key: string
  /** Ranking tie-break (applied invoice ids in order), made when first compared. */
  sortKey: string | null
}

function makeDraft (run: Run, rule: GeneratorRule, invoices: OpenInvoiceView[], token: string | null): Draft | null {
  const { p, who, config } = run
  const fit = fitOf(p.amount.amount, invoices, config)
  let confidence: number = BASE[rule][fit]
  if (confidence === 0) return null
  const first = invoices[0]!
  let sameCustomer = false
  if (who.ids.size > 0) {
    sameCustomer = who.ids.has(first.customerId)
    if (sameCustomer) confidence += who.ids.size === 1 ? 0.04 : 0.01
    else confidence -= 0.4 // The payer looks like someone else: keep as a suggestion, never apply.
  }
  let inWindow = false
  if (run.dateWindow) {
    inWindow = true
    // Written as !(≤) so an unparseable date (NaN) is outside the window.
    for (const inv of invoices) if (!(Math.abs(Math.round((run.receivedMs - dayOf(inv.dueOn)) / DAY_MS)) <= config.dateWindowDays)) { inWindow = false; break }
    if (inWindow) confidence += 0.01; else confidence -= 0.1
  }
  // Over-paid ('over' leaves money unapplied) or partial: never auto.
  if (fit === 'over' || fit === 'partial') confidence = Math.min(confidence, config.autoThreshold - 0.1)
  const settled = settle(p.amount.amount, invoices, fit)
  return { rule, invoices, token, settled, sameCustomer, inWindow, confidence: Math.max(0, Math.min(1, Math.round(confidence * 1000) / 1000)), key: keyOf(settled), sortKey: null }
}

/** The candidate as returned, with its reasons written. */
function toCandidate (run: Run, d: Draft): Candidate {
  const { p, who } = run
  const s = d.settled
  const first = d.invoices[0]!
  const fitReason: Reason | null = s.fit === 'exact'
    ? { rule: 'exact_amount', detail: ['amount ', p.amount.amount, ' equals open ', p.amount.amount].join('') }
    : s.fit === 'tolerance' ? { rule: 'tolerance', detail: `short by ${sumAmounts(s.writeOffs)} within tolerance` } : null
  const whoReason = who.ids.size === 0 ? null : d.sameCustomer ? who.how : OTHER_CUSTOMER
  const dateReason = run.dateWindow && d.inWindow ? dateWindowReason(run.config.dateWindowDays) : null
  // Exact size, for the same reason as in settle().
  const reasons = new Array<Reason>(1 + (fitReason !== null ? 1 : 0) + (whoReason !== null ? 1 : 0) + (dateReason !== null ? 1 : 0))
  let i = 0
  reasons[i++] = ruleReason(d)
  if (fitReason !== null) reasons[i++] = fitReason
  if (whoReason !== null) reasons[i++] = whoReason
  if (dateReason !== null) reasons[i++] = dateReason
  // Spelt out rather than spread (a spread between other properties copies them one by one at run time); fit is
  // not in Candidate but has always been in the object, so it stays.
  const candidate = { customerId: first.customerId, currency: first.currency, applications: s.applications, writeOffs: s.writeOffs, unapplied: s.unapplied, fit: s.fit, reasons, confidence: d.confidence }
  return candidate
}

// Reasons with fixed text are shared (frozen) rather than one object per candidate, as who.how already is.
const OTHER_CUSTOMER: Reason = Object.freeze({ rule: 'customer', detail: 'payer looks like a different customer' })
const dateWindowReasons = new Map<number, Reason>()
function dateWindowReason (days: number): Reason {
  let r = dateWindowReasons.get(days)
  if (r === undefined) { r = Object.freeze({ rule: 'date_window', detail: `within ${days} days of due` }); dateWindowReasons.set(days, r) }
  return r
}

function toCandidates (run: Run, drafts: readonly Draft[]): Candidate[] {
  const out = new Array<Candidate>(drafts.length)
  for (let i = 0; i < drafts.length; i++) out[i] = toCandidate(run, drafts[i]!)
  return out
}

/** What the generating rule saw. Balances are read as at matching time: nothing changes them until the decision is returned. */
function ruleReason (d: Draft): Reason {
  const { rule, invoices } = d
  const inv = invoices[0]!
  switch (rule) {
    case 'reference':
    case 'fuzzy_reference':
      if (d.token === null) return { rule, detail: `memo names invoices ${numbers(invoices)}` }
      return { rule, detail: ['memo token "', d.token, rule === 'reference' ? '" is invoice ' : '" is one edit from invoice ', inv.number, inv.poNumber !== null ? ' / PO ' + inv.poNumber : ''].join('') }
    case 'exact_amount': return { rule, detail: `open balance of ${inv.number} equals the payment` }
    case 'tolerance': return { rule, detail: `${inv.number} open ${inv.openBalance}` }
    case 'subset_sum': return { rule, detail: `${invoices.length} invoices ${numbers(invoices)} sum to the payment` }
  }
}

function numbers (invoices: readonly OpenInvoiceView[]): string {
  let out = ''
  for (let i = 0; i < invoices.length; i++) out += (i === 0 ? '' : ', ') + invoices[i]!.number
  return out
}

function sumAmounts (list: readonly Application[]): number {
  let s = 0
  for (const a of list) s += a.amount
  return s
}

/** Adds found invoices not among the exact hits of the token (lists are short: includes beats building a Set). */
function addFuzzy (hits: Map<OpenInvoiceView, string> | null, found: OneOrMany | undefined, exact: OpenInvoiceView[] | undefined, token: string): Map<OpenInvoiceView, string> | null {
  if (found === undefined) return hits
  if (!Array.isArray(found)) {
    if (exact === undefined || !exact.includes(found)) (hits ??= new Map()).set(found, token)
    return hits
  }
  for (const inv of found) if (exact === undefined || !exact.includes(inv)) (hits ??= new Map()).set(inv, token)
  return hits
}

/** Invoices the memo tokens point to, with the token; null when none (no map built for most payments). */
function referenceHits (tokens: readonly string[], index: MatchingIndex, fuzzy: boolean): Map<OpenInvoiceView, string> | null {
  let hits: Map<OpenInvoiceView, string> | null = null
  for (const token of tokens) {
    if (!fuzzy) {
      const list = index.byRef.get(token)
      if (list !== undefined) for (const inv of list) (hits ??= new Map()).set(inv, token)
      continue
    }
    if (token.length < FUZZY_MIN - 1) continue
    const exact = index.byRef.get(token)
    // Substitution: same position deleted on both sides gives the same key.
    if (token.length >= FUZZY_MIN) for (let i = 0; i < token.length; i++) hits = addDeletionHits(hits, index, token, i, i, exact, token)
    // A digit dropped in the memo: the token is a deletion of the reference.
    for (let i = 0; i <= token.length; i++) hits = addDeletionHits(hits, index, token, -1, i, exact, token)
    // A digit added in the memo: a deletion of the token is the reference.
    if (token.length > FUZZY_MIN) for (let i = 0; i < token.length; i++) hits = addFuzzy(hits, index.byRef.get(token.slice(0, i) + token.slice(i + 1)), exact, token)
  }
  return hits
}

function eligible (p: OutsidePaymentView, inv: OpenInvoiceView, who: Identified): boolean {
  return inv.currency === p.amount.currency && inv.openBalance > 0 && (!who.hard || who.ids.has(inv.customerId))
}

/** Dedupe key: the invoices applied and written off. Most candidates are one invoice: no arrays, sorts or joins for those. */
function keyOf (s: Settled): string {
  const a = s.applications
  const w = s.writeOffs
  if (a.length <= 1 && w.length <= 1) return (a.length === 1 ? a[0]!.invoiceId : '') + '|' + (w.length === 1 ? `${w[0]!.invoiceId}:${w[0]!.amount}` : '')
  return a.map(idOf).sort().join(',') + '|' + w.map(writeOffKey).sort().join(',')
}
const idOf = (a: Application): string => a.invoiceId
const writeOffKey = (a: Application): string => `${a.invoiceId}:${a.amount}`

/** Bounded subset-sum over one customer's invoices (sorted ascending), exact or within tolerance below. */
function subsets (target: number, pool: readonly OpenInvoiceView[], config: MatchingConfig): { found: OpenInvoiceView[][], exhausted: boolean } {
  const found: OpenInvoiceView[][] = []
  const items: OpenInvoiceView[] = []
  for (const inv of pool) if (inv.openBalance <= target + config.toleranceCents) items.push(inv)
  // Exact pairs and triples by hash lookup, exhaustively: the smallest exact subset wins when it is the only one of its size or smaller.
  const at = new Map<number, number[]>()
  for (let i = 0; i < items.length; i++) { const open = items[i]!.openBalance; const l = at.get(open); if (l === undefined) at.set(open, [i]); else l.push(i) }
  const LIMIT = 4
  for (let i = 0; i < items.length && found.length < LIMIT; i++) {
    const need = target - items[i]!.openBalance
    if (need < items[i]!.openBalance) break
    for (const j of at.get(need) ?? NO_INDICES) if (j > i) found.push([items[i]!, items[j]!])
  }
  if (found.length === 0 && config.maxSubsetSize >= 3) {
    outer: for (let i = 0; i < items.length; i++) {
      for (let j = i + 1; j < items.length; j++) {
        const need = target - items[i]!.openBalance - items[j]!.openBalance
        if (need < items[j]!.openBalance) break
        for (const k of at.get(need) ?? NO_INDICES) if (k > j) { found.push([items[i]!, items[j]!, items[k]!]); if (found.length >= LIMIT) break outer }
      }
    }
  }
  if (found.length > 0) return { found, exhausted: true }
  let nodes = 0
  let exhausted = true
  const chosen: OpenInvoiceView[] = []
  const walk = (start: number, sum: number): void => {
    if (found.length > 3) return
    for (let i = start; i < items.length; i++) {
      if (++nodes > config.subsetSearchCap) { exhausted = false; return }
      const inv = items[i]!
      const next = sum + inv.openBalance
      if (next - target > allowedShort(next, config)) return // sorted: every later one is larger
      chosen.push(inv)
      if (chosen.length >= 2 && next >= target) found.push([...chosen])
      else if (chosen.length < config.maxSubsetSize && next < target) walk(i + 1, next)
      chosen.pop()
      if (!exhausted) return
    }
  }
  walk(0, 0)
  return { found, exhausted }
}

const NO_INDICES: number[] = []

/** Keeps the better-scored of two candidates that apply the same money. */
function add (run: Run, d: Draft | null): void {
  if (d === null) return
  const prior = run.found.get(d.key)
  if (prior === undefined || prior.confidence < d.confidence) { run.found.set(d.key, d); run.changes++ }
}

const byDue = (a: OpenInvoiceView, b: OpenInvoiceView): number => (a.dueOn < b.dueOn ? -1 : a.dueOn > b.dueOn ? 1 : 0)

/** Candidates for the invoices the memo names, each with its token (from hits, else the one token). */
function addNamed (run: Run, rule: 'reference' | 'fuzzy_reference', invoices: Iterable<OpenInvoiceView>, hits: Map<OpenInvoiceView, string> | null, token: string): void {
  const { p, who, config } = run
  let named = 0
  for (const inv of invoices) {
    if (!eligible(p, inv, who)) continue
    named++
    add(run, makeDraft(run, rule, [inv], hits === null ? token : hits.get(inv)!))
  }
  if (named < 2) return
  // Several invoices of one customer named in the memo: one payment for all of them.
  const byCustomer = new Map<string, OpenInvoiceView[]>()
  for (const inv of hits === null ? invoices : hits.keys()) if (eligible(p, inv, who)) push(byCustomer, inv.customerId, inv)
  for (const list of byCustomer.values()) {
    if (list.length < 2 || list.length > config.maxSubsetSize) continue
    add(run, makeDraft(run, rule, [...list].sort(byDue), null))
  }
}

function generate (rule: GeneratorRule, run: Run, index: MatchingIndex): void {
  const { p, who, config } = run
  if (rule === 'reference' || rule === 'fuzzy_reference') {
    if (run.tokens.length === 0) return
    // One token looked up exactly (most memos): its list already holds each invoice once, in order, so no map of hits.
    if (rule === 'reference' && run.tokens.length === 1) {
      const list = index.byRef.get(run.tokens[0]!)
      if (list !== undefined) addNamed(run, rule, list, null, run.tokens[0]!)
      return
    }
    const hits = referenceHits(run.tokens, index, rule === 'fuzzy_reference')
    if (hits !== null) addNamed(run, rule, hits.keys(), hits, '')
    return
  }
  if (who.ids.size === 0) return // amount rules need a customer: never a tenant-wide guess on amount alone
  const amount = p.amount.amount
  for (const customerId of who.ids) {
    const pool = poolOf(index, customerId, p.amount.currency)
    if (pool === undefined) continue
    if (rule === 'exact_amount') {
      for (const inv of pool.byAmount.get(amount) ?? NO_INVOICES) add(run, makeDraft(run, 'exact_amount', [inv], null))
    } else if (rule === 'tolerance') {
      const sorted = pool.sorted
      // Binary search to the first open ≥ amount; scan while within tolerance.
      let lo = 0
      let hi = sorted.length
      while (lo < hi) { const mid = (lo + hi) >> 1; if (sorted[mid]!.openBalance < amount) lo = mid + 1; else hi = mid }
      for (let i = lo; i < sorted.length && sorted[i]!.openBalance - amount <= config.toleranceCents; i++) {
        const inv = sorted[i]!
        if (inv.openBalance === amount) continue
        add(run, makeDraft(run, 'tolerance', [inv], null))
      }
    } else if (rule === 'subset_sum') {
      const { found, exhausted } = subsets(amount, pool.sorted, config)
      for (const set of found) {
        const d = makeDraft(run, 'subset_sum', [...set].sort(byDue), null)
        // An inconclusive search cannot claim the subset is the only one.
        if (d !== null && !exhausted) d.confidence = Math.min(d.confidence, config.autoThreshold - 0.05)
        add(run, d)
      }
    }
  }
}

const NO_INVOICES: OpenInvoiceView[] = []

/** Best first; ties by fewer invoices, then by applied invoice ids. */
function byRank (a: Draft, b: Draft): number {
  return b.confidence - a.confidence || a.settled.applications.length - b.settled.applications.length || (sortKeyOf(a) < sortKeyOf(b) ? -1 : 1)
}
function sortKeyOf (d: Draft): string {
  const a = d.settled.applications
  return d.sortKey ??= a.length === 1 ? a[0]!.invoiceId : a.map(idOf).join(',')
}

/** The memo names an invoice (only the reference rules produce that reason). */
const named = (d: Draft): boolean => d.rule === 'reference' || d.rule === 'fuzzy_reference'

function confident (ranked: readonly Draft[], config: MatchingConfig): boolean {
  const top = ranked[0]
  const second = ranked[1]
  if (top === undefined || top.confidence < config.autoThreshold || top.settled.unapplied !== 0) return false
  if (second !== undefined && top.confidence - second.confidence < config.autoMargin) return false
  // The memo names another invoice than the one the amount points to: a person decides.
  return named(top) || !ranked.some(named)
}

function singleExactFit (found: Map<string, Draft>, config: MatchingConfig): boolean {
  for (const d of found.values()) {
    const s = d.settled
    if (s.applications.length === 1 && s.writeOffs.length === 0 && s.unapplied === 0 && d.confidence >= config.autoThreshold) return true
  }
  return false
}

/** Matches one payment. Rules run in the configured order; the first point at which one candidate is clearly confident wins. */
export function matchPayment (p: OutsidePaymentView, index: MatchingIndex, config: MatchingConfig = DEFAULT_MATCHING_CONFIG): Decision {
  const dateWindow = config.rules.includes('date_window')
  const run: Run = {
    p, who: identifyCustomer(p, index, config), tokens: memoTokens(p.memo), config, dateWindow, receivedMs: dateWindow ? dayOf(p.receivedOn) : 0, found: new Map(), changes: 0
  }
  let ranked: Draft[] = []
  let rankedAt = 0
  for (const rule of config.rules) {
    if (!GENERATORS.has(rule)) continue
    // Multi-invoice search only when no single invoice already fits exactly.
    if (rule === 'subset_sum' && singleExactFit(run.found, config)) continue
    generate(rule as GeneratorRule, run, index)
    // Same candidates, same ranking and the same (not confident) verdict as last time.
    if (run.changes === rankedAt) continue
    rankedAt = run.changes
    ranked = [...run.found.values()].sort(byRank)
    if (confident(ranked, config)) {
      return { kind: 'auto', candidate: toCandidate(run, ranked[0]!), suggestions: toCandidates(run, ranked.slice(1, config.maxSuggestions)) }
    }
  }
  const suggestions = toCandidates(run, ranked.slice(0, config.maxSuggestions))
  return suggestions.length === 0 ? { kind: 'unmatched', suggestions } : { kind: 'ambiguous', suggestions }
}

/**
 * Matches a batch. Invoices auto-applied earlier in the batch have their open
 * balance reduced in the index before later payments are matched, so the same
 * open balance is never claimed twice within one run.
 */
export function matchBatch (payments: readonly OutsidePaymentView[], invoices: readonly OpenInvoiceView[], customers: readonly CustomerView[], config: MatchingConfig = DEFAULT_MATCHING_CONFIG): Array<{ paymentId: string, decision: Decision }> {
  const live = invoices.map(i => ({ ...i }))
  const byId = new Map<string, OpenInvoiceView>()
  for (const inv of live) byId.set(inv.id, inv) // a loop: no [id, invoice] pair per invoice
  const index = buildMatchingIndex(live, customers)
  const out: Array<{ paymentId: string, decision: Decision }> = []
  for (const p of payments) {
    const decision = matchPayment(p, index, config)
    out.push({ paymentId: p.id, decision })
    if (decision.kind === 'auto') {
      for (const a of decision.candidate.applications) reduceOpen(index, byId.get(a.invoiceId)!, a.amount)
      for (const a of decision.candidate.writeOffs) reduceOpen(index, byId.get(a.invoiceId)!, a.amount)
    }
  }
  return out
}

/** Lowers an indexed invoice's open balance in place, moving it between the amount-keyed entries. */
export function reduceOpen (index: MatchingIndex, inv: OpenInvoiceView, amount: number): void {
  const pool = poolOf(index, inv.customerId, inv.currency)
  const same = pool?.byAmount.get(inv.openBalance)
  if (same !== undefined) { const i = same.indexOf(inv); if (i >= 0) same.splice(i, 1); if (same.length === 0) pool!.byAmount.delete(inv.openBalance) }
  if (pool !== undefined) { const i = pool.sorted.indexOf(inv); if (i >= 0) pool.sorted.splice(i, 1) }
  ;(inv as { openBalance: number }).openBalance -= amount
  if (inv.openBalance <= 0) return // reference maps keep it; eligible() skips closed invoices
  if (pool !== undefined) {
    push(pool.byAmount, inv.openBalance, inv)
    // First position not below the new balance (a loop, not findIndex: no closure per application).
    let at = 0
    while (at < pool.sorted.length && !(pool.sorted[at]!.openBalance >= inv.openBalance)) at++
    pool.sorted.splice(at, 0, inv)
  }
}
