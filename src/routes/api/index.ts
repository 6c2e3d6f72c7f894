import type { FastifyInstance } from 'fastify'
import { allocationsOf, listAttempts, listPaymentMethods } from '../../db/payments.js'
import { isUuid } from '../../db/tenants.js'
import { openBalance, toInvoice, type InvoiceRow } from '../../db/invoices.js'
import { AppError } from '../../errors.js'
import { guardWithApiKeys, listKeys, revokeApiKey } from '../../security/api-keys.js'
import { payLinkUrl } from '../../jobs/notice-jobs.js'
import { chargeInvoice, chargeStatement, invoiceLabel, quoteStatement } from '../../services/charge.js'
import { refundPayment } from '../../services/refunds.js'
import { decideApproval } from '../../services/autopay.js'
import { audit } from '../../db/audit.js'


const uuidParam = (value: string, what: string): string => {
  if (!isUuid(value)) throw new AppError('VALIDATION_FAILED', `${what} must be a UUID.`)
  return value
}

const cents = (value: unknown, field: string): number | undefined => {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new AppError('INVALID_AMOUNT', `${field} is a positive whole number of cents (12345 for $123.45).`)
  return value
}

/**
 * The admin API: a tenant's back office and scripts, with a scoped key per
 * caller (`settle api-keys:create`). Charge card, refunds, approvals and the
 * exceptions list, through the same services as the pages and jobs; every
 * action is audited with the key's name.
 */
export default async function apiRoutes (app: FastifyInstance, { publicUrl }: { publicUrl: string }): Promise<void> {
  const { who, actor } = guardWithApiKeys(app)

  const loadInvoice = async (tenantId: string, invoiceId: string): Promise<InvoiceRow> => {
    const row = await app.db('invoices').where({ tenant_id: tenantId, id: uuidParam(invoiceId, 'The invoice id') }).first() as InvoiceRow | undefined
    if (row === undefined) throw new AppError('INVOICE_NOT_FOUND', 'No such invoice for this tenant.')
    return row
  }

  app.get<{ Params: { invoiceId: string } }>('/api/v1/invoices/:invoiceId', async request => {
    const p = who(request, 'payments:read')
    const row = await loadInvoice(p.tenantId, request.params.invoiceId)
    const invoice = toInvoice(row)
    return {
      invoice: { ...invoice, open: { amount: openBalance(row), currency: invoice.currency } },
      methods: await listPaymentMethods(app.db, p.tenantId, invoice.customerId),
      attempts: await listAttempts(app.db, p.tenantId, invoice.id)
    }
  })

  app.post<{ Params: { invoiceId: string }, Body: { paymentMethodId?: string, amount?: number } }>('/api/v1/invoices/:invoiceId/charges', async (request, reply) => {
    const p = who(request, 'payments:charge')
    const invoice = await loadInvoice(p.tenantId, request.params.invoiceId)
    if (typeof request.body?.paymentMethodId !== 'string') throw new AppError('VALIDATION_FAILED', 'paymentMethodId is required: one of the client\'s stored methods.')
    const amount = cents(request.body.amount, 'amount')
    const result = await chargeInvoice(app.db, await app.paymentsFor(app.db, p.tenantId), {
      tenantId: p.tenantId, invoiceId: invoice.id, paymentMethodId: request.body.paymentMethodId, ...(amount !== undefined ? { amount } : {}), actor: actor(p), trigger: 'charge_card'
    })
    await audit(app.db, p.tenantId, actor(p), 'payment.charge', invoice.id, { attemptId: result.attempt.id, outcome: result.outcome, amount: result.attempt.amount.amount })
    if (result.outcome === 'already_processing') {
      return await reply.status(409).send({ error: { code: 'PAYMENT_IN_PROGRESS', message: `A payment on invoice ${invoice.number} is already ${result.attempt.status}; wait for it before charging again.` }, attempt: result.attempt })
    }
    return await reply.status(result.outcome === 'failed' ? 402 : 201).send(result)
  })

  const statementBody = (body: { paymentMethodId?: unknown, amount?: unknown, invoiceIds?: unknown } | undefined): { paymentMethodId: string, amount?: number, invoiceIds?: string[] } => {
    if (typeof body?.paymentMethodId !== 'string') throw new AppError('VALIDATION_FAILED', 'paymentMethodId is required: one of the client\'s stored methods.')
    const ids = body.invoiceIds
    if (ids !== undefined && (!Array.isArray(ids) || !ids.every(i => typeof i === 'string'))) throw new AppError('VALIDATION_FAILED', 'invoiceIds is a list of Settle invoice ids; leave it out to pay every open invoice.')
    const amount = cents(body.amount, 'amount')
    return { paymentMethodId: body.paymentMethodId, ...(amount !== undefined ? { amount } : {}), ...(ids !== undefined ? { invoiceIds: ids as string[] } : {}) }
  }

  /** What a statement payment would charge and how it spreads over the invoices, oldest due first. */
  app.post<{ Params: { customerId: string }, Body: { paymentMethodId?: string, amount?: number, invoiceIds?: string[] } }>('/api/v1/customers/:customerId/statement-quote', async request => {
    const p = who(request, 'payments:read')
    return await quoteStatement(app.db, { tenantId: p.tenantId, customerId: uuidParam(request.params.customerId, 'The customer id'), ...statementBody(request.body) })
  })

  /** One charge over several of a client's invoices (all open ones unless invoiceIds says which). */
  app.post<{ Params: { customerId: string }, Body: { paymentMethodId?: string, amount?: number, invoiceIds?: string[], expectedSurcharge?: number } }>('/api/v1/customers/:customerId/statement-charges', async (request, reply) => {
    const p = who(request, 'payments:charge')
    const customerId = uuidParam(request.params.customerId, 'The customer id')
    const expected = request.body?.expectedSurcharge
    const result = await chargeStatement(app.db, await app.paymentsFor(app.db, p.tenantId), {
      tenantId: p.tenantId, customerId, ...statementBody(request.body), ...(typeof expected === 'number' ? { expectedSurcharge: expected } : {}), actor: actor(p), trigger: 'charge_card'
    })
    const allocations = await allocationsOf(app.db, p.tenantId, result.attempt.id)
    await audit(app.db, p.tenantId, actor(p), 'payment.charge_statement', customerId, { attemptId: result.attempt.id, outcome: result.outcome, amount: result.attempt.amount.amount, invoices: allocations.map(a => a.invoiceNumber) })
    if (result.outcome === 'already_processing') {
      return await reply.status(409).send({ error: { code: 'PAYMENT_IN_PROGRESS', message: `A payment on ${invoiceLabel(allocations.map(a => a.invoiceNumber))} is already ${result.attempt.status}; wait for it before charging again.` }, attempt: result.attempt })
    }
    return await reply.status(result.outcome === 'failed' ? 402 : 201).send({ ...result, allocations })
  })

  app.post<{ Params: { attemptId: string }, Body: { amount?: number, reason?: string } }>('/api/v1/payments/:attemptId/refunds', async (request, reply) => {
    const p = who(request, 'payments:refund')
    const amount = cents(request.body?.amount, 'amount')
    const result = await refundPayment(app.db, await app.paymentsFor(app.db, p.tenantId), {
      tenantId: p.tenantId, attemptId: uuidParam(request.params.attemptId, 'The payment id'), ...(amount !== undefined ? { amount } : {}), reason: String(request.body?.reason ?? ''), actor: actor(p)
    })
    await audit(app.db, p.tenantId, actor(p), 'payment.refund', request.params.attemptId, { ...result, amount: amount ?? 'rest' })
    return await reply.status(result.outcome === 'failed' ? 402 : 201).send(result)
  })

  app.post<{ Params: { invoiceId: string } }>('/api/v1/invoices/:invoiceId/pay-link', async request => {
    const p = who(request, 'paylinks:write')
    const invoice = await loadInvoice(p.tenantId, request.params.invoiceId)
    const link = payLinkUrl({ keyring: app.keyring, publicUrl }, p.tenantId, invoice.id)
    await audit(app.db, p.tenantId, actor(p), 'pay_link.create', invoice.id, { expiresAt: link.expiresAt })
    return link
  })

  app.get('/api/v1/autopay/approvals', async request => {
    const p = who(request, 'payments:read')
    return { approvals: await app.db('autopay_approvals').where({ tenant_id: p.tenantId, status: 'pending' }).orderBy('created_at').select('id', 'invoice_id', 'payment_method_id', 'amount', 'run_on', 'created_at') }
  })

  app.post<{ Params: { approvalId: string }, Body: { decision?: string } }>('/api/v1/autopay/approvals/:approvalId', async request => {
    const p = who(request, 'autopay:approve')
    const decision = request.body?.decision
    if (decision !== 'approved' && decision !== 'declined') throw new AppError('VALIDATION_FAILED', 'decision is "approved" or "declined".')
    await decideApproval(app.db, p.tenantId, uuidParam(request.params.approvalId, 'The approval id'), decision, actor(p))
    await audit(app.db, p.tenantId, actor(p), `autopay.${decision}`, request.params.approvalId)
    return { decision }
  })

  app.get<{ Querystring: { status?: string } }>('/api/v1/exceptions', async request => {
    const p = who(request, 'payments:read')
    const query = app.db('collection_exceptions as e').join('invoices as i', function () { this.on('i.tenant_id', 'e.tenant_id').andOn('i.id', 'e.invoice_id') })
      .where('e.tenant_id', p.tenantId).orderBy('e.created_at', 'desc').limit(500)
      .select('e.id', 'e.invoice_id', 'i.number as invoice_number', 'e.attempt_id', 'e.reason', 'e.explanation', 'e.next_step', 'e.created_at', 'e.resolved_at', 'e.resolved_by')
    if (request.query.status !== 'all') void query.whereNull('e.resolved_at')
    return { exceptions: await query }
  })

  app.get('/api/v1/api-keys', async request => {
    const p = who(request, 'api-keys:manage')
    return { keys: await listKeys(app.db, p.tenantId) }
  })

  app.delete<{ Params: { keyId: string } }>('/api/v1/api-keys/:keyId', async request => {
    const p = who(request, 'api-keys:manage')
    const name = await revokeApiKey(app.db, p.tenantId, uuidParam(request.params.keyId, 'The key id'))
    await audit(app.db, p.tenantId, actor(p), 'api_key.revoke', request.params.keyId, { name })
    return { revoked: true, id: request.params.keyId, name }
  })

  app.post<{ Params: { exceptionId: string }, Body: { note?: string } }>('/api/v1/exceptions/:exceptionId/resolve', async request => {
    const p = who(request, 'exceptions:resolve')
    const n = await app.db('collection_exceptions').where({ tenant_id: p.tenantId, id: uuidParam(request.params.exceptionId, 'The exception id') }).whereNull('resolved_at')
      .update({ resolved_at: app.db.fn.now(), resolved_by: actor(p) })
    if (n === 0) throw new AppError('VALIDATION_FAILED', 'No open exception with that id.')
    await audit(app.db, p.tenantId, actor(p), 'exception.resolve', request.params.exceptionId, { note: String(request.body?.note ?? '') })
    return { resolved: true }
  })
}
