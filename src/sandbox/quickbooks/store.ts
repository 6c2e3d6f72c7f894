import { randomBytes } from 'node:crypto'
import { matches, parseQuery, QuerySyntaxError, sortBy } from './query.js'
import { prng } from '../random.js'
import { validateQueryFields } from './validate.js'
import { LOST_ANSWER_DEFAULTS, type LostAnswerFaults } from '../faults.js'

/** Entities the stand-in knows, in QBO's casing (URL paths are lower-case). */
export const ENTITIES = ['Account', 'Customer', 'Invoice', 'CreditMemo', 'Payment', 'Deposit', 'PaymentMethod', 'Item', 'JournalEntry'] as const
export type EntityName = typeof ENTITIES[number]
export type Obj = Record<string, any>

export interface SeedCustomer { displayName: string }
export interface SeedInvoice { docNumber: string, customerName: string, total: number, balance: number, txnDate: string, dueDate: string }
/** A credit memo (cents, positive as QBO keeps it); `remaining` below `total` when part of the credit was applied. */
export interface SeedCreditMemo { docNumber: string, customerName: string, total: number, remaining?: number, txnDate: string }
/** A payment applied in QBO at seed time (amount in cents), received into Undeposited Funds. */
export interface SeedPayment { docNumber: string, amount: number, txnDate: string, paymentMethod?: string, paymentRefNum?: string }

export interface QuickBooksStoreOptions {
  seed?: number
  realmId?: string
  customers?: SeedCustomer[]
  invoices?: SeedInvoice[]
  creditMemos?: SeedCreditMemo[]
  payments?: SeedPayment[]
  clientId?: string
  clientSecret?: string
  /** Access-token lifetime, seconds (QBO: 3600). */
  accessTokenTtlS?: number
  /** How long a rotated-out refresh token still works, seconds. */
  refreshGraceS?: number
  now?: () => number
  /** A fixed refresh token that always works (it never retires), so a demo survives restarts of this in-memory store. */
  demoRefreshToken?: string
  rateLimit?: { perSecond: number, perMinute: number } | false
  /** Batch requests per realm in any minute (QBO: 40); false turns it off. */
  batchLimitPerMinute?: number | false
}

export interface QuickBooksFaults extends LostAnswerFaults {
  latencyMs: number
  /** The next N API requests get 429 ThrottleExceeded. */
  burst429: number
  /** The next N API requests get 503. */
  burst5xx: number
  /** Share of API requests (0..1) answered 503, drawn from the fault switch's seeded generator. */
  errorRate: number
  /** Validation faults answer HTTP 200 with the Fault body (QBO does this for some answers). */
  faultsAs200: boolean
}

export interface TokenPair { token_type: 'bearer', access_token: string, refresh_token: string, expires_in: number, x_refresh_token_expires_in: number, realmId: string }

/** A QBO fault ready to send: HTTP status and the `Fault` object. */
export class QboFault extends Error {
  constructor (readonly status: number, readonly code: string, message: string, readonly detail: string, readonly element = '', readonly type = 'ValidationFault') { super(message) }
  wire (): Obj { return { Error: [{ Message: this.message, Detail: this.detail, code: this.code, element: this.element }], type: this.type } }
}
const businessFault = (detail: string, element = ''): QboFault => new QboFault(400, '6000', 'A business validation error has occurred while processing your request', `Business Validation Error: ${detail}`, element)
const notFound = (entity: string, id: string): QboFault => new QboFault(400, '610', 'Object Not Found', `Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees. (${entity} ${id})`)
const badRef = (what: string, id: unknown): QboFault => new QboFault(400, '2500', 'Invalid Reference Id', `Invalid Reference Id : ${what} assigned to this transaction has been deleted. Before you can modify this transaction, you must restore ${what} ${String(id)}`)
const required = (field: string): QboFault => new QboFault(400, '2020', 'Required param missing, need to supply the required value for the API', `Required parameter ${field} is missing in the request`, field)

export const cents = (x: unknown): number => Math.round(Number(x ?? 0) * 100)
const dec = (c: number): number => c / 100

/** QBO sandbox companies run on Pacific time; DST is ignored here. */
export function qboTime (ms: number, millis = false): string {
  const s = new Date(ms - 8 * 3600_000).toISOString()
  return (millis ? s.replace('Z', '') : s.replace(/\.\d{3}Z$/, '')) + '-08:00'
}

interface Realm {
  id: string
  entities: Map<EntityName, Map<string, Obj>>
  tombstones: Array<{ entity: EntityName, obj: Obj, ms: number }>
  nextId: number
  replies: Map<string, { status: number, body: Obj }>
  /** Payment Id → Deposit Id. */
  depositedIn: Map<string, string>
  hits: number[]
  batchHits: number[]
}

interface AccessToken { realm: string, expiresMs: number, family: string }
interface RefreshToken { realm: string, family: string, expiresMs: number, retiredMs?: number, permanent?: boolean }

export interface QuickBooksStore {
  readonly realmId: string
  readonly clientId: string
  readonly clientSecret: string
  faults: QuickBooksFaults
  now: () => number
  realm: (realmId: string) => Realm | undefined
  /** Mints a token pair without the browser step (tests, the demo). */
  issueTokens: (realmId?: string) => TokenPair
  authorizationCode: (realmId: string, redirectUri: string) => string
  exchangeCode: (code: string, redirectUri: string) => TokenPair
  refresh: (refreshToken: string) => TokenPair
  revoke: (token: string) => void
  /** Whether an access token opens this realm; 'expired' / 'unknown' otherwise. */
  checkAccess: (accessToken: string, realmId: string) => 'ok' | 'expired' | 'unknown'
  /** Rate limiting per realm; true when the request may run. */
  admit: (realmId: string) => boolean
  /** The batch throttle per realm: null when a batch may run, else the seconds until one may. */
  admitBatch: (realmId: string) => number | null
  read: (realmId: string, entity: EntityName, id: string) => Obj
  /** create or update (body has Id) or delete, as QBO does it; throws QboFault. */
  write: (realmId: string, entity: EntityName, operation: 'create' | 'update' | 'delete', body: Obj) => Obj
  /** Void a Payment (`?operation=update&include=void`) or an Invoice (`?operation=void`): amounts go to zero, the record stays. */
  voidTxn: (realmId: string, entity: EntityName, body: Obj) => Obj
  query: (realmId: string, statement: string) => Obj
  cdc: (realmId: string, entities: string[], sinceMs: number) => Obj
  /** Replay memory for `requestid`. */
  replay: (realmId: string, requestId: string) => { status: number, body: Obj } | undefined
  remember: (realmId: string, requestId: string, reply: { status: number, body: Obj }) => void
  /** All entities of a kind (copies), for tests and the tie-out. */
  all: (realmId: string, entity: EntityName) => Obj[]
  find: (realmId: string, entity: EntityName, pred: (o: Obj) => boolean) => Obj | undefined
}

export function entityName (s: string): EntityName | undefined {
  return ENTITIES.find(e => e.toLowerCase() === s.toLowerCase())
}

const clone = <T>(x: T): T => structuredClone(x)

export function createQuickBooksStore (options: QuickBooksStoreOptions = {}): QuickBooksStore {
  const realmId = options.realmId ?? '9341453050298761'
  const now = options.now ?? Date.now
  const rand = prng(options.seed ?? 1)
  const accessTtl = options.accessTokenTtlS ?? 3600
  const graceMs = (options.refreshGraceS ?? 3600) * 1000
  const limit = options.rateLimit === undefined ? { perSecond: 10, perMinute: 500 } : options.rateLimit
  const batchLimit = options.batchLimitPerMinute ?? 40
  const realms = new Map<string, Realm>()
  const access = new Map<string, AccessToken>()
  const refreshTokens = new Map<string, RefreshToken>()
  const codes = new Map<string, { realm: string, redirectUri: string, expiresMs: number }>()
  const token = (prefix: string): string => `${prefix}${randomBytes(24).toString('base64url')}`

  function table (r: Realm, e: EntityName): Map<string, Obj> {
    let m = r.entities.get(e)
    if (m === undefined) { m = new Map(); r.entities.set(e, m) }
    return m
  }
  function meta (o: Obj, created: boolean): void {
    const t = qboTime(now())
    o.MetaData = created ? { CreateTime: t, LastUpdatedTime: t } : { ...o.MetaData, LastUpdatedTime: t }
  }
  function insert (r: Realm, e: EntityName, o: Obj): Obj {
    const obj = { Id: String(r.nextId++), SyncToken: '0', domain: 'QBO', sparse: false, ...o }
    meta(obj, true)
    table(r, e).set(obj.Id, obj)
    return obj
  }
  function touch (o: Obj): void { o.SyncToken = String(Number(o.SyncToken) + 1); meta(o, false) }
  function get (r: Realm, e: EntityName, id: unknown, asRef = false): Obj {
    const o = table(r, e).get(String(id))
    if (o === undefined) throw asRef ? badRef(e, id) : notFound(e, String(id))
    return o
  }
  const ref = (o: Obj, name = o.DisplayName ?? o.Name): Obj => ({ value: o.Id, name })

  function seedRealm (id: string): Realm {
    const r: Realm = { id, entities: new Map(), tombstones: [], nextId: 1, replies: new Map(), depositedIn: new Map(), hits: [], batchHits: [] }
    const acct = (Name: string, AccountType: string, AccountSubType: string, Classification: string): Obj =>
      insert(r, 'Account', { Name, FullyQualifiedName: Name, Active: true, SubAccount: false, AccountType, AccountSubType, Classification, CurrentBalance: 0, CurrentBalanceWithSubAccounts: 0, CurrencyRef: { value: 'USD', name: 'United States Dollar' } })
    acct('Operating Checking', 'Bank', 'Checking', 'Asset')
    acct('Undeposited Funds', 'Other Current Asset', 'UndepositedFunds', 'Asset')
    acct('Accounts Receivable (A/R)', 'Accounts Receivable', 'AccountsReceivable', 'Asset')
    const sales = acct('Sales', 'Income', 'SalesOfProductIncome', 'Revenue')
    acct('Services', 'Income', 'ServiceFeeIncome', 'Revenue')
    acct('Merchant Fees', 'Expense', 'BankCharges', 'Expense')
    acct('Bad Debt', 'Expense', 'BadDebts', 'Expense')
    for (const [Name, Type] of [['Visa', 'CREDIT_CARD'], ['MasterCard', 'CREDIT_CARD'], ['American Express', 'CREDIT_CARD'], ['ACH', 'NON_CREDIT_CARD'], ['Check', 'NON_CREDIT_CARD']] as const) {
      insert(r, 'PaymentMethod', { Name, Active: true, Type })
    }
    const services = insert(r, 'Item', { Name: 'Services', FullyQualifiedName: 'Services', Active: true, Type: 'Service', IncomeAccountRef: ref(sales), UnitPrice: 0, Taxable: false })
    insert(r, 'Item', { Name: 'Card surcharge', FullyQualifiedName: 'Card surcharge', Description: 'Card processing surcharge', Active: true, Type: 'Service', IncomeAccountRef: ref(sales), UnitPrice: 0, Taxable: false })
    const byName = new Map<string, Obj>()
    const names = [...(options.customers ?? []).map(c => c.displayName), ...(options.invoices ?? []).map(i => i.customerName), ...(options.creditMemos ?? []).map(m => m.customerName)]
    for (const n of names) {
      if (byName.has(n)) continue
      byName.set(n, insert(r, 'Customer', { DisplayName: n, CompanyName: n, FullyQualifiedName: n, PrintOnCheckName: n, Active: true, Job: false, BillWithParent: false, Balance: 0, BalanceWithJobs: 0, Taxable: false, CurrencyRef: { value: 'USD', name: 'United States Dollar' }, PreferredDeliveryMethod: 'Email', PrimaryEmailAddr: { Address: `ap@${n.toLowerCase().replace(/[^a-z0-9]+/g, '')}.example` } }))
    }
    for (const s of options.invoices ?? []) {
      const c = byName.get(s.customerName) as Obj
      insert(r, 'Invoice', invoiceBody(s.docNumber, c, services, s.total, s.balance, s.txnDate, s.dueDate, Math.floor(rand() * 1e6)))
    }
    for (const m of options.creditMemos ?? []) {
      const c = byName.get(m.customerName) as Obj
      insert(r, 'CreditMemo', creditMemoBody(m.docNumber, c, services, m.total, m.remaining ?? m.total, m.txnDate))
    }
    for (const c of byName.values()) recomputeCustomer(r, c.Id, false)
    return r
  }

  /** QBO keeps a credit memo's amounts positive; RemainingCredit (and Balance) is what is left to apply. */
  function creditMemoBody (DocNumber: string, c: Obj, item: Obj, total: number, remaining: number, TxnDate: string): Obj {
    return {
      DocNumber, TxnDate, CustomerRef: ref(c), CurrencyRef: { value: 'USD', name: 'United States Dollar' },
      Line: [
        { Id: '1', LineNum: 1, Description: 'Credit', Amount: dec(total), DetailType: 'SalesItemLineDetail', SalesItemLineDetail: { ItemRef: ref(item), Qty: 1, UnitPrice: dec(total), TaxCodeRef: { value: 'NON' } } },
        { Amount: dec(total), DetailType: 'SubTotalLineDetail', SubTotalLineDetail: {} }
      ],
      TotalAmt: dec(total), Balance: dec(remaining), RemainingCredit: dec(remaining), PrintStatus: 'NotSet', EmailStatus: 'NotSet', ApplyTaxAfterDiscount: false
    }
  }

  function invoiceBody (DocNumber: string, c: Obj, item: Obj, total: number, balance: number, TxnDate: string, DueDate: string, _noise: number): Obj {
    return {
      DocNumber, TxnDate, DueDate, CustomerRef: ref(c), CurrencyRef: { value: 'USD', name: 'United States Dollar' },
      Line: [
        { Id: '1', LineNum: 1, Description: 'Managed services', Amount: dec(total), DetailType: 'SalesItemLineDetail', SalesItemLineDetail: { ItemRef: ref(item), Qty: 1, UnitPrice: dec(total), TaxCodeRef: { value: 'NON' } } },
        { Amount: dec(total), DetailType: 'SubTotalLineDetail', SubTotalLineDetail: {} }
      ],
      TotalAmt: dec(total), Balance: dec(balance), LinkedTxn: [], PrintStatus: 'NotSet', EmailStatus: 'EmailSent', ApplyTaxAfterDiscount: false, SalesTermRef: { value: '3', name: 'Net 30' }
    }
  }

  function realmOf (id: string): Realm {
    const r = realms.get(id)
    if (r === undefined) throw new QboFault(403, '3100', 'message=AuthorizationFailed; errorCode=003100; statusCode=403', `company ${id} is not known`, '', 'SERVICE')
    return r
  }

  /** Customer.Balance: open invoices, less credit memos' remaining credit and unapplied payment credit, plus A/R journal lines. */
  function recomputeCustomer (r: Realm, customerId: string, bump = true): void {
    const c = table(r, 'Customer').get(customerId)
    if (c === undefined) return
    let bal = 0
    for (const i of table(r, 'Invoice').values()) if (i.CustomerRef?.value === customerId) bal += cents(i.Balance)
    for (const m of table(r, 'CreditMemo').values()) if (m.CustomerRef?.value === customerId) bal -= cents(m.RemainingCredit)
    for (const p of table(r, 'Payment').values()) if (p.CustomerRef?.value === customerId) bal -= cents(p.UnappliedAmt)
    const ar = [...table(r, 'Account').values()].find(a => a.AccountType === 'Accounts Receivable')
    for (const je of table(r, 'JournalEntry').values()) {
      for (const l of je.Line ?? []) {
        const d = l.JournalEntryLineDetail
        if (d?.AccountRef?.value === ar?.Id && d?.Entity?.EntityRef?.value === customerId) bal += d.PostingType === 'Debit' ? cents(l.Amount) : -cents(l.Amount)
      }
    }
    if (cents(c.Balance) !== bal) { c.Balance = dec(bal); c.BalanceWithJobs = dec(bal); if (bump) touch(c) }
  }

  function customerOf (r: Realm, body: Obj): Obj {
    if (body.CustomerRef?.value === undefined) throw required('CustomerRef')
    return get(r, 'Customer', body.CustomerRef.value, true)
  }

  // Payments: lines link invoices; applying lowers invoice balances.
  function paymentApplications (p: Obj): Array<{ invoiceId: string, amount: number }> {
    const out: Array<{ invoiceId: string, amount: number }> = []
    for (const l of p.Line ?? []) {
      for (const lt of l.LinkedTxn ?? []) {
        if (lt.TxnType === 'Invoice') out.push({ invoiceId: String(lt.TxnId), amount: cents(l.Amount) })
        // Refused loudly rather than left unapplied: QBO would apply these, the stand-in does not model it.
        else throw new QboFault(400, '500', 'Unsupported Operation', `Applying a payment to a ${String(lt.TxnType)} is not modelled by the stand-in; only Invoice links are`, 'Line.LinkedTxn.TxnType')
      }
    }
    return out
  }
  function unapplyPayment (r: Realm, p: Obj): void {
    for (const a of paymentApplications(p)) {
      const inv = table(r, 'Invoice').get(a.invoiceId)
      if (inv === undefined) continue
      inv.Balance = dec(cents(inv.Balance) + a.amount)
      inv.LinkedTxn = (inv.LinkedTxn ?? []).filter((t: Obj) => !(t.TxnType === 'Payment' && t.TxnId === p.Id))
      touch(inv)
    }
  }
  function applyPayment (r: Realm, p: Obj, customer: Obj): void {
    const apps = paymentApplications(p)
    const total = cents(p.TotalAmt)
    if (p.TotalAmt === undefined) throw required('TotalAmt')
    if (total < 0) throw businessFault('Payment amount cannot be negative.', 'TotalAmt')
    const per = new Map<string, number>()
    for (const a of apps) {
      if (a.amount <= 0) throw businessFault('Applied amount must be greater than zero.', 'Line.Amount')
      const inv = get(r, 'Invoice', a.invoiceId, true)
      if (inv.CustomerRef.value !== customer.Id) throw new QboFault(400, '620', 'Transaction ID cannot be linked', `Invoice ${a.invoiceId} belongs to another customer and cannot be linked to this payment`, 'LinkedTxn')
      per.set(a.invoiceId, (per.get(a.invoiceId) ?? 0) + a.amount)
    }
    for (const [id, amt] of per) {
      const inv = get(r, 'Invoice', id)
      if (amt > cents(inv.Balance)) throw businessFault(`The payment amount applied to invoice ${String(inv.DocNumber ?? id)} (${dec(amt).toFixed(2)}) is more than its open balance (${Number(inv.Balance).toFixed(2)}).`, 'Line.Amount')
    }
    const applied = apps.reduce((s, a) => s + a.amount, 0)
    if (applied > total) throw businessFault(`The amount applied to transactions (${dec(applied).toFixed(2)}) is more than the payment amount (${dec(total).toFixed(2)}).`, 'TotalAmt')
    for (const [id, amt] of per) {
      const inv = get(r, 'Invoice', id)
      inv.Balance = dec(cents(inv.Balance) - amt)
      inv.LinkedTxn = [...(inv.LinkedTxn ?? []), { TxnId: p.Id, TxnType: 'Payment' }]
      touch(inv)
    }
    p.UnappliedAmt = dec(total - applied)
    p.CustomerRef = ref(customer)
    for (const l of p.Line ?? []) for (const lt of l.LinkedTxn ?? []) if (lt.TxnType === 'Invoice') { lt.TxnId = String(lt.TxnId); l.LineEx ??= { any: [] } }
  }
  function undepositedFunds (r: Realm): Obj {
    return [...table(r, 'Account').values()].find(a => a.AccountSubType === 'UndepositedFunds') as Obj
  }

  function checkDeposit (r: Realm, d: Obj, selfId?: string): void {
    if (d.DepositToAccountRef?.value === undefined) throw required('DepositToAccountRef')
    const bank = get(r, 'Account', d.DepositToAccountRef.value, true)
    if (bank.AccountType !== 'Bank') throw businessFault('Deposits must go to a bank account.', 'DepositToAccountRef')
    d.DepositToAccountRef = ref(bank, bank.Name)
    let total = 0
    const seen = new Set<string>()
    for (const l of d.Line ?? []) {
      if (l.Amount === undefined) throw required('Line.Amount')
      const amt = cents(l.Amount)
      const links = (l.LinkedTxn ?? []) as Obj[]
      if (links.length > 0) {
        for (const lt of links) {
          if (lt.TxnType !== 'Payment') throw businessFault(`Only payments can be linked to a deposit here, not ${String(lt.TxnType)}.`, 'LinkedTxn')
          const p = get(r, 'Payment', lt.TxnId, true)
          if (p.DepositToAccountRef?.value !== undepositedFunds(r).Id) throw businessFault(`Payment ${String(p.Id)} was not received into Undeposited Funds.`, 'LinkedTxn')
          const already = r.depositedIn.get(String(p.Id))
          if ((already !== undefined && already !== selfId) || seen.has(String(p.Id))) throw businessFault(`Payment ${String(p.Id)} has already been deposited.`, 'LinkedTxn')
          if (amt !== cents(p.TotalAmt)) throw businessFault(`The deposit line for payment ${String(p.Id)} (${dec(amt).toFixed(2)}) must equal the payment amount (${Number(p.TotalAmt).toFixed(2)}).`, 'Line.Amount')
          seen.add(String(p.Id))
          lt.TxnId = String(lt.TxnId)
          lt.TxnLineId ??= '0'
        }
      } else {
        const acc = l.DepositLineDetail?.AccountRef?.value
        if (acc === undefined) throw required('DepositLineDetail.AccountRef')
        const a = get(r, 'Account', acc, true)
        l.DepositLineDetail.AccountRef = ref(a, a.Name)
        l.DetailType = 'DepositLineDetail'
      }
      total += amt
    }
    if (total < 0) throw businessFault('A deposit cannot total less than zero.', 'TotalAmt')
    d.TotalAmt = dec(total)
    d.CurrencyRef ??= { value: 'USD', name: 'United States Dollar' }
  }
  function depositLinks (d: Obj): string[] {
    return (d.Line ?? []).flatMap((l: Obj) => (l.LinkedTxn ?? []).filter((t: Obj) => t.TxnType === 'Payment').map((t: Obj) => String(t.TxnId)))
  }

  function checkJournal (r: Realm, je: Obj): string[] {
    const ar = [...table(r, 'Account').values()].find(a => a.AccountType === 'Accounts Receivable')
    let debit = 0
    let credit = 0
    const customers: string[] = []
    if (!Array.isArray(je.Line) || je.Line.length === 0) throw required('Line')
    je.Line.forEach((l: Obj, i: number) => {
      const d = l.JournalEntryLineDetail
      if (d === undefined) throw required('JournalEntryLineDetail')
      if (d.PostingType !== 'Debit' && d.PostingType !== 'Credit') throw new QboFault(400, '2170', 'Invalid Enumeration', `Invalid Enumeration : ${String(d.PostingType)}`, 'PostingType')
      const a = get(r, 'Account', d.AccountRef?.value, true)
      d.AccountRef = ref(a, a.Name)
      const amt = cents(l.Amount)
      if (amt < 0) throw businessFault('Journal entry line amounts cannot be negative.', 'Line.Amount')
      if (d.PostingType === 'Debit') debit += amt
      else credit += amt
      if (a.Id === ar?.Id) {
        if (d.Entity?.EntityRef?.value === undefined) throw businessFault('When you use Accounts Receivable, you must choose a customer in the Name field.', 'Entity')
        const c = get(r, 'Customer', d.Entity.EntityRef.value, true)
        d.Entity = { Type: 'Customer', EntityRef: ref(c) }
        customers.push(c.Id)
      }
      l.Id ??= String(i)
      l.DetailType = 'JournalEntryLineDetail'
    })
    if (debit !== credit) throw businessFault(`Journal entries must balance: debits ${dec(debit).toFixed(2)}, credits ${dec(credit).toFixed(2)}.`, 'Line')
    je.TotalAmt = dec(debit)
    return customers
  }

  function customersTouchedBy (entity: EntityName, o: Obj | undefined): string[] {
    if (o === undefined) return []
    if (entity === 'JournalEntry') return (o.Line ?? []).map((l: Obj) => l.JournalEntryLineDetail?.Entity?.EntityRef?.value).filter((x: unknown) => x !== undefined)
    return o.CustomerRef?.value !== undefined ? [o.CustomerRef.value] : []
  }

  /** Undoes an existing transaction's effects (for update/delete); entity-specific. */
  function undo (r: Realm, entity: EntityName, old: Obj): void {
    if (entity === 'Payment') unapplyPayment(r, old)
    if (entity === 'Deposit') for (const pid of depositLinks(old)) r.depositedIn.delete(pid)
  }
  function apply (r: Realm, entity: EntityName, o: Obj): void {
    switch (entity) {
      case 'Payment': {
        const c = customerOf(r, o)
        o.DepositToAccountRef ??= { value: undepositedFunds(r).Id }
        const dep = get(r, 'Account', o.DepositToAccountRef.value, true)
        o.DepositToAccountRef = ref(dep, dep.Name)
        if (o.PaymentMethodRef?.value !== undefined) { const m = get(r, 'PaymentMethod', o.PaymentMethodRef.value, true); o.PaymentMethodRef = ref(m, m.Name) }
        o.TxnDate ??= qboTime(now()).slice(0, 10)
        o.CurrencyRef ??= { value: 'USD', name: 'United States Dollar' }
        o.ProcessPayment ??= false
        applyPayment(r, o, c)
        break
      }
      case 'Deposit':
        o.TxnDate ??= qboTime(now()).slice(0, 10)
        checkDeposit(r, o, o.Id)
        for (const pid of depositLinks(o)) r.depositedIn.set(pid, o.Id ?? '?')
        break
      case 'JournalEntry':
        o.TxnDate ??= qboTime(now()).slice(0, 10)
        checkJournal(r, o)
        break
      case 'Invoice': {
        const c = customerOf(r, o)
        o.CustomerRef = ref(c)
        let total = 0
        for (const l of o.Line ?? []) if (l.DetailType !== 'SubTotalLineDetail') total += cents(l.Amount)
        const paid = (o.LinkedTxn ?? []).length > 0 && o.TotalAmt !== undefined ? cents(o.TotalAmt) - cents(o.Balance) : 0
        o.TotalAmt = dec(total)
        o.Balance = dec(total - paid)
        o.LinkedTxn ??= []
        o.TxnDate ??= qboTime(now()).slice(0, 10)
        break
      }
      case 'CreditMemo': {
        // Applying a credit memo through a Payment line is not modelled: its credit stays whole, less what was applied before an edit.
        const c = customerOf(r, o)
        o.CustomerRef = ref(c)
        let total = 0
        for (const l of o.Line ?? []) if (l.DetailType !== 'SubTotalLineDetail') total += cents(l.Amount)
        if (total <= 0) throw businessFault('A credit memo must total more than zero.', 'Line.Amount')
        const applied = o.TotalAmt !== undefined && o.RemainingCredit !== undefined ? cents(o.TotalAmt) - cents(o.RemainingCredit) : 0
        o.TotalAmt = dec(total)
        o.RemainingCredit = dec(Math.max(0, total - applied))
        o.Balance = o.RemainingCredit
        o.TxnDate ??= qboTime(now()).slice(0, 10)
        break
      }
      case 'Customer':
        if (o.DisplayName === undefined) throw required('DisplayName')
        for (const c of table(r, 'Customer').values()) if (c.Id !== o.Id && String(c.DisplayName).toLowerCase() === String(o.DisplayName).toLowerCase()) throw new QboFault(400, '6240', 'Duplicate Name Exists Error', `The name supplied already exists. : Id=${String(c.Id)}`)
        o.Balance ??= 0
        o.Active ??= true
        break
      default:
        if (o.Name === undefined) throw required('Name')
        o.Active ??= true
    }
  }

  const READ_ONLY = ['Balance', 'BalanceWithJobs', 'UnappliedAmt', 'RemainingCredit', 'TotalAmt', 'MetaData', 'domain']

  function write (realmId: string, entity: EntityName, operation: 'create' | 'update' | 'delete', body: Obj): Obj {
    const r = realmOf(realmId)
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new QboFault(400, '2020', 'Request has invalid or unsupported property', 'The request body must be a JSON object')
    if (operation === 'create' && body.Id !== undefined && body.SyncToken !== undefined) operation = 'update'
    // Each write works on copies; nothing changes unless every check passes.
    const snapshot = snapshotOf(r)
    try {
      if (operation === 'create') {
        const o: Obj = clone(body)
        delete o.Id; delete o.SyncToken; delete o.sparse
        for (const k of READ_ONLY) if (entity !== 'Invoice' && entity !== 'Deposit' && entity !== 'JournalEntry') { if (k !== 'TotalAmt' || entity !== 'Payment') delete o[k] }
        delete o.MetaData
        if (entity === 'Invoice') { delete o.Balance; delete o.LinkedTxn }
        const id = String(r.nextId)
        o.Id = id
        apply(r, entity, o)
        delete o.Id
        const created = insert(r, entity, o)
        if (entity === 'Deposit') for (const pid of depositLinks(created)) r.depositedIn.set(pid, created.Id)
        for (const c of new Set(customersTouchedBy(entity, created))) recomputeCustomer(r, c)
        return clone(created)
      }
      if (body.Id === undefined) throw required('Id')
      if (body.SyncToken === undefined) throw required('SyncToken')
      const current = get(r, entity, body.Id)
      if (String(body.SyncToken) !== current.SyncToken) {
        throw new QboFault(400, '5010', 'Stale Object Error', `Stale Object Error : You and ${'Settle Sandbox'} were working on this at the same time. ${'Settle Sandbox'} finished before you did, so your work was not saved.`)
      }
      const before = customersTouchedBy(entity, current)
      if (operation === 'delete') {
        if (entity === 'Payment' && r.depositedIn.has(current.Id)) throw businessFault('This payment has been deposited. Remove it from the deposit before deleting it.')
        if (!['Invoice', 'CreditMemo', 'Payment', 'Deposit', 'JournalEntry'].includes(entity)) throw new QboFault(400, '500', 'Unsupported Operation', `Operation delete is not supported for ${entity}; make it inactive instead`)
        if (entity === 'Invoice' && (current.LinkedTxn ?? []).some((t: Obj) => t.TxnType === 'Payment')) throw businessFault('This invoice has payments applied. Delete or unlink them first.')
        undo(r, entity, current)
        table(r, entity).delete(current.Id)
        const ms = now()
        const tomb = { domain: 'QBO', status: 'Deleted', Id: current.Id, MetaData: { LastUpdatedTime: qboTime(ms) } }
        r.tombstones.push({ entity, obj: tomb, ms })
        for (const c of new Set(before)) recomputeCustomer(r, c)
        return clone(tomb)
      }
      const next: Obj = body.sparse === true ? { ...clone(current), ...clone(body) } : { ...clone(body), Id: current.Id, domain: current.domain }
      for (const k of READ_ONLY) if (k in current && !(entity === 'Payment' && k === 'TotalAmt') && !(entity === 'Invoice' && k === 'TotalAmt')) next[k] = current[k]
      if (entity === 'Invoice') { next.LinkedTxn = current.LinkedTxn; next.Balance = current.Balance; next.TotalAmt = current.TotalAmt }
      undo(r, entity, current)
      apply(r, entity, next)
      next.SyncToken = current.SyncToken
      next.sparse = false
      next.MetaData = current.MetaData
      touch(next)
      if (entity === 'Invoice') {
        // An edited total moves the open balance by the same amount.
        const paid = cents(current.TotalAmt) - cents(current.Balance)
        next.Balance = dec(cents(next.TotalAmt) - paid)
        if (cents(next.Balance) < 0) throw businessFault('The invoice total cannot be less than the payments applied to it.', 'TotalAmt')
      }
      table(r, entity).set(current.Id, next)
      for (const c of new Set([...before, ...customersTouchedBy(entity, next)])) recomputeCustomer(r, c)
      return clone(next)
    } catch (err) {
      restore(r, snapshot)
      throw err
    }
  }

  function voidTxn (realmId: string, entity: EntityName, body: Obj): Obj {
    const r = realmOf(realmId)
    if (entity !== 'Payment' && entity !== 'Invoice') throw new QboFault(400, '500', 'Unsupported Operation', `Operation void is not supported for ${entity}`)
    if (body?.Id === undefined) throw required('Id')
    const current = get(r, entity, body.Id)
    if (String(body.SyncToken) !== current.SyncToken) throw new QboFault(400, '5010', 'Stale Object Error', 'Stale Object Error : You and Settle Sandbox were working on this at the same time. Settle Sandbox finished before you did, so your work was not saved.')
    if (entity === 'Payment' && r.depositedIn.has(current.Id)) throw businessFault('This payment has been deposited. Remove it from the deposit before voiding it.')
    if (entity === 'Invoice' && (current.LinkedTxn ?? []).some((t: Obj) => t.TxnType === 'Payment')) throw businessFault('This invoice has payments applied. Delete or unlink them first.')
    const snapshot = snapshotOf(r)
    try {
      const o = get(r, entity, current.Id)
      if (entity === 'Payment') { unapplyPayment(r, o); o.UnappliedAmt = 0 } else o.Balance = 0
      o.TotalAmt = 0
      for (const l of o.Line ?? []) l.Amount = 0
      o.PrivateNote = 'Voided'
      touch(o)
      for (const c of new Set(customersTouchedBy(entity, o))) recomputeCustomer(r, c)
      return clone(o)
    } catch (err) { restore(r, snapshot); throw err }
  }

  function snapshotOf (r: Realm): Obj {
    return { entities: clone(r.entities), tombstones: [...r.tombstones], nextId: r.nextId, depositedIn: new Map(r.depositedIn) }
  }
  function restore (r: Realm, s: Obj): void {
    r.entities = s.entities; r.tombstones = s.tombstones; r.nextId = s.nextId; r.depositedIn = s.depositedIn
  }

  function query (realmId: string, statement: string): Obj {
    const r = realmOf(realmId)
    let q
    try { q = parseQuery(statement) } catch (err) {
      if (err instanceof QuerySyntaxError) throw new QboFault(400, '4000', 'Error parsing query', `QueryParserError: ${err.message}`)
      throw err
    }
    const entity = entityName(q.entity)
    if (entity === undefined) throw new QboFault(400, '4001', 'Invalid query', `QueryValidationError: Invalid entity name : ${q.entity}`)
    validateQueryFields(entity, q)
    const rows = sortBy([...table(r, entity).values()].filter(o => q.where.every(c => matches(o, c))), q.orderBy)
    if (q.count) return { totalCount: rows.length }
    const page = rows.slice(q.startPosition - 1, q.startPosition - 1 + q.maxResults)
    // QBO leaves the entity key (and the paging fields) out when nothing matched.
    return page.length === 0 ? {} : { [entity]: clone(page), startPosition: q.startPosition, maxResults: page.length }
  }

  function cdc (realmId: string, entities: string[], sinceMs: number): Obj {
    const r = realmOf(realmId)
    const out: Obj[] = []
    for (const name of entities) {
      const entity = entityName(name)
      if (entity === undefined) throw new QboFault(400, '4001', 'Invalid query', `QueryValidationError: Invalid entity name : ${name}`)
      const changed = [...table(r, entity).values()].filter(o => Date.parse(o.MetaData.LastUpdatedTime) >= sinceMs).map(clone)
      const gone = r.tombstones.filter(t => t.entity === entity && t.ms >= sinceMs).map(t => clone(t.obj))
      const all = [...changed, ...gone]
      out.push(all.length === 0 ? {} : { [entity]: all, startPosition: 1, maxResults: all.length })
    }
    return { CDCResponse: [{ QueryResponse: out }] }
  }

  function tokenPair (realm: string, family: string): TokenPair {
    const a = token('eyJsandbox.')
    const rt = token('RT1-sandbox-')
    access.set(a, { realm, expiresMs: now() + accessTtl * 1000, family })
    refreshTokens.set(rt, { realm, family, expiresMs: now() + 100 * 86_400_000 })
    return { token_type: 'bearer', access_token: a, refresh_token: rt, expires_in: accessTtl, x_refresh_token_expires_in: 100 * 86_400, realmId: realm }
  }
  const invalidGrant = (): Error => Object.assign(new Error('invalid_grant'), { oauthError: 'invalid_grant' })

  const store: QuickBooksStore = {
    realmId,
    clientId: options.clientId ?? 'ABsandboxClientIdSettleDemo0000000000000000000000',
    clientSecret: options.clientSecret ?? 'sandboxClientSecretSettleDemo000000000000',
    faults: { latencyMs: 0, burst429: 0, burst5xx: 0, errorRate: 0, faultsAs200: false, ...LOST_ANSWER_DEFAULTS },
    now,
    realm: id => realms.get(id),
    issueTokens: (id = realmId) => { realmOf(id); return tokenPair(id, token('fam')) },
    authorizationCode (id, redirectUri) {
      realmOf(id)
      const code = token('AB11')
      codes.set(code, { realm: id, redirectUri, expiresMs: now() + 5 * 60_000 })
      return code
    },
    exchangeCode (code, redirectUri) {
      const c = codes.get(code)
      codes.delete(code)
      if (c === undefined || c.expiresMs < now() || c.redirectUri !== redirectUri) throw invalidGrant()
      return tokenPair(c.realm, token('fam'))
    },
    refresh (rt) {
      const t = refreshTokens.get(rt)
      if (t === undefined || t.expiresMs < now() || (t.retiredMs !== undefined && t.retiredMs + graceMs < now())) throw invalidGrant()
      // Rotation: a new refresh token each time; the old one keeps working for the grace period.
      if (t.permanent !== true) t.retiredMs ??= now()
      return tokenPair(t.realm, t.family)
    },
    revoke (tok) {
      const fam = refreshTokens.get(tok)?.family ?? access.get(tok)?.family
      if (fam === undefined) return
      for (const [k, v] of refreshTokens) if (v.family === fam) refreshTokens.delete(k)
      for (const [k, v] of access) if (v.family === fam) access.delete(k)
    },
    checkAccess (tok, id) {
      const a = access.get(tok)
      if (a === undefined || a.realm !== id) return 'unknown'
      return a.expiresMs <= now() ? 'expired' : 'ok'
    },
    admit (id) {
      if (limit === false) return true
      const r = realms.get(id)
      if (r === undefined) return true
      const t = now()
      r.hits = r.hits.filter(h => h > t - 60_000)
      const lastSecond = r.hits.filter(h => h > t - 1000).length
      if (lastSecond >= limit.perSecond || r.hits.length >= limit.perMinute) return false
      r.hits.push(t)
      return true
    },
    admitBatch (id) {
      if (batchLimit === false) return null
      const r = realms.get(id)
      if (r === undefined) return null
      const t = now()
      r.batchHits = r.batchHits.filter(h => h > t - 60_000)
      if (r.batchHits.length >= batchLimit) return Math.max(1, Math.ceil(((r.batchHits[0] as number) + 60_000 - t) / 1000))
      r.batchHits.push(t)
      return null
    },
    read: (id, entity, objId) => clone(get(realmOf(id), entity, objId)),
    write,
    voidTxn,
    query,
    cdc,
    replay: (id, rid) => realms.get(id)?.replies.get(rid),
    remember: (id, rid, reply) => { realms.get(id)?.replies.set(rid, clone(reply)) },
    all: (id, entity) => [...table(realmOf(id), entity).values()].map(clone),
    find: (id, entity, pred) => { const o = [...table(realmOf(id), entity).values()].find(pred); return o === undefined ? undefined : clone(o) }
  }
  realms.set(realmId, seedRealm(realmId))
  if (options.demoRefreshToken !== undefined) refreshTokens.set(options.demoRefreshToken, { realm: realmId, family: 'demo', expiresMs: Number.MAX_SAFE_INTEGER, permanent: true })
  for (const p of options.payments ?? []) {
    const inv = store.find(realmId, 'Invoice', i => i.DocNumber === p.docNumber)
    if (inv === undefined) throw new Error(`seed payment: no invoice ${p.docNumber}`)
    const method = p.paymentMethod === undefined ? undefined : store.find(realmId, 'PaymentMethod', m => m.Name === p.paymentMethod)
    write(realmId, 'Payment', 'create', {
      CustomerRef: { value: inv.CustomerRef.value }, TotalAmt: p.amount / 100, TxnDate: p.txnDate,
      ...(method === undefined ? {} : { PaymentMethodRef: { value: method.Id } }),
      ...(p.paymentRefNum === undefined ? {} : { PaymentRefNum: p.paymentRefNum }),
      Line: [{ Amount: p.amount / 100, LinkedTxn: [{ TxnId: inv.Id, TxnType: 'Invoice' }] }]
    })
  }
  return store
}
