import type {
  AccountingAccount, AccountingChanges, AccountingCreditMemo, AccountingCustomer, AccountingDeposit, AccountingDepositLine, AccountingEntity,
  AccountingInvoice, AccountingItem, AccountingPayment, AccountingPaymentMethod, AccountingPort, AccountingWrite,
  DepositPosting, JournalPosting, PaymentPosting
} from '../../src/ports/accounting.js'
import { money, type Currency, type Money } from '../../src/domain/money.js'

export type FakeAccountingMethod =
  | 'listAccounts' | 'listPaymentMethods' | 'listItems' | 'findCustomers' | 'listCustomers' | 'findInvoices'
  | 'listOpenInvoices' | 'listOpenCreditMemos' | 'findCreditMemos' | 'getPayment' | 'getDeposit' | 'createPayment' | 'updatePayment' | 'createDeposit'
  | 'createJournalEntry' | 'batch' | 'changedSince'

/**
 * Decides one call's fate: return an Error to fail it before anything is
 * written, 'after-write' to write and then throw (the answer lost on the way
 * back, as a timeout after QBO committed), or undefined to let it through.
 */
export type FakeAccountingFailure = (method: FakeAccountingMethod, input: unknown) => Error | 'after-write' | undefined

export interface FakeJournalEntry { id: string, posting: JournalPosting, syncToken: string }

/**
 * An in-memory QuickBooks company behind the AccountingPort, so posting and
 * tie-out tests need no network. It keeps invoice balances as QBO does:
 * a payment's applications reduce them, the rest of the payment is unapplied
 * customer credit, and an update of a payment re-opens what it no longer
 * covers. A write with a `requestId` seen before returns the first write
 * (replayed: true) and changes nothing, like QBO's `requestid` parameter.
 * Every call counts one (a batch counts one, whatever its size).
 */
export class FakeAccounting implements AccountingPort {
  readonly system = 'quickbooks' as const
  readonly realmId: string
  readonly accounts = new Map<string, AccountingAccount>()
  readonly paymentMethods = new Map<string, AccountingPaymentMethod>()
  readonly items = new Map<string, AccountingItem>()
  readonly customers = new Map<string, AccountingCustomer>()
  readonly invoices = new Map<string, AccountingInvoice>()
  readonly creditMemos = new Map<string, AccountingCreditMemo>()
  readonly payments = new Map<string, AccountingPayment>()
  readonly deposits = new Map<string, AccountingDeposit>()
  readonly journals = new Map<string, FakeJournalEntry>()
  readonly deleted: Array<{ entity: AccountingEntity, id: string, at: Date }> = []
  /** requestId → the first write's result. */
  readonly byRequestId = new Map<string, AccountingWrite>()
  /** A batch (its items' requestIds, in order) → its first answers. */
  readonly batches = new Map<string, Array<{ ok: true, write: AccountingWrite } | { ok: false, error: Error }>>()
  /** Every call in order, with its method name (assert on shapes and counts). */
  readonly log: Array<{ method: FakeAccountingMethod, input: unknown }> = []
  /** Writes that reached the books (replays excluded). */
  readonly writes: Array<{ kind: 'payment' | 'payment-update' | 'deposit' | 'journal', id: string, input: unknown }> = []
  fail: FakeAccountingFailure = () => undefined
  currency: Currency
  pageSize = 100
  private calls = 0
  private nextId = 100
  private clock = Date.parse('2026-12-01T00:00:00Z')

  constructor (options: { realmId?: string, currency?: Currency } = {}) {
    this.realmId = options.realmId ?? '9130000000000001'
    this.currency = options.currency ?? 'USD'
    for (const a of [
      { id: '4', name: 'Undeposited Funds', type: 'Other Current Asset', subType: 'UndepositedFunds' },
      { id: '35', name: 'Checking', type: 'Bank', subType: 'Checking' },
      { id: '84', name: 'Accounts Receivable (A/R)', type: 'Accounts Receivable', subType: 'AccountsReceivable' },
      { id: '8', name: 'Bank Charges', type: 'Expense', subType: 'BankCharges' },
      { id: '9', name: 'Bad Debts', type: 'Expense', subType: 'BadDebts' }
    ]) this.accounts.set(a.id, { ...a, active: true, currency: this.currency })
    this.paymentMethods.set('4', { id: '4', name: 'Credit Card', type: 'CREDIT_CARD', active: true })
    this.paymentMethods.set('5', { id: '5', name: 'ACH', type: 'NON_CREDIT_CARD', active: true })
    this.items.set('20', { id: '20', name: 'Card surcharge', type: 'Service', active: true })
  }

  callsMade (): number { return this.calls }

  // ---- seeding (no call counted) ----

  addCustomer (input: { displayName: string, companyName?: string | null, id?: string }): AccountingCustomer {
    const id = input.id ?? this.newId()
    const customer: AccountingCustomer = { id, displayName: input.displayName, companyName: input.companyName ?? null, balance: money(0, this.currency), active: true, raw: { Id: id } }
    this.customers.set(id, customer)
    return customer
  }

  addInvoice (input: { customerId: string, docNumber: string, total: number, balance?: number, txnDate?: string, dueDate?: string | null, id?: string }): AccountingInvoice {
    const id = input.id ?? this.newId()
    const customer = this.customers.get(input.customerId)
    const invoice: AccountingInvoice = {
      id,
      docNumber: input.docNumber,
      customerId: input.customerId,
      customerName: customer?.displayName ?? null,
      total: money(input.total, this.currency),
      balance: money(input.balance ?? input.total, this.currency),
      txnDate: input.txnDate ?? '2026-11-01',
      dueDate: input.dueDate ?? null,
      syncToken: '0',
      updatedAt: this.now(),
      raw: { Id: id }
    }
    this.invoices.set(id, invoice)
    this.recomputeCustomerBalance(input.customerId)
    return invoice
  }

  /**
   * A payment someone entered in QuickBooks by hand (no call counted): linked
   * to invoices when `applications` is given, the rest unapplied credit. The
   * raw payload carries CustomerRef with its name as QBO returns it.
   */
  addPayment (input: { customerId: string, total: number, txnDate?: string, reference?: string | null, note?: string | null, method?: string, applications?: Array<{ invoiceId: string, amount: number }>, withCustomerName?: boolean }): AccountingPayment {
    const id = this.newId()
    const applications = (input.applications ?? []).map(a => ({ invoiceId: a.invoiceId, amount: money(a.amount, this.currency) }))
    this.checkApplications(money(input.total, this.currency), applications, null)
    for (const app of applications) this.applyToInvoice(app.invoiceId, -app.amount.amount)
    const applied = applications.reduce((s, a) => s + a.amount.amount, 0)
    const customer = this.customers.get(input.customerId)
    const payment: AccountingPayment = {
      id,
      customerId: input.customerId,
      total: money(input.total, this.currency),
      unapplied: money(input.total - applied, this.currency),
      txnDate: input.txnDate ?? '2026-11-28',
      reference: input.reference ?? null,
      note: input.note ?? null,
      applications,
      depositToAccountId: '4',
      syncToken: '0',
      updatedAt: this.now(),
      raw: {
        Id: id,
        CustomerRef: input.withCustomerName === false ? { value: input.customerId } : { value: input.customerId, name: customer?.displayName },
        ...(input.method === undefined ? {} : { PaymentMethodRef: { value: '9', name: input.method } })
      }
    }
    this.payments.set(id, payment)
    this.recomputeCustomerBalance(input.customerId)
    return payment
  }

  /** Edited in QBO by a person (the amount received corrected, a note added): CDC returns it as changed. */
  editPayment (id: string, change: { total?: number, note?: string }): void {
    const p = this.payments.get(id)
    if (p === undefined) throw new Error(`no payment ${id}`)
    const total = change.total === undefined ? p.total : money(change.total, p.total.currency)
    const applied = p.applications.reduce((sum, a) => sum + a.amount.amount, 0)
    this.payments.set(id, { ...p, total, unapplied: money(total.amount - applied, total.currency), note: change.note ?? p.note, syncToken: String(Number(p.syncToken) + 1), updatedAt: this.now() })
    this.recomputeCustomerBalance(p.customerId)
  }

  /** Voided in QBO: it stays, with TotalAmt 0, no lines and the note "Voided" (CDC returns it as changed). */
  voidPayment (id: string): void {
    const p = this.payments.get(id)
    if (p === undefined) throw new Error(`no payment ${id}`)
    for (const app of p.applications) this.applyToInvoice(app.invoiceId, app.amount.amount)
    this.payments.set(id, { ...p, total: money(0, p.total.currency), unapplied: money(0, p.total.currency), applications: [], note: 'Voided', syncToken: String(Number(p.syncToken) + 1), updatedAt: this.now() })
    this.recomputeCustomerBalance(p.customerId)
  }

  /** Deleted in QBO: gone, and CDC reports it among the deleted. */
  deletePayment (id: string): void {
    const p = this.payments.get(id)
    if (p === undefined) throw new Error(`no payment ${id}`)
    for (const app of p.applications) this.applyToInvoice(app.invoiceId, app.amount.amount)
    this.payments.delete(id)
    this.deleted.push({ entity: 'Payment', id, at: this.now() })
    this.recomputeCustomerBalance(p.customerId)
  }

  /** A QBO CreditMemo (positive amounts, as QBO keeps them); `remainingCredit` below `total` when part was applied. */
  addCreditMemo (input: { customerId: string, docNumber: string, total: number, remainingCredit?: number, txnDate?: string, id?: string }): AccountingCreditMemo {
    const id = input.id ?? this.newId()
    const memo: AccountingCreditMemo = {
      id,
      docNumber: input.docNumber,
      customerId: input.customerId,
      customerName: this.customers.get(input.customerId)?.displayName ?? null,
      total: money(input.total, this.currency),
      remainingCredit: money(input.remainingCredit ?? input.total, this.currency),
      txnDate: input.txnDate ?? '2026-11-01',
      syncToken: '0',
      updatedAt: this.now(),
      raw: { Id: id }
    }
    this.creditMemos.set(id, memo)
    this.recomputeCustomerBalance(input.customerId)
    return memo
  }

  invoiceByDocNumber (docNumber: string): AccountingInvoice | undefined {
    return [...this.invoices.values()].find(i => i.docNumber === docNumber)
  }

  // ---- reads ----

  async listAccounts (): Promise<AccountingAccount[]> {
    this.enter('listAccounts', {})
    return [...this.accounts.values()]
  }

  async listPaymentMethods (): Promise<AccountingPaymentMethod[]> {
    this.enter('listPaymentMethods', {})
    return [...this.paymentMethods.values()]
  }

  async listItems (): Promise<AccountingItem[]> {
    this.enter('listItems', {})
    return [...this.items.values()]
  }

  async findCustomers (input: { ids?: readonly string[], names?: readonly string[] }): Promise<AccountingCustomer[]> {
    this.enter('findCustomers', input)
    const ids = new Set(input.ids ?? [])
    const names = new Set((input.names ?? []).map(n => n.trim().toLowerCase()))
    return [...this.customers.values()].filter(c => ids.has(c.id) || names.has(c.displayName.trim().toLowerCase()))
  }

  async * listCustomers (): AsyncIterable<AccountingCustomer[]> {
    this.enter('listCustomers', {})
    const all = [...this.customers.values()].filter(c => c.active)
    for (let i = 0; i < all.length; i += this.pageSize) {
      if (i > 0) this.enter('listCustomers', { page: i / this.pageSize })
      yield all.slice(i, i + this.pageSize)
    }
  }

  async findInvoices (input: { ids?: readonly string[], docNumbers?: readonly string[] }): Promise<AccountingInvoice[]> {
    this.enter('findInvoices', input)
    const ids = new Set(input.ids ?? [])
    const docs = new Set(input.docNumbers ?? [])
    return [...this.invoices.values()].filter(i => ids.has(i.id) || (i.docNumber !== null && docs.has(i.docNumber))).map(i => ({ ...i }))
  }

  async * listOpenInvoices (): AsyncIterable<AccountingInvoice[]> {
    this.enter('listOpenInvoices', {})
    const open = [...this.invoices.values()].filter(i => i.balance.amount > 0)
    for (let i = 0; i < open.length; i += this.pageSize) {
      if (i > 0) this.enter('listOpenInvoices', { page: i / this.pageSize })
      yield open.slice(i, i + this.pageSize).map(inv => ({ ...inv }))
    }
  }

  async * listOpenCreditMemos (): AsyncIterable<AccountingCreditMemo[]> {
    this.enter('listOpenCreditMemos', {})
    const open = [...this.creditMemos.values()].filter(m => m.remainingCredit.amount > 0)
    for (let i = 0; i < open.length; i += this.pageSize) {
      if (i > 0) this.enter('listOpenCreditMemos', { page: i / this.pageSize })
      yield open.slice(i, i + this.pageSize).map(m => ({ ...m }))
    }
  }

  async findCreditMemos (input: { docNumbers: readonly string[] }): Promise<AccountingCreditMemo[]> {
    this.enter('findCreditMemos', input)
    const docs = new Set(input.docNumbers)
    return [...this.creditMemos.values()].filter(m => m.docNumber !== null && docs.has(m.docNumber)).map(m => ({ ...m }))
  }

  async getPayment (input: { id: string }): Promise<AccountingPayment | null> {
    this.enter('getPayment', input)
    const p = this.payments.get(input.id)
    return p === undefined ? null : { ...p, applications: [...p.applications] }
  }

  async getDeposit (input: { id: string }): Promise<AccountingDeposit | null> {
    this.enter('getDeposit', input)
    const d = this.deposits.get(input.id)
    return d === undefined ? null : { ...d, lines: [...d.lines] }
  }

  async changedSince (input: { entities: readonly AccountingEntity[], since: Date }): Promise<AccountingChanges> {
    this.enter('changedSince', input)
    const since = input.since.getTime()
    const want = new Set(input.entities)
    return {
      invoices: want.has('Invoice') ? [...this.invoices.values()].filter(i => i.updatedAt.getTime() >= since) : [],
      payments: want.has('Payment') ? [...this.payments.values()].filter(p => p.updatedAt.getTime() >= since) : [],
      deposits: want.has('Deposit') ? [...this.deposits.values()] : [],
      deleted: this.deleted.filter(d => want.has(d.entity) && d.at.getTime() >= since).map(({ entity, id }) => ({ entity, id }))
    }
  }

  // ---- writes ----

  async createPayment (input: PaymentPosting): Promise<AccountingWrite> {
    return this.write('createPayment', input, () => this.doCreatePayment(input))
  }

  async updatePayment (input: { requestId: string, id: string, amount: Money, applications: Array<{ invoiceId: string, amount: Money }>, note?: string }): Promise<AccountingWrite> {
    return this.write('updatePayment', input, () => this.doUpdatePayment(input))
  }

  async createDeposit (input: DepositPosting): Promise<AccountingWrite> {
    return this.write('createDeposit', input, () => this.doCreateDeposit(input))
  }

  async createJournalEntry (input: JournalPosting): Promise<AccountingWrite> {
    return this.write('createJournalEntry', input, () => this.doCreateJournal(input))
  }

  async batch (ops: ReadonlyArray<
    | { kind: 'payment', posting: PaymentPosting }
    | { kind: 'deposit', posting: DepositPosting }
    | { kind: 'journal', posting: JournalPosting }
  >): Promise<Array<{ ok: true, write: AccountingWrite } | { ok: false, error: Error }>> {
    if (ops.length > 30) throw new Error(`QBO batch takes at most 30 operations; got ${ops.length}`)
    this.enter('batch', ops)
    // As QuickBooks does: a batch replays only as the same batch (its requestid comes from its items, in
    // order); its items carry no requestid of their own, so nothing written inside it replays on its own.
    const batchKey = `batch:${ops.map(o => o.posting.requestId).join('|')}`
    const seen = this.batches.get(batchKey)
    if (seen !== undefined) return seen.map(a => a.ok ? { ok: true as const, write: { ...a.write, replayed: true } } : a)
    const out: Array<{ ok: true, write: AccountingWrite } | { ok: false, error: Error }> = []
    let lostAnswer = false
    for (const op of ops) {
      const method: FakeAccountingMethod = op.kind === 'payment' ? 'createPayment' : op.kind === 'deposit' ? 'createDeposit' : 'createJournalEntry'
      const verdict = this.fail(method, op.posting)
      if (verdict instanceof Error) { out.push({ ok: false, error: verdict }); continue }
      try {
        const write = op.kind === 'payment' ? this.doCreatePayment(op.posting) : op.kind === 'deposit' ? this.doCreateDeposit(op.posting) : this.doCreateJournal(op.posting)
        out.push({ ok: true, write })
        if (verdict === 'after-write') lostAnswer = true
      } catch (err) {
        out.push({ ok: false, error: err as Error })
      }
    }
    this.batches.set(batchKey, out)
    if (lostAnswer) throw new Error('ETIMEDOUT: the batch answer was lost')
    return out
  }

  // ---- internals ----

  private enter (method: FakeAccountingMethod, input: unknown): void {
    this.calls += 1
    this.log.push({ method, input })
  }

  private async write (method: FakeAccountingMethod, input: { requestId: string }, doWrite: () => AccountingWrite): Promise<AccountingWrite> {
    this.enter(method, input)
    const verdict = this.fail(method, input)
    if (verdict instanceof Error) throw verdict
    const result = this.replayOr(input.requestId, doWrite)
    if (verdict === 'after-write') throw new Error('ETIMEDOUT: QuickBooks answered too late')
    return result
  }

  private replayOr (requestId: string, doWrite: () => AccountingWrite): AccountingWrite {
    if (requestId.length > 50) throw new Error(`requestid longer than 50 characters: ${requestId}`)
    const seen = this.byRequestId.get(requestId)
    if (seen !== undefined) return { ...seen, replayed: true }
    const result = doWrite()
    this.byRequestId.set(requestId, result)
    return result
  }

  private doCreatePayment (input: PaymentPosting): AccountingWrite {
    const customer = this.customers.get(input.customerId)
    if (customer === undefined) throw new Error(`Invalid Reference Id: customer ${input.customerId}`)
    this.checkApplications(input.amount, input.applications, null)
    const id = this.newId()
    for (const app of input.applications) this.applyToInvoice(app.invoiceId, -app.amount.amount)
    const applied = input.applications.reduce((s, a) => s + a.amount.amount, 0)
    const payment: AccountingPayment = {
      id,
      customerId: input.customerId,
      total: input.amount,
      unapplied: money(input.amount.amount - applied, input.amount.currency),
      txnDate: input.txnDate,
      reference: input.reference,
      note: input.note,
      applications: input.applications.map(a => ({ ...a })),
      depositToAccountId: input.depositToAccountId,
      syncToken: '0',
      updatedAt: this.now(),
      raw: { Id: id, PaymentMethodRef: input.paymentMethodId }
    }
    this.payments.set(id, payment)
    this.recomputeCustomerBalance(input.customerId)
    this.writes.push({ kind: 'payment', id, input })
    return { id, syncToken: '0', replayed: false, raw: { Payment: { Id: id } } }
  }

  private doUpdatePayment (input: { id: string, amount: Money, applications: Array<{ invoiceId: string, amount: Money }>, note?: string }): AccountingWrite {
    const payment = this.payments.get(input.id)
    if (payment === undefined) throw new Error(`Object Not Found: payment ${input.id}`)
    this.checkApplications(input.amount, input.applications, payment)
    for (const app of payment.applications) this.applyToInvoice(app.invoiceId, app.amount.amount)
    for (const app of input.applications) this.applyToInvoice(app.invoiceId, -app.amount.amount)
    const applied = input.applications.reduce((s, a) => s + a.amount.amount, 0)
    const syncToken = String(Number(payment.syncToken) + 1)
    this.payments.set(input.id, {
      ...payment,
      total: input.amount,
      unapplied: money(input.amount.amount - applied, input.amount.currency),
      applications: input.applications.map(a => ({ ...a })),
      note: input.note ?? payment.note,
      syncToken,
      updatedAt: this.now()
    })
    this.recomputeCustomerBalance(payment.customerId)
    this.writes.push({ kind: 'payment-update', id: input.id, input })
    return { id: input.id, syncToken, replayed: false, raw: { Payment: { Id: input.id, SyncToken: syncToken } } }
  }

  private doCreateDeposit (input: DepositPosting): AccountingWrite {
    for (const line of input.lines) {
      if (line.paymentId !== undefined) {
        const p = this.payments.get(line.paymentId)
        if (p === undefined) throw new Error(`Invalid Reference Id: payment ${line.paymentId}`)
        if (p.total.amount !== line.amount.amount) throw new Error(`Deposit line for payment ${line.paymentId} is ${line.amount.amount}, the payment is ${p.total.amount}`)
        const already = [...this.deposits.values()].some(d => d.lines.some(l => l.paymentId === line.paymentId))
        if (already) throw new Error(`Payment ${line.paymentId} is already deposited`)
      } else if (line.accountId === undefined) {
        throw new Error('A deposit line needs a payment or an account')
      }
    }
    const id = this.newId()
    const total = input.lines.reduce((s, l) => s + l.amount.amount, 0)
    this.deposits.set(id, {
      id,
      bankAccountId: input.bankAccountId,
      txnDate: input.txnDate,
      total: money(total, input.currency),
      lines: input.lines.map(l => ({ ...l })),
      note: input.note,
      syncToken: '0',
      raw: { Id: id }
    })
    // Deposited payments move out of Undeposited Funds.
    for (const line of input.lines) {
      if (line.paymentId === undefined) continue
      const p = this.payments.get(line.paymentId)
      if (p !== undefined) this.payments.set(p.id, { ...p, depositToAccountId: input.bankAccountId })
    }
    this.writes.push({ kind: 'deposit', id, input })
    return { id, syncToken: '0', replayed: false, raw: { Deposit: { Id: id } } }
  }

  private doCreateJournal (input: JournalPosting): AccountingWrite {
    const total = input.lines.reduce((s, l) => s + l.amount.amount, 0)
    if (total !== 0) throw new Error(`Journal entry does not balance: off by ${total}`)
    const ar = [...this.accounts.values()].filter(a => a.type === 'Accounts Receivable').map(a => a.id)
    for (const line of input.lines) {
      if (ar.includes(line.accountId) && line.customerId === undefined) throw new Error('An A/R journal line needs a customer')
    }
    const id = this.newId()
    this.journals.set(id, { id, posting: input, syncToken: '0' })
    for (const line of input.lines) if (line.customerId !== undefined) this.recomputeCustomerBalance(line.customerId)
    this.writes.push({ kind: 'journal', id, input })
    return { id, syncToken: '0', replayed: false, raw: { JournalEntry: { Id: id } } }
  }

  private checkApplications (amount: Money, applications: ReadonlyArray<{ invoiceId: string, amount: Money }>, existing: AccountingPayment | null): void {
    const applied = applications.reduce((s, a) => s + a.amount.amount, 0)
    if (applied > amount.amount) throw new Error(`Applied ${applied} exceeds the payment total ${amount.amount}`)
    for (const app of applications) {
      const inv = this.invoices.get(app.invoiceId)
      if (inv === undefined) throw new Error(`Invalid Reference Id: invoice ${app.invoiceId}`)
      const back = existing?.applications.filter(a => a.invoiceId === app.invoiceId).reduce((s, a) => s + a.amount.amount, 0) ?? 0
      if (app.amount.amount > inv.balance.amount + back) {
        throw new Error(`Invoice ${inv.docNumber ?? inv.id} has ${inv.balance.amount + back} open; cannot apply ${app.amount.amount}`)
      }
    }
  }

  private applyToInvoice (invoiceId: string, delta: number): void {
    const inv = this.invoices.get(invoiceId)
    if (inv === undefined) return
    this.invoices.set(invoiceId, { ...inv, balance: money(inv.balance.amount + delta, inv.balance.currency), syncToken: String(Number(inv.syncToken) + 1), updatedAt: this.now() })
  }

  /** QBO's customer Balance: open invoices less unapplied credit, plus A/R journal lines. */
  recomputeCustomerBalance (customerId: string): void {
    const c = this.customers.get(customerId)
    if (c === undefined) return
    let bal = 0
    for (const inv of this.invoices.values()) if (inv.customerId === customerId) bal += inv.balance.amount
    for (const p of this.payments.values()) if (p.customerId === customerId) bal -= p.unapplied.amount
    // QBO's customer balance is net of credit not yet applied.
    for (const m of this.creditMemos.values()) if (m.customerId === customerId) bal -= m.remainingCredit.amount
    const ar = new Set([...this.accounts.values()].filter(a => a.type === 'Accounts Receivable').map(a => a.id))
    for (const j of this.journals.values()) {
      for (const l of j.posting.lines) if (l.customerId === customerId && ar.has(l.accountId)) bal += l.amount.amount
    }
    this.customers.set(customerId, { ...c, balance: money(bal, c.balance.currency) })
  }

  private newId (): string { this.nextId += 1; return String(this.nextId) }
  private now (): Date { this.clock += 1000; return new Date(this.clock) }
}

export type { AccountingDepositLine }
