import type { Knex } from 'knex'
import { closePendingJob, enqueue, type JobInput } from '../db/jobs.js'
import { postEntry } from '../db/ledger.js'
import { isoDate, openBalance } from '../db/invoices.js'
import { applyPaymentToPlan, failPart } from '../db/installments.js'
import { allocationsOf, attemptInFlightOn, attemptTimesOn, getPaymentMethod, toAttempt, type AttemptRow, type PaymentAttempt, type PaymentMethod } from '../db/payments.js'
import { pgError } from '../db/knex.js'
import { getTenantSurcharge, isUuid, requireTenantId } from '../db/tenants.js'
import { allocateOldestFirst, type Allocation } from '../domain/allocation.js'
import { AppError } from '../errors.js'
import { invoiceStatus, type InvoiceStatus } from '../domain/invoice-sync.js'
import { Accounts, type PostingInput } from '../domain/ledger.js'
import { add, asCurrency, formatMoney, negate, toDecimalString, type Money } from '../domain/money.js'
import { chargeAllowedFrom, classifyFailure, decideRetry, DEFAULT_RETRY_POLICY, type FailureVerdict, type RetryDecision, type RetryPolicy } from '../domain/retry-policy.js'
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

/** When an attempt whose process died before recording an outcome is resolved: one processor timeout after it was written. */
export const RECOVER_AFTER_MS = 30_000

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
  const amount = checkedAmount(input.amount ?? open)
  if (amount > open) {
    throw new AppError('AMOUNT_EXCEEDS_BALANCE', `${(amount / 100).toFixed(2)} is more than the ${(open / 100).toFixed(2)} open on invoice ${invoice.number}; charge at most the balance.`)
  }
  const method = await methodOfClient(db, tenantId, input.paymentMethodId, invoice.customer_id)
  const charged: Money = { amount, currency: asCurrency(invoice.currency) }
  return { amount: charged, method, quote: await surchargeOn(db, tenantId, invoice.customer_id, method, charged, input.trigger) }
}

function checkedAmount (amount: number): number {
  if (!Number.isSafeInteger(amount) || amount <= 0) throw new AppError('INVALID_AMOUNT', 'The amount must be a positive number of cents.')
  return amount
}

async function methodOfClient (db: Knex, tenantId: string, paymentMethodId: string, customerId: string): Promise<PaymentMethod> {
  const method = await getPaymentMethod(db, tenantId, paymentMethodId)
  if (method.customerId !== customerId) throw new AppError('PAYMENT_METHOD_NOT_FOUND', 'That payment method belongs to another client.')
  return method
}

/** The tenant's surcharge rule applied to one charge of `amount` on this client's method. */
async function surchargeOn (db: Knex, tenantId: string, customerId: string, method: PaymentMethod, amount: Money, trigger?: ChargeTrigger): Promise<SurchargeQuote> {
  const settings = await getTenantSurcharge(db, tenantId)
  const customer = await db('customers').where({ tenant_id: tenantId, id: customerId }).first('billing_state') as { billing_state: string | null } | undefined
  const unattended = trigger === 'autopay' || trigger === 'retry' || trigger === 'installment'
  return surchargeFor({ ...settings, billingState: customer?.billing_state ?? null, method: { type: method.type, funding: method.funding }, amount, unattended })
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
  checkExpectedSurcharge(request.expectedSurcharge)
  return await runAttempt(db, payments, request.tenantId, async () => [request.invoiceId], async trx => {
    // The invoice row lock serialises concurrent clicks; the unique in-flight index is the backstop.
    const invoice = await trx('invoices').where({ tenant_id: request.tenantId, id: request.invoiceId }).forUpdate().first() as InvoiceForCharge | undefined
    if (invoice === undefined) throw new AppError('INVOICE_NOT_FOUND', 'That invoice is not in Settle; sync the PSA and try again.')
    const inFlight = await attemptInFlightOn(trx, request.tenantId, [invoice.id])
    if (inFlight !== undefined) return { alreadyProcessing: inFlight }
    const { amount, method, quote } = await priceCharge(trx, request.tenantId, invoice, request)
    await checkChargeCap(trx, request.tenantId, [invoice])
    confirmSurcharge(request.expectedSurcharge, quote)
    return {
      method,
      invoiceNumbers: [invoice.number],
      allocations: null,
      row: {
        invoice_id: invoice.id,
        customer_id: invoice.customer_id,
        amount: amount.amount,
        surcharge_amount: quote.surcharge.amount,
        currency: invoice.currency,
        trigger: request.trigger,
        actor: request.actor,
        retry_of: request.retryOf ?? null,
        retry_number: request.retryNumber ?? 0,
        installment_part_id: request.installmentPartId ?? null
      }
    }
  })
}

/**
 * No invoice is charged more than the cap in its window (15 in 30 days),
 * whoever starts the charge: auto-pay, retries, installments, a technician
 * or the client. Checked under the invoices' row locks.
 */
async function checkChargeCap (trx: Knex.Transaction, tenantId: string, invoices: ReadonlyArray<Pick<InvoiceForCharge, 'id' | 'number'>>, policy: RetryPolicy = DEFAULT_RETRY_POLICY): Promise<void> {
  for (const invoice of invoices) {
    const times = await attemptTimesOn(trx, tenantId, invoice.id, policy.capWindowDays)
    const from = chargeAllowedFrom(times, new Date(), policy)
    if (from !== null) {
      throw new AppError('CHARGE_LIMIT_REACHED', `Invoice ${invoice.number} has had ${times.length} payment attempts in the last ${policy.capWindowDays} days, the most Settle makes (card networks penalise more). Nothing was charged; it can be charged again from ${from.toISOString().slice(0, 10)}, or collect it another way (a check, a bank transfer).`)
    }
  }
}

function checkExpectedSurcharge (expected: number | undefined): void {
  if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) throw new AppError('INVALID_AMOUNT', 'The expected surcharge must be a whole number of cents, zero or more.')
}

/** The settings changed between the quote and the click: the person confirms the new total first. */
function confirmSurcharge (expected: number | undefined, quote: SurchargeQuote): void {
  if (expected !== undefined && expected !== quote.surcharge.amount) {
    throw new AppError('QUOTE_CHANGED', `The card surcharge is now ${formatMoney(quote.surcharge)}, not the ${formatMoney({ amount: expected, currency: quote.surcharge.currency })} shown. ${quote.reason} Nothing was charged; show the new total and confirm again.`)
  }
}

type AttemptPlan =
  | { alreadyProcessing: PaymentAttempt }
  | { method: PaymentMethod, invoiceNumbers: string[], allocations: Allocation[] | null, row: Record<string, unknown> }

/**
 * The one way a charge happens: `plan` checks and prices it under the
 * invoices' row locks, the attempt (with what it pays) is committed, and only
 * then is the processor called with the attempt's idempotency key. A unique
 * violation means another click won the race on one of the invoices
 * (`racedOn`, asked only then): its attempt is the answer.
 */
async function runAttempt (db: Knex, payments: PaymentsPort, tenantId: string, racedOn: () => Promise<readonly string[]>, plan: (trx: Knex.Transaction) => Promise<AttemptPlan>): Promise<ChargeResult> {
  let started: { alreadyProcessing: PaymentAttempt } | { attempt: PaymentAttempt, method: PaymentMethod, invoiceNumbers: string[] }
  try {
    started = await db.transaction(async trx => {
      const planned = await plan(trx)
      if ('alreadyProcessing' in planned) return planned
      const [row] = await trx('payment_attempts').insert({ tenant_id: tenantId, payment_method_id: planned.method.id, ...planned.row }).returning('*') as AttemptRow[]
      const attempt = toAttempt(row as AttemptRow)
      // Committed with the attempt: if this process dies before it hears from the processor, any worker resends
      // the same request (same idempotency key) within the minute, instead of the sweep finding it minutes later.
      await enqueue(trx, tenantId, [{ queue: 'payments.resolve', payload: { attemptId: attempt.id }, runAt: new Date(Date.now() + RECOVER_AFTER_MS), dedupeKey: `recover:${attempt.id}`, maxAttempts: 5 }])
      if (planned.allocations !== null) {
        await trx('payment_attempt_allocations').insert(planned.allocations.map((a, position) => ({
          tenant_id: tenantId, attempt_id: attempt.id, invoice_id: a.invoiceId, position, amount: a.amount, currency: attempt.amount.currency, in_flight: true
        })))
      }
      return { attempt, method: planned.method, invoiceNumbers: planned.invoiceNumbers }
    })
  } catch (error) {
    if (pgError(error).code !== '23505') throw error
    const winner = await attemptInFlightOn(db, tenantId, await racedOn())
    if (winner === undefined) throw new AppError('PAYMENT_IN_PROGRESS', 'Another payment on these invoices just finished; reload to see it before charging again.')
    started = { alreadyProcessing: winner }
  }
  if ('alreadyProcessing' in started) return { outcome: 'already_processing', attempt: started.alreadyProcessing }
  const { attempt, method, invoiceNumbers } = started
  // Whatever goes wrong on the way to the processor, the attempt exists: the person is told it is being checked, never that it failed.
  const outcome = await payments.charge(chargeInputFor(attempt, method, invoiceNumbers))
    .catch((error: unknown): ChargeOutcome => ({ status: 'unknown', error: error instanceof Error ? error.message : String(error) }))
  const result = await recordOutcome(db, tenantId, attempt.id, outcome)
  await followUp(db, result, method.type)
  return result
}

export interface StatementChargeRequest {
  tenantId: string
  customerId: string
  paymentMethodId: string
  /** The invoices to pay; by default every open invoice of the client. */
  invoiceIds?: readonly string[]
  /** Cents; defaults to everything open on those invoices. Applied oldest due first. */
  amount?: number
  actor: string
  /** A person asked: a technician (`charge_card`) or the client on the pay page (`checkout`). */
  trigger: 'charge_card' | 'checkout'
  expectedSurcharge?: number
}

/** What a statement payment would take and where each cent goes, for the confirm step. */
export interface StatementQuote extends ChargeQuote {
  allocations: Array<{ invoiceId: string, number: string, dueOn: string | null, open: Money, applied: Money }>
}

interface StatementInvoice extends InvoiceForCharge { due_on: Date | string | null, issued_on: Date | string | null, kind: string }

/**
 * Prices a statement payment: the client's open invoices (or the ones
 * chosen), the amount spread oldest due first, and the surcharge on the
 * whole. `lock` takes the invoices' row locks (in id order, so two
 * statements over the same invoices queue instead of deadlocking).
 */
async function priceStatement (db: Knex, request: Omit<StatementChargeRequest, 'actor' | 'trigger'> & { trigger?: ChargeTrigger }, lock: boolean): Promise<{ method: PaymentMethod, invoices: StatementInvoice[], allocations: Allocation[], amount: Money, quote: SurchargeQuote }> {
  const { tenantId, customerId } = request
  if (!isUuid(customerId)) throw new AppError('CUSTOMER_NOT_FOUND', 'That client is not in Settle; sync the PSA and try again.')
  const chosen = request.invoiceIds === undefined ? null : [...new Set(request.invoiceIds)]
  if (chosen !== null && (chosen.length === 0 || !chosen.every(isUuid))) throw new AppError('VALIDATION_FAILED', 'Choose at least one invoice, by its Settle id.')
  const query = db('invoices').where({ tenant_id: tenantId, customer_id: customerId }).orderBy('id')
  if (chosen !== null) void query.whereIn('id', chosen)
  const rows = await (lock ? query.forUpdate() : query) as StatementInvoice[]
  if (chosen !== null && rows.length !== chosen.length) throw new AppError('INVOICE_NOT_FOUND', 'One of the chosen invoices is not this client\'s (or not in Settle); reload the list and choose again.')
  const owing = rows.filter(r => !r.voided && r.kind !== 'credit_memo' && openBalance(r) > 0)
  if (chosen !== null) {
    const settled = rows.find(r => !owing.includes(r))
    if (settled !== undefined) throw new AppError('NOTHING_TO_CHARGE', `Invoice ${settled.number} has nothing open to charge; leave it out.`)
  }
  if (owing.length === 0) throw new AppError('NOTHING_TO_CHARGE', 'This client has no open invoices to pay.')
  const currencies = new Set(owing.map(r => r.currency))
  if (currencies.size > 1) throw new AppError('CURRENCY_MISMATCH', `This client owes in ${[...currencies].sort().join(' and ')}; choose invoices in one currency for each payment.`)
  const currency = asCurrency(owing[0]?.currency as string)
  const open = owing.map(r => ({ id: r.id, number: r.number, dueOn: isoDate(r.due_on), issuedOn: isoDate(r.issued_on), open: openBalance(r) }))
  const totalOpen = open.reduce((sum, i) => sum + i.open, 0)
  const amount = checkedAmount(request.amount ?? totalOpen)
  const allocations = allocateOldestFirst(open, amount)
  if (allocations === null) {
    throw new AppError('AMOUNT_EXCEEDS_BALANCE', `${formatMoney({ amount, currency })} is more than the ${formatMoney({ amount: totalOpen, currency })} open on these invoices; charge at most what is owed.`)
  }
  const method = await methodOfClient(db, tenantId, request.paymentMethodId, customerId)
  const charged: Money = { amount, currency }
  return { method, invoices: owing, allocations, amount: charged, quote: await surchargeOn(db, tenantId, customerId, method, charged, request.trigger) }
}

/** What a statement payment would take, for the screen where a person confirms it. */
export async function quoteStatement (db: Knex, request: Omit<StatementChargeRequest, 'actor' | 'trigger' | 'expectedSurcharge'>): Promise<StatementQuote> {
  requireTenantId(request.tenantId)
  const { invoices, allocations, amount, quote } = await priceStatement(db, request, false)
  const byId = new Map(invoices.map(i => [i.id, i]))
  return {
    amount,
    surcharge: quote.surcharge,
    total: add(amount, quote.surcharge),
    surchargeReason: quote.reason,
    allocations: allocations.map(a => {
      const invoice = byId.get(a.invoiceId) as StatementInvoice
      return { invoiceId: a.invoiceId, number: invoice.number, dueOn: isoDate(invoice.due_on), open: { amount: openBalance(invoice), currency: amount.currency }, applied: { amount: a.amount, currency: amount.currency } }
    })
  }
}

/**
 * One charge over several of a client's invoices (a statement payment),
 * applied oldest due first. It is one attempt with one idempotency key; its
 * allocations say what each invoice gets, and the database allows it only
 * while no other payment is in flight on any of them.
 */
export async function chargeStatement (db: Knex, payments: PaymentsPort, request: StatementChargeRequest): Promise<ChargeResult> {
  requireTenantId(request.tenantId)
  checkExpectedSurcharge(request.expectedSurcharge)
  // The invoices chosen, or by default any of the client's.
  const racedOn = async (): Promise<readonly string[]> => request.invoiceIds ?? await db('invoices').where({ tenant_id: request.tenantId, customer_id: request.customerId }).pluck('id') as string[]
  return await runAttempt(db, payments, request.tenantId, racedOn, async trx => {
    const { method, invoices, allocations, amount, quote } = await priceStatement(trx, request, true)
    const inFlight = await attemptInFlightOn(trx, request.tenantId, allocations.map(a => a.invoiceId))
    if (inFlight !== undefined) return { alreadyProcessing: inFlight }
    await checkChargeCap(trx, request.tenantId, invoices.filter(i => allocations.some(a => a.invoiceId === i.id)))
    confirmSurcharge(request.expectedSurcharge, quote)
    const numbers = new Map(invoices.map(i => [i.id, i.number]))
    return {
      method,
      invoiceNumbers: allocations.map(a => numbers.get(a.invoiceId) as string),
      allocations,
      row: {
        invoice_id: null,
        customer_id: request.customerId,
        amount: amount.amount,
        surcharge_amount: quote.surcharge.amount,
        currency: amount.currency,
        trigger: request.trigger,
        actor: request.actor
      }
    }
  })
}

/**
 * What happens after an outcome, however it arrived (our call, a webhook,
 * the recovery sweep): an unknown outcome is looked up later; a failed
 * scheduled collection retries by policy. A person who clicked Charge card
 * sees the decline and decides, so their attempts are not retried; nor are
 * statement payments, which only a person (technician or client) starts.
 */
export async function followUp (db: Knex, result: ChargeResult, methodType: 'card' | 'ach'): Promise<void> {
  if (result.outcome === 'unknown') await scheduleResolution(db, result.attempt)
  if (result.outcome === 'failed' && result.attempt.trigger !== 'charge_card' && result.attempt.invoiceId !== null) {
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
    // The processor answered: the crash recovery committed with the attempt has nothing left to do.
    await closePendingJob(trx, tenantId, 'payments.resolve', `recover:${attemptId}`)
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
    // Each invoice the attempt pays, locked in id order (as a statement charge locks them).
    const allocations = await allocationsOf(trx, tenantId, attempt.id)
    const invoices = await trx('invoices').where({ tenant_id: tenantId }).whereIn('id', allocations.map(a => a.invoiceId)).orderBy('id').forUpdate() as InvoiceForCharge[]
    const paidOn = new Date().toISOString().slice(0, 10)
    const statement = attempt.invoiceId === null
    const effects: JobInput[] = []
    for (const allocation of allocations) {
      const invoice = invoices.find(i => i.id === allocation.invoiceId) as InvoiceForCharge
      const paidViaSettle = Number(invoice.paid_via_settle) + allocation.amount
      const open = openBalance({ ...invoice, paid_via_settle: paidViaSettle })
      await trx('invoices').where({ tenant_id: tenantId, id: invoice.id }).update({
        paid_via_settle: paidViaSettle,
        status: invoiceStatus(open, Number(invoice.ledger_billed), invoice.voided, invoice.status),
        updated_at: trx.fn.now()
      })
      if (!statement) await applyPaymentToPlan(trx, tenantId, { invoiceId: invoice.id, partId: attempt.installmentPartId, attemptId: attempt.id, openAfter: open })
      effects.push({
        queue: 'psa.push-payment',
        dedupeKey: `push:${pushReference(attempt, invoice.id)}`,
        payload: {
          system: invoice.psa_system,
          invoiceExternalId: invoice.psa_invoice_id,
          amount: allocation.amount,
          currency: attempt.amount.currency,
          paidOn,
          reference: pushReference(attempt, invoice.id),
          method: method.type,
          settlesInvoice: open <= 0
        }
      })
    }
    // The surcharge is collected with the payment but is income of its own, never applied to the invoice.
    const gross: Money = add(attempt.amount, attempt.surcharge)
    const postings: PostingInput[] = [
      { account: Accounts.processorPending(PROCESSOR), amount: gross },
      { account: Accounts.receivable(attempt.customerId), amount: negate(attempt.amount) }
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
      memo: `${method.type === 'ach' ? 'ACH debit' : 'Card payment'} for ${invoiceLabel(allocations.map(a => a.invoiceNumber))}`,
      postings,
      source: { processor: PROCESSOR, intent: outcome.intentId, attempt: attempt.id }
    }, {
      effects: [...effects, { queue: 'qbo.post-payment', dedupeKey: `qbo-payment:${attempt.id}`, payload: { attemptId: attempt.id } }]
    })
    return { outcome: 'succeeded' as const, attempt }
  })
}

/**
 * The exact request for an attempt. Rebuilt identically when resolving an
 * unknown outcome, because the processor replays a key only for the same
 * parameters.
 */
export function chargeInputFor (attempt: PaymentAttempt, method: Pick<PaymentMethod, 'processorCustomerRef' | 'processorMethodRef'>, invoiceNumbers: readonly string[]): ChargeInput {
  // Surcharge wording only when there is one: an unsurcharged request stays exactly what it was before surcharges existed.
  const surcharged = attempt.surcharge.amount > 0
  const what = capitalised(invoiceLabel(invoiceNumbers))
  return {
    customerRef: method.processorCustomerRef,
    methodRef: method.processorMethodRef,
    amount: add(attempt.amount, attempt.surcharge),
    idempotencyKey: idempotencyKeyFor(attempt.id),
    description: surcharged
      ? `${what}: ${formatMoney(attempt.amount)} + ${formatMoney(attempt.surcharge)} credit card surcharge`
      : what,
    metadata: {
      settle_attempt_id: attempt.id,
      ...(attempt.invoiceId === null ? {} : { settle_invoice_id: attempt.invoiceId }),
      settle_tenant_id: attempt.tenantId,
      // Stripe keeps at most 500 characters of a metadata value.
      ...(invoiceNumbers.length === 1 ? { invoice_number: invoiceNumbers[0] as string } : { invoice_numbers: truncate(invoiceNumbers.join(', '), 500) }),
      ...(surcharged ? { invoice_amount: toDecimalString(attempt.amount), card_surcharge: toDecimalString(attempt.surcharge) } : {})
    }
  }
}

/** "invoice 1001", or for a statement "invoices 1001, 1002 and 1003" (the first ten, then a count). */
export function invoiceLabel (numbers: readonly string[]): string {
  if (numbers.length === 1) return `invoice ${numbers[0] as string}`
  const shown = numbers.length > 10 ? [...numbers.slice(0, 10), `${numbers.length - 10} more`] : [...numbers]
  return `invoices ${shown.slice(0, -1).join(', ')} and ${shown[shown.length - 1] as string}`
}

export const capitalised = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1)

const truncate = (text: string, max: number): string => text.length <= max ? text : `${text.slice(0, max - 1)}…`

/**
 * Our reference for the payment recorded in the PSA: the attempt id, and for
 * a statement payment (one PSA payment per invoice) the invoice too.
 */
export const pushReference = (attempt: Pick<PaymentAttempt, 'id' | 'invoiceId'>, invoiceId: string): string =>
  attempt.invoiceId === null ? `${attempt.id}:${invoiceId}` : attempt.id

/** The invoice numbers an attempt pays, in order of application: what its charge request names. */
export async function invoiceNumbersOf (db: Knex, attempt: PaymentAttempt): Promise<string[]> {
  return (await allocationsOf(db, attempt.tenantId, attempt.id)).map(a => a.invoiceNumber)
}

/**
 * After a failed scheduled charge: queue the next retry the policy allows,
 * counted over every attempt on the invoice, or leave the attempt as the
 * last word (its failure class says whether the client must act).
 */
export async function scheduleRetry (db: Knex, attempt: PaymentAttempt, methodType: 'card' | 'ach', policy: RetryPolicy = DEFAULT_RETRY_POLICY): Promise<RetryDecision> {
  const invoiceId = attempt.invoiceId as string
  const chainStart = attempt.retryOf === null
    ? attempt
    : await db('payment_attempts').where({ tenant_id: attempt.tenantId, id: attempt.retryOf }).first().then((row: AttemptRow | undefined) => row === undefined ? attempt : toAttempt(row))
  const decision = decideRetry({
    failure: { method: methodType, code: attempt.failure.code, declineCode: attempt.failure.declineCode, adviceCode: attempt.failure.adviceCode },
    firstFailedAt: chainStart.updatedAt,
    failedAt: attempt.updatedAt,
    retriesSoFar: attempt.retryNumber,
    attemptTimes: await attemptTimesOn(db, attempt.tenantId, invoiceId, policy.capWindowDays * 2)
  }, policy)
  if (decision.retry) {
    // One retry schedule per invoice: while one is pending (from whatever failure), the database skips this one.
    await enqueue(db, attempt.tenantId, [{
      queue: 'payments.retry',
      payload: { attemptId: attempt.id, firstAttemptId: chainStart.id, invoiceId },
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
