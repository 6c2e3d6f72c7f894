import type { Knex } from 'knex'
import { activeConsents, enrolledCustomers, getTenantRule } from '../db/autopay.js'
import { enqueue } from '../db/jobs.js'
import { listPaymentMethods } from '../db/payments.js'
import { decideAutopay, effectiveRule, type AutopayDecision, type StoredMethod } from '../domain/autopay.js'

export interface AutopayRunSummary {
  queued: number
  awaitingApproval: number
  waiting: number
  skipped: Array<{ invoiceId: string, reason: string }>
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
    for (const invoice of invoices) {
      const day = (d: string | Date | null): string | null => d === null ? null : typeof d === 'string' ? d.slice(0, 10) : `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`
      const decision: AutopayDecision = decideAutopay(rule, {
        kind: invoice.kind,
        agreementName: invoice.agreement_name,
        open: Number(invoice.ledger_billed) - Number(invoice.paid_via_settle) - Number(invoice.ledger_paid_elsewhere),
        issuedOn: day(invoice.issued_on) ?? today,
        dueOn: day(invoice.due_on)
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
        await db('autopay_approvals').insert({ tenant_id: tenantId, invoice_id: invoice.id, payment_method_id: decision.method.id, amount: decision.amount, run_on: today })
          .onConflict(['tenant_id', 'invoice_id', 'run_on']).ignore()
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
