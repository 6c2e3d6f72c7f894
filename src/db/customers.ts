import type { Db } from './knex.js'
import { isUuid, requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'
import { asCurrency, type Currency } from '../domain/money.js'

export interface Customer {
  id: string
  tenantId: string
  name: string
  currency: Currency
  psaSystem: string | null
  psaCompanyId: string | null
  /** Two-letter US state of the billing address, from the PSA; null when unknown (the card surcharge reads it). */
  billingState: string | null
}

interface CustomerRow { id: string, tenant_id: string, name: string, currency: string, psa_system: string | null, psa_company_id: string | null, billing_state: string | null }

const toCustomer = (r: CustomerRow): Customer => ({
  id: r.id, tenantId: r.tenant_id, name: r.name, currency: asCurrency(r.currency), psaSystem: r.psa_system, psaCompanyId: r.psa_company_id, billingState: r.billing_state ?? null
})

/** `billingState` left out keeps what is stored; null clears it. */
export interface CustomerInput { name: string, currency?: Currency, psaSystem?: string, psaCompanyId?: string, billingState?: string | null }

/** Inserts or, for a known PSA company, updates the name: the PSA is the source of truth. */
export async function upsertCustomer (db: Db, tenantId: string, input: CustomerInput): Promise<Customer> {
  requireTenantId(tenantId)
  const name = input.name.trim()
  if (name === '' || name.length > 300) throw new AppError('VALIDATION_FAILED', 'A customer needs a name of 1 to 300 characters.')
  const row = {
    tenant_id: tenantId,
    name,
    currency: asCurrency(input.currency ?? 'USD'),
    psa_system: input.psaSystem ?? null,
    psa_company_id: input.psaCompanyId ?? null,
    ...(input.billingState !== undefined ? { billing_state: input.billingState } : {})
  }
  const query = db<CustomerRow>('customers').insert(row)
  const [saved] = row.psa_system !== null && row.psa_company_id !== null
    ? await query.onConflict(['tenant_id', 'psa_system', 'psa_company_id']).merge({ name, ...(input.billingState !== undefined ? { billing_state: input.billingState } : {}), updated_at: db.fn.now() } as never).returning('*')
    : await query.returning('*')
  return toCustomer(saved as CustomerRow)
}

export async function getCustomer (db: Db, tenantId: string, customerId: string): Promise<Customer> {
  const found = await findCustomer(db, tenantId, customerId)
  if (found === null) throw new AppError('CUSTOMER_NOT_FOUND', `No customer ${customerId} for this tenant.`)
  return found
}

export async function findCustomer (db: Db, tenantId: string, customerId: string): Promise<Customer | null> {
  requireTenantId(tenantId)
  if (!isUuid(customerId)) return null
  const row = await db<CustomerRow>('customers').where({ tenant_id: tenantId, id: customerId }).first()
  return row === undefined ? null : toCustomer(row)
}

export async function listCustomers (db: Db, tenantId: string): Promise<Customer[]> {
  const rows = await db<CustomerRow>('customers').where({ tenant_id: requireTenantId(tenantId) }).orderBy('name')
  return rows.map(toCustomer)
}

export async function renameCustomer (db: Db, tenantId: string, customerId: string, name: string): Promise<Customer> {
  requireTenantId(tenantId)
  const [row] = await db<CustomerRow>('customers')
    .where({ tenant_id: tenantId, id: customerId })
    .update({ name, updated_at: db.fn.now() } as never).returning('*')
  if (row === undefined) throw new AppError('CUSTOMER_NOT_FOUND', `No customer ${customerId} for this tenant.`)
  return toCustomer(row as CustomerRow)
}

/**
 * Records billing states the PSA reported for known customers (customer id →
 * two-letter code or null); writes only those that changed, so a sync that
 * re-reads the same invoices writes nothing.
 */
export async function updateBillingStates (db: Db, tenantId: string, states: ReadonlyMap<string, string | null>): Promise<number> {
  requireTenantId(tenantId)
  if (states.size === 0) return 0
  const rows = await db('customers').where({ tenant_id: tenantId }).whereIn('id', [...states.keys()]).select('id', 'billing_state') as Array<{ id: string, billing_state: string | null }>
  let changed = 0
  for (const row of rows) {
    const next = states.get(row.id) ?? null
    if (row.billing_state === next) continue
    await db('customers').where({ tenant_id: tenantId, id: row.id }).update({ billing_state: next, updated_at: db.fn.now() })
    changed++
  }
  return changed
}
