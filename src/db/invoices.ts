import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'
import type { InvoiceStatus } from '../domain/invoice-sync.js'
import { asCurrency, type Currency, type Money } from '../domain/money.js'
import type { PsaInvoiceKind, PsaInvoiceLine, PsaLineKind } from '../ports/psa.js'

/** Settle's mirror of a PSA invoice; the PSA stays the source of truth for what was billed. */
export interface Invoice {
  id: string
  tenantId: string
  customerId: string
  psaSystem: string
  psaInvoiceId: string
  number: string
  kind: PsaInvoiceKind
  currency: Currency
  issuedOn: string
  dueOn: string | null
  total: Money
  psaBalance: Money
  paidOn: string | null
  voided: boolean
  status: InvoiceStatus
  agreementName: string | null
  poNumber: string | null
  psaUpdatedAt: Date
  ledgerBilled: number
  ledgerPaidElsewhere: number
  paidViaSettle: number
  lineCount: number
}

export interface InvoiceRow {
  id: string, tenant_id: string, customer_id: string, psa_system: string, psa_invoice_id: string, number: string,
  kind: string, currency: string, issued_on: string | Date, due_on: string | Date | null, total: number, psa_balance: number,
  paid_on: string | Date | null, voided: boolean, status: InvoiceStatus, agreement_name: string | null, po_number: string | null,
  psa_updated_at: Date, ledger_billed: number, ledger_paid_elsewhere: number, paid_via_settle: number, line_count: number
}

// `date` columns come back as Date from pg and as strings from PGlite; keep them as YYYY-MM-DD.
export const isoDate = (value: string | Date | null): string | null =>
  value === null ? null : value instanceof Date ? `${value.getFullYear()}-${String(value.getMonth() + 1).padStart(2, '0')}-${String(value.getDate()).padStart(2, '0')}` : value.slice(0, 10)

/** `openBalance` in SQL, over an `invoices` row. */
export const OPEN_BALANCE_SQL = '(ledger_billed - paid_via_settle - ledger_paid_elsewhere)'

/** What Settle can still collect on an invoice: billed, less what Settle collected, less what was paid elsewhere. */
export function openBalance (row: { ledger_billed: number | string, paid_via_settle: number | string, ledger_paid_elsewhere: number | string }): number {
  return Number(row.ledger_billed) - Number(row.paid_via_settle) - Number(row.ledger_paid_elsewhere)
}

export function toInvoice (r: InvoiceRow): Invoice {
  const currency = asCurrency(r.currency)
  return {
    id: r.id,
    tenantId: r.tenant_id,
    customerId: r.customer_id,
    psaSystem: r.psa_system,
    psaInvoiceId: r.psa_invoice_id,
    number: r.number,
    kind: r.kind as PsaInvoiceKind,
    currency,
    issuedOn: isoDate(r.issued_on) ?? '',
    dueOn: isoDate(r.due_on),
    total: { amount: Number(r.total), currency },
    psaBalance: { amount: Number(r.psa_balance), currency },
    paidOn: isoDate(r.paid_on),
    voided: r.voided,
    status: r.status,
    agreementName: r.agreement_name,
    poNumber: r.po_number,
    psaUpdatedAt: r.psa_updated_at,
    ledgerBilled: Number(r.ledger_billed),
    ledgerPaidElsewhere: Number(r.ledger_paid_elsewhere),
    paidViaSettle: Number(r.paid_via_settle),
    lineCount: r.line_count
  }
}

/** The mirror rows for a page of PSA ids, keyed by PSA id. */
export async function invoicesByPsaIds (db: Db, tenantId: string, system: string, psaIds: readonly string[]): Promise<Map<string, Invoice>> {
  requireTenantId(tenantId)
  if (psaIds.length === 0) return new Map()
  const rows = await db<InvoiceRow>('invoices').where({ tenant_id: tenantId, psa_system: system }).whereIn('psa_invoice_id', [...psaIds])
  return new Map(rows.map(r => [r.psa_invoice_id, toInvoice(r)]))
}

/** A mirror row as the sync writes it: the invoice in cents, without what the database or collection owns. */
export type InvoiceUpsert = Omit<Invoice, 'id' | 'tenantId' | 'total' | 'psaBalance' | 'paidViaSettle' | 'lineCount'> & {
  total: number
  psaBalance: number
  raw: unknown
}

/** Writes a page of mirror rows in one statement; returns their ids by PSA id. */
export async function upsertInvoices (db: Db, tenantId: string, rows: readonly InvoiceUpsert[]): Promise<Map<string, string>> {
  requireTenantId(tenantId)
  if (rows.length === 0) return new Map()
  const saved = await db('invoices').insert(rows.map(r => ({
    tenant_id: tenantId,
    customer_id: r.customerId,
    psa_system: r.psaSystem,
    psa_invoice_id: r.psaInvoiceId,
    number: r.number,
    kind: r.kind,
    currency: r.currency,
    issued_on: r.issuedOn,
    due_on: r.dueOn,
    total: r.total,
    psa_balance: r.psaBalance,
    paid_on: r.paidOn,
    voided: r.voided,
    status: r.status,
    agreement_name: r.agreementName,
    po_number: r.poNumber,
    psa_updated_at: r.psaUpdatedAt,
    ledger_billed: r.ledgerBilled,
    ledger_paid_elsewhere: r.ledgerPaidElsewhere,
    raw: JSON.stringify(r.raw ?? null)
  })))
    .onConflict(['tenant_id', 'psa_system', 'psa_invoice_id'])
    .merge(['customer_id', 'number', 'kind', 'currency', 'issued_on', 'due_on', 'total', 'psa_balance', 'paid_on', 'voided', 'status',
      'agreement_name', 'po_number', 'psa_updated_at', 'ledger_billed', 'ledger_paid_elsewhere', 'raw', 'updated_at'] as never)
    .returning(['id', 'psa_invoice_id']) as Array<{ id: string, psa_invoice_id: string }>
  return new Map(saved.map(r => [r.psa_invoice_id, r.id]))
}

const LINE_KINDS: readonly PsaLineKind[] = ['agreement', 'product', 'time', 'expense', 'other']

/** Replaces the lines of the given invoices (lines are a copy of the PSA's, not ledger facts). */
export async function replaceInvoiceLines (db: Db, tenantId: string, linesByInvoiceId: ReadonlyMap<string, readonly PsaInvoiceLine[]>): Promise<number> {
  requireTenantId(tenantId)
  if (linesByInvoiceId.size === 0) return 0
  const ids = [...linesByInvoiceId.keys()]
  await db('invoice_lines').where({ tenant_id: tenantId }).whereIn('invoice_id', ids).delete()
  const rows = [...linesByInvoiceId].flatMap(([invoiceId, lines]) => lines.map((line, index) => ({
    tenant_id: tenantId,
    invoice_id: invoiceId,
    line_no: index + 1,
    psa_line_id: line.externalId,
    kind: LINE_KINDS.includes(line.kind) ? line.kind : 'other',
    description: line.description.slice(0, 2000),
    quantity: line.quantity,
    unit_price: line.unitPrice?.amount ?? null,
    amount: line.amount.amount
  })))
  // Chunked: PostgreSQL allows 65,535 bind parameters per statement.
  for (let i = 0; i < rows.length; i += 5000) await db('invoice_lines').insert(rows.slice(i, i + 5000))
  for (const [invoiceId, lines] of linesByInvoiceId) {
    await db('invoices').where({ tenant_id: tenantId, id: invoiceId }).update({ line_count: lines.length })
  }
  return rows.length
}



export async function invoiceLines (db: Db, tenantId: string, invoiceId: string): Promise<Array<{ lineNo: number, kind: PsaLineKind, description: string, quantity: string, unitPrice: number | null, amount: number }>> {
  const rows = await db('invoice_lines').where({ tenant_id: requireTenantId(tenantId), invoice_id: invoiceId }).orderBy('line_no')
  return rows.map((r: { line_no: number, kind: PsaLineKind, description: string, quantity: string, unit_price: number | null, amount: number }) => ({
    lineNo: r.line_no, kind: r.kind, description: r.description, quantity: r.quantity, unitPrice: r.unit_price === null ? null : Number(r.unit_price), amount: Number(r.amount)
  }))
}

/** Sum of open PSA balances per customer, the figure the ledger's receivable must equal. */
export async function psaOpenBalances (db: Db, tenantId: string): Promise<Map<string, number>> {
  const rows = await db('invoices').where({ tenant_id: requireTenantId(tenantId), voided: false })
    .select('customer_id').sum({ open: 'psa_balance' }).groupBy('customer_id') as Array<{ customer_id: string, open: number | string }>
  return new Map(rows.map(r => [r.customer_id, Number(r.open)]))
}
