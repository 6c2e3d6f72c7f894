import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'
import { audit } from './audit.js'
import { enqueue } from './jobs.js'
import { AppError } from '../errors.js'
import { asCurrency, type Money } from '../domain/money.js'
import type { AccountingSettings } from '../ports/accounting.js'

/**
 * What Settle posted (or will post) to the books, one row per source, and
 * the PSA company ↔ QBO customer links. Only src/services/posting.ts writes
 * postings; a person's link goes through linkCustomer (audited).
 */
export type PostingKind = 'payment' | 'deposit' | 'reversal'
export type PostingStatus = 'pending' | 'posted' | 'failed'
export type PostingDocType = 'Payment' | 'Deposit' | 'JournalEntry'

export interface AccountingPostingRecord {
  id: string
  tenantId: string
  sourceKind: PostingKind
  sourceId: string
  customerId: string | null
  /** ≤ 50 characters; the QBO requestid of every try. */
  requestId: string
  externalId: string | null
  externalType: PostingDocType | null
  amount: Money
  status: PostingStatus
  requestBody: unknown
  /** The postings (ids, in order) of the batch the saved body was last sent in; null when sent alone. */
  sentInBatch: string[] | null
  lastError: string | null
  postedAt: Date | null
  createdAt: Date
}

interface PostingRow {
  id: string, tenant_id: string, source_kind: PostingKind, source_id: string, customer_id: string | null, request_id: string,
  external_id: string | null, external_type: PostingDocType | null, amount: number | string, currency: string, status: PostingStatus,
  request_body: unknown, sent_in_batch: string[] | string | null, last_error: string | null, posted_at: Date | null, created_at: Date
}

const toPosting = (r: PostingRow): AccountingPostingRecord => ({
  id: r.id,
  tenantId: r.tenant_id,
  sourceKind: r.source_kind,
  sourceId: r.source_id,
  customerId: r.customer_id,
  requestId: r.request_id,
  externalId: r.external_id,
  externalType: r.external_type,
  amount: { amount: Number(r.amount), currency: asCurrency(r.currency.trim()) },
  status: r.status,
  requestBody: r.request_body,
  sentInBatch: parseUuidArray(r.sent_in_batch),
  lastError: r.last_error,
  postedAt: r.posted_at,
  createdAt: r.created_at
})

// pg parses uuid[]; PGlite through knex may hand it over as its text form, {a,b}.
const parseUuidArray = (value: string[] | string | null): string[] | null =>
  value === null ? null : Array.isArray(value) ? value : value.replace(/^\{|\}$/g, '').split(',').filter(v => v !== '')

const PREFIX: Record<PostingKind, string> = { payment: 'stl-p-', deposit: 'stl-d-', reversal: 'stl-r-' }

/** The posting row for a source, created on first sight. Its id makes the requestid, so every retry sends the same one. */
export async function ensurePosting (db: Db, tenantId: string, input: { kind: PostingKind, sourceId: string, amount: Money, customerId?: string | null }): Promise<AccountingPostingRecord> {
  requireTenantId(tenantId)
  const found = await getPostingBySource(db, tenantId, input.kind, input.sourceId)
  if (found !== null) return found
  const id = (await db.raw('select gen_random_uuid() as id') as { rows: Array<{ id: string }> }).rows[0]?.id as string
  await db('accounting_postings').insert({
    id,
    tenant_id: tenantId,
    source_kind: input.kind,
    source_id: input.sourceId,
    customer_id: input.customerId ?? null,
    request_id: `${PREFIX[input.kind]}${id}`,
    amount: input.amount.amount,
    currency: input.amount.currency
  }).onConflict(['tenant_id', 'source_kind', 'source_id']).ignore()
  const row = await getPostingBySource(db, tenantId, input.kind, input.sourceId)
  if (row === null) throw new Error('posting row vanished after insert')
  return row
}

export async function getPostingBySource (db: Db, tenantId: string, kind: PostingKind, sourceId: string): Promise<AccountingPostingRecord | null> {
  requireTenantId(tenantId)
  const row = await db('accounting_postings').where({ tenant_id: tenantId, source_kind: kind, source_id: sourceId }).first() as PostingRow | undefined
  return row === undefined ? null : toPosting(row)
}

export async function listPostings (db: Db, tenantId: string, filter: { kind?: PostingKind, status?: PostingStatus, customerId?: string } = {}): Promise<AccountingPostingRecord[]> {
  requireTenantId(tenantId)
  const q = db('accounting_postings').where({ tenant_id: tenantId })
  if (filter.kind !== undefined) q.andWhere({ source_kind: filter.kind })
  if (filter.status !== undefined) q.andWhere({ status: filter.status })
  if (filter.customerId !== undefined) q.andWhere({ customer_id: filter.customerId })
  return (await q.orderBy('created_at') as PostingRow[]).map(toPosting)
}

/** Keeps the first body sent: a retry resends it even if the books changed since (QBO replays the requestid anyway). */
export async function saveRequestBody (db: Db, tenantId: string, postingId: string, body: unknown): Promise<void> {
  await db('accounting_postings').where({ tenant_id: tenantId, id: postingId }).whereNull('request_body')
    .update({ request_body: JSON.stringify(body), updated_at: db.fn.now() })
}

/** Before a batch is sent: its members, in order, on each of them (see the migration 20261203141000). */
export async function saveBatchMembers (db: Db, tenantId: string, postingIds: readonly string[]): Promise<void> {
  await db('accounting_postings').where({ tenant_id: tenantId }).whereIn('id', postingIds).whereNot({ status: 'posted' })
    .update({ sent_in_batch: db.raw('?::uuid[]', [`{${postingIds.join(',')}}`]), updated_at: db.fn.now() })
}

export async function postingsById (db: Db, tenantId: string, ids: readonly string[]): Promise<AccountingPostingRecord[]> {
  const rows = await db('accounting_postings').where({ tenant_id: requireTenantId(tenantId) }).whereIn('id', ids) as PostingRow[]
  const byId = new Map(rows.map(r => [r.id, toPosting(r)]))
  return ids.flatMap(id => byId.get(id) ?? [])
}

/**
 * QuickBooks answered that it did not write it (a Fault, a batch item's
 * error): the next try derives a fresh request from the books as they are
 * then, under a new requestid, because QuickBooks answers a requestid it has
 * seen with its first answer, the refusal included.
 */
export async function forgetRefusedRequest (db: Db, tenantId: string, postingId: string): Promise<void> {
  await db('accounting_postings').where({ tenant_id: tenantId, id: postingId }).whereNot({ status: 'posted' })
    .update({ request_body: null, sent_in_batch: null, request_id: db.raw('left(request_id, 6) || gen_random_uuid()::text'), updated_at: db.fn.now() })
}

export async function markPosted (db: Db, tenantId: string, postingId: string, write: { externalId: string, externalType: PostingDocType }): Promise<void> {
  await db('accounting_postings').where({ tenant_id: tenantId, id: postingId }).update({
    status: 'posted', external_id: write.externalId, external_type: write.externalType, last_error: null, posted_at: db.fn.now(), updated_at: db.fn.now()
  })
}

/** Pending with a reason (waiting on a person or on another posting), or failed (dead letter). */
export async function markNotPosted (db: Db, tenantId: string, postingId: string, status: 'pending' | 'failed', reason: string): Promise<void> {
  await db('accounting_postings').where({ tenant_id: tenantId, id: postingId }).whereNot({ status: 'posted' })
    .update({ status, last_error: reason.slice(0, 2000), updated_at: db.fn.now() })
}

// ---- customer links ----

export type LinkSource = 'exact_name' | 'stored' | 'person'

export async function getCustomerLinks (db: Db, tenantId: string, customerIds: readonly string[]): Promise<Map<string, string>> {
  requireTenantId(tenantId)
  if (customerIds.length === 0) return new Map()
  const rows = await db('accounting_customer_links').where({ tenant_id: tenantId }).whereIn('customer_id', [...new Set(customerIds)]) as Array<{ customer_id: string, external_customer_id: string }>
  return new Map(rows.map(r => [r.customer_id, r.external_customer_id]))
}

/** Stores a link; a QBO customer already linked to another company is refused (one books customer, one PSA company). */
export async function storeCustomerLink (db: Db, tenantId: string, customerId: string, externalCustomerId: string, linkedBy: LinkSource): Promise<void> {
  requireTenantId(tenantId)
  const taken = await db('accounting_customer_links').where({ tenant_id: tenantId, external_customer_id: externalCustomerId }).whereNot({ customer_id: customerId }).first('customer_id') as { customer_id: string } | undefined
  if (taken !== undefined) {
    throw new AppError('ACCOUNTING_CUSTOMER_TAKEN', `QuickBooks customer ${externalCustomerId} is already linked to another company (${taken.customer_id}); unlink that one first.`)
  }
  await db('accounting_customer_links').insert({ tenant_id: tenantId, customer_id: customerId, external_customer_id: externalCustomerId, linked_by: linkedBy })
    .onConflict(['tenant_id', 'customer_id']).merge(['external_customer_id', 'linked_by'])
}

/**
 * A person confirms which QBO customer a company is. Audited; the company's
 * payments that were waiting for it are queued again.
 */
export async function linkCustomer (db: Db, tenantId: string, customerId: string, externalCustomerId: string, actor: string): Promise<void> {
  requireTenantId(tenantId)
  const customer = await db('customers').where({ tenant_id: tenantId, id: customerId }).first('id') as { id: string } | undefined
  if (customer === undefined) throw new AppError('CUSTOMER_NOT_FOUND', `No customer ${customerId} for this tenant.`)
  if (externalCustomerId.trim() === '') throw new AppError('VALIDATION_FAILED', 'Pick the QuickBooks customer to link (its id).')
  await storeCustomerLink(db, tenantId, customerId, externalCustomerId.trim(), 'person')
  await audit(db, tenantId, actor, 'accounting.customer_linked', customerId, { externalCustomerId })
  const waiting = await db('accounting_postings').where({ tenant_id: tenantId, customer_id: customerId, source_kind: 'payment' }).whereNot({ status: 'posted' }).select('source_id') as Array<{ source_id: string }>
  if (waiting.length > 0) {
    await enqueue(db, tenantId, waiting.map(w => ({ queue: 'qbo.post-payment', dedupeKey: `qbo-payment:${w.source_id}:linked:${externalCustomerId}`, payload: { attemptId: w.source_id } })))
  }
}

// ---- settings ----

const DEFAULT_SETTINGS: AccountingSettings = {
  undepositedFundsAccountId: null,
  bankAccountId: null,
  feesAccountId: null,
  writeOffAccountId: null,
  receivableAccountId: null,
  cardPaymentMethodId: null,
  achPaymentMethodId: null,
  surchargeItemId: null,
  invoiceMatch: 'doc_number',
  docNumberPrefix: ''
}

/** The tenant's confirmed books settings as stored on the connection; null when QuickBooks is not connected. */
export async function readPostingSettings (db: Db, tenantId: string): Promise<AccountingSettings | null> {
  requireTenantId(tenantId)
  const row = await db('accounting_connections').where({ tenant_id: tenantId, system: 'quickbooks' }).first('settings', 'status') as { settings: (Partial<AccountingSettings> & { accounting?: Partial<AccountingSettings> }) | null, status: string } | undefined
  if (row === undefined || row.status === 'disconnected') return null
  // The connection service keeps them under settings.accounting (getAccountingSettings); older rows have them at the top.
  const { accounting, ...top } = row.settings ?? {}
  return { ...DEFAULT_SETTINGS, ...top, ...(accounting ?? {}) }
}
