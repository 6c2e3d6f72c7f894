import type Stripe from 'stripe'
import { asCurrency, type Money } from '../../domain/money.js'
import type { ChargeFailure, ChargeInput, ChargeOutcome, DisputeState, PaymentsPort, RefundOutcome } from '../../ports/payments.js'

/** Stripe's error classes, by the `type` the SDK sets, that mean "we cannot know what happened". */
const INDETERMINATE = new Set(['StripeConnectionError', 'StripeAPIError', 'StripeRateLimitError', 'StripeUnknownError'])

interface StripeErrorLike {
  type?: string
  code?: string
  decline_code?: string
  advice_code?: string
  message?: string
  statusCode?: number
  payment_intent?: { id?: string }
}

const isStripeError = (error: unknown): error is StripeErrorLike =>
  typeof error === 'object' && error !== null && typeof (error as { type?: unknown }).type === 'string' && (error as { type: string }).type.startsWith('Stripe')

function feeOf (intent: Stripe.PaymentIntent): Money | null {
  const charge = intent.latest_charge
  if (charge === null || typeof charge === 'string') return null
  const txn = charge.balance_transaction
  if (txn === null || typeof txn === 'string') return null
  return { amount: txn.fee, currency: asCurrency(txn.currency.toUpperCase()) }
}

function failureOf (intent: Stripe.PaymentIntent): ChargeFailure {
  const error = intent.last_payment_error
  return {
    code: error?.code ?? null,
    declineCode: error?.decline_code ?? null,
    adviceCode: (error as { advice_code?: string } | null | undefined)?.advice_code ?? null,
    message: error?.message ?? `The payment did not go through (${intent.status}).`
  }
}

/** A PaymentIntent, as Stripe left it, in Settle's terms. */
export function outcomeOf (intent: Stripe.PaymentIntent): ChargeOutcome {
  switch (intent.status) {
    case 'succeeded':
      return { status: 'succeeded', intentId: intent.id, chargeId: typeof intent.latest_charge === 'string' ? intent.latest_charge : intent.latest_charge?.id ?? null, fee: feeOf(intent), raw: intent }
    case 'processing':
      return { status: 'processing', intentId: intent.id, raw: intent }
    case 'requires_action':
      // Off-session, an authentication request means the client must pay on-session.
      return { status: 'failed', intentId: intent.id, failure: { code: 'authentication_required', declineCode: null, adviceCode: null, message: 'The bank asked the cardholder to authenticate this payment.' }, raw: intent }
    default:
      // canceled, requires_payment_method (declined), requires_confirmation, requires_capture
      return { status: 'failed', intentId: intent.id, failure: failureOf(intent), raw: intent }
  }
}

export function createStripePayments (stripe: Stripe): PaymentsPort {
  return {
    processor: 'stripe',

    async charge (input: ChargeInput): Promise<ChargeOutcome> {
      try {
        const intent = await stripe.paymentIntents.create({
          amount: input.amount.amount,
          currency: input.amount.currency.toLowerCase(),
          customer: input.customerRef,
          payment_method: input.methodRef,
          off_session: true,
          confirm: true,
          description: input.description,
          metadata: input.metadata,
          expand: ['latest_charge.balance_transaction']
        }, { idempotencyKey: input.idempotencyKey })
        return outcomeOf(intent)
      } catch (error) {
        if (!isStripeError(error)) return { status: 'unknown', error: error instanceof Error ? error.message : String(error) }
        if (INDETERMINATE.has(error.type ?? '')) return { status: 'unknown', error: `${error.type ?? 'Stripe'}: ${error.message ?? ''}` }
        // A card error, or a request Stripe refused outright: either way nothing was charged.
        return {
          status: 'failed',
          intentId: error.payment_intent?.id ?? null,
          failure: { code: error.code ?? (error.type === 'StripeCardError' ? 'card_declined' : 'request_refused'), declineCode: error.decline_code ?? null, adviceCode: error.advice_code ?? null, message: error.message ?? 'Stripe refused the payment.' },
          raw: error
        }
      }
    },

    async retrieveIntent ({ intentId }: { intentId: string }): Promise<{ outcome: ChargeOutcome, attemptId: string | null }> {
      const intent = await stripe.paymentIntents.retrieve(intentId, { expand: ['latest_charge.balance_transaction'] })
      return { outcome: outcomeOf(intent), attemptId: intent.metadata?.settle_attempt_id ?? null }
    },

    async refund ({ intentId, amount, idempotencyKey, metadata }): Promise<RefundOutcome> {
      try {
        const refund = await stripe.refunds.create({ payment_intent: intentId, amount: amount.amount, metadata }, { idempotencyKey })
        if (refund.status === 'failed' || refund.status === 'canceled') return { status: 'failed', refundId: refund.id, message: refund.failure_reason ?? `Refund ${refund.status}.`, raw: refund }
        return { status: refund.status === 'succeeded' ? 'succeeded' : 'pending', refundId: refund.id, raw: refund }
      } catch (error) {
        if (!isStripeError(error) || INDETERMINATE.has(error.type ?? '')) return { status: 'unknown', error: error instanceof Error ? error.message : String(error) }
        return { status: 'failed', refundId: null, message: error.message ?? 'Stripe refused the refund.', raw: error }
      }
    },

    async retrieveDispute ({ disputeId }: { disputeId: string }): Promise<DisputeState> {
      const dispute = await stripe.disputes.retrieve(disputeId)
      const currency = asCurrency(dispute.currency.toUpperCase())
      const fee = dispute.balance_transactions.filter(b => b.amount < 0).reduce((sum, b) => sum + b.fee, 0)
      return {
        id: dispute.id,
        status: dispute.status,
        amount: { amount: dispute.amount, currency },
        intentId: typeof dispute.payment_intent === 'string' ? dispute.payment_intent : dispute.payment_intent?.id ?? '',
        fee: fee > 0 ? { amount: fee, currency } : null,
        reason: dispute.reason,
        createdAt: new Date(dispute.created * 1000),
        reinstatedAt: ((): Date | null => {
          const back = dispute.balance_transactions.find(b => b.amount > 0)
          return back === undefined ? null : new Date(back.created * 1000)
        })()
      }
    },

    async findCharge ({ attemptId }: { idempotencyKey: string, attemptId: string }): Promise<ChargeOutcome | null> {
      const found = await stripe.paymentIntents.search({ query: `metadata['settle_attempt_id']:'${attemptId.replace(/'/g, '')}'`, limit: 1, expand: ['data.latest_charge.balance_transaction'] })
      const intent = found.data[0]
      return intent === undefined ? null : outcomeOf(intent)
    }
  }
}
