import type { Knex } from 'knex'
import { openBalance } from '../db/invoices.js'
import { postEntry } from '../db/ledger.js'
import { allocationsOf, type AttemptAllocation } from '../db/payments.js'
import type { JobInput } from '../db/jobs.js'
import { requireTenantId } from '../db/tenants.js'
import { returnNewestFirst } from '../domain/allocation.js'
import { invoiceLabel, pushReference } from './charge.js'
import { AppError } from '../errors.js'
import { invoiceStatus, type InvoiceStatus } from '../domain/invoice-sync.js'
import { Accounts, type PostingInput } from '../domain/ledger.js'
import { asCurrency, toDecimalString, zero } from '../domain/money.js'
import { splitReturned } from '../domain/surcharge.js'
import type { PaymentsPort, RefundOutcome } from '../ports/payments.js'

export interface RefundRequest {
  tenantId: string
  attemptId: string
  /** Cents; defaults to everything not yet refunded. */
  amount?: number
  reason: string
  /** The member who gave the money back. */
  actor: string
}

/**
 * Gives money back on a payment Settle collected. The refund is written
 * before Stripe is called and its id is the idempotency key; refunds can
 * never add up to more than was collected (the payment row is locked while
 * checking). Once Stripe accepts it, the money leaves the processor account
 * and the client owes it again on the invoice, which reopens; the PSA is
 * re-stated in the same transaction's outbox (the pushed payment taken out,
 * what remains pushed again). A card surcharge is refundable with the rest:
 * each refund is split between the invoice and the surcharge pro rata, and
 * only the invoice's share reopens the invoice.
 */
export async function refundPayment (db: Knex, payments: PaymentsPort, request: RefundRequest): Promise<{ outcome: RefundOutcome['status'], refundId: string }> {
  requireTenantId(request.tenantId)
  if (request.reason.trim() === '') throw new AppError('VALIDATION_FAILED', 'Say why the money is going back; it is kept with the refund.')
  const started = await db.transaction(async trx => {
    const attempt = await trx('payment_attempts').where({ tenant_id: request.tenantId, id: request.attemptId }).forUpdate().first() as
      { id: string, status: string, amount: number, surcharge_amount: number | string, currency: string, processor_intent_ref: string | null } | undefined
    if (attempt === undefined) throw new AppError('ATTEMPT_NOT_FOUND', `No payment ${request.attemptId} for this tenant.`)
    if (attempt.status !== 'succeeded' || attempt.processor_intent_ref === null) throw new AppError('REFUND_NOT_ALLOWED', `Only a completed payment can be refunded; this one is ${attempt.status}.`)
    const [given] = await trx('payment_refunds').where({ tenant_id: request.tenantId, attempt_id: attempt.id }).whereNot({ status: 'failed' }).sum({ total: 'amount' }) as Array<{ total: number | string | null }>
    const remaining = Number(attempt.amount) + Number(attempt.surcharge_amount) - Number(given?.total ?? 0)
    const amount = request.amount ?? remaining
    if (!Number.isSafeInteger(amount) || amount <= 0) throw new AppError('INVALID_AMOUNT', 'The refund must be a positive number of cents.')
    if (amount > remaining) {
      throw new AppError('REFUND_NOT_ALLOWED', `${toDecimalString({ amount, currency: asCurrency(attempt.currency) })} is more than the ${toDecimalString({ amount: remaining, currency: asCurrency(attempt.currency) })} left to refund on this payment.`)
    }
    const [row] = await trx('payment_refunds').insert({ tenant_id: request.tenantId, attempt_id: attempt.id, amount, currency: attempt.currency, reason: request.reason, actor: request.actor }).returning('id') as Array<{ id: string }>
    return { refundId: (row as { id: string }).id, intentId: attempt.processor_intent_ref, amount, currency: asCurrency(attempt.currency), remainingAfter: remaining - amount }
  })
  const outcome = await payments.refund({
    intentId: started.intentId,
    amount: { amount: started.amount, currency: started.currency },
    idempotencyKey: `settle_refund_${started.refundId}`,
    metadata: { settle_refund_id: started.refundId, settle_attempt_id: request.attemptId }
  })
  await db.transaction(async trx => {
    if (outcome.status === 'failed' || outcome.status === 'unknown') {
      // Unknown: kept as such for a person (re-sending with the same key is safe); nothing is booked.
      await trx('payment_refunds').where({ tenant_id: request.tenantId, id: started.refundId })
        .update({ status: outcome.status, failure_message: outcome.status === 'failed' ? outcome.message : outcome.error, processor_refund_ref: outcome.status === 'failed' ? outcome.refundId : null })
      return
    }
    await trx('payment_refunds').where({ tenant_id: request.tenantId, id: started.refundId }).update({ status: 'succeeded', processor_refund_ref: outcome.refundId })
    const attempt = await trx('payment_attempts').where({ tenant_id: request.tenantId, id: request.attemptId }).forUpdate().first() as
      { id: string, invoice_id: string | null, customer_id: string, payment_method_id: string, amount: number | string, surcharge_amount: number | string }
    const money = { amount: started.amount, currency: started.currency }
    // Split on the running total of refunds booked so far, so the parts end exactly at the amount and the surcharge.
    const [booked] = await trx('payment_refunds').where({ tenant_id: request.tenantId, attempt_id: request.attemptId, status: 'succeeded' })
      .whereNot({ id: started.refundId }).sum({ total: 'amount' }) as Array<{ total: number | string | null }>
    const before = { amount: Number(booked?.total ?? 0), currency: started.currency }
    const charged = { amount: { amount: Number(attempt.amount), currency: started.currency }, surcharge: { amount: Number(attempt.surcharge_amount), currency: started.currency } }
    const share = splitReturned(charged, before, money)
    const invoiceShareBefore = splitReturned(charged, zero(started.currency), before).invoice.amount
    const postings: PostingInput[] = [
      { account: Accounts.receivable(attempt.customer_id), amount: share.invoice },
      { account: Accounts.surchargeIncome(), amount: share.surcharge },
      { account: Accounts.processorPending('stripe'), amount: { amount: -money.amount, currency: money.currency } }
    ]
    const method = await trx('payment_methods').where({ tenant_id: request.tenantId, id: attempt.payment_method_id }).first('type') as { type: string }
    const allocations = await allocationsOf(trx, request.tenantId, attempt.id)
    const reopened = await reopenInvoices(trx, request.tenantId, { id: attempt.id, invoiceId: attempt.invoice_id }, allocations, invoiceShareBefore, share.invoice.amount)
    if (started.remainingAfter === 0) await trx('payment_attempts').where({ tenant_id: request.tenantId, id: request.attemptId }).update({ status: 'refunded', updated_at: trx.fn.now() })
    await postEntry(trx, request.tenantId, {
      idempotencyKey: `refund:${started.refundId}`,
      kind: 'payment.refunded',
      effectiveAt: new Date(),
      memo: `Refund on ${invoiceLabel(allocations.map(a => a.invoiceNumber))}: ${request.reason}`,
      postings: postings.filter(p => p.amount.amount !== 0),
      source: { processor: 'stripe', refund: outcome.refundId, attempt: request.attemptId, actor: request.actor }
    }, {
      effects: [...restatements(reopened, { attemptId: request.attemptId, after: 'refund', sourceId: started.refundId, currency: started.currency, paidOn: new Date(), methodType: method.type }), {
        queue: 'qbo.post-reversal',
        dedupeKey: `qbo-reversal:refund:${started.refundId}`,
        payload: { sourceId: started.refundId, attemptId: request.attemptId, invoiceAmount: share.invoice.amount, surchargeAmount: share.surcharge.amount, currency: started.currency, why: 'refund' }
      }]
    })
  })
  return { outcome: outcome.status, refundId: started.refundId }
}

/**
 * The PSA jobs that re-state each reopened invoice: the attempt's pushed
 * payment taken out, and what of it stays paid pushed again (one job per
 * invoice, so the two steps never run out of order).
 */
export function restatements (reopened: readonly ReopenedInvoice[], why: { attemptId: string, after: 'refund' | 'dispute', sourceId: string, currency: string, paidOn: Date, methodType: string }): JobInput[] {
  return reopened.map(({ invoice, reference, stillPushed, open }) => ({
    queue: 'psa.restate-payment',
    dedupeKey: `restate:${reference}:${why.after}:${why.sourceId}`,
    payload: {
      system: invoice.psa_system,
      invoiceExternalId: invoice.psa_invoice_id,
      attemptId: why.attemptId,
      remainder: stillPushed,
      restatedReference: `${reference}:after-${why.after}:${why.sourceId}`,
      currency: why.currency,
      paidOn: why.paidOn.toISOString().slice(0, 10),
      method: why.methodType === 'ach' ? 'ach' : 'card',
      settlesInvoice: open <= 0
    }
  }))
}

export interface ReopenedInvoice {
  invoice: { id: string, number: string, psa_system: string, psa_invoice_id: string }
  /** Our PSA reference for the payment pushed to this invoice (`pushReference`). */
  reference: string
  /** Of this attempt's money, what stays applied to the invoice after this return. */
  stillPushed: number
  open: number
}

/**
 * Money an attempt collected comes back (refund, lost dispute): the
 * invoice share of it, `amount` after `alreadyReturned`, reopens the
 * invoices it paid (its `allocations`), the one paid last first. Each touched invoice is locked
 * and updated; what is returned says what the PSA must be re-told.
 */
export async function reopenInvoices (trx: Knex.Transaction, tenantId: string, attempt: { id: string, invoiceId: string | null }, allocations: readonly AttemptAllocation[], alreadyReturned: number, amount: number): Promise<ReopenedInvoice[]> {
  if (amount === 0) return []
  const returnedNow = returnNewestFirst(allocations, alreadyReturned, amount)
  const returnedInAll = returnNewestFirst(allocations, 0, alreadyReturned + amount)
  const invoices = await trx('invoices').where({ tenant_id: tenantId }).whereIn('id', returnedNow.map(r => r.invoiceId)).orderBy('id').forUpdate() as Array<{
    id: string, number: string, psa_system: string, psa_invoice_id: string, voided: boolean, status: InvoiceStatus, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number
  }>
  const reopened: ReopenedInvoice[] = []
  for (const returned of returnedNow) {
    const invoice = invoices.find(i => i.id === returned.invoiceId) as (typeof invoices)[number]
    const paidViaSettle = Number(invoice.paid_via_settle) - returned.amount
    const open = openBalance({ ...invoice, paid_via_settle: paidViaSettle })
    await trx('invoices').where({ tenant_id: tenantId, id: invoice.id }).update({
      paid_via_settle: paidViaSettle, status: invoiceStatus(open, Number(invoice.ledger_billed), invoice.voided, null), updated_at: trx.fn.now()
    })
    const allocated = allocations.find(a => a.invoiceId === invoice.id)?.amount ?? 0
    const returnedSoFar = returnedInAll.find(r => r.invoiceId === invoice.id)?.amount ?? 0
    reopened.push({ invoice, reference: pushReference(attempt, invoice.id), stillPushed: allocated - returnedSoFar, open })
  }
  return reopened
}
