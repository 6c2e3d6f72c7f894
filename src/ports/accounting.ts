import type { Currency, Money } from '../domain/money.js'

/**
 * What Settle needs from the books (QuickBooks Online), in domain terms:
 * cents, ISO dates, ids as strings. One instance serves one tenant's
 * connection (one QBO company, its `realmId`). Every write carries a
 * `requestId` derived from our outbox row, so a retry after a crash or a
 * timeout returns the first result instead of posting twice. Results keep
 * the raw upstream payload for the audit log.
 */
export type AccountingSystem = 'quickbooks'

export interface AccountingAccount {
  id: string
  name: string
  /** QBO AccountType: "Bank", "Other Current Asset", "Expense", "Accounts Receivable", … */
  type: string
  /** QBO AccountSubType: "UndepositedFunds", "Checking", "BankCharges", … */
  subType: string | null
  active: boolean
  currency: Currency | null
}

export interface AccountingPaymentMethod {
  id: string
  name: string
  /** QBO: CREDIT_CARD or NON_CREDIT_CARD. */
  type: string
  active: boolean
}

export interface AccountingItem {
  id: string
  name: string
  type: string
  active: boolean
}

export interface AccountingCustomer {
  id: string
  displayName: string
  companyName: string | null
  /** Open A/R for the customer as the books say (QBO `Balance`). */
  balance: Money
  active: boolean
  raw: unknown
}

export interface AccountingInvoice {
  id: string
  /** QBO DocNumber: the PSA invoice number by default. */
  docNumber: string | null
  customerId: string
  customerName: string | null
  total: Money
  /** What the books say is still open. */
  balance: Money
  /** YYYY-MM-DD */
  txnDate: string
  dueDate: string | null
  syncToken: string
  updatedAt: Date
  raw: unknown
}

/**
 * A QBO CreditMemo: a PSA credit memo lands here, not as an Invoice (QBO
 * invoices cannot go below zero). Amounts as QBO keeps them, positive; the
 * tie-out signs them negative on the receivable side.
 */
export interface AccountingCreditMemo {
  id: string
  /** QBO DocNumber: the PSA credit memo's number by default. */
  docNumber: string | null
  customerId: string
  customerName: string | null
  total: Money
  /** Credit not yet applied to an invoice (QBO `RemainingCredit`, else `Balance`). */
  remainingCredit: Money
  /** YYYY-MM-DD */
  txnDate: string
  syncToken: string
  updatedAt: Date
  raw: unknown
}

export interface AccountingPayment {
  id: string
  customerId: string
  total: Money
  /** Part of the payment applied to no invoice: customer credit. */
  unapplied: Money
  /** YYYY-MM-DD */
  txnDate: string
  reference: string | null
  note: string | null
  applications: Array<{ invoiceId: string, amount: Money }>
  depositToAccountId: string | null
  syncToken: string
  updatedAt: Date
  raw: unknown
}

export interface AccountingDepositLine {
  /** A payment grouped into the deposit (from Undeposited Funds). */
  paymentId?: string
  /** Or a line straight to an account (fees are a negative line to the fee expense account). */
  accountId?: string
  customerId?: string
  /** Signed: fees and refunds are negative. */
  amount: Money
  description?: string
}

export interface AccountingDeposit {
  id: string
  bankAccountId: string
  /** YYYY-MM-DD */
  txnDate: string
  total: Money
  lines: AccountingDepositLine[]
  note: string | null
  syncToken: string
  raw: unknown
}

/** A write's result: the document's id and version; `replayed` when QBO answered from an earlier identical `requestId`. */
export interface AccountingWrite {
  id: string
  syncToken: string
  replayed: boolean
  raw: unknown
}

export interface PaymentPosting {
  /** ≤ 50 characters, unique per company: from our outbox row, so a retry never posts twice. */
  requestId: string
  customerId: string
  /** TotalAmt. Above the sum of `applications` the rest stays as unapplied customer credit. */
  amount: Money
  /** YYYY-MM-DD */
  txnDate: string
  paymentMethodId: string | null
  /** PaymentRefNum: the processor's payment id or the check number. */
  reference: string | null
  /** Undeposited Funds, so the payout's deposit can group it. */
  depositToAccountId: string
  note: string
  applications: Array<{ invoiceId: string, amount: Money }>
}

export interface DepositPosting {
  requestId: string
  bankAccountId: string
  /** YYYY-MM-DD: the day the payout reached the bank. */
  txnDate: string
  currency: Currency
  /** Payments grouped into the deposit, then the fee and refund lines, so the total equals the bank line. */
  lines: AccountingDepositLine[]
  note: string
}

export interface JournalPosting {
  requestId: string
  txnDate: string
  currency: Currency
  note: string
  /** Debits positive, credits negative; they sum to zero. A/R lines name the customer. */
  lines: Array<{ accountId: string, amount: Money, customerId?: string, description?: string }>
}

export type AccountingEntity = 'Invoice' | 'Payment' | 'Deposit' | 'Customer'

export interface AccountingChanges {
  invoices: AccountingInvoice[]
  payments: AccountingPayment[]
  deposits: AccountingDeposit[]
  /** Ids QBO reports as deleted or voided since the stamp. */
  deleted: Array<{ entity: AccountingEntity, id: string }>
}

export interface AccountingPort {
  readonly system: AccountingSystem
  /** The QBO company id. */
  readonly realmId: string
  /** The chart of accounts (settings discovery, the settings page). */
  listAccounts: () => Promise<AccountingAccount[]>
  listPaymentMethods: () => Promise<AccountingPaymentMethod[]>
  listItems: () => Promise<AccountingItem[]>
  /** Customers by QBO id or by exact display name (case-insensitive); either list may be empty. */
  findCustomers: (input: { ids?: readonly string[], names?: readonly string[] }) => Promise<AccountingCustomer[]>
  /** Every active customer, a page at a time (mapping suggestions, tie-out). */
  listCustomers: () => AsyncIterable<AccountingCustomer[]>
  /** Invoices by QBO id or by DocNumber; batched under QBO's query limits. */
  findInvoices: (input: { ids?: readonly string[], docNumbers?: readonly string[] }) => Promise<AccountingInvoice[]>
  /** Every invoice with a balance above zero, a page at a time (the tie-out). */
  listOpenInvoices: () => AsyncIterable<AccountingInvoice[]>
  /** Every credit memo with credit left to apply, a page at a time (the tie-out). */
  listOpenCreditMemos: () => AsyncIterable<AccountingCreditMemo[]>
  /** Credit memos by DocNumber (the tie-out's look-up for PSA credit memos the open listing did not hold). */
  findCreditMemos: (input: { docNumbers: readonly string[] }) => Promise<AccountingCreditMemo[]>
  getPayment: (input: { id: string }) => Promise<AccountingPayment | null>
  getDeposit: (input: { id: string }) => Promise<AccountingDeposit | null>
  createPayment: (input: PaymentPosting) => Promise<AccountingWrite>
  /**
   * Changes which invoices a payment covers and its total (a refund or a
   * return reduces it). Re-reads and retries on a stale SyncToken.
   */
  updatePayment: (input: { requestId: string, id: string, amount: Money, applications: Array<{ invoiceId: string, amount: Money }>, note?: string }) => Promise<AccountingWrite>
  createDeposit: (input: DepositPosting) => Promise<AccountingWrite>
  createJournalEntry: (input: JournalPosting) => Promise<AccountingWrite>
  /**
   * Up to 30 writes in one call (QBO's batch limit); results in input order,
   * each a write or that item's typed error.
   */
  batch: (ops: ReadonlyArray<
    | { kind: 'payment', posting: PaymentPosting }
    | { kind: 'deposit', posting: DepositPosting }
    | { kind: 'journal', posting: JournalPosting }
  >) => Promise<Array<{ ok: true, write: AccountingWrite } | { ok: false, error: Error }>>
  /** Change Data Capture: what changed since `since` (QBO keeps 30 days). */
  changedSince: (input: { entities: readonly AccountingEntity[], since: Date }) => Promise<AccountingChanges>
  /** Calls made through this instance so far (benchmarks, the sync report). */
  callsMade: () => number
}

/** The tenant's choices of where things post in the books; discovered from the chart of accounts, confirmed by a person. */
export interface AccountingSettings {
  undepositedFundsAccountId: string | null
  bankAccountId: string | null
  feesAccountId: string | null
  writeOffAccountId: string | null
  receivableAccountId: string | null
  cardPaymentMethodId: string | null
  achPaymentMethodId: string | null
  surchargeItemId: string | null
  /** How a PSA invoice finds its QBO twin: by DocNumber equal to the PSA invoice number (default). */
  invoiceMatch: 'doc_number'
  /** Prefix added to the PSA number when the books number invoices differently ("" by default). */
  docNumberPrefix: string
}

/** Builds the port for one tenant's connection (refreshing tokens as needed); null when not connected. */
export type AccountingFactory = (tenantId: string) => Promise<AccountingPort | null>
