import type { Knex } from 'knex'
import { openBalance } from '../db/invoices.js'
import { postEntry } from '../db/ledger.js'
import { allocationsOf } from '../db/payments.js'
import { capitalised, invoiceLabel } from './charge.js'
import { reopenInvoices, restatements } from './refunds.js'
import { invoiceStatus, type InvoiceStatus } from '../domain/invoice-sync.js'
import { Accounts, type PostingInput } from '../domain/ledger.js'
import { zero } from '../domain/money.js'
import { splitReturned } from '../domain/surcharge.js'
import type { DisputeState } from '../ports/payments.js'

/**
 * A card dispute or an ACH return after success, applied from the
 * processor's current view of it, so events in any order, or twice, end the
 * same. Funds withdrawn: the money moves from the processor to `disputes`
 * and the invoice shows "disputed". Won: it comes back, the invoice is paid
 * again. Lost: the client owes it again, the invoice reopens, and the PSA is
 * told (the outbox un-pays it there), or the next sync would book the PSA's
 * stale payment as money received. A card surcharge in the disputed money
 * is income given back, not owed on the invoice: lost money is split pro
 * rata and only the invoice's share reopens it.
 */
export async function recordDispute (db: Knex, tenantId: string, dispute: DisputeState): Promise<'not_ours' | 'recorded'> {
  return await db.transaction(async trx => {
    const attempt = await trx('payment_attempts').where({ tenant_id: tenantId, processor_intent_ref: dispute.intentId }).forUpdate().first() as
      { id: string, invoice_id: string | null, customer_id: string, payment_method_id: string, status: string, amount: number | string, surcharge_amount: number | string } | undefined
    if (attempt === undefined) return 'not_ours'
    const paid = await allocationsOf(trx, tenantId, attempt.id)
    const invoices = await trx('invoices').where({ tenant_id: tenantId }).whereIn('id', paid.map(a => a.invoiceId)).orderBy('id').forUpdate() as Array<{
      id: string, voided: boolean, status: InvoiceStatus, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number
    }>
    const what = capitalised(invoiceLabel(paid.map(a => a.invoiceNumber)))
    const amount = dispute.amount
    const minus = { amount: -amount.amount, currency: amount.currency }
    const source = { processor: 'stripe', dispute: dispute.id, attempt: attempt.id }
    const withdrawn: PostingInput[] = [
      { account: Accounts.disputes(), amount },
      { account: Accounts.processorPending('stripe'), amount: minus }
    ]
    if (dispute.fee !== null) {
      withdrawn.push({ account: Accounts.processorFees(), amount: dispute.fee }, { account: Accounts.processorPending('stripe'), amount: { amount: -dispute.fee.amount, currency: dispute.fee.currency } })
    }
    const first = await postEntry(trx, tenantId, { idempotencyKey: `dispute:${dispute.id}:withdrawn`, kind: 'dispute.funds_withdrawn', effectiveAt: dispute.createdAt, memo: `${what}: ${dispute.reason.replaceAll('_', ' ')} dispute, funds withdrawn`, postings: withdrawn, source })
    if (first.created) {
      await trx('payment_attempts').where({ tenant_id: tenantId, id: attempt.id }).update({ status: 'disputed', updated_at: trx.fn.now() })
      await trx('invoices').where({ tenant_id: tenantId }).whereIn('id', invoices.map(i => i.id)).update({ status: 'disputed', updated_at: trx.fn.now() })
    }
    if (dispute.status === 'won') {
      const won = await postEntry(trx, tenantId, {
        idempotencyKey: `dispute:${dispute.id}:won`, kind: 'dispute.won', effectiveAt: dispute.reinstatedAt ?? dispute.createdAt, memo: `${what}: dispute won, funds reinstated`, source,
        postings: [{ account: Accounts.processorPending('stripe'), amount }, { account: Accounts.disputes(), amount: minus }]
      })
      if (won.created) {
        await trx('payment_attempts').where({ tenant_id: tenantId, id: attempt.id }).update({ status: 'succeeded', updated_at: trx.fn.now() })
        for (const invoice of invoices) {
          await trx('invoices').where({ tenant_id: tenantId, id: invoice.id }).update({ status: invoiceStatus(openBalance(invoice), Number(invoice.ledger_billed), invoice.voided, null), updated_at: trx.fn.now() })
        }
      }
    } else if (dispute.status === 'lost') {
      const charged = { amount: { amount: Number(attempt.amount), currency: amount.currency }, surcharge: { amount: Number(attempt.surcharge_amount), currency: amount.currency } }
      const share = splitReturned(charged, zero(amount.currency), amount)
      const lostPostings: PostingInput[] = [
        { account: Accounts.receivable(attempt.customer_id), amount: share.invoice },
        { account: Accounts.surchargeIncome(), amount: share.surcharge },
        { account: Accounts.disputes(), amount: minus }
      ]
      // Only the first time: reopening is not idempotent, the ledger entry's key is.
      const method = await trx('payment_methods').where({ tenant_id: tenantId, id: attempt.payment_method_id }).first('type') as { type: string }
      const already = await trx('journal_entries').where({ tenant_id: tenantId, idempotency_key: `dispute:${dispute.id}:lost` }).first('id')
      const reopened = already === undefined ? await reopenInvoices(trx, tenantId, { id: attempt.id, invoiceId: attempt.invoice_id }, paid, 0, share.invoice.amount) : []
      await postEntry(trx, tenantId, {
        idempotencyKey: `dispute:${dispute.id}:lost`, kind: 'dispute.lost', effectiveAt: dispute.createdAt, memo: `${what}: dispute lost, the client owes it again`, source,
        postings: lostPostings.filter(p => p.amount.amount !== 0)
      }, {
        // A partly lost dispute: what the client still paid on each invoice is pushed again.
        effects: [...restatements(reopened, { attemptId: attempt.id, after: 'dispute', sourceId: dispute.id, currency: amount.currency, paidOn: dispute.createdAt, methodType: method.type }),
        { queue: 'qbo.post-reversal', dedupeKey: `qbo-reversal:dispute:${dispute.id}`, payload: { sourceId: dispute.id, attemptId: attempt.id, invoiceAmount: share.invoice.amount, surchargeAmount: share.surcharge.amount, currency: amount.currency, why: 'dispute_lost' } }]
      })
    }
    return 'recorded'
  })
}
