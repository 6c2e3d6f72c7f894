import type { Knex } from 'knex'
import { AppError } from '../errors.js'
import { audit } from '../db/audit.js'
import { readPostingSettings } from '../db/accounting-postings.js'
import { closeException, raiseException } from '../db/reconciliation-exceptions.js'
import { requireTenantId } from '../db/tenants.js'
import type { AccountingPayment, AccountingPort } from '../ports/accounting.js'
import { formatMoney } from '../domain/money.js'
import { reconcileOutsidePayments } from './reconcile.js'

/**
 * Payments someone entered in QuickBooks (a check recorded by the
 * bookkeeper, a wire) are money collected elsewhere: read through CDC since
 * the tenant's stored cursor, stored as outside payments (source
 * 'quickbooks', keyed by the QBO payment id, so an overlapping window or a
 * second run stores nothing twice) and matched by the same engine and apply
 * path as bank lines (reconcileOutsidePayments).
 *
 * Not ingested: payments Settle posted itself (their id is in
 * accounting_postings.external_id; the note "Settle payment …" covers the
 * moment between QBO's answer and our write of that id), and deleted or
 * voided ones (a void leaves TotalAmt 0). A stored payment edited in QBO
 * later is read again: still on the queue, it is re-described and matched
 * afresh; already applied with a different amount, it is a finding for a
 * person (revise). A payment already linked to an
 * invoice in QBO carries that invoice's number as its reference, and a QBO
 * customer linked to ours names the customer outright.
 */

const STREAM = 'payments'
/** Re-read a little of the last window: QBO's clock and ours differ, and late commits land behind the cursor. */
const OVERLAP_MS = 10 * 60_000
/** QBO's CDC looks back 30 days; stay an hour inside it. */
const LOOKBACK_MS = 30 * 86_400_000 - 3_600_000
const LEASE_MS = 10 * 60_000
const SETTLE_NOTE = /^Settle payment /
const CHUNK = 500

export interface QuickBooksPaymentsResult {
  /** The window read: changes since this instant (ISO). */
  since: string
  /** Where the next run starts. */
  cursor: string
  /** The cursor was older than QBO keeps: changes in between may have been missed. */
  gap: boolean
  seen: number
  imported: number
  alreadyImported: number
  skippedOwn: number
  skippedVoided: number
  /** Already-stored payments since voided or deleted in QBO (taken off the queue, or flagged if applied). */
  withdrawn: number
  /** Already-stored payments edited in QBO since (re-described and matched again, or flagged if applied). */
  revised: number
  autoApplied: number
  exceptions: number
}

type Obj = Record<string, any>

const chunks = <T>(list: readonly T[]): T[][] => {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK))
  return out
}

async function claim (db: Knex, tenantId: string, start: Date): Promise<{ cursor_at: Date } | null> {
  await db('accounting_cdc_cursors').insert({ tenant_id: tenantId, stream: STREAM, cursor_at: start }).onConflict(['tenant_id', 'stream']).ignore()
  const [row] = await db('accounting_cdc_cursors')
    .where({ tenant_id: tenantId, stream: STREAM })
    .andWhere(q => { void q.whereNull('locked_until').orWhere('locked_until', '<', db.fn.now()) })
    .update({ locked_until: db.raw("now() + (? * interval '1 millisecond')", [LEASE_MS]), last_run_at: db.fn.now(), updated_at: db.fn.now() })
    .returning(['cursor_at']) as Array<{ cursor_at: Date }>
  return row ?? null
}

export async function pullQuickBooksPayments (db: Knex, tenantId: string, accounting: AccountingPort | null, options: { actor?: string, now?: Date } = {}): Promise<QuickBooksPaymentsResult> {
  requireTenantId(tenantId)
  if (accounting === null) throw new AppError('ACCOUNTING_NOT_CONNECTED', 'Connect QuickBooks before reading its payments.')
  const actor = options.actor ?? 'system:quickbooks-payments'
  const now = options.now ?? new Date()
  const floor = new Date(now.getTime() - LOOKBACK_MS)
  // The first run reads from when the books were connected: older payments are history the PSA already knows.
  const conn = await db('accounting_connections').where({ tenant_id: tenantId, system: 'quickbooks' }).first('connected_at') as { connected_at: Date } | undefined
  const first = conn === undefined || new Date(conn.connected_at) < floor ? floor : new Date(conn.connected_at)
  const claimed = await claim(db, tenantId, first)
  if (claimed === null) throw new AppError('SYNC_IN_PROGRESS', 'QuickBooks payments are being read for this tenant right now; try again in a few minutes.')
  try {
    const stored = new Date(claimed.cursor_at)
    const gap = stored < floor
    const since = gap ? floor : stored
    const changes = await accounting.changedSince({ entities: ['Payment'], since })

    const deleted = new Set(changes.deleted.filter(d => d.entity === 'Payment').map(d => d.id))
    const byId = new Map<string, AccountingPayment>()
    for (const p of changes.payments) byId.set(p.id, p)
    const voided = new Set([...deleted, ...[...byId.values()].filter(p => p.total.amount <= 0).map(p => p.id)])
    const live = [...byId.values()].filter(p => !voided.has(p.id))

    const own = new Set<string>()
    for (const ids of chunks(live.map(p => p.id))) {
      const rows = await db('accounting_postings').where({ tenant_id: tenantId, external_type: 'Payment' }).whereIn('external_id', ids).pluck('external_id') as string[]
      for (const id of rows) own.add(id)
    }
    for (const p of live) if (p.note !== null && SETTLE_NOTE.test(p.note)) own.add(p.id)

    const known = new Map<string, StoredPayment>()
    for (const ids of chunks([...byId.keys(), ...deleted])) {
      const rows = await db('outside_payments').where({ tenant_id: tenantId, source: 'quickbooks' }).whereIn('source_ref', ids)
        .select('id', 'source_ref', 'status', 'amount', 'received_on', 'memo', 'payer', 'customer_id') as StoredPayment[]
      for (const r of rows) known.set(r.source_ref, r)
    }
    const fresh = live.filter(p => !own.has(p.id) && !known.has(p.id))
    const again = live.filter(p => !own.has(p.id) && known.has(p.id))

    const described = fresh.length + again.length === 0 ? [] : await describe(db, tenantId, accounting, [...fresh, ...again])
    const rows = described.slice(0, fresh.length)
    let revised = 0
    for (const [i, p] of again.entries()) {
      if (await revise(db, tenantId, known.get(p.id) as StoredPayment, described[fresh.length + i] as Record<string, unknown>, actor)) revised++
    }
    let imported = 0
    if (rows.length > 0) {
      const inserted = await db('outside_payments').insert(rows).onConflict(['tenant_id', 'source', 'source_ref']).ignore().returning('id') as Array<{ id: string }>
      imported = inserted.length
    }

    let withdrawn = 0
    for (const id of voided) {
      const k = known.get(id)
      if (k !== undefined && await withdraw(db, tenantId, id, k, deleted.has(id), actor)) withdrawn++
    }

    const cursor = new Date(Math.max(since.getTime(), now.getTime() - OVERLAP_MS))
    await db('accounting_cdc_cursors').where({ tenant_id: tenantId, stream: STREAM }).update({ cursor_at: cursor, updated_at: db.fn.now() })
    const counts = {
      seen: byId.size + [...deleted].filter(id => !byId.has(id)).length,
      imported,
      alreadyImported: again.length - revised + (fresh.length - imported),
      skippedOwn: live.filter(p => own.has(p.id)).length,
      skippedVoided: voided.size,
      withdrawn,
      revised
    }
    await audit(db, tenantId, actor, 'reconciliation.quickbooks_payments_read', null, { since: since.toISOString(), gap, ...counts })
    // Everything unmatched, not only this run's: a run that stopped after storing still gets its payments matched.
    const matched = await reconcileOutsidePayments(db, tenantId, { actor })
    return { since: since.toISOString(), cursor: cursor.toISOString(), gap, ...counts, ...matched }
  } finally {
    await db('accounting_cdc_cursors').where({ tenant_id: tenantId, stream: STREAM }).update({ locked_until: null })
  }
}

/** The outside_payments rows for new QBO payments: customer when linked, payer name, memo with the linked invoices' numbers first. */
async function describe (db: Knex, tenantId: string, accounting: AccountingPort, payments: readonly AccountingPayment[]): Promise<Array<Record<string, unknown>>> {
  const invoiceIds = [...new Set(payments.flatMap(p => p.applications.map(a => a.invoiceId)))]
  const docNumbers = new Map<string, string>()
  if (invoiceIds.length > 0) {
    const prefix = (await readPostingSettings(db, tenantId))?.docNumberPrefix ?? ''
    for (const inv of await accounting.findInvoices({ ids: invoiceIds })) {
      if (inv.docNumber === null) continue
      // Our invoice number is the DocNumber without the books' prefix.
      docNumbers.set(inv.id, prefix !== '' && inv.docNumber.startsWith(prefix) ? inv.docNumber.slice(prefix.length) : inv.docNumber)
    }
  }
  const customerIds = [...new Set(payments.map(p => p.customerId).filter(id => id !== ''))]
  const linked = new Map<string, string>()
  for (const ids of chunks(customerIds)) {
    const rows = await db('accounting_customer_links').where({ tenant_id: tenantId }).whereIn('external_customer_id', ids).select('external_customer_id', 'customer_id') as Array<{ external_customer_id: string, customer_id: string }>
    for (const r of rows) linked.set(r.external_customer_id, r.customer_id)
  }
  const names = new Map<string, string>()
  for (const p of payments) { const n = (p.raw as Obj | null)?.CustomerRef?.name; if (typeof n === 'string' && n.trim() !== '') names.set(p.customerId, n.trim()) }
  const nameless = customerIds.filter(id => !names.has(id))
  if (nameless.length > 0) for (const c of await accounting.findCustomers({ ids: nameless })) names.set(c.id, c.displayName)

  return payments.map(p => {
    const refs = [...new Set(p.applications.map(a => docNumbers.get(a.invoiceId)).filter((d): d is string => d !== undefined))]
    const method = (p.raw as Obj | null)?.PaymentMethodRef?.name
    const memo = [
      ...refs.map(d => `invoice ${d}`),
      p.reference === null ? null : String(p.reference),
      typeof method === 'string' && method !== '' ? `paid by ${method}` : null,
      p.note
    ].filter((s): s is string => s !== null && s.trim() !== '').join('; ')
    return {
      tenant_id: tenantId, source: 'quickbooks', source_ref: p.id, customer_id: linked.get(p.customerId) ?? null, payer: names.get(p.customerId) ?? null,
      amount: p.total.amount, currency: p.total.currency, received_on: p.txnDate, memo: memo === '' ? null : memo.slice(0, 2000)
    }
  })
}

interface StoredPayment { id: string, source_ref: string, status: string, amount: number | string, received_on: string | Date, memo: string | null, payer: string | null, customer_id: string | null }

const dayOf = (value: string | Date): string => typeof value === 'string' ? value.slice(0, 10) : value.toISOString().slice(0, 10)

/**
 * A stored QBO payment read again (CDC returns every change, so also an
 * edit): nothing to do when what Settle keeps of it is unchanged. Still on
 * the queue (unmatched, or an exception nobody settled): it takes the new
 * amount, date, payer and memo and goes back to be matched afresh. Applied already, or written off: a changed amount is
 * a finding for a person (the applications stay); other edits change no money.
 */
async function revise (db: Knex, tenantId: string, stored: StoredPayment, next: Record<string, unknown>, actor: string): Promise<boolean> {
  const was = { amount: Number(stored.amount), receivedOn: dayOf(stored.received_on), memo: stored.memo, payer: stored.payer, customerId: stored.customer_id }
  // A customer Settle already knows (linked since, or matched) is kept: QuickBooks naming none is no change.
  const now = { amount: Number(next.amount), receivedOn: String(next.received_on).slice(0, 10), memo: next.memo as string | null, payer: (next.payer as string | null) ?? stored.payer, customerId: (next.customer_id as string | null) ?? stored.customer_id }
  if (JSON.stringify(was) === JSON.stringify(now)) return false
  return await db.transaction(async trx => {
    const p = await trx('outside_payments').where({ tenant_id: tenantId, id: stored.id }).forUpdate().first('status', 'currency', 'customer_id') as { status: string, currency: string, customer_id: string | null }
    if (p.status === 'unmatched' || p.status === 'exception') {
      await trx('outside_payments').where({ tenant_id: tenantId, id: stored.id })
        .update({ amount: now.amount, received_on: now.receivedOn, memo: now.memo, payer: now.payer, customer_id: now.customerId, status: 'unmatched' })
      // An open question about it stays open: matching it again refreshes it, or answers it by applying the payment.
      await audit(trx, tenantId, actor, 'reconciliation.quickbooks_payment_revised', stored.id, { qboPaymentId: stored.source_ref, was, now })
      return true
    }
    if (was.amount !== now.amount && (p.status === 'matched' || p.status === 'partially_applied' || p.status === 'written_off')) {
      const currency = p.currency.trim() as AccountingPayment['total']['currency']
      await raiseException(trx, tenantId, {
        kind: 'tieout_difference',
        dedupeKey: `qbo-payment-revised:${stored.id}:${now.amount}`,
        customerId: p.customer_id,
        amount: { amount: Math.abs(now.amount - was.amount), currency },
        summary: `QuickBooks payment ${stored.source_ref} was changed there from ${formatMoney({ amount: was.amount, currency })} to ${formatMoney({ amount: now.amount, currency })} after Settle applied it.`,
        likelyCause: 'The bookkeeper corrected the amount received, or the payment was split in QuickBooks.',
        suggestedRepair: 'Check the deposit on the bank statement; then adjust what Settle applied (or change the payment back in QuickBooks).',
        details: { appliedOutsidePaymentId: stored.id, qboPaymentId: stored.source_ref, was: was.amount, now: now.amount }
      })
      return true
    }
    return false
  })
}

/** A stored QBO payment voided or deleted there: off the queue if nobody applied it yet, otherwise a finding for a person. */
async function withdraw (db: Knex, tenantId: string, qboId: string, k: { id: string, status: string }, wasDeleted: boolean, actor: string): Promise<boolean> {
  const how = wasDeleted ? 'deleted' : 'voided'
  return await db.transaction(async trx => {
    const p = await trx('outside_payments').where({ tenant_id: tenantId, id: k.id }).forUpdate().first('status', 'amount', 'currency', 'customer_id') as { status: string, amount: number | string, currency: string, customer_id: string | null }
    if (p.status === 'unmatched' || p.status === 'exception') {
      await trx('outside_payments').where({ tenant_id: tenantId, id: k.id }).update({ status: 'dismissed' })
      const open = await trx('reconciliation_exceptions').where({ tenant_id: tenantId, dedupe_key: `outside:${k.id}`, status: 'open' }).first('id') as { id: string } | undefined
      if (open !== undefined) await closeException(trx, tenantId, open.id, { status: 'dismissed', resolution: `The payment was ${how} in QuickBooks.`, actor })
      await audit(trx, tenantId, actor, 'reconciliation.quickbooks_payment_withdrawn', k.id, { qboPaymentId: qboId, how })
      return true
    }
    if (p.status === 'matched' || p.status === 'partially_applied') {
      await raiseException(trx, tenantId, {
        kind: 'tieout_difference',
        dedupeKey: `qbo-payment-withdrawn:${k.id}`,
        customerId: p.customer_id,
        amount: { amount: Number(p.amount), currency: p.currency.trim() as AccountingPayment['total']['currency'] },
        summary: `QuickBooks payment ${qboId} was ${how} there after Settle applied it to invoices.`,
        likelyCause: 'The bookkeeper entered it by mistake, or it bounced and was voided.',
        suggestedRepair: 'If the money never arrived, re-open the invoices in the PSA and reverse the application; otherwise re-enter the payment in QuickBooks.',
        // Not outsidePaymentId: accept/split/dismiss act on exceptions carrying that key, and this payment is applied already.
        details: { appliedOutsidePaymentId: k.id, qboPaymentId: qboId, how }
      })
      return true
    }
    return false
  })
}
