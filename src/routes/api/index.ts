import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
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
import { Cents, Id, OneOf, OptionalBody, Strict, Text } from '../schemas.js'

const idParams = <K extends string>(name: K) => Type.Object({ [name]: Type.String() } as Record<K, ReturnType<typeof Type.String>>)

const chargeBody = Strict({ paymentMethodId: Id, amount: Type.Optional(Cents()) })
const statementBody = Strict({ paymentMethodId: Id, amount: Type.Optional(Cents()), invoiceIds: Type.Optional(Type.Array(Id, { maxItems: 1000, description: 'a list of Settle invoice ids' })) })
const noBody = OptionalBody(Strict({}))

const uuidParam = (value: string, what: string): string => {
  if (!isUuid(value)) throw new AppError('VALIDATION_FAILED', `${what} must be a UUID.`)
  return value
}


/**
 * The admin API: a tenant's back office and scripts, with a scoped key per
 * caller (`settle api-keys:create`). Charge card, refunds, approvals and the
 * exceptions list, through the same services as the pages and jobs; every
 * action is audited with the key's name.
 */
export default async function apiRoutes (root: FastifyInstance, { publicUrl, payLinkDays }: { publicUrl: string, payLinkDays: number }): Promise<void> {
  const { who, actor } = guardWithApiKeys(root)
  const app = root.withTypeProvider<TypeBoxTypeProvider>()

  const loadInvoice = async (tenantId: string, invoiceId: string): Promise<InvoiceRow> => {
    const row = await app.db('invoices').where({ tenant_id: tenantId, id: uuidParam(invoiceId, 'The invoice id') }).first() as InvoiceRow | undefined
    if (row === undefined) throw new AppError('INVOICE_NOT_FOUND', 'No such invoice for this tenant.')
    return row
  }

  app.get('/api/v1/invoices/:invoiceId', { schema: { params: idParams('invoiceId'), querystring: Strict({}) } }, async request => {
    const p = who(request, 'payments:read')
    const row = await loadInvoice(p.tenantId, request.params.invoiceId)
    const invoice = toInvoice(row)
    return {
      invoice: { ...invoice, open: { amount: openBalance(row), currency: invoice.currency } },
      methods: await listPaymentMethods(app.db, p.tenantId, invoice.customerId),
      attempts: await listAttempts(app.db, p.tenantId, invoice.id)
    }
  })

  app.post('/api/v1/invoices/:invoiceId/charges', { schema: { params: idParams('invoiceId'), body: chargeBody } }, async (request, reply) => {
    const p = who(request, 'payments:charge')
    const invoice = await loadInvoice(p.tenantId, request.params.invoiceId)
    const { amount } = request.body
    const result = await chargeInvoice(app.db, await app.paymentsFor(app.db, p.tenantId), {
      tenantId: p.tenantId, invoiceId: invoice.id, paymentMethodId: request.body.paymentMethodId, ...(amount !== undefined ? { amount } : {}), actor: actor(p), trigger: 'charge_card'
    })
    await audit(app.db, p.tenantId, actor(p), 'payment.charge', invoice.id, { attemptId: result.attempt.id, outcome: result.outcome, amount: result.attempt.amount.amount })
    if (result.outcome === 'already_processing') {
      return await reply.status(409).send({ error: { code: 'PAYMENT_IN_PROGRESS', message: `A payment on invoice ${invoice.number} is already ${result.attempt.status}; wait for it before charging again.` }, attempt: result.attempt })
    }
    return await reply.status(result.outcome === 'failed' ? 402 : 201).send(result)
  })

  const statement = ({ paymentMethodId, amount, invoiceIds }: { paymentMethodId: string, amount?: number | undefined, invoiceIds?: string[] | undefined }): { paymentMethodId: string, amount?: number, invoiceIds?: string[] } =>
    ({ paymentMethodId, ...(amount !== undefined ? { amount } : {}), ...(invoiceIds !== undefined ? { invoiceIds } : {}) })

  /** What a statement payment would charge and how it spreads over the invoices, oldest due first. */
  app.post('/api/v1/customers/:customerId/statement-quote', { schema: { params: idParams('customerId'), body: statementBody } }, async request => {
    const p = who(request, 'payments:read')
    return await quoteStatement(app.db, { tenantId: p.tenantId, customerId: uuidParam(request.params.customerId, 'The customer id'), ...statement(request.body) })
  })

  /** One charge over several of a client's invoices (all open ones unless invoiceIds says which). */
  const statementChargeBody = Type.Composite([statementBody, Strict({ expectedSurcharge: Type.Optional(Type.Integer({ minimum: 0, description: 'the surcharge in cents the payer was shown (0 for none)' })) })], { additionalProperties: false })
  app.post('/api/v1/customers/:customerId/statement-charges', { schema: { params: idParams('customerId'), body: statementChargeBody } }, async (request, reply) => {
    const p = who(request, 'payments:charge')
    const customerId = uuidParam(request.params.customerId, 'The customer id')
    const expected = request.body.expectedSurcharge
    const result = await chargeStatement(app.db, await app.paymentsFor(app.db, p.tenantId), {
      tenantId: p.tenantId, customerId, ...statement(request.body), ...(expected !== undefined ? { expectedSurcharge: expected } : {}), actor: actor(p), trigger: 'charge_card'
    })
    const allocations = await allocationsOf(app.db, p.tenantId, result.attempt.id)
    await audit(app.db, p.tenantId, actor(p), 'payment.charge_statement', customerId, { attemptId: result.attempt.id, outcome: result.outcome, amount: result.attempt.amount.amount, invoices: allocations.map(a => a.invoiceNumber) })
    if (result.outcome === 'already_processing') {
      return await reply.status(409).send({ error: { code: 'PAYMENT_IN_PROGRESS', message: `A payment on ${invoiceLabel(allocations.map(a => a.invoiceNumber))} is already ${result.attempt.status}; wait for it before charging again.` }, attempt: result.attempt })
    }
    return await reply.status(result.outcome === 'failed' ? 402 : 201).send({ ...result, allocations })
  })

  app.post('/api/v1/payments/:attemptId/refunds', { schema: { params: idParams('attemptId'), body: Strict({ amount: Type.Optional(Cents('a positive whole number of cents; leave it out to refund the rest')), reason: Type.Optional(Text(500)) }) } }, async (request, reply) => {
    const p = who(request, 'payments:refund')
    const { amount, reason } = request.body
    const result = await refundPayment(app.db, await app.paymentsFor(app.db, p.tenantId), {
      tenantId: p.tenantId, attemptId: uuidParam(request.params.attemptId, 'The payment id'), ...(amount !== undefined ? { amount } : {}), reason: reason ?? '', actor: actor(p)
    })
    await audit(app.db, p.tenantId, actor(p), 'payment.refund', request.params.attemptId, { ...result, amount: amount ?? 'rest' })
    return await reply.status(result.outcome === 'failed' ? 402 : 201).send(result)
  })

  app.post('/api/v1/invoices/:invoiceId/pay-link', { schema: { params: idParams('invoiceId'), body: noBody } }, async request => {
    const p = who(request, 'paylinks:write')
    const invoice = await loadInvoice(p.tenantId, request.params.invoiceId)
    const link = payLinkUrl({ keyring: app.keyring, publicUrl, payLinkDays }, p.tenantId, invoice.id)
    await audit(app.db, p.tenantId, actor(p), 'pay_link.create', invoice.id, { expiresAt: link.expiresAt })
    return link
  })

  app.get('/api/v1/autopay/approvals', { schema: { querystring: Strict({}) } }, async request => {
    const p = who(request, 'payments:read')
    return { approvals: await app.db('autopay_approvals').where({ tenant_id: p.tenantId, status: 'pending' }).orderBy('created_at').select('id', 'invoice_id', 'payment_method_id', 'amount', 'run_on', 'created_at') }
  })

  app.post('/api/v1/autopay/approvals/:approvalId', { schema: { params: idParams('approvalId'), body: Strict({ decision: OneOf(['approved', 'declined'] as const) }) } }, async request => {
    const p = who(request, 'autopay:approve')
    const { decision } = request.body
    await decideApproval(app.db, p.tenantId, uuidParam(request.params.approvalId, 'The approval id'), decision, actor(p))
    await audit(app.db, p.tenantId, actor(p), `autopay.${decision}`, request.params.approvalId)
    return { decision }
  })

  app.get('/api/v1/exceptions', { schema: { querystring: Strict({ status: Type.Optional(OneOf(['open', 'all'] as const)) }) } }, async request => {
    const p = who(request, 'payments:read')
    const query = app.db('collection_exceptions as e').join('invoices as i', function () { this.on('i.tenant_id', 'e.tenant_id').andOn('i.id', 'e.invoice_id') })
      .where('e.tenant_id', p.tenantId).orderBy('e.created_at', 'desc').limit(500)
      .select('e.id', 'e.invoice_id', 'i.number as invoice_number', 'e.attempt_id', 'e.reason', 'e.explanation', 'e.next_step', 'e.created_at', 'e.resolved_at', 'e.resolved_by')
    if (request.query.status !== 'all') void query.whereNull('e.resolved_at')
    return { exceptions: await query }
  })

  app.get('/api/v1/api-keys', { schema: { querystring: Strict({}) } }, async request => {
    const p = who(request, 'api-keys:manage')
    return { keys: await listKeys(app.db, p.tenantId) }
  })

  app.delete('/api/v1/api-keys/:keyId', { schema: { params: idParams('keyId') } }, async request => {
    const p = who(request, 'api-keys:manage')
    const name = await revokeApiKey(app.db, p.tenantId, uuidParam(request.params.keyId, 'The key id'))
    await audit(app.db, p.tenantId, actor(p), 'api_key.revoke', request.params.keyId, { name })
    return { revoked: true, id: request.params.keyId, name }
  })

  app.post('/api/v1/exceptions/:exceptionId/resolve', { schema: { params: idParams('exceptionId'), body: OptionalBody(Strict({ note: Type.Optional(Text(2000)) })) } }, async request => {
    const p = who(request, 'exceptions:resolve')
    const n = await app.db('collection_exceptions').where({ tenant_id: p.tenantId, id: uuidParam(request.params.exceptionId, 'The exception id') }).whereNull('resolved_at')
      .update({ resolved_at: app.db.fn.now(), resolved_by: actor(p) })
    if (n === 0) throw new AppError('VALIDATION_FAILED', 'No open exception with that id.')
    await audit(app.db, p.tenantId, actor(p), 'exception.resolve', request.params.exceptionId, { note: request.body?.note ?? '' })
    return { resolved: true }
  })
}
