import type { Knex } from 'knex'
import type { Db } from './knex.js'
import { inTransaction } from './knex.js'
import { isoDate } from './invoices.js'
import { isUuid, requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'
import { MAX_INSTALLMENTS, MIN_INSTALLMENTS } from '../domain/installments.js'
import { asCurrency, money, type Money } from '../domain/money.js'

/**
 * Installment plans and their parts. A part's status follows its attempts:
 * `charging` from the moment a runner claims it until an attempt succeeds
 * (`paid`) or the retry policy gives up (`failed`, and the plan defaults).
 * These writes are shared by the charge path, the jobs and the plan service.
 */
export type PlanStatus = 'active' | 'completed' | 'cancelled' | 'defaulted'
export type PartStatus = 'scheduled' | 'charging' | 'paid' | 'failed' | 'cancelled'

export interface InstallmentPart {
  id: string
  planId: string
  seq: number
  amount: Money
  dueOn: string
  status: PartStatus
  /** The attempt that paid the part, or the last one when it failed. */
  attemptId: string | null
  updatedAt: Date
}

export interface InstallmentPlan {
  id: string
  tenantId: string
  invoiceId: string
  customerId: string
  paymentMethodId: string
  total: Money
  partCount: number
  status: PlanStatus
  createdBy: string
  consentId: string | null
  createdAt: Date
  endedAt: Date | null
  parts: InstallmentPart[]
}

export interface PlanRow {
  id: string, tenant_id: string, invoice_id: string, customer_id: string, payment_method_id: string, total: number | string, currency: string,
  part_count: number, status: PlanStatus, created_by: string, consent_id: string | null, created_at: Date, ended_at: Date | null
}

export interface PartRow {
  id: string, tenant_id: string, plan_id: string, seq: number, amount: number | string, due_on: string | Date, status: PartStatus, attempt_id: string | null, updated_at: Date
}

const toPart = (r: PartRow, currency: string): InstallmentPart => ({
  id: r.id,
  planId: r.plan_id,
  seq: r.seq,
  amount: { amount: Number(r.amount), currency: asCurrency(currency) },
  dueOn: isoDate(r.due_on) ?? '',
  status: r.status,
  attemptId: r.attempt_id,
  updatedAt: r.updated_at
})

const toPlan = (r: PlanRow, parts: readonly PartRow[]): InstallmentPlan => ({
  id: r.id,
  tenantId: r.tenant_id,
  invoiceId: r.invoice_id,
  customerId: r.customer_id,
  paymentMethodId: r.payment_method_id,
  total: { amount: Number(r.total), currency: asCurrency(r.currency) },
  partCount: r.part_count,
  status: r.status,
  createdBy: r.created_by,
  consentId: r.consent_id,
  createdAt: r.created_at,
  endedAt: r.ended_at,
  parts: parts.map(p => toPart(p, r.currency))
})

export interface InstallmentSettings {
  /** The smallest open balance offered a plan, in the tenant's currency; null: installments are off. */
  minAmount: Money | null
  maxParts: number
}

export async function getInstallmentSettings (db: Db, tenantId: string): Promise<InstallmentSettings> {
  const row = await db('tenants').where({ id: requireTenantId(tenantId) }).first('default_currency', 'installments_min_amount', 'installments_max_parts') as
    { default_currency: string, installments_min_amount: number | string | null, installments_max_parts: number } | undefined
  if (row === undefined) throw new AppError('TENANT_NOT_FOUND', `No tenant ${tenantId}.`)
  return {
    minAmount: row.installments_min_amount === null ? null : money(Number(row.installments_min_amount), row.default_currency),
    maxParts: row.installments_max_parts
  }
}

/** A tenant offers installments from a minimum balance (cents, in its currency), or not at all (null). */
export async function setInstallmentSettings (db: Db, tenantId: string, settings: { minAmount: number | null, maxParts: number }): Promise<void> {
  requireTenantId(tenantId)
  if (settings.minAmount !== null && (!Number.isSafeInteger(settings.minAmount) || settings.minAmount <= 0)) {
    throw new AppError('VALIDATION_FAILED', 'The installment minimum is a whole number of cents above zero, or none to turn installments off.')
  }
  if (!Number.isInteger(settings.maxParts) || settings.maxParts < MIN_INSTALLMENTS || settings.maxParts > MAX_INSTALLMENTS) {
    throw new AppError('VALIDATION_FAILED', `Plans have ${MIN_INSTALLMENTS} to ${MAX_INSTALLMENTS} parts at most.`)
  }
  const updated = await db('tenants').where({ id: tenantId }).update({ installments_min_amount: settings.minAmount, installments_max_parts: settings.maxParts })
  if (updated === 0) throw new AppError('TENANT_NOT_FOUND', `No tenant ${tenantId}.`)
}

/** Parts still to collect; a part charging may be waiting for its retry. */
export const OPEN_PART_STATUSES: readonly PartStatus[] = ['scheduled', 'charging']

async function withParts (db: Db, row: PlanRow | undefined): Promise<InstallmentPlan | null> {
  if (row === undefined) return null
  const parts = await db('installment_parts').where({ tenant_id: row.tenant_id, plan_id: row.id }).orderBy('seq') as PartRow[]
  return toPlan(row, parts)
}

export async function getPlan (db: Db, tenantId: string, planId: string): Promise<InstallmentPlan | null> {
  if (!isUuid(planId)) return null
  return await withParts(db, await db('installment_plans').where({ tenant_id: requireTenantId(tenantId), id: planId }).first() as PlanRow | undefined)
}

/** The invoice's active plan, else its most recent one (what the invoice shows). */
export async function latestPlanForInvoice (db: Db, tenantId: string, invoiceId: string): Promise<InstallmentPlan | null> {
  if (!isUuid(invoiceId)) return null
  const row = await db('installment_plans').where({ tenant_id: requireTenantId(tenantId), invoice_id: invoiceId })
    .orderByRaw("status = 'active' desc, created_at desc").first() as PlanRow | undefined
  return await withParts(db, row)
}

export async function hasActivePlan (db: Db, tenantId: string, invoiceId: string): Promise<boolean> {
  return await db('installment_plans').where({ tenant_id: requireTenantId(tenantId), invoice_id: invoiceId, status: 'active' }).first('id') !== undefined
}

/**
 * Ends an active plan. Parts not yet paid are cancelled; an attempt already
 * in flight still settles its part. Returns false when the plan was not active.
 */
export async function endPlan (db: Db, tenantId: string, planId: string, status: Exclude<PlanStatus, 'active'>): Promise<boolean> {
  return await inTransaction(db, async trx => {
    const ended = await trx('installment_plans').where({ tenant_id: tenantId, id: planId, status: 'active' })
      .update({ status, ended_at: trx.fn.now() })
    if (ended === 0) return false
    await trx('installment_parts').where({ tenant_id: tenantId, plan_id: planId }).whereIn('status', OPEN_PART_STATUSES)
      .update({ status: 'cancelled', updated_at: trx.fn.now() })
    return true
  })
}

/**
 * A payment on the invoice succeeded; runs in the transaction that books it.
 * Its part (if any) is paid, even on a plan ended meanwhile: the money is real.
 * The active plan completes when its last part is paid or nothing is open.
 */
export async function applyPaymentToPlan (trx: Db, tenantId: string, payment: { invoiceId: string, partId: string | null, attemptId: string, openAfter: number }): Promise<void> {
  if (payment.partId !== null) {
    await trx('installment_parts').where({ tenant_id: tenantId, id: payment.partId }).whereNot({ status: 'paid' })
      .update({ status: 'paid', attempt_id: payment.attemptId, updated_at: trx.fn.now() })
  }
  const plan = await trx('installment_plans').where({ tenant_id: tenantId, invoice_id: payment.invoiceId, status: 'active' }).first('id') as { id: string } | undefined
  if (plan === undefined) return
  const left = await trx('installment_parts').where({ tenant_id: tenantId, plan_id: plan.id }).whereIn('status', OPEN_PART_STATUSES).first('id')
  if (payment.openAfter <= 0 || left === undefined) await endPlan(trx, tenantId, plan.id, 'completed')
}

/**
 * The retry policy gave up on a part's attempt: the part failed and the plan
 * defaults (the rest is cancelled); the invoice stays open for a person.
 */
export async function failPart (db: Db, tenantId: string, partId: string, attemptId: string): Promise<void> {
  await inTransaction(db, async trx => {
    const [part] = await trx('installment_parts').where({ tenant_id: tenantId, id: partId }).whereIn('status', OPEN_PART_STATUSES)
      .update({ status: 'failed', attempt_id: attemptId, updated_at: trx.fn.now() }).returning('plan_id') as Array<{ plan_id: string }>
    if (part !== undefined) await endPlan(trx, tenantId, part.plan_id, 'defaulted')
  })
}

/** Whether a part is still to be collected under an active plan; a retry for anything else stands down. */
export async function partCollectible (db: Db, tenantId: string, partId: string): Promise<boolean> {
  const row = await db('installment_parts as p').join('installment_plans as pl', function () { this.on('pl.tenant_id', 'p.tenant_id').andOn('pl.id', 'p.plan_id') })
    .where({ 'p.tenant_id': requireTenantId(tenantId), 'p.id': partId, 'pl.status': 'active' }).whereIn('p.status', OPEN_PART_STATUSES).first('p.id')
  return row !== undefined
}

/** Longer than any charge takes to write its attempt; a claim this old without one was left by a runner that died. */
const STALE_CLAIM_MS = 15 * 60_000

/** Parts a runner may take: scheduled ones, and stale claims that never wrote an attempt. `part` names the parts table in the query. */
function claimable (q: Knex.QueryBuilder, part: string): void {
  q.where(`${part}.status`, 'scheduled').orWhere(stale => {
    stale.where(`${part}.status`, 'charging').where(`${part}.updated_at`, '<', new Date(Date.now() - STALE_CLAIM_MS))
      .whereNotExists(function () { this.select(1).from('payment_attempts as a').whereRaw('a.tenant_id = ??.tenant_id and a.installment_part_id = ??.id', [part, part]) })
  })
}

/** Takes a part for charging; only one runner wins. */
export async function claimPart (db: Db, tenantId: string, partId: string): Promise<boolean> {
  const claimed = await db('installment_parts').where({ tenant_id: tenantId, id: partId }).where(q => { claimable(q, 'installment_parts') })
    .update({ status: 'charging', updated_at: db.fn.now() })
  return claimed === 1
}

/** Parts of active plans due by `today` that a runner may take, oldest first. */
export async function duePartIds (db: Db, tenantId: string, today: string): Promise<string[]> {
  return await db('installment_parts as p').join('installment_plans as pl', function () { this.on('pl.tenant_id', 'p.tenant_id').andOn('pl.id', 'p.plan_id') })
    .where({ 'p.tenant_id': requireTenantId(tenantId), 'pl.status': 'active' }).where('p.due_on', '<=', today).where(q => { claimable(q, 'p') })
    .orderBy([{ column: 'p.due_on', order: 'asc' }, { column: 'p.seq', order: 'asc' }]).pluck('p.id') as string[]
}

/** Gives a claim back when no attempt was made (another payment was in flight, or the charge was refused). */
export async function releasePart (db: Db, tenantId: string, partId: string): Promise<void> {
  await db('installment_parts').where({ tenant_id: tenantId, id: partId, status: 'charging' })
    .whereNotExists(function () { this.select(1).from('payment_attempts').where({ tenant_id: tenantId, installment_part_id: partId }) })
    .update({ status: 'scheduled', updated_at: db.fn.now() })
}
