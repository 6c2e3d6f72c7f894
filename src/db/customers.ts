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
}

interface CustomerRow { id: string, tenant_id: string, name: string, currency: string, psa_system: string | null, psa_company_id: string | null }

const toCustomer = (r: CustomerRow): Customer => ({
  id: r.id, tenantId: r.tenant_id, name: r.name, currency: asCurrency(r.currency), psaSystem: r.psa_system, psaCompanyId: r.psa_company_id
})

export interface CustomerInput { name: string, currency?: Currency, psaSystem?: string, psaCompanyId?: string }

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
    psa_company_id: input.psaCompanyId ?? null
  }
  const query = db<CustomerRow>('customers').insert(row)
  const [saved] = row.psa_system !== null && row.psa_company_id !== null
    ? await query.onConflict(['tenant_id', 'psa_system', 'psa_company_id']).merge({ name, updated_at: db.fn.now() } as never).returning('*')
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
