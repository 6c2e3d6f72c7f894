import { createHash } from 'node:crypto'
import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'
import { audit } from './audit.js'
import { normaliseName } from '../domain/matching.js'

/**
 * Remembered payers: a payer name or bank account a person confirmed for a
 * customer (by accepting or splitting an exception). The matcher gets them
 * as the customer's aliases and bank accounts, so the next payment from the
 * same payer is recognised without a person.
 *
 * Bank account numbers are never stored, here or on outside_payments: only
 * a fingerprint "acct:<last 4>:<hash>" that is equal for equal numbers within
 * one tenant (the tenant id is in the hash, so fingerprints do not line up
 * across tenants) and shows a person the last four digits.
 */
export type PayerAliasKind = 'name' | 'bank_account'

const FINGERPRINT = /^acct:[0-9]{0,4}:[0-9a-f]{32}$/

/** The stored form of a bank account: a fingerprint, whatever shape the number came in ("0012-3456 78", "12345678"). Null when it has no digits. */
export function bankAccountFingerprint (tenantId: string, account: string | null): string | null {
  if (account === null) return null
  if (FINGERPRINT.test(account)) return account
  // Letters are kept with the digits (IBANs), case and separators dropped.
  const key = account.toUpperCase().replace(/[^0-9A-Z]/g, '')
  if (!/\d/.test(key)) return null
  const digits = key.replace(/\D/g, '')
  const hash = createHash('sha256').update(`settle:payer-account:${tenantId}:${key}`).digest('hex').slice(0, 32)
  return `acct:${digits.slice(-4)}:${hash}`
}

export interface RememberInput {
  customerId: string
  /** The customer's own name: a payer name equal to it needs no alias. */
  customerName: string
  payer: string | null
  bankAccount: string | null
  outsidePaymentId: string
  actor: string
}

/**
 * Remembers the payer's name and bank account for the customer a person
 * chose. A value already remembered for another customer moves to this one
 * (the latest person's decision wins; the move is audited).
 */
export async function rememberPayer (db: Db, tenantId: string, input: RememberInput): Promise<Array<{ kind: PayerAliasKind, value: string }>> {
  requireTenantId(tenantId)
  const values: Array<{ kind: PayerAliasKind, value: string }> = []
  const name = input.payer === null ? '' : normaliseName(input.payer)
  if (name !== '' && name.length <= 200 && name !== normaliseName(input.customerName)) values.push({ kind: 'name', value: name })
  const account = bankAccountFingerprint(tenantId, input.bankAccount)
  if (account !== null) values.push({ kind: 'bank_account', value: account })
  const remembered: Array<{ kind: PayerAliasKind, value: string }> = []
  for (const v of values) {
    const before = await db('customer_payer_aliases').where({ tenant_id: tenantId, kind: v.kind, value: v.value }).first('customer_id') as { customer_id: string } | undefined
    if (before?.customer_id === input.customerId) continue
    await db('customer_payer_aliases')
      .insert({ tenant_id: tenantId, customer_id: input.customerId, kind: v.kind, value: v.value, outside_payment_id: input.outsidePaymentId, actor: input.actor })
      .onConflict(['tenant_id', 'kind', 'value'])
      .merge({ customer_id: input.customerId, outside_payment_id: input.outsidePaymentId, actor: input.actor, updated_at: db.fn.now() })
    await audit(db, tenantId, input.actor, 'reconciliation.payer_remembered', input.customerId, {
      kind: v.kind, value: v.value, outsidePaymentId: input.outsidePaymentId, ...(before === undefined ? {} : { movedFrom: before.customer_id })
    })
    remembered.push(v)
  }
  return remembered
}

/** Every remembered payer of the tenant, per customer (the matcher's input). */
export async function payerAliasesByCustomer (db: Db, tenantId: string): Promise<Map<string, { names: string[], bankAccounts: string[] }>> {
  requireTenantId(tenantId)
  const rows = await db('customer_payer_aliases').where({ tenant_id: tenantId }).select('customer_id', 'kind', 'value') as Array<{ customer_id: string, kind: PayerAliasKind, value: string }>
  const out = new Map<string, { names: string[], bankAccounts: string[] }>()
  for (const r of rows) {
    let entry = out.get(r.customer_id)
    if (entry === undefined) { entry = { names: [], bankAccounts: [] }; out.set(r.customer_id, entry) }
    if (r.kind === 'name') entry.names.push(r.value)
    else entry.bankAccounts.push(r.value)
  }
  return out
}
