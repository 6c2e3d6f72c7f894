import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'
import { DEFAULT_AUTOPAY_RULE, validateRule, type AutopayRule } from '../domain/autopay.js'

export async function getTenantRule (db: Db, tenantId: string): Promise<AutopayRule> {
  const row = await db('autopay_rules').where({ tenant_id: requireTenantId(tenantId) }).whereNull('customer_id').first('rule') as { rule: Partial<AutopayRule> } | undefined
  return { ...DEFAULT_AUTOPAY_RULE, ...(row?.rule ?? {}) }
}

export async function setTenantRule (db: Db, tenantId: string, rule: AutopayRule): Promise<void> {
  requireTenantId(tenantId)
  const problems = validateRule(rule)
  if (problems.length > 0) throw new AppError('VALIDATION_FAILED', problems.map(p => `${p.field}: ${p.message}`).join(' '))
  await db('autopay_rules').insert({ tenant_id: tenantId, customer_id: null, enrolled: false, rule: JSON.stringify(rule) })
    .onConflict(db.raw('(tenant_id, customer_id)') as unknown as string).merge({ rule: JSON.stringify(rule), updated_at: db.fn.now() } as never)
}

export interface ConsentInput {
  customerId: string
  paymentMethodId: string | null
  kind: 'ach_mandate' | 'autopay' | 'installments'
  /** The exact words the client saw, and their version. */
  text: string
  textVersion: string
  acceptedByName: string
  acceptedByEmail: string | null
  ip: string
  userAgent: string
}

/** Records what a client agreed to, in the words they saw, with who, when, and from where. */
export async function recordConsent (db: Db, tenantId: string, input: ConsentInput): Promise<string> {
  requireTenantId(tenantId)
  if (input.text.trim() === '' || input.acceptedByName.trim() === '' || input.ip === '' || input.userAgent === '') {
    throw new AppError('VALIDATION_FAILED', 'A consent needs the text shown, the name of who accepted it, their IP address and browser.')
  }
  const [row] = await db('payment_consents').insert({
    tenant_id: tenantId,
    customer_id: input.customerId,
    payment_method_id: input.paymentMethodId,
    kind: input.kind,
    text: input.text,
    text_version: input.textVersion,
    accepted_by_name: input.acceptedByName,
    accepted_by_email: input.acceptedByEmail,
    ip: input.ip,
    user_agent: input.userAgent.slice(0, 500)
  }).returning('id') as Array<{ id: string }>
  return (row as { id: string }).id
}

/** Enrols a client in auto-pay under the consent they just gave, with optional overrides of the tenant rule. */
export async function enrolAutopay (db: Db, tenantId: string, customerId: string, overrides: Partial<AutopayRule> = {}): Promise<void> {
  requireTenantId(tenantId)
  const problems = validateRule({ ...DEFAULT_AUTOPAY_RULE, ...overrides })
  if (problems.length > 0) throw new AppError('VALIDATION_FAILED', problems.map(p => `${p.field}: ${p.message}`).join(' '))
  const consent = await db('payment_consents').where({ tenant_id: tenantId, customer_id: customerId, kind: 'autopay' }).whereNull('revoked_at').first('id')
  if (consent === undefined) throw new AppError('VALIDATION_FAILED', 'Record the client\'s auto-pay authorisation before enrolling them.')
  await db('autopay_rules').insert({ tenant_id: tenantId, customer_id: customerId, enrolled: true, rule: JSON.stringify(overrides) })
    .onConflict(db.raw('(tenant_id, customer_id)') as unknown as string).merge({ enrolled: true, rule: JSON.stringify(overrides), updated_at: db.fn.now() } as never)
}

/**
 * The client (or someone for them) withdraws: auto-pay stops and the
 * authorisations are marked revoked, kept for the record. By default every
 * authorisation; `kinds` narrows it (turning auto-pay off keeps the bank
 * mandate for payments the client makes themselves).
 */
export async function revokeAutopay (db: Db, tenantId: string, customerId: string, revokedBy: string, { kinds }: { kinds?: ReadonlyArray<'ach_mandate' | 'autopay' | 'installments'> } = {}): Promise<void> {
  requireTenantId(tenantId)
  await db('autopay_rules').where({ tenant_id: tenantId, customer_id: customerId }).update({ enrolled: false, updated_at: db.fn.now() })
  const consents = db('payment_consents').where({ tenant_id: tenantId, customer_id: customerId }).whereNull('revoked_at')
  if (kinds !== undefined) void consents.whereIn('kind', kinds)
  await consents.update({ revoked_at: db.fn.now(), revoked_by: revokedBy })
}

export async function enrolledCustomers (db: Db, tenantId: string): Promise<Array<{ customerId: string, overrides: Partial<AutopayRule> }>> {
  const rows = await db('autopay_rules').where({ tenant_id: requireTenantId(tenantId), enrolled: true }).whereNotNull('customer_id').select('customer_id', 'rule') as Array<{ customer_id: string, rule: Partial<AutopayRule> }>
  return rows.map(r => ({ customerId: r.customer_id, overrides: r.rule }))
}

export async function activeConsents (db: Db, tenantId: string, customerId: string): Promise<Array<{ id: string, kind: 'ach_mandate' | 'autopay' | 'installments', paymentMethodId: string | null, acceptedAt: Date }>> {
  const rows = await db('payment_consents').where({ tenant_id: requireTenantId(tenantId), customer_id: customerId }).whereNull('revoked_at')
    .select('id', 'kind', 'payment_method_id', 'accepted_at') as Array<{ id: string, kind: 'ach_mandate' | 'autopay' | 'installments', payment_method_id: string | null, accepted_at: Date }>
  return rows.map(r => ({ id: r.id, kind: r.kind, paymentMethodId: r.payment_method_id, acceptedAt: r.accepted_at }))
}
