import type { Knex } from 'knex'
import { getBrand } from '../db/branding.js'
import { getPsaConnection } from '../db/psa.js'
import { findTenantBySlug, requireTenantId, tenantToday, type Tenant } from '../db/tenants.js'
import { localDate } from '../domain/calendar.js'
import { openBalance, toInvoice, type InvoiceRow } from '../db/invoices.js'
import { allocationsByAttempt, listPaymentMethods, toAttempt, toMethod, type AttemptRow, type AttemptStatus, type MethodRow, type PaymentAttempt, type PaymentMethod } from '../db/payments.js'
import { activeConsents, getTenantRule } from '../db/autopay.js'
import { capitalised, invoiceLabel } from './charge.js'
import { listExceptions } from '../db/reconciliation-exceptions.js'
import { getSecret, putSecret } from '../db/secrets.js'
import { AppError } from '../errors.js'
import { asCurrency, formatMoney, type Money } from '../domain/money.js'
import { classifyFailure } from '../domain/retry-policy.js'
import { actorWords, consentWords, methodPreferenceWords, planStateWords } from '../domain/words.js'
import type { Keyring } from '../security/keyring.js'
import { signLiveLink, type EmbeddedPermission, type EmbeddedSystem } from '../security/embedded-sessions.js'
import { randomBytes } from 'node:crypto'
import type { AccountingFactory, AccountingPort } from '../ports/accounting.js'
import { syncNow, type SyncNowResult } from './posting.js'
import { getAccountingConnection } from './accounting-connections.js'

/** View models for the pages inside the PSA; routes only pick one and render it. */

export interface EmbedTenant { tenant: Tenant, accent: string, brandName: string }

const ACCENT = /^#[0-9a-fA-F]{6}$/

export async function embedTenant (db: Knex, slug: unknown): Promise<EmbedTenant> {
  const tenant = typeof slug === 'string' && /^[a-z0-9-]{1,64}$/.test(slug) ? await findTenantBySlug(db, slug) : null
  if (tenant === null) throw new AppError('TENANT_NOT_FOUND', 'This link names no Settle account. Check the tenant in the PSA setup.')
  const brand = await getBrand(db, tenant.id)
  // The accent goes into a style attribute: only a plain hex colour is accepted.
  return { tenant, accent: brand.accent !== null && ACCENT.test(brand.accent) ? brand.accent : '#2563eb', brandName: brand.name }
}

/**
 * The ConnectWise side of a tenant: the API site the member is verified
 * against and the browser origins allowed to frame us and post to us. The
 * site `https://api-na.myconnectwise.net` is framed from
 * `https://na.myconnectwise.net`; a connection may list `embedOrigins`
 * (comma separated) to override. The sandbox is this server itself.
 */
export async function connectWiseEmbedding (db: Knex, tenantId: string, sandboxOrigin: string | null, browserOrigin: string | null = sandboxOrigin): Promise<{ site: string, clientId: string, codebase?: string, origins: string[] } | null> {
  let settings: Record<string, unknown>
  try { settings = (await getPsaConnection(db, tenantId, 'connectwise')).settings } catch { return null }
  const clientId = String(settings.clientId ?? '')
  const codebase = typeof settings.codebase === 'string' ? settings.codebase : undefined
  if (settings.site === 'sandbox') {
    if (sandboxOrigin === null) return null
    // The demo host is this server, under whatever name the browser used (localhost or 127.0.0.1); the API call goes to the listening address.
    return { site: `${sandboxOrigin}/sandbox/connectwise`, clientId, ...(codebase !== undefined ? { codebase } : {}), origins: [browserOrigin ?? sandboxOrigin] }
  }
  const site = String(settings.site ?? '')
  let origins: string[]
  if (typeof settings.embedOrigins === 'string' && settings.embedOrigins.trim() !== '') {
    origins = settings.embedOrigins.split(',').map(o => o.trim()).filter(o => /^https:\/\/[a-z0-9.-]+(:\d+)?$/i.test(o))
  } else {
    try {
      const url = new URL(site)
      origins = [`${url.protocol}//${url.host.replace(/^api-/, '')}`]
    } catch { origins = [] }
  }
  return { site, clientId, ...(codebase !== undefined ? { codebase } : {}), origins }
}

/** Autotask opens LiveLinks in its own window or an iframe from its web zones. */
export async function autotaskOrigins (db: Knex, tenantId: string, sandboxOrigin: string | null, browserOrigin: string | null = sandboxOrigin): Promise<string[]> {
  let settings: Record<string, unknown>
  try { settings = (await getPsaConnection(db, tenantId, 'autotask')).settings } catch { return [] }
  if (typeof settings.embedOrigins === 'string' && settings.embedOrigins.trim() !== '') return settings.embedOrigins.split(',').map(o => o.trim()).filter(o => /^https:\/\/[a-z0-9.*-]+$/i.test(o))
  if (settings.site === 'sandbox') return sandboxOrigin === null ? [] : [browserOrigin ?? sandboxOrigin]
  return ['https://*.autotask.net']
}

/** Everyone may view; charge, sync and paylink only where granted to the member or to `*` (everyone in that PSA). */
export async function memberPermissions (db: Knex, tenantId: string, system: EmbeddedSystem, memberRefs: readonly string[]): Promise<EmbeddedPermission[]> {
  const rows = await db('embedded_member_permissions').where({ tenant_id: tenantId, psa_system: system }).whereIn('member_ref', [...memberRefs, '*']).select('permission') as Array<{ permission: EmbeddedPermission }>
  return ['view', ...(['charge', 'sync', 'paylink'] as const).filter(p => rows.some(r => r.permission === p))]
}

/** Who may be granted: a PSA member id, `livelink` (whoever opens a signed Autotask link) or `*`. */
function memberRefOf (memberRef: string): string {
  const ref = memberRef.trim()
  if (ref !== '*' && !/^[\w.@-]{1,100}$/.test(ref)) throw new AppError('VALIDATION_FAILED', `"${memberRef}" is not a member: give the PSA member id (jsmith), livelink or *.`)
  return ref
}

export async function grantMember (db: Knex, tenantId: string, system: EmbeddedSystem, memberRef: string, permissions: readonly EmbeddedPermission[]): Promise<void> {
  if (permissions.length === 0) return
  const ref = memberRefOf(memberRef)
  await db('embedded_member_permissions').insert(permissions.map(permission => ({ tenant_id: requireTenantId(tenantId), psa_system: system, member_ref: ref, permission }))).onConflict(['tenant_id', 'psa_system', 'member_ref', 'permission']).ignore()
}

/** Takes permissions away; returns how many grants were removed. */
export async function revokeMember (db: Knex, tenantId: string, system: EmbeddedSystem, memberRef: string, permissions: readonly EmbeddedPermission[]): Promise<number> {
  // RETURNING: PGlite's driver does not report a deleted-row count.
  const removed = await db('embedded_member_permissions').where({ tenant_id: requireTenantId(tenantId), psa_system: system, member_ref: memberRefOf(memberRef) }).whereIn('permission', [...permissions]).delete().returning('id')
  return removed.length
}

export async function listMemberGrants (db: Knex, tenantId: string): Promise<Array<{ system: EmbeddedSystem, memberRef: string, permissions: EmbeddedPermission[] }>> {
  const rows = await db('embedded_member_permissions').where({ tenant_id: requireTenantId(tenantId) }).orderBy(['psa_system', 'member_ref', 'permission']).select('psa_system', 'member_ref', 'permission') as Array<{ psa_system: EmbeddedSystem, member_ref: string, permission: EmbeddedPermission }>
  const grants: Array<{ system: EmbeddedSystem, memberRef: string, permissions: EmbeddedPermission[] }> = []
  for (const r of rows) {
    const last = grants.at(-1)
    if (last !== undefined && last.system === r.psa_system && last.memberRef === r.member_ref) last.permissions.push(r.permission)
    else grants.push({ system: r.psa_system, memberRef: r.member_ref, permissions: [r.permission] })
  }
  return grants
}

/** The tenant's LiveLink key if one was made; checking a link never makes one (that would be a stranger's write). */
export async function existingLiveLinkKey (db: Knex, keyring: Keyring, tenantId: string): Promise<string | null> {
  return await getSecret(db, keyring, tenantId, 'autotask.livelink_key')
}

/** The tenant's LiveLink key (created on first use by an operator or a signer), kept encrypted. */
export async function liveLinkKey (db: Knex, keyring: Keyring, tenantId: string, options: { rotate?: boolean } = {}): Promise<string> {
  const existing = options.rotate === true ? null : await getSecret(db, keyring, tenantId, 'autotask.livelink_key')
  if (existing !== null) return existing
  const key = randomBytes(32).toString('base64url')
  await putSecret(db, keyring, tenantId, 'autotask.livelink_key', key)
  return key
}

/** The LiveLink URL templates to paste into Autotask's LiveLinks Designer. */
export function liveLinkTemplates (publicUrl: string, slug: string): { invoice: string, company: string } {
  const base = publicUrl.replace(/\/+$/, '')
  return {
    invoice: `${base}/embedded/autotask/invoice?tenant=${encodeURIComponent(slug)}&id=<Invoice ID>`,
    company: `${base}/embedded/autotask/company?tenant=${encodeURIComponent(slug)}&id=<Account ID>`
  }
}

/**
 * A signed LiveLink for one record, for where Settle writes the link itself
 * (a UDF, a note, a notification): Autotask cannot compute an HMAC in a
 * LiveLink template, so plain template links always meet the sign-in page.
 */
export async function signedLiveLinkUrl (db: Knex, keyring: Keyring, publicUrl: string, tenant: Pick<Tenant, 'id' | 'slug'>, kind: 'invoice' | 'company', recordId: string, ttlMs = 7 * 86_400_000, now = new Date()): Promise<string> {
  if (!/^\d{1,18}$/.test(recordId)) throw new AppError('VALIDATION_FAILED', 'An Autotask record id is a number.')
  const key = await liveLinkKey(db, keyring, tenant.id)
  const { exp, sig } = signLiveLink(key, { tenantSlug: tenant.slug, kind, recordId, expiresAt: new Date(now.getTime() + ttlMs) })
  return `${publicUrl.replace(/\/+$/, '')}/embedded/autotask/${kind}?tenant=${encodeURIComponent(tenant.slug)}&id=${recordId}&exp=${exp}&sig=${sig}`
}

const STATUS_LABEL: Record<string, string> = { open: 'Open', overdue: 'Overdue', partially_paid: 'Open', paid: 'Paid', voided: 'Voided', disputed: 'Disputed', in_collections: 'In collections', processing: 'Processing' }

const methodLabel = (m: PaymentMethod): string => m.type === 'ach'
  ? `${m.brand ?? 'Bank account'} ····${m.last4}`
  : `${capitalised(m.brand ?? 'Card')} ····${m.last4}`

const methodView = (m: PaymentMethod): Record<string, unknown> => ({
  id: m.id,
  label: methodLabel(m),
  kind: m.type === 'ach' ? 'Bank (ACH)' : 'Card',
  expiry: m.expMonth !== null && m.expYear !== null ? `${String(m.expMonth).padStart(2, '0')}/${String(m.expYear).slice(-2)}` : null,
  isDefault: m.isDefault
})

export interface AttemptView {
  id: string, when: Date, amount: Money, surcharge: Money | null, status: string, statusLabel: string, method: string, actor: string, explanation: string | null, nextStep: string | null
  /** On an invoice's history: `amount` is this invoice's share of a statement payment of this much. */
  statementOf: Money | null
}

/** What a history row needs of an attempt. */
export type AttemptSummary = Pick<PaymentAttempt, 'id' | 'createdAt' | 'amount' | 'surcharge' | 'status' | 'paymentMethodId' | 'actor'> & { failure: Pick<PaymentAttempt['failure'], 'code' | 'declineCode' | 'adviceCode'>, statementOf?: Money | null }

/** Plain words for an attempt, including what to do about a decline. */
export function attemptView (a: AttemptSummary, methods: readonly PaymentMethod[]): AttemptView {
  const method = methods.find(m => m.id === a.paymentMethodId)
  let explanation: string | null = null
  let nextStep: string | null = null
  if (a.status === 'failed') {
    const v = classifyFailure({ method: method?.type === 'ach' ? 'ach' : 'card', code: a.failure.code, declineCode: a.failure.declineCode, adviceCode: a.failure.adviceCode })
    explanation = v.explanation
    nextStep = v.nextStep
  } else if (a.status === 'processing') {
    explanation = 'The bank is processing this payment; ACH takes up to 4 business days.'
  } else if (a.status === 'unknown') {
    explanation = 'We are confirming the outcome with the processor.'
  }
  const labels: Record<string, string> = { created: 'Processing', processing: 'Processing', unknown: 'Checking', succeeded: 'Paid', failed: 'Declined', refunded: 'Refunded', disputed: 'Disputed' }
  return {
    id: a.id, when: a.createdAt, amount: a.amount, surcharge: a.surcharge.amount > 0 ? a.surcharge : null, status: a.status, statusLabel: labels[a.status] ?? a.status,
    method: method !== undefined ? methodLabel(method) : 'Removed method', actor: actorWords(a.actor), explanation, nextStep, statementOf: a.statementOf ?? null
  }
}

const daysBetween = (from: string, to: string): number => Math.round((Date.parse(to) - Date.parse(from)) / 86_400_000)

/**
 * Everything the invoice pod shows, in one round trip: the pod is opened by
 * every technician on every invoice screen, and each query costs more in
 * query building and a trip to PostgreSQL than the page costs to render.
 * Attempts come through their allocations, so a statement payment shows on
 * each invoice it paid, with that invoice's share. Pending retries are found
 * from the invoice's attempts through their dedupe key (`retry:<attempt
 * id>`), which the jobs_dedupe index answers; statement payments never retry.
 */
const INVOICE_POD_SQL = `
  select i.id, i.tenant_id, i.customer_id, i.psa_system, i.psa_invoice_id, i.number, i.kind, i.currency, i.issued_on, i.due_on, i.total, i.psa_balance,
    i.paid_on, i.voided, i.status, i.agreement_name, i.po_number, i.psa_updated_at, i.ledger_billed, i.ledger_paid_elsewhere, i.paid_via_settle, i.line_count,
    c.name as customer_name, t.time_zone,
    (select coalesce(json_agg(m order by m.is_default desc, m.created_at desc), '[]')
       from payment_methods m where m.tenant_id = i.tenant_id and m.customer_id = i.customer_id and m.status = 'active') as methods,
    (select coalesce(json_agg(json_build_array(a.id, a.created_at, a.applied, a.currency, a.surcharge_amount, a.status, a.payment_method_id, a.actor, a.failure_code, a.decline_code, a.advice_code, a.statement_of) order by a.created_at desc), '[]')
       from (select a.*, al.amount as applied, case when a.invoice_id is null then a.amount end as statement_of
             from payment_attempt_allocations al join payment_attempts a on a.tenant_id = al.tenant_id and a.id = al.attempt_id
             where al.tenant_id = i.tenant_id and al.invoice_id = i.id order by a.created_at desc limit ?) a) as attempts,
    (select coalesce(json_agg(j.run_at order by j.run_at), '[]') from payment_attempts a
       join jobs j on j.tenant_id = a.tenant_id and j.queue = 'payments.retry' and j.dedupe_key = 'retry:' || a.id
       where a.tenant_id = i.tenant_id and a.invoice_id = i.id and j.state = 'pending') as retries
  from invoices i
  join customers c on c.tenant_id = i.tenant_id and c.id = i.customer_id
  join tenants t on t.id = i.tenant_id
  where i.tenant_id = ? and i.psa_system = ? and i.psa_invoice_id = ?`

/**
 * A cheap fingerprint of every row the invoice pod reads (the same rows as
 * INVOICE_POD_SQL), five rows whatever the history's length: the xmin of
 * the invoice, customer and tenant rows (it changes with every committed
 * update of a row), and the pod versions of the invoice (its attempts,
 * a statement payment's included through its allocations, and their retry
 * jobs) and of the customer (its payment methods), which
 * triggers bump in the transaction that changes any of those rows
 * (migrations/20261203150000_pod_version.ts). A missing version row means
 * none of those rows changed since the triggers exist. So an unchanged
 * fingerprint means an unchanged pod, apart from the tenant's date (days
 * overdue), which the caller adds.
 */
const INVOICE_POD_VERSION_SQL = `
  select i.xmin::text || '.' || c.xmin::text || '.' || t.xmin::text || '.' || coalesce(vi.version, 0)::text || '.' || coalesce(vc.version, 0)::text as version,
    t.time_zone
  from invoices i
  join customers c on c.tenant_id = i.tenant_id and c.id = i.customer_id
  join tenants t on t.id = i.tenant_id
  left join pod_versions vi on vi.tenant_id = i.tenant_id and vi.subject = 'invoice' and vi.subject_id = i.id
  left join pod_versions vc on vc.tenant_id = i.tenant_id and vc.subject = 'customer' and vc.subject_id = i.customer_id
  where i.tenant_id = ? and i.psa_system = ? and i.psa_invoice_id = ?`

const invoiceNotSynced = (): AppError => new AppError('INVOICE_NOT_FOUND', 'This invoice is not in Settle yet. It appears after the next PSA sync (a few minutes).')

/** The invoice pod's version: its rows' fingerprint and the tenant's today. */
export async function invoiceVersion (db: Knex, tenantId: string, system: EmbeddedSystem, psaId: string, now = new Date()): Promise<string> {
  const result = await db.raw(INVOICE_POD_VERSION_SQL, [requireTenantId(tenantId), system, psaId]).options({ name: 'settle-invoice-pod-version' }) as { rows: Array<{ version: string, time_zone: string }> }
  const row = result.rows[0]
  if (row === undefined) throw invoiceNotSynced()
  return `${row.version}@${localDate(now, row.time_zone)}`
}

// Attempts come as arrays (the columns of a history row, in this order): half the JSON of whole rows to parse.
type AttemptTuple = [id: string, createdAt: string, applied: number | string, currency: string, surcharge: number | string | null, status: AttemptStatus, methodId: string, actor: string, code: string | null, declineCode: string | null, adviceCode: string | null, statementOf: number | string | null]
type PodRow = InvoiceRow & { customer_name: string, time_zone: string, methods: MethodRow[] | string, attempts: AttemptTuple[] | string, retries: string[] | string }

const attemptOf = ([id, createdAt, applied, currency, surcharge, status, paymentMethodId, actor, code, declineCode, adviceCode, statementOf]: AttemptTuple): AttemptSummary => ({
  id, createdAt: new Date(createdAt), amount: { amount: Number(applied), currency: asCurrency(currency) }, surcharge: { amount: Number(surcharge ?? 0), currency: asCurrency(currency) },
  status, paymentMethodId, actor, failure: { code, declineCode, adviceCode }, statementOf: statementOf === null ? null : { amount: Number(statementOf), currency: asCurrency(currency) }
})

// pg parses json columns; PGlite through knex may hand them over as text.
const parsed = <T>(value: T | string): T => typeof value === 'string' ? JSON.parse(value) as T : value

export async function invoiceModel (db: Knex, tenantId: string, system: EmbeddedSystem, psaId: string, attemptsLimit = 100): Promise<Record<string, unknown>> {
  // A named statement: PostgreSQL plans it once per connection (planning was ~40% of its time).
  // Its columns are listed, not i.*, so a migration adding one does not break the cached plan.
  const result = await db.raw(INVOICE_POD_SQL, [attemptsLimit, requireTenantId(tenantId), system, psaId]).options({ name: 'settle-invoice-pod' }) as { rows: PodRow[] }
  const row = result.rows[0]
  if (row === undefined) throw invoiceNotSynced()
  const invoice = toInvoice(row)
  const methods = parsed(row.methods).map(toMethod)
  const attempts = parsed(row.attempts).map(attemptOf)
  const currency = asCurrency(invoice.currency)
  const open = openBalance(row)
  const today = localDate(new Date(), row.time_zone)
  const overdue = invoice.dueOn !== null && open > 0 ? Math.max(0, daysBetween(invoice.dueOn, today)) : 0
  const latest = attempts[0]
  // The badge is the invoice's state; a declined attempt leaves it open (or overdue) and shows in the history.
  const status = latest !== undefined && (latest.status === 'processing' || latest.status === 'created' || latest.status === 'unknown')
    ? 'processing'
    : (invoice.status === 'open' || invoice.status === 'partially_paid') ? (overdue > 0 ? 'overdue' : 'open') : invoice.status
  return {
    invoice: { id: invoice.id, psaId: invoice.psaInvoiceId, number: invoice.number, customer: row.customer_name, dueOn: invoice.dueOn, issuedOn: invoice.issuedOn },
    total: invoice.total,
    paid: { amount: invoice.total.amount - open, currency },
    balance: { amount: open, currency },
    balanceCents: open,
    overdueDays: overdue,
    status,
    statusLabel: STATUS_LABEL[status] ?? status,
    chargeable: open > 0 && !invoice.voided && status !== 'processing' && methods.length > 0,
    methods: methods.map(methodView),
    attempts: attempts.map(a => attemptView(a, methods)),
    retries: parsed(row.retries).map(r => new Date(r)),
    timeZone: row.time_zone
  }
}

export async function customerByPsaId (db: Knex, tenantId: string, system: EmbeddedSystem, psaCompanyId: string): Promise<{ id: string, name: string }> {
  const row = await db('customers').where({ tenant_id: tenantId, psa_system: system, psa_company_id: psaCompanyId }).first('id', 'name') as { id: string, name: string } | undefined
  if (row === undefined) throw new AppError('CUSTOMER_NOT_FOUND', 'This company is not in Settle yet. It appears after the next PSA sync.')
  return row
}

const AGING = [{ label: 'Current', max: 0 }, { label: '1–30 days', max: 30 }, { label: '31–60 days', max: 60 }, { label: '61–90 days', max: 90 }, { label: '90+ days', max: Infinity }]

export async function companyModel (db: Knex, tenantId: string, system: EmbeddedSystem, psaCompanyId: string): Promise<Record<string, unknown>> {
  const customer = await customerByPsaId(db, tenantId, system, psaCompanyId)
  const today = await tenantToday(db, tenantId)
  const methods = (await listPaymentMethods(db, tenantId, customer.id)).filter(m => m.status === 'active')
  const consents = await activeConsents(db, tenantId, customer.id)
  const enrolment = await db('autopay_rules').where({ tenant_id: tenantId, customer_id: customer.id }).first('enrolled', 'rule') as { enrolled: boolean, rule: Record<string, unknown> } | undefined
  const rule = { ...await getTenantRule(db, tenantId), ...(enrolment?.rule ?? {}) }
  const rows = await db('invoices').where({ tenant_id: tenantId, customer_id: customer.id, voided: false }).orderBy('due_on') as InvoiceRow[]
  const open = rows.map(r => ({ row: r, inv: toInvoice(r), open: openBalance(r) })).filter(x => x.open > 0)
  const currency = asCurrency(open[0]?.inv.currency ?? 'USD')
  const aging = AGING.map(b => ({ label: b.label, amount: { amount: 0, currency } as Money, count: 0 }))
  const openInvoices = open.map(x => {
    const days = x.inv.dueOn === null ? 0 : Math.max(0, daysBetween(x.inv.dueOn, today))
    const bucket = aging[AGING.findIndex(b => days <= b.max)]!
    if (x.inv.currency === currency) { bucket.amount = { amount: bucket.amount.amount + x.open, currency }; bucket.count++ }
    return { id: x.inv.id, number: x.inv.number, psaId: x.inv.psaInvoiceId, dueOn: x.inv.dueOn, days, balance: { amount: x.open, currency: x.inv.currency }, balanceCents: x.open }
  })
  const recent = await db('payment_attempts').where({ tenant_id: tenantId, customer_id: customer.id }).orderBy('created_at', 'desc').limit(10) as AttemptRow[]
  // What each paid: an invoice, or several for a statement payment.
  const paid = await allocationsByAttempt(db, tenantId, recent.map(r => r.id))
  const attempts = recent.map(r => ({
    ...attemptView(toAttempt(r), methods),
    pays: capitalised(invoiceLabel((paid.get(r.id) ?? []).map(a => a.invoiceNumber)))
  }))
  const collection = await db('collection_exceptions as c').join('invoices as i', function () { this.on('i.tenant_id', 'c.tenant_id').andOn('i.id', 'c.invoice_id') })
    .where({ 'c.tenant_id': tenantId, 'i.customer_id': customer.id }).whereNull('c.resolved_at').select('c.explanation', 'c.next_step', 'i.number', 'c.created_at') as Array<{ explanation: string, next_step: string, number: string, created_at: Date }>
  const reconciliation = await listExceptions(db, tenantId, { customerId: customer.id, status: 'open', limit: 20 })
  const plans = await db('installment_plans as p').join('invoices as i', function () { this.on('i.tenant_id', 'p.tenant_id').andOn('i.id', 'p.invoice_id') })
    .where({ 'p.tenant_id': tenantId, 'p.customer_id': customer.id }).select('p.id', 'p.part_count', 'p.status', 'i.number') as Array<{ id: string, part_count: number, status: string, number: string }>
  // One statement payment covers one currency; a client owing in two pays each from the invoice pods.
  const statementPayable = methods.length > 0 && open.length > 0 && open.every(x => x.inv.currency === currency)
  return {
    customer,
    statement: statementPayable ? { currency, openCents: open.reduce((sum, x) => sum + x.open, 0) } : null,
    autopay: { enrolled: enrolment?.enrolled === true, paused: rule.paused === true, preference: methodPreferenceWords(String(rule.methodPreference ?? '')), cap: typeof rule.amountCap === 'number' ? { amount: rule.amountCap, currency } : null },
    methods: methods.map(m => ({ ...methodView(m), consents: consents.filter(c => c.paymentMethodId === m.id).map(c => ({ kind: consentWords(c.kind), acceptedAt: c.acceptedAt })) })),
    openInvoices,
    aging,
    attempts,
    failures: attempts.filter(a => a.status === 'failed').length,
    exceptions: [
      ...collection.map(c => ({ source: 'Collection', title: `Invoice ${c.number}: ${c.explanation}`, hint: c.next_step, at: c.created_at })),
      ...reconciliation.map(e => ({ source: 'Reconciliation', title: e.summary, hint: e.suggestedRepair ?? e.likelyCause, at: e.createdAt }))
    ],
    plans: plans.map(p => ({ invoice: p.number, parts: p.part_count, status: planStateWords(p.status) })),
    timeZone: (await db('tenants').where({ id: tenantId }).first('time_zone') as { time_zone: string } | undefined)?.time_zone ?? 'UTC'
  }
}

// --- QuickBooks sync slot ------------------------------------------------------------------------

export interface QuickBooksDeps { db: Knex, accountingFor: () => AccountingFactory | null }

async function accountingOf (deps: QuickBooksDeps, tenantId: string): Promise<AccountingPort | null> {
  const factory = deps.accountingFor()
  if (factory === null) return null
  try { return await factory(tenantId) } catch { return null }
}

export interface SyncDocument { label: string, ok: boolean, url: string | null, error: string | null, hint: string | null }

const kindLabel = (kind: string): string => capitalised(kind.replace(/_/g, ' '))

const postedView = (p: SyncNowResult['posted'][number]): SyncDocument => ({
  label: `${kindLabel(p.kind)} #${p.externalId} (${formatMoney(p.amount)})`, ok: true,
  url: p.docUrl !== undefined && /^https:\/\//.test(p.docUrl) ? p.docUrl : null, error: null, hint: null
})

/** Where Intuit shows a sandbox company's documents. */
const QUICKBOOKS_SANDBOX_APP = 'https://app.sandbox.qbo.intuit.com/'

const failedView = (f: SyncNowResult['failed'][number]): SyncDocument => ({ label: kindLabel(f.kind), ok: false, url: null, error: f.reason, hint: f.fixHint })

export async function quickbooksModel (deps: QuickBooksDeps, tenantId: string): Promise<Record<string, unknown>> {
  const connection = await getAccountingConnection(deps.db, tenantId)
  const state = connection === null || connection.status === 'disconnected' ? 'not_connected' : connection.status === 'reconnect_required' ? 'reconnect' : 'connected'
  const pending = await deps.db('jobs').where({ tenant_id: tenantId, state: 'pending' }).where('queue', 'like', 'qbo.%').count<Array<{ count: string | number }>>('* as count')
  const failed = await listExceptions(deps.db, tenantId, { kind: 'posting_failed', status: 'open', limit: 20 })
  return {
    connected: state === 'connected',
    needsReconnect: state === 'reconnect',
    company: connection?.companyName ?? connection?.realmId ?? null,
    problem: state === 'reconnect' ? connection?.lastError ?? 'QuickBooks refused the stored sign-in.' : null,
    pending: Number(pending[0]?.count ?? 0),
    failures: failed.map(e => ({ label: e.summary, ok: false, url: null, error: e.likelyCause ?? e.summary, hint: e.suggestedRepair }))
  }
}

export async function syncQuickBooks (deps: QuickBooksDeps, tenantId: string, customerId?: string): Promise<{ connected: boolean, posted: SyncDocument[], failed: SyncDocument[], pending: number, message: string }> {
  const accounting = await accountingOf(deps, tenantId)
  if (accounting === null) {
    return { connected: false, posted: [], failed: [], pending: 0, message: 'QuickBooks is not connected. Connect it in Settle\'s settings, then sync.' }
  }
  const result = await syncNow(deps.db, accounting, tenantId, customerId !== undefined ? { customerId } : {})
  // Sandbox books (Intuit's sandbox, or the built-in stand-in) open in sandbox QuickBooks, never in production QuickBooks.
  const sandbox = (await getAccountingConnection(deps.db, tenantId))?.settings.site === 'sandbox'
  const posted = result.posted.map(p => postedView(sandbox && p.docUrl !== undefined ? { ...p, docUrl: p.docUrl.replace(/^https:\/\/app\.qbo\.intuit\.com\//, QUICKBOOKS_SANDBOX_APP) } : p))
  const failed = result.failed.map(failedView)
  const pending = result.pending.payments + result.pending.deposits + result.pending.reversals
  return { connected: true, posted, failed, pending, message: `${posted.length} posted, ${failed.length} failed, ${pending === 0 ? 'nothing' : pending} still waiting.` }
}
