import type { Knex } from 'knex'
import { requireTenantId } from '../db/tenants.js'
import { AppError } from '../errors.js'
import { activeConsents, enrolledCustomers, getTenantRule } from '../db/autopay.js'
import { enqueue } from '../db/jobs.js'
import { collectionsUnderway, listPaymentMethods, type CollectionUnderway } from '../db/payments.js'
import { isoDate, openBalance } from '../db/invoices.js'
import { decideAutopay, effectiveRule, type AutopayDecision, type StoredMethod } from '../domain/autopay.js'

export interface AutopayRunSummary {
  queued: number
  awaitingApproval: number
  waiting: number
  skipped: Array<{ invoiceId: string, reason: string }>
}

/** Why auto-pay leaves an invoice alone, in words for the run's summary and log. */
export const UNDERWAY_REASON: Record<CollectionUnderway, string> = {
  installments: 'The client is paying this invoice in installments.',
  retrying: 'A retry of an earlier failed payment is already scheduled for this invoice.',
  in_flight: 'A payment on this invoice is already processing.'
}

/**
 * One tenant's auto-pay for one day: decide per open invoice of every
 * enrolled client, then queue one charge job per invoice and day (the dedupe
 * key), so a second run, or another process's run, queues nothing more.
 * Charges above the approval amount wait for a person instead.
 */
export async function runAutopay (db: Knex, tenantId: string, today: string): Promise<AutopayRunSummary> {
  const summary: AutopayRunSummary = { queued: 0, awaitingApproval: 0, waiting: 0, skipped: [] }
  const tenantRule = await getTenantRule(db, tenantId)
  for (const { customerId, overrides } of await enrolledCustomers(db, tenantId)) {
    const rule = effectiveRule(tenantRule, overrides)
    const consents = await activeConsents(db, tenantId, customerId)
    const autopayConsent = consents.some(c => c.kind === 'autopay')
    const methods: StoredMethod[] = (await listPaymentMethods(db, tenantId, customerId)).map(m => ({
      id: m.id,
      type: m.type,
      isDefault: m.isDefault,
      expires: m.expYear === null || m.expMonth === null ? null : `${m.expYear}-${String(m.expMonth).padStart(2, '0')}`,
      // ACH needs its mandate as well as the auto-pay authorisation.
      authorised: autopayConsent && (m.type === 'card' || consents.some(c => c.kind === 'ach_mandate' && c.paymentMethodId === m.id))
    }))
    const invoices = await db('invoices').where({ tenant_id: tenantId, customer_id: customerId, voided: false })
      .whereIn('status', ['open', 'partially_paid']).orderBy([{ column: 'due_on', order: 'asc' }, { column: 'number', order: 'asc' }]) as Array<{
      id: string, kind: string, agreement_name: string | null, issued_on: string | Date, due_on: string | Date | null, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number
    }>
    // An invoice a plan, a retry schedule or a payment in flight is collecting is never charged by auto-pay as well.
    const underway = await collectionsUnderway(db, tenantId, invoices.map(i => i.id))
    for (const invoice of invoices) {
      const busy = underway.get(invoice.id)
      if (busy !== undefined) { summary.skipped.push({ invoiceId: invoice.id, reason: UNDERWAY_REASON[busy] }); continue }
      const decision: AutopayDecision = decideAutopay(rule, {
        kind: invoice.kind,
        agreementName: invoice.agreement_name,
        open: openBalance(invoice),
        issuedOn: isoDate(invoice.issued_on) ?? today,
        dueOn: isoDate(invoice.due_on)
      }, methods, today)
      if (decision.action === 'charge') {
        const [job] = await enqueue(db, tenantId, [{
          queue: 'autopay.charge',
          payload: { invoiceId: invoice.id, paymentMethodId: decision.method.id, amount: decision.amount, runOn: today },
          dedupeKey: `autopay:${invoice.id}:${today}`,
          maxAttempts: 3
        }])
        if (job !== undefined) summary.queued++
      } else if (decision.action === 'needs_approval') {
        // One request per invoice until a person decides; a decline stands (collect it another way).
        const earlier = await db('autopay_approvals').where({ tenant_id: tenantId, invoice_id: invoice.id }).whereIn('status', ['pending', 'declined']).first('status') as { status: string } | undefined
        if (earlier?.status === 'declined') { summary.skipped.push({ invoiceId: invoice.id, reason: 'A person declined auto-pay for this invoice.' }); continue }
        if (earlier === undefined) {
          await db('autopay_approvals').insert({ tenant_id: tenantId, invoice_id: invoice.id, payment_method_id: decision.method.id, amount: decision.amount, run_on: today })
            .onConflict(['tenant_id', 'invoice_id', 'run_on']).ignore()
        }
        summary.awaitingApproval++
      } else if (decision.action === 'wait') {
        summary.waiting++
      } else {
        summary.skipped.push({ invoiceId: invoice.id, reason: decision.reason })
      }
    }
  }
  return summary
}

/**
 * A person approves or declines an auto-pay charge held for approval. An
 * approved charge is queued like any auto-pay charge (one per invoice and
 * day); deciding twice is refused.
 */
export async function decideApproval (db: Knex, tenantId: string, approvalId: string, decision: 'approved' | 'declined', actor: string): Promise<void> {
  requireTenantId(tenantId)
  const [row] = await db('autopay_approvals').where({ tenant_id: tenantId, id: approvalId, status: 'pending' })
    .update({ status: decision, decided_by: actor, decided_at: db.fn.now() }).returning('*') as Array<{ invoice_id: string, payment_method_id: string, amount: number, run_on: string | Date }>
  if (row === undefined) throw new AppError('VALIDATION_FAILED', 'That approval is unknown or already decided.')
  if (decision === 'declined') return
  const runOn = typeof row.run_on === 'string' ? row.run_on.slice(0, 10) : row.run_on.toISOString().slice(0, 10)
  await enqueue(db, tenantId, [{
    queue: 'autopay.charge',
    payload: { invoiceId: row.invoice_id, paymentMethodId: row.payment_method_id, amount: Number(row.amount), runOn, approvedBy: actor },
    dedupeKey: `autopay:${row.invoice_id}:${runOn}`,
    maxAttempts: 3
  }])
}
