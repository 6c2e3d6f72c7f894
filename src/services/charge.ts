import type { Knex } from 'knex'
import { enqueue } from '../db/jobs.js'
import { postEntry } from '../db/ledger.js'
import { openBalance } from '../db/invoices.js'
import { applyPaymentToPlan, failPart } from '../db/installments.js'
import { getPaymentMethod, toAttempt, type AttemptRow, type PaymentAttempt, type PaymentMethod } from '../db/payments.js'
import { pgError } from '../db/knex.js'
import { getTenantSurcharge, isUuid, requireTenantId } from '../db/tenants.js'
import { AppError } from '../errors.js'
import { invoiceStatus, type InvoiceStatus } from '../domain/invoice-sync.js'
import { Accounts, type PostingInput } from '../domain/ledger.js'
import { add, asCurrency, formatMoney, negate, toDecimalString, type Money } from '../domain/money.js'
import { classifyFailure, decideRetry, DEFAULT_RETRY_POLICY, type FailureVerdict, type RetryDecision, type RetryPolicy } from '../domain/retry-policy.js'
import { surchargeFor, type SurchargeQuote } from '../domain/surcharge.js'
import type { ChargeInput, ChargeOutcome, PaymentsPort } from '../ports/payments.js'

/**
 * Charging an invoice on a stored method: Charge card in the PSA, auto-pay,
 * retries. The attempt is written (and committed) before the processor is
 * called, its id is the processor's idempotency key, and the database allows
 * one attempt in flight per invoice, so double clicks and concurrent
 * schedulers cannot charge twice. An outcome we cannot know is recorded as
 * `unknown` and resolved later by asking the processor, never assumed.
 */
export type ChargeTrigger = 'charge_card' | 'autopay' | 'retry' | 'checkout' | 'installment'

export interface ChargeRequest {
  tenantId: string
  invoiceId: string
  paymentMethodId: string
  /** Cents; defaults to the open balance. Partial is allowed, more than the balance never. */
  amount?: number
  /** Who asked: a member id, `autopay`, or `client`. */
  actor: string
  trigger: ChargeTrigger
  retryOf?: string
  retryNumber?: number
  /** The installment part this charge collects; carried over to its retries. */
  installmentPartId?: string
  /**
   * Cents of card surcharge the person was shown (`quoteCharge`); when the
   * rule now says otherwise the charge is refused and nothing is written.
   * Auto-pay and retries leave it out and pay what the rule says.
   */
  expectedSurcharge?: number
}

export type ChargeResult =
  | { outcome: 'succeeded' | 'processing' | 'unknown', attempt: PaymentAttempt }
  | { outcome: 'failed', attempt: PaymentAttempt, verdict: FailureVerdict }
  | { outcome: 'already_processing', attempt: PaymentAttempt }

interface InvoiceForCharge {
  id: string, customer_id: string, psa_system: string, psa_invoice_id: string, number: string, currency: string,
  total: number, voided: boolean, status: InvoiceStatus, ledger_billed: number, ledger_paid_elsewhere: number, paid_via_settle: number
}


export const idempotencyKeyFor = (attemptId: string): string => `settle_attempt_${attemptId}`

/** The processor's ledger account name; Stripe is the only one Settle speaks to. */
const PROCESSOR = 'stripe'

/** What a charge comes to, shown before anyone confirms it. */
export interface ChargeQuote {
  /** Applied to the invoice. */
  amount: Money
  /** Charged on top; zero when the tenant, the method or the client's state rules it out. */
  surcharge: Money
  /** What the processor will take: amount + surcharge. */
  total: Money
  surchargeReason: string
}

/**
 * The amount and surcharge of a charge on this invoice and method, checked
 * the way a charge checks them. The quote screens show and the charge
 * itself both come from here, so they cannot disagree.
 */
async function priceCharge (db: Knex, tenantId: string, invoice: InvoiceForCharge, input: { paymentMethodId: string, amount?: number, trigger?: ChargeTrigger }): Promise<{ amount: Money, method: PaymentMethod, quote: SurchargeQuote }> {
  if (invoice.voided) throw new AppError('NOTHING_TO_CHARGE', `Invoice ${invoice.number} is voided.`)
  const open = openBalance(invoice)
  if (open <= 0) throw new AppError('NOTHING_TO_CHARGE', `Invoice ${invoice.number} has nothing open to charge.`)
  const amount = input.amount ?? open
  if (!Number.isSafeInteger(amount) || amount <= 0) throw new AppError('INVALID_AMOUNT', 'The amount must be a positive number of cents.')
  if (amount > open) {
    throw new AppError('AMOUNT_EXCEEDS_BALANCE', `${(amount / 100).toFixed(2)} is more than the ${(open / 100).toFixed(2)} open on invoice ${invoice.number}; charge at most the balance.`)
  }
  const method = await getPaymentMethod(db, tenantId, input.paymentMethodId)
  if (method.customerId !== invoice.customer_id) throw new AppError('PAYMENT_METHOD_NOT_FOUND', 'That payment method belongs to another client.')
  const settings = await getTenantSurcharge(db, tenantId)
  const customer = await db('customers').where({ tenant_id: tenantId, id: invoice.customer_id }).first('billing_state') as { billing_state: string | null } | undefined
  const charged: Money = { amount, currency: asCurrency(invoice.currency) }
  const unattended = input.trigger === 'autopay' || input.trigger === 'retry' || input.trigger === 'installment'
  const quote = surchargeFor({ ...settings, billingState: customer?.billing_state ?? null, method: { type: method.type, funding: method.funding }, amount: charged, unattended })
  return { amount: charged, method, quote }
}

/**
 * What Charge would take, for the screen where a person confirms it (the
 * pay page, the technician's Charge card). Pass `surcharge.amount` back as
 * `expectedSurcharge` so nobody is charged a surcharge they were not shown.
 */
export async function quoteCharge (db: Knex, tenantId: string, input: { invoiceId: string, paymentMethodId: string, amount?: number }): Promise<ChargeQuote> {
  requireTenantId(tenantId)
  const invoice = isUuid(input.invoiceId) ? await db('invoices').where({ tenant_id: tenantId, id: input.invoiceId }).first() as InvoiceForCharge | undefined : undefined
  if (invoice === undefined) throw new AppError('INVOICE_NOT_FOUND', 'That invoice is not in Settle; sync the PSA and try again.')
  const { amount, quote } = await priceCharge(db, tenantId, invoice, input)
  return { amount, surcharge: quote.surcharge, total: add(amount, quote.surcharge), surchargeReason: quote.reason }
}

export async function chargeInvoice (db: Knex, payments: PaymentsPort, request: ChargeRequest): Promise<ChargeResult> {
  requireTenantId(request.tenantId)
  const expected = request.expectedSurcharge
  if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) throw new AppError('INVALID_AMOUNT', 'The expected surcharge must be a whole number of cents, zero or more.')
  const started = await db.transaction(async trx => {
    // The invoice row lock serialises concurrent clicks; the unique in-flight index is the backstop.
    const invoice = await trx('invoices').where({ tenant_id: request.tenantId, id: request.invoiceId }).forUpdate().first() as InvoiceForCharge | undefined
    if (invoice === undefined) throw new AppError('INVOICE_NOT_FOUND', 'That invoice is not in Settle; sync the PSA and try again.')
    const inFlight = await trx('payment_attempts').where({ tenant_id: request.tenantId, invoice_id: invoice.id })
      .whereIn('status', ['created', 'processing', 'unknown']).first() as AttemptRow | undefined
    if (inFlight !== undefined) return { alreadyProcessing: toAttempt(inFlight) }
    const { amount, method, quote } = await priceCharge(trx, request.tenantId, invoice, request)
    // The settings changed between the quote and the click: the person confirms the new total first.
    if (expected !== undefined && expected !== quote.surcharge.amount) {
      throw new AppError('QUOTE_CHANGED', `The card surcharge is now ${formatMoney(quote.surcharge)}, not the ${formatMoney({ amount: expected, currency: quote.surcharge.currency })} shown. ${quote.reason} Nothing was charged; show the new total and confirm again.`)
    }
    try {
      const [row] = await trx('payment_attempts').insert({
        tenant_id: request.tenantId,
        invoice_id: invoice.id,
        customer_id: invoice.customer_id,
        payment_method_id: method.id,
        amount: amount.amount,
        surcharge_amount: quote.surcharge.amount,
        currency: invoice.currency,
        trigger: request.trigger,
        actor: request.actor,
        retry_of: request.retryOf ?? null,
        retry_number: request.retryNumber ?? 0,
        installment_part_id: request.installmentPartId ?? null
      }).returning('*') as AttemptRow[]
      return { attempt: toAttempt(row as AttemptRow), method, invoice }
    } catch (error) {
      if (pgError(error).code === '23505') {
        const again = await trx('payment_attempts').where({ tenant_id: request.tenantId, invoice_id: invoice.id }).whereIn('status', ['created', 'processing', 'unknown']).first() as AttemptRow
        return { alreadyProcessing: toAttempt(again) }
      }
      throw error
    }
  })
  if ('alreadyProcessing' in started) return { outcome: 'already_processing', attempt: started.alreadyProcessing as PaymentAttempt }
  const { attempt, method, invoice } = started
  const outcome = await payments.charge(chargeInputFor(attempt, method, invoice.number))
  const result = await recordOutcome(db, request.tenantId, attempt.id, outcome)
  await followUp(db, result, method.type)
  return result
}

/**
 * What happens after an outcome, however it arrived (our call, a webhook,
 * the recovery sweep): an unknown outcome is looked up later; a failed
 * scheduled collection retries by policy. A person who clicked Charge card
 * sees the decline and decides, so their attempts are not retried.
 */
export async function followUp (db: Knex, result: ChargeResult, methodType: 'card' | 'ach'): Promise<void> {
  if (result.outcome === 'unknown') await scheduleResolution(db, result.attempt)
  if (result.outcome === 'failed' && result.attempt.trigger !== 'charge_card') {
    const decision = await scheduleRetry(db, result.attempt, methodType)
    // Out of retries, or a decline retrying cannot fix: a person looks, and the client hears from us.
    if (!decision.retry) {
      await enqueue(db, result.attempt.tenantId, [{ queue: 'collection.give-up', payload: { attemptId: result.attempt.id, why: decision.why }, dedupeKey: `give-up:${result.attempt.id}` }])
      // An installment that cannot be collected defaults its plan; the invoice stays open for that person.
      if (result.attempt.installmentPartId !== null) await failPart(db, result.attempt.tenantId, result.attempt.installmentPartId, result.attempt.id)
    }
  }
}

/**
 * Applies what the processor said to an attempt, once: a later call (a
 * webhook, the recovery sweep) for an attempt already settled changes
 * nothing. Success books the money and queues the push-back to the PSA in
 * the same transaction.
 */
export async function recordOutcome (db: Knex, tenantId: string, attemptId: string, outcome: ChargeOutcome): Promise<ChargeResult> {
  return await db.transaction(async trx => {
    const row = await trx('payment_attempts').where({ tenant_id: tenantId, id: attemptId }).forUpdate().first() as AttemptRow | undefined
    if (row === undefined) throw new AppError('ATTEMPT_NOT_FOUND', `No payment attempt ${attemptId}.`)
    const current = toAttempt(row)
    const method = await trx('payment_methods').where({ tenant_id: tenantId, id: current.paymentMethodId }).first('type') as { type: 'card' | 'ach' }
    const settled = ['succeeded', 'failed', 'refunded', 'disputed'].includes(current.status)
    if (settled || (outcome.status === 'unknown' && current.status === 'processing')) {
      return current.status === 'failed'
        ? { outcome: 'failed' as const, attempt: current, verdict: classifyFailure({ method: method.type, code: current.failure.code, declineCode: current.failure.declineCode, adviceCode: current.failure.adviceCode }) }
        : { outcome: current.status === 'processing' ? 'processing' as const : current.status === 'succeeded' ? 'succeeded' as const : 'unknown' as const, attempt: current }
    }
    const update = async (fields: Record<string, unknown>): Promise<PaymentAttempt> => {
      const [next] = await trx('payment_attempts').where({ tenant_id: tenantId, id: attemptId }).update({ ...fields, updated_at: trx.fn.now() }).returning('*') as AttemptRow[]
      return toAttempt(next as AttemptRow)
    }
    if (outcome.status === 'unknown') return { outcome: 'unknown' as const, attempt: await update({ status: 'unknown', failure_message: outcome.error.slice(0, 500) }) }
    if (outcome.status === 'processing') return { outcome: 'processing' as const, attempt: await update({ status: 'processing', processor_intent_ref: outcome.intentId }) }
    if (outcome.status === 'failed') {
      const verdict = classifyFailure({ method: method.type, code: outcome.failure.code, declineCode: outcome.failure.declineCode, adviceCode: outcome.failure.adviceCode })
      const attempt = await update({
        status: 'failed',
        processor_intent_ref: outcome.intentId,
        failure_code: outcome.failure.code,
        decline_code: outcome.failure.declineCode,
        advice_code: outcome.failure.adviceCode,
        failure_class: verdict.class,
        failure_message: outcome.failure.message.slice(0, 500)
      })
      return { outcome: 'failed' as const, attempt, verdict }
    }
    // Succeeded: the attempt, the invoice and the ledger move together.
    const attempt = await update({ status: 'succeeded', processor_intent_ref: outcome.intentId, settled_at: trx.fn.now() })
    const invoice = await trx('invoices').where({ tenant_id: tenantId, id: current.invoiceId }).forUpdate().first() as InvoiceForCharge
    const paidViaSettle = Number(invoice.paid_via_settle) + attempt.amount.amount
    const open = openBalance({ ...invoice, paid_via_settle: paidViaSettle })
    await trx('invoices').where({ tenant_id: tenantId, id: invoice.id }).update({
      paid_via_settle: paidViaSettle,
      status: invoiceStatus(open, Number(invoice.ledger_billed), invoice.voided, invoice.status),
      updated_at: trx.fn.now()
    })
    await applyPaymentToPlan(trx, tenantId, { invoiceId: invoice.id, partId: attempt.installmentPartId, attemptId: attempt.id, openAfter: open })
    // The surcharge is collected with the payment but is income of its own, never applied to the invoice.
    const gross: Money = add(attempt.amount, attempt.surcharge)
    const postings: PostingInput[] = [
      { account: Accounts.processorPending(PROCESSOR), amount: gross },
      { account: Accounts.receivable(invoice.customer_id), amount: negate(attempt.amount) }
    ]
    if (attempt.surcharge.amount > 0) postings.push({ account: Accounts.surchargeIncome(), amount: negate(attempt.surcharge) })
    const fee = outcome.fee
    if (fee !== null && fee.amount > 0) {
      postings.push(
        { account: Accounts.processorFees(), amount: { amount: fee.amount, currency: asCurrency(fee.currency) } },
        { account: Accounts.processorPending(PROCESSOR), amount: { amount: -fee.amount, currency: asCurrency(fee.currency) } }
      )
    }
    await postEntry(trx, tenantId, {
      idempotencyKey: `payment:${attempt.id}:succeeded`,
      kind: 'payment.succeeded',
      effectiveAt: new Date(),
      memo: `${method.type === 'ach' ? 'ACH debit' : 'Card payment'} for invoice ${invoice.number}`,
      postings,
      source: { processor: PROCESSOR, intent: outcome.intentId, attempt: attempt.id }
    }, {
      effects: [{
        queue: 'psa.push-payment',
        dedupeKey: `push:${attempt.id}`,
        payload: {
          system: invoice.psa_system,
          invoiceExternalId: invoice.psa_invoice_id,
          amount: attempt.amount.amount,
          currency: attempt.amount.currency,
          paidOn: new Date().toISOString().slice(0, 10),
          reference: attempt.id,
          method: method.type,
          settlesInvoice: open <= 0
        }
      }, { queue: 'qbo.post-payment', dedupeKey: `qbo-payment:${attempt.id}`, payload: { attemptId: attempt.id } }]
    })
    return { outcome: 'succeeded' as const, attempt }
  })
}

/**
 * The exact request for an attempt. Rebuilt identically when resolving an
 * unknown outcome, because the processor replays a key only for the same
 * parameters.
 */
export function chargeInputFor (attempt: PaymentAttempt, method: Pick<PaymentMethod, 'processorCustomerRef' | 'processorMethodRef'>, invoiceNumber: string): ChargeInput {
  // Surcharge wording only when there is one: an unsurcharged request stays exactly what it was before surcharges existed.
  const surcharged = attempt.surcharge.amount > 0
  return {
    customerRef: method.processorCustomerRef,
    methodRef: method.processorMethodRef,
    amount: add(attempt.amount, attempt.surcharge),
    idempotencyKey: idempotencyKeyFor(attempt.id),
    description: surcharged
      ? `Invoice ${invoiceNumber}: ${formatMoney(attempt.amount)} + ${formatMoney(attempt.surcharge)} credit card surcharge`
      : `Invoice ${invoiceNumber}`,
    metadata: {
      settle_attempt_id: attempt.id,
      settle_invoice_id: attempt.invoiceId,
      settle_tenant_id: attempt.tenantId,
      invoice_number: invoiceNumber,
      ...(surcharged ? { invoice_amount: toDecimalString(attempt.amount), card_surcharge: toDecimalString(attempt.surcharge) } : {})
    }
  }
}

/**
 * After a failed scheduled charge: queue the next retry the policy allows,
 * counted over every attempt on the invoice, or leave the attempt as the
 * last word (its failure class says whether the client must act).
 */
export async function scheduleRetry (db: Knex, attempt: PaymentAttempt, methodType: 'card' | 'ach', policy: RetryPolicy = DEFAULT_RETRY_POLICY): Promise<RetryDecision> {
  const history = await db('payment_attempts').where({ tenant_id: attempt.tenantId, invoice_id: attempt.invoiceId }).orderBy('created_at') as AttemptRow[]
  const chainStart = attempt.retryOf === null ? attempt : toAttempt(history.find(r => r.id === attempt.retryOf) ?? (history[0] as AttemptRow))
  const decision = decideRetry({
    failure: { method: methodType, code: attempt.failure.code, declineCode: attempt.failure.declineCode, adviceCode: attempt.failure.adviceCode },
    firstFailedAt: chainStart.updatedAt,
    failedAt: attempt.updatedAt,
    retriesSoFar: attempt.retryNumber,
    attemptTimes: history.map(r => r.created_at)
  }, policy)
  if (decision.retry) {
    await enqueue(db, attempt.tenantId, [{
      queue: 'payments.retry',
      payload: { attemptId: attempt.id, firstAttemptId: chainStart.id },
      runAt: decision.at,
      dedupeKey: `retry:${attempt.id}`,
      maxAttempts: 3
    }])
  }
  return decision
}

/** Queues a look-up at the processor for an attempt whose outcome is unknown. */
export async function scheduleResolution (db: Knex, attempt: PaymentAttempt, delayMs = 60_000): Promise<void> {
  await enqueue(db, attempt.tenantId, [{ queue: 'payments.resolve', payload: { attemptId: attempt.id }, runAt: new Date(Date.now() + delayMs), dedupeKey: `resolve:${attempt.id}:${attempt.updatedAt.toISOString()}` }])
}
