import { formatMoney } from '../domain/money.js'
import { formatDay } from '../domain/dates.js'
import { classifyFailure } from '../domain/retry-policy.js'
import { getAttempt, getPaymentMethod } from '../db/payments.js'
import { getTenant } from '../db/tenants.js'
import type { Mailer } from '../ports/mailer.js'
import type { Keyring } from '../security/keyring.js'
import { signPayLink } from '../security/pay-links.js'
import { PermanentJobError, type JobHandler } from './worker.js'

/** `payLinkDays` is PAY_LINK_DAYS: one validity for every link Settle makes, and the one every page states. */
export interface NoticeDeps { keyring: Keyring, publicUrl: string, mailer: Mailer, payLinkDays: number }

export type PayLinkDeps = Pick<NoticeDeps, 'keyring' | 'publicUrl' | 'payLinkDays'>

export function payLinkUrl (deps: PayLinkDeps, tenantId: string, invoiceId: string, now = new Date()): { url: string, expiresAt: Date, validDays: number } {
  const expiresAt = new Date(now.getTime() + deps.payLinkDays * 86_400_000)
  return { url: `${deps.publicUrl}/pay/${signPayLink(deps.keyring, { tenantId, invoiceId, expiresAt })}`, expiresAt, validDays: deps.payLinkDays }
}

/** A client asked, from an expired or broken link, for a fresh one: sent to the billing contact on file, never to an address the request named. */
export const RESEND_PAY_LINK_QUEUE = 'pay-link.resend'

export function noticeJobHandlers (deps: NoticeDeps): Record<string, JobHandler> {
  return {
    [RESEND_PAY_LINK_QUEUE]: async (job, { db }) => {
      if (job.tenantId === null || typeof job.payload.invoiceId !== 'string') throw new PermanentJobError(`${RESEND_PAY_LINK_QUEUE} needs a tenant and an invoice`)
      const tenant = await getTenant(db, job.tenantId)
      const invoice = await db('invoices as i').join('customers as c', function () { this.on('c.tenant_id', 'i.tenant_id').andOn('c.id', 'i.customer_id') })
        .where({ 'i.tenant_id': job.tenantId, 'i.id': job.payload.invoiceId }).first('i.id', 'i.number', 'c.name', 'c.billing_email') as { id: string, number: string, name: string, billing_email: string | null } | undefined
      if (invoice === undefined || invoice.billing_email === null) return // nothing to send to: the request page said the same either way
      const link = payLinkUrl(deps, job.tenantId, invoice.id)
      await deps.mailer.send({
        kind: 'pay_link.resent',
        to: invoice.billing_email,
        toName: invoice.name,
        subject: `A new link to pay invoice ${invoice.number}`,
        text: [
          `Hello ${invoice.name},`,
          '',
          `Here is a new link to pay invoice ${invoice.number}, as asked for on our payment page: ${link.url}`,
          `(This link works until ${formatDay(link.expiresAt)}.)`,
          '',
          'If you did not ask for it, you can ignore this message.',
          '',
          'Thank you,',
          tenant.name
        ].join('\n')
      })
    },

    /**
     * A scheduled collection has run out of road (hard decline, the client must
     * act, retries spent): the invoice goes on the exceptions list with the
     * reason, and the client is told, with a link to pay.
     */
    'collection.give-up': async (job, { db }) => {
      if (job.tenantId === null || typeof job.payload.attemptId !== 'string') throw new PermanentJobError('collection.give-up needs a tenant and an attempt')
      const attempt = await getAttempt(db, job.tenantId, job.payload.attemptId)
      // Only scheduled collections give up (followUp); a person started every statement payment and saw its decline.
      if (attempt.invoiceId === null) throw new PermanentJobError(`attempt ${attempt.id} is a statement payment; nothing scheduled gave up on it`)
      const method = await getPaymentMethod(db, job.tenantId, attempt.paymentMethodId).catch(() => null)
      const verdict = classifyFailure({ method: method?.type ?? 'card', code: attempt.failure.code, declineCode: attempt.failure.declineCode, adviceCode: attempt.failure.adviceCode })
      const why = String(job.payload.why ?? verdict.class)
      const nextStep = why === 'schedule_exhausted' || why === 'attempt_cap' ? 'Retries are spent; reach the client, or wait for them to pay by the link we sent.' : verdict.nextStep
      const inserted = await db('collection_exceptions').insert({
        tenant_id: job.tenantId, invoice_id: attempt.invoiceId, attempt_id: attempt.id, reason: `${why}: ${verdict.reason}`, explanation: verdict.explanation, next_step: nextStep
      }).onConflict(['tenant_id', 'attempt_id']).ignore().returning('id')
      if (inserted.length === 0) return // already raised and told
      const tenant = await getTenant(db, job.tenantId)
      const invoice = await db('invoices as i').join('customers as c', function () { this.on('c.tenant_id', 'i.tenant_id').andOn('c.id', 'i.customer_id') })
        .where({ 'i.tenant_id': job.tenantId, 'i.id': attempt.invoiceId }).first('i.number', 'c.name') as { number: string, name: string }
      const link = payLinkUrl(deps, job.tenantId, attempt.invoiceId)
      const methodName = method === null ? 'saved payment method' : `${method.type === 'ach' ? 'bank account' : 'card'} ending ${method.last4}`
      await deps.mailer.send({
        kind: 'collection.failed',
        to: null,
        toName: invoice.name,
        subject: `Payment for invoice ${invoice.number} did not go through`,
        text: [
          `Hello ${invoice.name},`,
          '',
          `We tried to collect ${formatMoney(attempt.amount)} for invoice ${invoice.number} from your ${methodName}, but it did not go through. ${verdict.explanation}`,
          '',
          `You can pay securely here: ${link.url}`,
          `(This link works until ${formatDay(link.expiresAt)}.)`,
          '',
          `Thank you,`,
          tenant.name
        ].join('\n')
      })
    }
  }
}
