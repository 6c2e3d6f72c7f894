import type Stripe from 'stripe'
import { asCurrency, type Money } from '../../domain/money.js'
import type { BrowserConfig, ChargeFailure, ChargeInput, ChargeOutcome, DisputeState, MethodDetails, PaymentsPort, PayoutState, PayoutTransaction, RefundOutcome, SetupState } from '../../ports/payments.js'

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

/** A Stripe PaymentMethod in Settle's terms; null for kinds Settle does not take. */
export function methodDetailsOf (pm: Stripe.PaymentMethod): MethodDetails | null {
  const billing = {
    billingName: pm.billing_details?.name ?? null,
    billingEmail: pm.billing_details?.email ?? null,
    billingState: pm.billing_details?.address?.state ?? null
  }
  const customerRef = typeof pm.customer === 'string' ? pm.customer : pm.customer?.id ?? null
  if (pm.type === 'card' && pm.card !== undefined) {
    return { methodRef: pm.id, customerRef, type: 'card', brand: pm.card.brand, last4: pm.card.last4, expMonth: pm.card.exp_month, expYear: pm.card.exp_year, funding: pm.card.funding, ...billing }
  }
  if (pm.type === 'us_bank_account' && pm.us_bank_account !== undefined) {
    return { methodRef: pm.id, customerRef, type: 'ach', brand: pm.us_bank_account.bank_name ?? null, last4: pm.us_bank_account.last4 ?? '0000', expMonth: null, expYear: null, funding: null, ...billing }
  }
  return null
}

const utcDate = (unix: number): string => new Date(unix * 1000).toISOString().slice(0, 10)

/** A Stripe payout in Settle's terms. */
export function payoutStateOf (payout: Stripe.Payout): PayoutState {
  return {
    id: payout.id,
    status: payout.status as PayoutState['status'],
    amount: { amount: payout.amount, currency: asCurrency(payout.currency.toUpperCase()) },
    arrivalDate: utcDate(payout.arrival_date),
    createdAt: new Date(payout.created * 1000),
    automatic: payout.automatic,
    failureCode: payout.failure_code ?? null,
    failureMessage: payout.failure_message ?? null,
    raw: payout
  }
}

/** The payment a balance transaction's source belongs to: charges, refunds and disputes all name it once expanded. */
function intentOfSource (source: Stripe.BalanceTransaction['source']): string | null {
  if (source === null || typeof source === 'string') return null
  const pi = (source as { payment_intent?: string | { id: string } | null }).payment_intent
  return typeof pi === 'string' ? pi : pi?.id ?? null
}

/** A Stripe balance transaction in Settle's terms. */
export function payoutTransactionOf (bt: Stripe.BalanceTransaction): PayoutTransaction {
  const currency = asCurrency(bt.currency.toUpperCase())
  return {
    id: bt.id,
    type: bt.type,
    reportingCategory: bt.reporting_category,
    gross: { amount: bt.amount, currency },
    fee: { amount: bt.fee, currency },
    net: { amount: bt.net, currency },
    sourceRef: bt.source === null ? null : typeof bt.source === 'string' ? bt.source : bt.source.id,
    paymentIntentRef: intentOfSource(bt.source),
    created: new Date(bt.created * 1000)
  }
}

export function createStripePayments (stripe: Stripe, browser: BrowserConfig = { publishableKey: null, sandboxApiBase: null }): PaymentsPort {
  return {
    processor: 'stripe',
    browser,

    async createCustomer ({ name, email, metadata, idempotencyKey }) {
      const customer = await stripe.customers.create({ name, ...(email !== null ? { email } : {}), metadata }, { idempotencyKey })
      return { customerRef: customer.id }
    },

    async startSetup ({ customerRef, metadata }) {
      // No payment_method_types: the account's dashboard settings decide (card and us_bank_account).
      const intent = await stripe.setupIntents.create({ customer: customerRef, usage: 'off_session', metadata })
      if (intent.client_secret === null) throw new Error('Stripe returned a SetupIntent without a client secret')
      return { setupId: intent.id, clientSecret: intent.client_secret }
    },

    async retrieveSetup ({ setupId }): Promise<SetupState | null> {
      let intent: Stripe.SetupIntent
      try { intent = await stripe.setupIntents.retrieve(setupId, { expand: ['payment_method'] }) } catch (error) {
        if (isStripeError(error) && error.code === 'resource_missing') return null
        throw error
      }
      const pm = intent.payment_method
      return {
        id: intent.id,
        status: intent.status as SetupState['status'],
        customerRef: typeof intent.customer === 'string' ? intent.customer : intent.customer?.id ?? null,
        metadata: intent.metadata ?? {},
        method: pm === null || typeof pm === 'string' ? null : methodDetailsOf(pm),
        mandateRef: typeof intent.mandate === 'string' ? intent.mandate : intent.mandate?.id ?? null,
        error: intent.last_setup_error?.message ?? null
      }
    },

    async detachMethod ({ methodRef }) {
      try {
        await stripe.paymentMethods.detach(methodRef)
      } catch (error) {
        // Already detached (or never attached) is the state we wanted.
        if (isStripeError(error) && error.type === 'StripeInvalidRequestError' && /not attached/i.test(error.message ?? '')) return
        throw error
      }
    },

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
    },

    async retrievePayout ({ payoutId }: { payoutId: string }): Promise<PayoutState> {
      return payoutStateOf(await stripe.payouts.retrieve(payoutId))
    },

    async listPayoutTransactions ({ payoutId }: { payoutId: string }): Promise<PayoutTransaction[]> {
      const all: PayoutTransaction[] = []
      // The SDK follows starting_after across pages; the source is expanded so refunds and disputes name their payment.
      for await (const bt of stripe.balanceTransactions.list({ payout: payoutId, limit: 100, expand: ['data.source'] })) {
        // The payout's own transaction (type payout) is the other side of the list, not something it settled.
        if (bt.type === 'payout' && (typeof bt.source === 'string' ? bt.source : bt.source?.id) === payoutId) continue
        all.push(payoutTransactionOf(bt))
      }
      return all
    }
  }
}
