import type { Db } from './knex.js'
import { isoDate } from './invoices.js'
import { isUuid, requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'
import { asCurrency, type Money } from '../domain/money.js'

/**
 * Processor payouts and the balance transactions each settled, as the
 * payout job recorded them. The deposit poster and the tie-out read these;
 * only src/services/payouts.ts writes them.
 */
export type PayoutStatus = 'pending' | 'in_transit' | 'paid' | 'failed' | 'canceled'
export type PayoutItemType = 'charge' | 'payment' | 'refund' | 'adjustment' | 'dispute' | 'payout_fee' | 'other'

export interface Payout {
  id: string
  tenantId: string
  processor: 'stripe'
  /** Stripe's po_… id. */
  processorPayoutRef: string
  /** Net paid to the bank. amount = gross - fees + refunds. */
  amount: Money
  arrivalDate: string | null
  status: PayoutStatus
  /** Charges and payments, before fees. */
  gross: Money
  /** Everything the processor kept on the items (positive). */
  fees: Money
  /** Refund, dispute, adjustment and other items (gross; negative or zero as a rule). */
  refunds: Money
  /** The `payout:{po}:paid` entry, once posted. */
  ledgerEntryId: string | null
  failureCode: string | null
  createdAt: Date
  updatedAt: Date
}

export interface PayoutItem {
  payoutId: string
  balanceTransactionRef: string
  type: PayoutItemType
  /** Stripe's own type and reporting category. */
  processorType: string | null
  reportingCategory: string | null
  /** Our payment attempt, when the item comes from one of our charges (or its refund or dispute). */
  attemptId: string | null
  refundId: string | null
  gross: Money
  fee: Money
  net: Money
  sourceRef: string | null
  paymentIntentRef: string | null
  occurredAt: Date | null
}

export interface PayoutRow {
  id: string, tenant_id: string, processor: string, processor_payout_ref: string, amount: number | string, currency: string,
  arrival_date: string | Date | null, status: PayoutStatus, gross: number | string, fees: number | string, refunds: number | string,
  ledger_entry_id: number | string | null, failure_code: string | null, raw: unknown, created_at: Date, updated_at: Date
}

export interface PayoutItemRow {
  tenant_id: string, payout_id: string, balance_transaction_ref: string, type: PayoutItemType, processor_type: string | null,
  reporting_category: string | null, attempt_id: string | null, refund_id: string | null, gross: number | string, fee: number | string,
  net: number | string, currency: string, source_ref: string | null, payment_intent_ref: string | null, occurred_at: Date | null
}

export function toPayout (r: PayoutRow): Payout {
  const currency = asCurrency(r.currency.trim())
  const m = (v: number | string): Money => ({ amount: Number(v), currency })
  return {
    id: r.id,
    tenantId: r.tenant_id,
    processor: 'stripe',
    processorPayoutRef: r.processor_payout_ref,
    amount: m(r.amount),
    arrivalDate: isoDate(r.arrival_date),
    status: r.status,
    gross: m(r.gross),
    fees: m(r.fees),
    refunds: m(r.refunds),
    ledgerEntryId: r.ledger_entry_id === null ? null : String(r.ledger_entry_id),
    failureCode: r.failure_code,
    createdAt: r.created_at,
    updatedAt: r.updated_at
  }
}

export function toPayoutItem (r: PayoutItemRow): PayoutItem {
  const currency = asCurrency(r.currency.trim())
  const m = (v: number | string): Money => ({ amount: Number(v), currency })
  return {
    payoutId: r.payout_id,
    balanceTransactionRef: r.balance_transaction_ref,
    type: r.type,
    processorType: r.processor_type,
    reportingCategory: r.reporting_category,
    attemptId: r.attempt_id,
    refundId: r.refund_id,
    gross: m(r.gross),
    fee: m(r.fee),
    net: m(r.net),
    sourceRef: r.source_ref,
    paymentIntentRef: r.payment_intent_ref,
    occurredAt: r.occurred_at
  }
}

export async function getPayout (db: Db, tenantId: string, id: string): Promise<Payout> {
  requireTenantId(tenantId)
  const row = isUuid(id) ? await db('payouts').where({ tenant_id: tenantId, id }).first() as PayoutRow | undefined : undefined
  if (row === undefined) throw new AppError('PAYOUT_NOT_FOUND', `No payout ${id} for this tenant.`)
  return toPayout(row)
}

/** By the processor's id (po_…); null when Settle has not recorded it yet. */
export async function findPayoutByRef (db: Db, tenantId: string, processorPayoutRef: string, processor = 'stripe'): Promise<Payout | null> {
  requireTenantId(tenantId)
  const row = await db('payouts').where({ tenant_id: tenantId, processor, processor_payout_ref: processorPayoutRef }).first() as PayoutRow | undefined
  return row === undefined ? null : toPayout(row)
}

/** Newest arrival first. */
export async function listPayouts (db: Db, tenantId: string, options: { limit?: number, status?: PayoutStatus } = {}): Promise<Payout[]> {
  requireTenantId(tenantId)
  const query = db('payouts').where({ tenant_id: tenantId })
  if (options.status !== undefined) query.andWhere({ status: options.status })
  const rows = await query.orderByRaw('arrival_date desc nulls last, created_at desc, id').limit(Math.min(Math.max(options.limit ?? 50, 1), 500)) as PayoutRow[]
  return rows.map(toPayout)
}

/** The items of one payout, oldest first (as they happened). */
export async function payoutItems (db: Db, tenantId: string, payoutId: string): Promise<PayoutItem[]> {
  requireTenantId(tenantId)
  if (!isUuid(payoutId)) throw new AppError('PAYOUT_NOT_FOUND', `No payout ${payoutId} for this tenant.`)
  const rows = await db('payout_items').where({ tenant_id: tenantId, payout_id: payoutId })
    .orderByRaw('occurred_at nulls last, balance_transaction_ref') as PayoutItemRow[]
  return rows.map(toPayoutItem)
}
