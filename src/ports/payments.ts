import type { Money } from '../domain/money.js'

/**
 * What Settle needs from a payment processor to take money off-session.
 * Declines are outcomes, not exceptions; anything whose result we cannot
 * know (timeouts, connection errors, 5xx) is `unknown` and must be resolved
 * by looking the attempt up, never by assuming it failed.
 */
export interface ChargeInput {
  /** The processor's customer and stored payment method. */
  customerRef: string
  methodRef: string
  amount: Money
  /** Derived from our attempt id: the processor returns the same result for a repeat. */
  idempotencyKey: string
  description: string
  metadata: Record<string, string>
}

export interface ChargeFailure {
  code: string | null
  declineCode: string | null
  adviceCode: string | null
  message: string
}

export type ChargeOutcome =
  | { status: 'succeeded', intentId: string, chargeId: string | null, fee: Money | null, raw: unknown }
  | { status: 'processing', intentId: string, raw: unknown }
  | { status: 'failed', intentId: string | null, failure: ChargeFailure, raw: unknown }
  | { status: 'unknown', error: string }

export type RefundOutcome =
  | { status: 'succeeded' | 'pending', refundId: string, raw: unknown }
  | { status: 'failed', refundId: string | null, message: string, raw: unknown }
  | { status: 'unknown', error: string }

/** A dispute, or an ACH return after success, as the processor now sees it. */
export interface DisputeState {
  id: string
  /** Stripe: warning_needs_response, needs_response, under_review, won, lost, … */
  status: string
  amount: Money
  intentId: string
  /** The processor's dispute fee, when it charged one. */
  fee: Money | null
  reason: string
  /** When the funds were withdrawn, and (won) reinstated: the entries' effective dates, so replays are identical. */
  createdAt: Date
  reinstatedAt: Date | null
}

/** A stored method as the processor describes it: ids and what a person needs to recognise it, never the number. */
export interface MethodDetails {
  methodRef: string
  customerRef: string | null
  type: 'card' | 'ach'
  brand: string | null
  last4: string
  expMonth: number | null
  expYear: number | null
  funding: string | null
  billingName: string | null
  billingEmail: string | null
  billingState: string | null
}

/** Where a client's browser is in adding a method (a Stripe SetupIntent). */
export interface SetupState {
  id: string
  status: 'succeeded' | 'processing' | 'requires_action' | 'requires_payment_method' | 'requires_confirmation' | 'canceled'
  customerRef: string | null
  metadata: Record<string, string>
  method: MethodDetails | null
  mandateRef: string | null
  error: string | null
}

/** What the client's browser needs to hand card or bank details to the processor directly. */
export interface BrowserConfig {
  publishableKey: string | null
  /** The stand-in's API base on the embedded default; null on the real service (Stripe.js). */
  sandboxApiBase: string | null
}

/** A payout from the processor to the tenant's bank, as the processor now sees it. */
export interface PayoutState {
  id: string
  status: 'pending' | 'in_transit' | 'paid' | 'failed' | 'canceled'
  /** Net paid to the bank. */
  amount: Money
  /** YYYY-MM-DD (UTC) the bank is expected to (or did) receive it. */
  arrivalDate: string
  createdAt: Date
  automatic: boolean
  failureCode: string | null
  failureMessage: string | null
  raw: unknown
}

/** One balance movement a payout settled (a charge, a refund, a dispute withdrawal…), signed: money out is negative. */
export interface PayoutTransaction {
  id: string
  /** The processor's own words: Stripe `type` (charge, payment, refund, adjustment, …) and `reporting_category`. */
  type: string
  reportingCategory: string
  gross: Money
  /** What the processor kept; positive. net = gross - fee. */
  fee: Money
  net: Money
  /** The object behind it: ch_…, py_…, re_…, dp_…; null when there is none. */
  sourceRef: string | null
  /** The payment the source belongs to, when the processor says. */
  paymentIntentRef: string | null
  created: Date
}

export interface PaymentsPort {
  readonly processor: 'stripe'
  readonly browser: BrowserConfig
  /** The processor's customer for one of ours; the same key always yields the same customer. */
  createCustomer: (input: { name: string, email: string | null, metadata: Record<string, string>, idempotencyKey: string }) => Promise<{ customerRef: string }>
  /** Starts saving a method for off-session use; the browser confirms it with the client secret. */
  startSetup: (input: { customerRef: string, metadata: Record<string, string> }) => Promise<{ setupId: string, clientSecret: string }>
  /** Null when the processor never issued that id (it comes from the browser). */
  retrieveSetup: (input: { setupId: string }) => Promise<SetupState | null>
  /** Stops a method being usable; the same request twice is harmless. */
  detachMethod: (input: { methodRef: string }) => Promise<void>
  charge: (input: ChargeInput) => Promise<ChargeOutcome>
  /**
   * The current state of a payment the processor told us about (a webhook),
   * read fresh: events arrive late, twice and out of order, the object does not.
   */
  retrieveIntent: (input: { intentId: string }) => Promise<{ outcome: ChargeOutcome, attemptId: string | null }>
  retrieveDispute: (input: { disputeId: string }) => Promise<DisputeState>
  /** Gives money back on a payment; the same key never refunds twice. */
  refund: (input: { intentId: string, amount: Money, idempotencyKey: string, metadata: Record<string, string> }) => Promise<RefundOutcome>
  /** Looks an attempt up by its idempotency key / metadata; null when the processor never saw it. */
  findCharge: (input: { idempotencyKey: string, attemptId: string }) => Promise<ChargeOutcome | null>
  /** A payout read fresh (payout events are hints, like every event). */
  retrievePayout: (input: { payoutId: string }) => Promise<PayoutState>
  /** Every balance transaction the payout settled, all pages, without the payout's own; their nets sum to its amount. */
  listPayoutTransactions: (input: { payoutId: string }) => Promise<PayoutTransaction[]>
}
