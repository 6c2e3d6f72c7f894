import type { Db } from './knex.js'
import { isUuid, requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'
import { asCurrency, type Money } from '../domain/money.js'
import type { FailureClass, PaymentMethodType } from '../domain/retry-policy.js'

export interface PaymentMethod {
  id: string
  customerId: string
  processorCustomerRef: string
  processorMethodRef: string
  type: PaymentMethodType
  brand: string | null
  last4: string
  expMonth: number | null
  expYear: number | null
  funding: string | null
  isDefault: boolean
  status: 'active' | 'detached'
}

export interface MethodRow {
  id: string, customer_id: string, processor_customer_ref: string, processor_method_ref: string, type: PaymentMethodType, brand: string | null,
  last4: string, exp_month: number | null, exp_year: number | null, funding: string | null, is_default: boolean, status: 'active' | 'detached'
}

export const toMethod = (r: MethodRow): PaymentMethod => ({
  id: r.id,
  customerId: r.customer_id,
  processorCustomerRef: r.processor_customer_ref,
  processorMethodRef: r.processor_method_ref,
  type: r.type,
  brand: r.brand,
  last4: r.last4,
  expMonth: r.exp_month,
  expYear: r.exp_year,
  funding: r.funding,
  isDefault: r.is_default,
  status: r.status
})

/** Saves a method the processor holds; Settle keeps only its ids and what a person needs to recognise it. */
export async function savePaymentMethod (db: Db, tenantId: string, input: Omit<PaymentMethod, 'id' | 'status'>): Promise<PaymentMethod> {
  requireTenantId(tenantId)
  if (!/^\d{4}$/.test(input.last4)) throw new AppError('VALIDATION_FAILED', 'last4 must be four digits; Settle never stores full card or account numbers.')
  const [row] = await db('payment_methods').insert({
    tenant_id: tenantId,
    customer_id: input.customerId,
    processor_customer_ref: input.processorCustomerRef,
    processor_method_ref: input.processorMethodRef,
    type: input.type,
    brand: input.brand,
    last4: input.last4,
    exp_month: input.expMonth,
    exp_year: input.expYear,
    funding: input.funding,
    is_default: input.isDefault
  }).onConflict(['tenant_id', 'processor', 'processor_method_ref']).merge(['is_default', 'exp_month', 'exp_year', 'status'] as never).returning('*') as MethodRow[]
  return toMethod(row as MethodRow)
}

export async function getPaymentMethod (db: Db, tenantId: string, id: string): Promise<PaymentMethod> {
  requireTenantId(tenantId)
  const row = isUuid(id) ? await db('payment_methods').where({ tenant_id: tenantId, id }).first() as MethodRow | undefined : undefined
  if (row === undefined || row.status !== 'active') throw new AppError('PAYMENT_METHOD_NOT_FOUND', 'That payment method is not on file for this client.')
  return toMethod(row)
}

export async function listPaymentMethods (db: Db, tenantId: string, customerId: string): Promise<PaymentMethod[]> {
  const rows = await db('payment_methods').where({ tenant_id: requireTenantId(tenantId), customer_id: customerId, status: 'active' })
    .orderBy([{ column: 'is_default', order: 'desc' }, { column: 'created_at', order: 'desc' }]) as MethodRow[]
  return rows.map(toMethod)
}

export type AttemptStatus = 'created' | 'processing' | 'unknown' | 'succeeded' | 'failed' | 'refunded' | 'disputed'

export interface PaymentAttempt {
  id: string
  tenantId: string
  /** The invoice paid; null for a statement payment, whose invoices are its allocations (`allocationsOf`). */
  invoiceId: string | null
  customerId: string
  paymentMethodId: string
  amount: Money
  status: AttemptStatus
  trigger: string
  actor: string
  processorIntentRef: string | null
  failure: { code: string | null, declineCode: string | null, adviceCode: string | null, class: FailureClass | null, message: string | null }
  retryOf: string | null
  retryNumber: number
  /** Charged on top of `amount` (card surcharge); never applied to the invoice. */
  surcharge: Money
  installmentPartId: string | null
  createdAt: Date
  updatedAt: Date
}

export interface AttemptRow {
  id: string, tenant_id: string, invoice_id: string | null, customer_id: string, payment_method_id: string, amount: number, currency: string,
  status: AttemptStatus, trigger: string, actor: string, processor_intent_ref: string | null, failure_code: string | null, decline_code: string | null,
  advice_code: string | null, failure_class: FailureClass | null, failure_message: string | null, retry_of: string | null, retry_number: number,
  surcharge_amount: number | string, installment_part_id: string | null, created_at: Date, updated_at: Date
}

export const toAttempt = (r: AttemptRow): PaymentAttempt => ({
  id: r.id,
  tenantId: r.tenant_id,
  invoiceId: r.invoice_id,
  customerId: r.customer_id,
  paymentMethodId: r.payment_method_id,
  amount: { amount: Number(r.amount), currency: asCurrency(r.currency) },
  status: r.status,
  trigger: r.trigger,
  actor: r.actor,
  processorIntentRef: r.processor_intent_ref,
  failure: { code: r.failure_code, declineCode: r.decline_code, adviceCode: r.advice_code, class: r.failure_class, message: r.failure_message },
  retryOf: r.retry_of,
  retryNumber: r.retry_number,
  surcharge: { amount: Number(r.surcharge_amount ?? 0), currency: asCurrency(r.currency) },
  installmentPartId: r.installment_part_id ?? null,
  createdAt: r.created_at,
  updatedAt: r.updated_at
})

export async function getAttempt (db: Db, tenantId: string, id: string): Promise<PaymentAttempt> {
  const row = isUuid(id) ? await db<AttemptRow>('payment_attempts').where({ tenant_id: requireTenantId(tenantId), id }).first() : undefined
  if (row === undefined) throw new AppError('ATTEMPT_NOT_FOUND', `No payment attempt ${id} for this tenant.`)
  return toAttempt(row)
}

/** Every attempt that paid or tried to pay this invoice, statement payments included. */
export async function listAttempts (db: Db, tenantId: string, invoiceId: string): Promise<PaymentAttempt[]> {
  const rows = await db('payment_attempts as a')
    .join('payment_attempt_allocations as al', function () { this.on('al.tenant_id', 'a.tenant_id').andOn('al.attempt_id', 'a.id') })
    .where({ 'al.tenant_id': requireTenantId(tenantId), 'al.invoice_id': invoiceId }).orderBy('a.created_at').select('a.*') as AttemptRow[]
  return rows.map(toAttempt)
}

/** What an attempt pays: each invoice and how much of it, in the order it was applied. */
export interface AttemptAllocation {
  invoiceId: string
  invoiceNumber: string
  amount: number
  position: number
}

export async function allocationsOf (db: Db, tenantId: string, attemptId: string): Promise<AttemptAllocation[]> {
  return (await allocationsByAttempt(db, tenantId, [attemptId])).get(attemptId) ?? []
}

/** allocationsOf for many attempts in one query: attempt id → what it pays, in order. */
export async function allocationsByAttempt (db: Db, tenantId: string, attemptIds: readonly string[]): Promise<Map<string, AttemptAllocation[]>> {
  const byAttempt = new Map<string, AttemptAllocation[]>()
  if (attemptIds.length === 0) return byAttempt
  const rows = await db('payment_attempt_allocations as al')
    .join('invoices as i', function () { this.on('i.tenant_id', 'al.tenant_id').andOn('i.id', 'al.invoice_id') })
    .where('al.tenant_id', requireTenantId(tenantId)).whereIn('al.attempt_id', attemptIds)
    .orderBy(['al.attempt_id', 'al.position'])
    .select('al.attempt_id', 'al.invoice_id', 'i.number', 'al.amount', 'al.position') as Array<{ attempt_id: string, invoice_id: string, number: string, amount: number | string, position: number }>
  for (const r of rows) {
    const list = byAttempt.get(r.attempt_id) ?? []
    list.push({ invoiceId: r.invoice_id, invoiceNumber: r.number, amount: Number(r.amount), position: r.position })
    byAttempt.set(r.attempt_id, list)
  }
  return byAttempt
}

/** Why scheduled collection must leave an invoice alone: a plan collects it, a retry is scheduled, or a payment is in flight. */
export type CollectionUnderway = 'installments' | 'retrying' | 'in_flight'

/** Of these invoices, the ones some collection is already working on, and which. */
export async function collectionsUnderway (db: Db, tenantId: string, invoiceIds: readonly string[]): Promise<Map<string, CollectionUnderway>> {
  requireTenantId(tenantId)
  const underway = new Map<string, CollectionUnderway>()
  if (invoiceIds.length === 0) return underway
  const ids = [...invoiceIds]
  const [plans, retries, inFlight] = await Promise.all([
    db('installment_plans').where({ tenant_id: tenantId, status: 'active' }).whereIn('invoice_id', ids).pluck('invoice_id') as Promise<string[]>,
    (db('jobs').where({ tenant_id: tenantId, queue: 'payments.retry', state: 'pending' }).whereRaw("payload->>'invoiceId' = any(?::text[])", [ids])
      .select(db.raw("payload->>'invoiceId' as invoice_id")) as Promise<Array<{ invoice_id: string }>>).then(rows => rows.map(r => r.invoice_id)),
    db('payment_attempt_allocations').where({ tenant_id: tenantId, in_flight: true }).whereIn('invoice_id', ids).pluck('invoice_id') as Promise<string[]>
  ])
  for (const id of inFlight) underway.set(id, 'in_flight')
  for (const id of retries) underway.set(id, 'retrying')
  for (const id of plans) underway.set(id, 'installments')
  return underway
}

/** When each attempt on the invoice in the last `sinceDays` days started, whatever its trigger (statement payments included). */
export async function attemptTimesOn (db: Db, tenantId: string, invoiceId: string, sinceDays: number): Promise<Date[]> {
  const rows = await db('payment_attempts as a')
    .join('payment_attempt_allocations as al', function () { this.on('al.tenant_id', 'a.tenant_id').andOn('al.attempt_id', 'a.id') })
    .where({ 'al.tenant_id': requireTenantId(tenantId), 'al.invoice_id': invoiceId })
    .where('a.created_at', '>', db.raw(`now() - make_interval(days => ?)`, [sinceDays]))
    .select('a.created_at') as Array<{ created_at: Date }>
  return rows.map(r => r.created_at)
}

/**
 * The attempt in flight on any of these invoices, single or statement: the
 * one payment the database allows per invoice at a time.
 */
export async function attemptInFlightOn (db: Db, tenantId: string, invoiceIds: readonly string[]): Promise<PaymentAttempt | undefined> {
  if (invoiceIds.length === 0) return undefined
  const row = await db('payment_attempts as a')
    .join('payment_attempt_allocations as al', function () { this.on('al.tenant_id', 'a.tenant_id').andOn('al.attempt_id', 'a.id') })
    .where({ 'al.tenant_id': requireTenantId(tenantId), 'al.in_flight': true }).whereIn('al.invoice_id', invoiceIds)
    .first('a.*') as AttemptRow | undefined
  return row === undefined ? undefined : toAttempt(row)
}
