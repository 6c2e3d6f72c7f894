import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { getPaymentMethod, listPaymentMethods, listAttempts } from '../../db/payments.js'
import { getTenant } from '../../db/tenants.js'
import { openBalance } from '../../db/invoices.js'
import { AppError, toAppError } from '../../errors.js'
import { formatMoney } from '../../domain/money.js'
import { classifyFailure } from '../../domain/retry-policy.js'
import { verifyPayLink } from '../../security/pay-links.js'
import { chargeInvoice } from '../../services/charge.js'

interface InvoiceRow { id: string, number: string, currency: string, issued_on: string | Date, due_on: string | Date | null, total: number, voided: boolean, customer_id: string, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number, name: string }

const day = (d: string | Date | null): string => d === null ? '' : new Date(typeof d === 'string' ? `${d.slice(0, 10)}T12:00:00Z` : d).toLocaleDateString('en-US', { year: 'numeric', month: 'long', day: 'numeric', timeZone: 'UTC' })

/**
 * The client's pay page, reached by a signed, expiring link. White-label:
 * the MSP's name, not Settle's. Pays the open balance with a method the
 * client has on file; adding a new card or bank account is the checkout
 * work still to come.
 */
export default async function payRoutes (app: FastifyInstance, { publicUrl }: { publicUrl: string }): Promise<void> {
  const load = async (token: string): Promise<{ tenantName: string, tenantId: string, invoice: InvoiceRow, open: number }> => {
    const link = verifyPayLink(app.keyring, token, new Date())
    const invoice = await app.db('invoices as i').join('customers as c', function () { this.on('c.tenant_id', 'i.tenant_id').andOn('c.id', 'i.customer_id') })
      .where({ 'i.tenant_id': link.tenantId, 'i.id': link.invoiceId }).first('i.*', 'c.name') as InvoiceRow | undefined
    if (invoice === undefined) throw new AppError('PAY_LINK_INVALID', 'This payment link is not valid. Ask your IT provider for a new one.')
    const tenant = await getTenant(app.db, link.tenantId)
    return { tenantName: tenant.name, tenantId: tenant.id, invoice, open: openBalance(invoice) }
  }

  const render = async (reply: FastifyReply, token: string, notice: { kind: 'ok' | 'wait' | 'bad', text: string } | null): Promise<FastifyReply> => {
    const { tenantName, tenantId, invoice, open } = await load(token)
    const methods = await listPaymentMethods(app.db, tenantId, invoice.customer_id)
    const money = (cents: number): string => formatMoney({ amount: cents, currency: invoice.currency as 'USD' })
    const attempts = await listAttempts(app.db, tenantId, invoice.id)
    const inFlight = attempts.some(a => a.status === 'processing' || a.status === 'created' || a.status === 'unknown')
    reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer')
    return await reply.view('pay', {
      title: `Invoice ${invoice.number} · ${tenantName}`,
      tenantName,
      invoice: { number: invoice.number, client: invoice.name, issued: day(invoice.issued_on), due: day(invoice.due_on), total: money(Number(invoice.total)), open: money(Math.max(open, 0)) },
      payable: open > 0 && !invoice.voided && !inFlight,
      settled: open <= 0,
      processing: inFlight,
      methods: methods.map(m => ({ id: m.id, label: `${m.type === 'ach' ? (m.brand ?? 'Bank account') : (m.brand ?? 'Card').replace(/^\w/, c => c.toUpperCase())} ending ${m.last4}${m.expMonth !== null && m.expYear !== null ? `, expires ${String(m.expMonth).padStart(2, '0')}/${m.expYear}` : ''}`, checked: m.isDefault })),
      action: `/pay/${token}`,
      notice
    }, { layout: 'layouts/pay.hbs' })
  }

  app.get<{ Params: { token: string } }>('/pay/:token', async (request, reply) => await render(reply, request.params.token, null))

  app.post<{ Params: { token: string }, Body: { method?: string } }>('/pay/:token', async (request: FastifyRequest<{ Params: { token: string }, Body: { method?: string } }>, reply) => {
    // The token in the URL is the capability; a form posted from another site is still refused.
    const origin = request.headers.origin
    if (origin !== undefined && origin !== new URL(publicUrl).origin && origin !== `${request.protocol}://${request.host}`) {
      throw new AppError('VALIDATION_FAILED', 'This form can only be sent from the payment page itself.')
    }
    const { tenantId, invoice } = await load(request.params.token)
    const methodId = request.body?.method
    if (typeof methodId !== 'string' || methodId === '') return await render(reply.status(400), request.params.token, { kind: 'bad', text: 'Choose a payment method.' })
    try {
      const result = await chargeInvoice(app.db, await app.paymentsFor(app.db, tenantId), { tenantId, invoiceId: invoice.id, paymentMethodId: methodId, actor: 'client', trigger: 'checkout' })
      const notice = result.outcome === 'succeeded' ? { kind: 'ok' as const, text: 'Thank you: your payment went through.' }
        : result.outcome === 'processing' || result.outcome === 'already_processing' ? { kind: 'wait' as const, text: 'Your payment is processing. Bank payments take a few business days to clear; nothing more to do.' }
          : result.outcome === 'unknown' ? { kind: 'wait' as const, text: 'We are confirming your payment with the bank. Please do not pay again; this page will show the result shortly.' }
            : { kind: 'bad' as const, text: `Your payment did not go through. ${classifyFailure({ method: (await getPaymentMethod(app.db, tenantId, methodId)).type, code: result.attempt.failure.code, declineCode: result.attempt.failure.declineCode, adviceCode: result.attempt.failure.adviceCode }).explanation}` }
      return await render(reply, request.params.token, notice)
    } catch (error) {
      const appError = toAppError(error)
      if (appError.status >= 500) throw error
      return await render(reply.status(appError.status), request.params.token, { kind: 'bad', text: appError.message })
    }
  })
}
