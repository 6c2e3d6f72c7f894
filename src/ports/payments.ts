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

export interface PaymentsPort {
  readonly processor: 'stripe'
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
}
