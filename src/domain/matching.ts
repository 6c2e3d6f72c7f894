import type { Currency, Money } from './money.js'

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

export interface MatchingIndex {
  readonly byRef: Map<string, OpenInvoiceView[]>
  readonly byDeletion: Map<string, OpenInvoiceView[]>
  /** customer|currency → invoices sorted by open balance ascending */
  readonly byCustomer: Map<string, OpenInvoiceView[]>
  readonly byCustomerAmount: Map<string, OpenInvoiceView[]>
  readonly customersByName: Map<string, string[]>
  readonly customersByBankAccount: Map<string, string[]>
  /** Normalised references of each invoice. */
  readonly refsOf: Map<OpenInvoiceView, string[]>
}

const SUFFIXES = new Set(['inc', 'llc', 'ltd', 'limited', 'corp', 'corporation', 'co', 'company', 'the', 'plc', 'pllc', 'lp', 'llp'])

/** "The Harbor Dental, Inc." → "harbor dental" */
export function normaliseName (name: string): string {
  return name.toLowerCase().replace(/&/g, ' and ').replace(/[^a-z0-9]+/g, ' ').trim().split(' ').filter(w => w !== '' && !SUFFIXES.has(w)).join(' ')
}

/** "INV-001042" / "#1042" / "inv1042" → "1042"-style token: prefixes and separators dropped, case folded. */
export function normaliseRef (ref: string): string {
  return ref.toLowerCase().replace(/^(?:inv(?:oice)?|po|no|nr|ref)\b/, '').replace(/^(?:inv(?:oice)?|po|no|nr|ref)(?=\d)/, '').replace(/[^a-z0-9]/g, '').replace(/^0+(?=\d)/, '')
}

/** Tokens of a memo that could be invoice or PO references. */
export function memoTokens (memo: string | null): string[] {
  if (memo === null) return []
  const out = new Set<string>()
  // Join prefixes to their number ("INV 1042", "PO# 77-A") before splitting.
  const text = memo.toLowerCase().replace(/\b(inv(?:oice)?|po|no|nr|ref)[\s.#:-]*(?=[a-z]?\d)/g, '$1')
  for (const raw of text.split(/[\s,;/()]+/)) {
    const token = normaliseRef(raw)
    if (token.length >= 2 && /\d/.test(token)) out.add(token)
  }
  return [...out]
}

function deletions (token: string): string[] {
  const out: string[] = []
  for (let i = 0; i < token.length; i++) out.push(token.slice(0, i) + token.slice(i + 1))
  return out
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
    byRef: new Map(), byDeletion: new Map(), byCustomer: new Map(), byCustomerAmount: new Map(), customersByName: new Map(), customersByBankAccount: new Map(), refsOf: new Map()
  }
  for (const inv of invoices) {
    if (inv.openBalance <= 0) continue
    for (const ref of [inv.number, inv.poNumber]) {
      if (ref === null || ref === '') continue
      const token = normaliseRef(ref)
      if (token === '') continue
      push(index.byRef, token, inv)
      ;(index.refsOf.get(inv) ?? index.refsOf.set(inv, []).get(inv)!).push(token)
      // No de-duplication here: lookups de-duplicate, and these lists can be long.
      // Keyed by position too, so a lookup finds only true one-edit neighbours (no verification pass).
      if (token.length >= FUZZY_MIN) deletions(token).forEach((d, i) => { const k = `${i}:${d}`; const l = index.byDeletion.get(k); if (l === undefined) index.byDeletion.set(k, [inv]); else l.push(inv) })
    }
    push(index.byCustomer, `${inv.customerId}|${inv.currency}`, inv)
    push(index.byCustomerAmount, `${inv.customerId}|${inv.currency}|${inv.openBalance}`, inv)
  }
  for (const list of index.byCustomer.values()) list.sort((a, b) => a.openBalance - b.openBalance || (a.dueOn < b.dueOn ? -1 : 1))
  for (const c of customers) {
    for (const name of [c.name, ...c.aliases]) {
      const key = normaliseName(name)
      if (key !== '') push(index.customersByName, key, c.id)
    }
    for (const account of c.bankAccounts) push(index.customersByBankAccount, account, c.id)
  }
  return index
}

const DAY_MS = 86_400_000
const dayDiff = (a: string, b: string): number => Math.round((Date.parse(`${a}T00:00:00Z`) - Date.parse(`${b}T00:00:00Z`)) / DAY_MS)

function allowedShort (open: number, config: MatchingConfig): number {
  return Math.min(config.toleranceCents, Math.floor((open * config.toleranceBasisPoints) / 10_000))
}

interface Identified { ids: Set<string>, how: Reason | null, hard: boolean }

function identifyCustomer (p: OutsidePaymentView, index: MatchingIndex, config: MatchingConfig): Identified {
  if (p.customerId !== null) return { ids: new Set([p.customerId]), how: { rule: 'customer', detail: 'customer named by the source' }, hard: true }
  if (!config.rules.includes('customer')) return { ids: new Set(), how: null, hard: false }
  if (p.bankAccount !== null) {
    const ids = index.customersByBankAccount.get(p.bankAccount)
    if (ids !== undefined && ids.length > 0) return { ids: new Set(ids), how: { rule: 'customer', detail: 'remembered bank account' }, hard: false }
  }
  if (p.payer !== null) {
    const ids = index.customersByName.get(normaliseName(p.payer))
    if (ids !== undefined && ids.length > 0) return { ids: new Set(ids), how: { rule: 'customer', detail: `payer name "${p.payer}"` }, hard: false }
  }
  return { ids: new Set(), how: null, hard: false }
}

/** Applies the payment over the invoices in order; a shortfall within tolerance is written off on the last. */
function settle (amount: number, invoices: readonly OpenInvoiceView[], config: MatchingConfig): Pick<Candidate, 'applications' | 'writeOffs' | 'unapplied'> & { fit: 'exact' | 'tolerance' | 'over' | 'partial' } {
  const total = invoices.reduce((s, i) => s + i.openBalance, 0)
  const applications: Application[] = []
  let remaining = amount
  for (const inv of invoices) {
    const take = Math.min(inv.openBalance, remaining)
    if (take > 0) applications.push({ invoiceId: inv.id, amount: take })
    remaining -= take
  }
  if (total === amount) return { applications, writeOffs: [], unapplied: 0, fit: 'exact' }
  if (amount > total) return { applications, writeOffs: [], unapplied: amount - total, fit: 'over' }
  const short = total - amount
  const last = invoices[invoices.length - 1]!
  if (invoices.length > 0 && short <= allowedShort(total, config) && short <= last.openBalance) {
    // Written off on the invoices left short, last first.
    const writeOffs: Application[] = []
    for (const inv of invoices) {
      const applied = applications.find(a => a.invoiceId === inv.id)?.amount ?? 0
      if (applied < inv.openBalance) writeOffs.push({ invoiceId: inv.id, amount: inv.openBalance - applied })
    }
    return { applications, writeOffs, unapplied: 0, fit: 'tolerance' }
  }
  return { applications, writeOffs: [], unapplied: 0, fit: 'partial' }
}

const BASE = {
  reference: { exact: 0.95, tolerance: 0.86, over: 0.6, partial: 0.55 },
  fuzzy_reference: { exact: 0.88, tolerance: 0.8, over: 0.5, partial: 0.45 },
  exact_amount: { exact: 0.84, tolerance: 0, over: 0, partial: 0 },
  tolerance: { exact: 0, tolerance: 0.6, over: 0, partial: 0 },
  subset_sum: { exact: 0.82, tolerance: 0.6, over: 0, partial: 0 }
} as const

function makeCandidate (p: OutsidePaymentView, rule: keyof typeof BASE, invoices: OpenInvoiceView[], reasons: Reason[], who: Identified, config: MatchingConfig): Candidate | null {
  const first = invoices[0]!
  const s = settle(p.amount.amount, invoices, config)
  let confidence: number = BASE[rule][s.fit]
  if (confidence === 0) return null
  const all = [...reasons]
  if (s.fit === 'exact') all.push({ rule: 'exact_amount', detail: `amount ${p.amount.amount} equals open ${p.amount.amount}` })
  if (s.fit === 'tolerance') all.push({ rule: 'tolerance', detail: `short by ${s.writeOffs.reduce((a, w) => a + w.amount, 0)} within tolerance` })
  if (who.ids.size > 0) {
    if (who.ids.has(first.customerId)) {
      confidence += who.ids.size === 1 ? 0.04 : 0.01
      if (who.how !== null) all.push(who.how)
    } else {
      // The payer looks like someone else: keep as a suggestion, never apply.
      confidence -= 0.4
      all.push({ rule: 'customer', detail: 'payer looks like a different customer' })
    }
  }
  if (config.rules.includes('date_window')) {
    const inWindow = invoices.every(i => Math.abs(dayDiff(p.receivedOn, i.dueOn)) <= config.dateWindowDays)
    if (inWindow) { confidence += 0.01; all.push({ rule: 'date_window', detail: `within ${config.dateWindowDays} days of due` }) } else confidence -= 0.1
  }
  if (s.unapplied > 0 || s.fit === 'partial') confidence = Math.min(confidence, config.autoThreshold - 0.1)
  return { customerId: first.customerId, currency: first.currency, ...s, reasons: all, confidence: Math.max(0, Math.min(1, Math.round(confidence * 1000) / 1000)) }
}

function referenceHits (p: OutsidePaymentView, index: MatchingIndex, fuzzy: boolean): Map<OpenInvoiceView, string> {
  const hits = new Map<OpenInvoiceView, string>()
  for (const token of memoTokens(p.memo)) {
    if (!fuzzy) {
      for (const inv of index.byRef.get(token) ?? []) hits.set(inv, token)
      continue
    }
    if (token.length < FUZZY_MIN - 1) continue
    const exact = new Set(index.byRef.get(token) ?? [])
    const hit = (inv: OpenInvoiceView): void => { if (!exact.has(inv)) hits.set(inv, token) }
    const dels = deletions(token)
    // Substitution: same position deleted on both sides gives the same key.
    if (token.length >= FUZZY_MIN) dels.forEach((d, i) => { for (const inv of index.byDeletion.get(`${i}:${d}`) ?? []) hit(inv) })
    // A digit dropped in the memo: the token is a deletion of the reference.
    for (let i = 0; i <= token.length; i++) for (const inv of index.byDeletion.get(`${i}:${token}`) ?? []) hit(inv)
    // A digit added in the memo: a deletion of the token is the reference.
    if (token.length > FUZZY_MIN) for (const d of dels) for (const inv of index.byRef.get(d) ?? []) hit(inv)
  }
  return hits
}

function eligible (p: OutsidePaymentView, inv: OpenInvoiceView, who: Identified): boolean {
  return inv.currency === p.amount.currency && inv.openBalance > 0 && (!who.hard || who.ids.has(inv.customerId))
}

function keyOf (c: Candidate): string {
  return c.applications.map(a => a.invoiceId).sort().join(',') + '|' + c.writeOffs.map(a => `${a.invoiceId}:${a.amount}`).sort().join(',')
}

/** Bounded subset-sum over one customer's invoices (sorted ascending), exact or within tolerance below. */
function subsets (target: number, pool: readonly OpenInvoiceView[], config: MatchingConfig): { found: OpenInvoiceView[][], exhausted: boolean } {
  const found: OpenInvoiceView[][] = []
  const items = pool.filter(i => i.openBalance <= target + config.toleranceCents)
  // Exact pairs and triples by hash lookup, exhaustively: the smallest exact subset wins when it is the only one of its size or smaller.
  const at = new Map<number, number[]>()
  items.forEach((inv, i) => { const l = at.get(inv.openBalance); if (l === undefined) at.set(inv.openBalance, [i]); else l.push(i) })
  const LIMIT = 4
  for (let i = 0; i < items.length && found.length < LIMIT; i++) {
    const need = target - items[i]!.openBalance
    if (need < items[i]!.openBalance) break
    for (const j of at.get(need) ?? []) if (j > i) found.push([items[i]!, items[j]!])
  }
  if (found.length === 0 && config.maxSubsetSize >= 3) {
    outer: for (let i = 0; i < items.length; i++) {
      for (let j = i + 1; j < items.length; j++) {
        const need = target - items[i]!.openBalance - items[j]!.openBalance
        if (need < items[j]!.openBalance) break
        for (const k of at.get(need) ?? []) if (k > j) { found.push([items[i]!, items[j]!, items[k]!]); if (found.length >= LIMIT) break outer }
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

function generate (rule: RuleName, p: OutsidePaymentView, index: MatchingIndex, who: Identified, config: MatchingConfig, out: Map<string, Candidate>): void {
  const add = (c: Candidate | null): void => {
    if (c === null) return
    const k = keyOf(c)
    const prior = out.get(k)
    if (prior === undefined || prior.confidence < c.confidence) out.set(k, c)
  }
  const cur = p.amount.currency
  if (rule === 'reference' || rule === 'fuzzy_reference') {
    const hits = referenceHits(p, index, rule === 'fuzzy_reference')
    const byCustomer = new Map<string, OpenInvoiceView[]>()
    for (const [inv, token] of hits) {
      if (!eligible(p, inv, who)) continue
      push(byCustomer, inv.customerId, inv)
      add(makeCandidate(p, rule, [inv], [{ rule, detail: `memo token "${token}" ${rule === 'reference' ? 'is' : 'is one edit from'} invoice ${inv.number}${inv.poNumber !== null ? ` / PO ${inv.poNumber}` : ''}` }], who, config))
    }
    // Several invoices of one customer named in the memo: one payment for all of them.
    for (const list of byCustomer.values()) {
      if (list.length < 2 || list.length > config.maxSubsetSize) continue
      const sorted = [...list].sort((a, b) => (a.dueOn < b.dueOn ? -1 : a.dueOn > b.dueOn ? 1 : 0))
      add(makeCandidate(p, rule, sorted, [{ rule, detail: `memo names invoices ${sorted.map(i => i.number).join(', ')}` }], who, config))
    }
    return
  }
  if (who.ids.size === 0) return // amount rules need a customer: never a tenant-wide guess on amount alone
  for (const customerId of who.ids) {
    if (rule === 'exact_amount') {
      for (const inv of index.byCustomerAmount.get(`${customerId}|${cur}|${p.amount.amount}`) ?? []) {
        add(makeCandidate(p, 'exact_amount', [inv], [{ rule: 'exact_amount', detail: `open balance of ${inv.number} equals the payment` }], who, config))
      }
    } else if (rule === 'tolerance') {
      const pool = index.byCustomer.get(`${customerId}|${cur}`) ?? []
      // Binary search to the first open ≥ amount; scan while within tolerance.
      let lo = 0
      let hi = pool.length
      while (lo < hi) { const mid = (lo + hi) >> 1; if (pool[mid]!.openBalance < p.amount.amount) lo = mid + 1; else hi = mid }
      for (let i = lo; i < pool.length && pool[i]!.openBalance - p.amount.amount <= config.toleranceCents; i++) {
        const inv = pool[i]!
        if (inv.openBalance === p.amount.amount) continue
        add(makeCandidate(p, 'tolerance', [inv], [{ rule: 'tolerance', detail: `${inv.number} open ${inv.openBalance}` }], who, config))
      }
    } else if (rule === 'subset_sum') {
      const pool = index.byCustomer.get(`${customerId}|${cur}`) ?? []
      const { found, exhausted } = subsets(p.amount.amount, pool, config)
      for (const set of found) {
        const ordered = [...set].sort((a, b) => (a.dueOn < b.dueOn ? -1 : a.dueOn > b.dueOn ? 1 : 0))
        const c = makeCandidate(p, 'subset_sum', ordered, [{ rule: 'subset_sum', detail: `${ordered.length} invoices ${ordered.map(i => i.number).join(', ')} sum to the payment` }], who, config)
        // An inconclusive search cannot claim the subset is the only one.
        if (c !== null && !exhausted) c.confidence = Math.min(c.confidence, config.autoThreshold - 0.05)
        add(c)
      }
    }
  }
}

function rank (candidates: Iterable<Candidate>): Candidate[] {
  return [...candidates].sort((a, b) => b.confidence - a.confidence || a.applications.length - b.applications.length || (keyOfSort(a) < keyOfSort(b) ? -1 : 1))
}
const keyOfSort = (c: Candidate): string => c.applications.map(a => a.invoiceId).join(',')

function confident (ranked: Candidate[], config: MatchingConfig): boolean {
  const [top, second] = ranked
  if (top === undefined || top.confidence < config.autoThreshold || top.unapplied !== 0) return false
  if (second !== undefined && top.confidence - second.confidence < config.autoMargin) return false
  // The memo names another invoice than the one the amount points to: a person decides.
  const named = (c: Candidate): boolean => c.reasons.some(r => r.rule === 'reference' || r.rule === 'fuzzy_reference')
  return named(top) || !ranked.some(named)
}

/** Matches one payment. Rules run in the configured order; the first point at which one candidate is clearly confident wins. */
export function matchPayment (p: OutsidePaymentView, index: MatchingIndex, config: MatchingConfig = DEFAULT_MATCHING_CONFIG): Decision {
  const who = identifyCustomer(p, index, config)
  const found = new Map<string, Candidate>()
  let ranked: Candidate[] = []
  for (const rule of config.rules) {
    if (!GENERATORS.has(rule)) continue
    // Multi-invoice search only when no single invoice already fits exactly.
    if (rule === 'subset_sum' && [...found.values()].some(c => c.applications.length === 1 && c.writeOffs.length === 0 && c.unapplied === 0 && c.confidence >= config.autoThreshold)) continue
    generate(rule, p, index, who, config, found)
    ranked = rank(found.values())
    if (confident(ranked, config)) {
      return { kind: 'auto', candidate: ranked[0]!, suggestions: ranked.slice(1, config.maxSuggestions) }
    }
  }
  const suggestions = ranked.slice(0, config.maxSuggestions)
  return suggestions.length === 0 ? { kind: 'unmatched', suggestions } : { kind: 'ambiguous', suggestions }
}

/**
 * Matches a batch. Invoices auto-applied earlier in the batch have their open
 * balance reduced in the index before later payments are matched, so the same
 * open balance is never claimed twice within one run.
 */
export function matchBatch (payments: readonly OutsidePaymentView[], invoices: readonly OpenInvoiceView[], customers: readonly CustomerView[], config: MatchingConfig = DEFAULT_MATCHING_CONFIG): Array<{ paymentId: string, decision: Decision }> {
  const live = invoices.map(i => ({ ...i }))
  const byId = new Map(live.map(i => [i.id, i]))
  const index = buildMatchingIndex(live, customers)
  const out: Array<{ paymentId: string, decision: Decision }> = []
  for (const p of payments) {
    const decision = matchPayment(p, index, config)
    out.push({ paymentId: p.id, decision })
    if (decision.kind === 'auto') {
      for (const a of [...decision.candidate.applications, ...decision.candidate.writeOffs]) reduceOpen(index, byId.get(a.invoiceId)!, a.amount)
    }
  }
  return out
}

/** Lowers an indexed invoice's open balance in place, moving it between the amount-keyed entries. */
export function reduceOpen (index: MatchingIndex, inv: OpenInvoiceView, amount: number): void {
  const amountKey = `${inv.customerId}|${inv.currency}|${inv.openBalance}`
  const same = index.byCustomerAmount.get(amountKey)
  if (same !== undefined) { const i = same.indexOf(inv); if (i >= 0) same.splice(i, 1); if (same.length === 0) index.byCustomerAmount.delete(amountKey) }
  const pool = index.byCustomer.get(`${inv.customerId}|${inv.currency}`)
  if (pool !== undefined) { const i = pool.indexOf(inv); if (i >= 0) pool.splice(i, 1) }
  ;(inv as { openBalance: number }).openBalance -= amount
  if (inv.openBalance <= 0) return // reference maps keep it; eligible() skips closed invoices
  push(index.byCustomerAmount, `${inv.customerId}|${inv.currency}|${inv.openBalance}`, inv)
  if (pool !== undefined) {
    let at = pool.findIndex(x => x.openBalance >= inv.openBalance)
    if (at < 0) at = pool.length
    pool.splice(at, 0, inv)
  }
}
