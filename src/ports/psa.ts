import type { Currency, Money } from '../domain/money.js'

/**
 * What Settle needs from a PSA (ConnectWise PSA or Autotask), in domain
 * terms: cents, ISO dates, ids as strings. Each result keeps the raw upstream
 * payload for the audit log. One instance serves one tenant's connection.
 */
export type PsaSystem = 'connectwise' | 'autotask'

export interface PsaCompany {
  externalId: string
  name: string
  /** ConnectWise's short identifier ("AcmeDental"); null where the PSA has none. */
  identifier: string | null
  /** The billing address's state or province as the PSA wrote it (free text); null or absent when it has none. */
  state?: string | null
  raw: unknown
}

export type PsaInvoiceKind = 'standard' | 'agreement' | 'credit_memo' | 'progress' | 'down_payment' | 'miscellaneous'

export interface PsaInvoice {
  externalId: string
  number: string
  companyExternalId: string
  companyName: string | null
  /**
   * The bill-to state as the PSA wrote it, when the invoice (ConnectWise's
   * billing site) or data the adapter already holds says; absent otherwise.
   */
  billingState?: string | null
  kind: PsaInvoiceKind
  currency: Currency
  /** YYYY-MM-DD */
  issuedOn: string
  /** YYYY-MM-DD; null when the PSA does not say (Autotask's dueDate is optional). */
  dueOn: string | null
  /** Signed: a credit memo is negative. */
  total: Money
  /** What the PSA says is still open; null where the PSA does not track it (Autotask). */
  balance: Money | null
  /** YYYY-MM-DD when fully paid in the PSA. */
  paidOn: string | null
  voided: boolean
  /** The PSA's last-modified stamp; the incremental sync cursor follows it. */
  updatedAt: Date
  /** Agreement reference where the PSA has one (auto-pay rules filter on it). */
  agreementName: string | null
  poNumber: string | null
  raw: unknown
}

export type PsaLineKind = 'agreement' | 'product' | 'time' | 'expense' | 'other'

export interface PsaInvoiceLine {
  externalId: string
  kind: PsaLineKind
  description: string
  /** Decimal string as the PSA sent it ("1.5" hours). */
  quantity: string
  unitPrice: Money | null
  /** Extended amount in cents (rounded half away from zero at the edge). */
  amount: Money
  raw: unknown
}

export interface PsaPaymentInput {
  invoiceExternalId: string
  amount: Money
  /** YYYY-MM-DD */
  paidOn: string
  /** Our reference (payment attempt id); used to find a payment we already recorded. */
  reference: string
  method: 'card' | 'ach' | 'check' | 'wire' | 'other'
  /**
   * The PSA's payment ids on the invoice before Settle's first try to post
   * this payment, kept by the caller from `beforePost`. A repeat after a lost
   * answer adopts only a payment that is new since then and Settle's own.
   */
  paymentIdsBefore?: readonly string[]
  /** Called once, before the first post, with the ids already there; the caller keeps them for a repeat. */
  beforePost?: (paymentIds: readonly string[]) => Promise<void>
}

export interface PsaPaymentResult {
  /** The PSA's id for the payment record, or a note id where the PSA has no payments (Autotask). */
  externalId: string
  /** true when a payment with our reference was already there: nothing new was written. */
  alreadyRecorded: boolean
  raw: unknown
}

export interface PsaPort {
  readonly system: PsaSystem
  /** Every company, a page at a time. */
  listCompanies: () => AsyncIterable<PsaCompany[]>
  /**
   * Invoice headers changed at or after `since` (all when null), a page at a
   * time, ordered by `updatedAt` then id so a cursor can resume after a crash.
   */
  listInvoicesChangedSince: (input: { since: Date | null }) => AsyncIterable<PsaInvoice[]>
  /** One invoice with its header, fresh from the PSA. */
  getInvoice: (input: { externalId: string }) => Promise<PsaInvoice>
  /**
   * Line detail for many invoices; batched where the PSA allows it.
   * `headers`, when the caller has them, are the same invoices as listed
   * (a PSA may check batched lines against them instead of reading each invoice).
   */
  getInvoiceLines: (input: { invoiceExternalIds: readonly string[], headers?: readonly PsaInvoice[] }) => Promise<Map<string, PsaInvoiceLine[]>>
  /** How many invoices' lines one call fetches: the sync commits in units of this size (default 100). */
  readonly lineBatchSize?: number
  /** The invoice as the PSA prints it, or null where the PSA offers no PDF through its API (Autotask). */
  getInvoicePdf: (input: { externalId: string }) => Promise<{ contentType: string, body: Buffer } | null>
  /** Records a (partial) payment; idempotent by `reference`. */
  recordPayment: (input: PsaPaymentInput) => Promise<PsaPaymentResult>
  /** Marks the invoice fully paid on `paidOn`; idempotent. */
  markPaid: (input: { invoiceExternalId: string, paidOn: string, reference: string }) => Promise<{ raw: unknown }>
  /**
   * Takes back a payment Settle pushed (an ACH return, a lost dispute): the
   * invoice is open again in the PSA. Idempotent: a payment already gone is fine.
   */
  reversePayment: (input: { invoiceExternalId: string, paymentExternalId: string, markedPaid: boolean }) => Promise<{ raw: unknown }>
  /** Calls made through this instance so far (sync reports and benchmarks). */
  callsMade: () => number
}

/**
 * Shared across every worker and process of one tenant's PSA connection
 * (Autotask: 10,000 calls/hour per database). `take` waits until a call may
 * be made, or throws RateBudgetExhausted when the wait would exceed `maxWaitMs`.
 */
export interface CallBudget {
  take: (calls?: number) => Promise<void>
}
