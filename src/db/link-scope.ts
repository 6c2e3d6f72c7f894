import type { Db } from './knex.js'

/** The few facts a LiveLink session's reach is checked against: which PSA record and customer a Settle row belongs to. */

export async function invoiceOwner (db: Db, tenantId: string, invoiceId: string): Promise<{ psaSystem: string, psaInvoiceId: string, customerId: string } | null> {
  const row = await db('invoices').where({ tenant_id: tenantId, id: invoiceId }).first('psa_system', 'psa_invoice_id', 'customer_id') as { psa_system: string, psa_invoice_id: string, customer_id: string } | undefined
  return row === undefined ? null : { psaSystem: row.psa_system, psaInvoiceId: row.psa_invoice_id, customerId: row.customer_id }
}

export async function customerOfPsaInvoice (db: Db, tenantId: string, system: string, psaInvoiceId: string): Promise<string | null> {
  const row = await db('invoices').where({ tenant_id: tenantId, psa_system: system, psa_invoice_id: psaInvoiceId }).first('customer_id') as { customer_id: string } | undefined
  return row?.customer_id ?? null
}

export async function customerOfPsaCompany (db: Db, tenantId: string, system: string, psaCompanyId: string): Promise<string | null> {
  const row = await db('customers').where({ tenant_id: tenantId, psa_system: system, psa_company_id: psaCompanyId }).first('id') as { id: string } | undefined
  return row?.id ?? null
}

/** An attempt's customer and the PSA ids (`system:id`) of every invoice it pays. */
export async function attemptReach (db: Db, tenantId: string, attemptId: string): Promise<{ customerId: string, psaInvoiceIds: string[] } | null> {
  const attempt = await db('payment_attempts').where({ tenant_id: tenantId, id: attemptId }).first('customer_id') as { customer_id: string } | undefined
  if (attempt === undefined) return null
  const psaInvoiceIds = await db('payment_attempt_allocations as a').join('invoices as i', function () { this.on('i.tenant_id', 'a.tenant_id').andOn('i.id', 'a.invoice_id') })
    .where({ 'a.tenant_id': tenantId, 'a.attempt_id': attemptId }).select(db.raw("i.psa_system || ':' || i.psa_invoice_id as ref")).then(rows => (rows as Array<{ ref: string }>).map(r => r.ref))
  return { customerId: attempt.customer_id, psaInvoiceIds }
}
