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
import { AllocationSchema, AttemptSchema, ChargeResultSchema, MoneySchema, errorBody, example, operation, serialiseUnfiltered } from './openapi.js'

const idParams = <K extends string>(name: K) => Type.Object({ [name]: Type.String({ description: 'a UUID', examples: [EXAMPLE_ID] }) } as Record<K, ReturnType<typeof Type.String>>)

const EXAMPLE_ID = '3f1c2a4e-8b7d-4c2e-9a51-0d6f2b9e7c13'
const EXAMPLE_METHOD = '9b2e4d61-5a3c-4f7e-8d12-6c0a1e3b5f47'

const chargeBody = Strict({ paymentMethodId: Id, amount: Type.Optional(Cents()) })
const statementBody = Strict({ paymentMethodId: Id, amount: Type.Optional(Cents()), invoiceIds: Type.Optional(Type.Array(Id, { maxItems: 1000, description: 'a list of Settle invoice ids' })) })
const noBody = OptionalBody(Strict({}))

const exampleAttempt = { id: EXAMPLE_ID, invoiceId: EXAMPLE_ID, customerId: EXAMPLE_ID, paymentMethodId: EXAMPLE_METHOD, amount: { amount: 80000, currency: 'USD' }, surcharge: { amount: 0, currency: 'USD' }, status: 'succeeded', trigger: 'charge_card', actor: 'api:back office', processorIntentRef: 'pi_3Q', failure: { code: null, declineCode: null, adviceCode: null, class: null, message: null }, retryNumber: 0, createdAt: '2026-12-01T14:03:00.000Z', updatedAt: '2026-12-01T14:03:01.000Z' }
const chargeResult = example(ChargeResultSchema, { outcome: 'succeeded', attempt: exampleAttempt })
const inProgress = errorBody(['PAYMENT_IN_PROGRESS'], { attempt: Type.Optional(AttemptSchema) })
const CHARGE_ERRORS = ['INVOICE_NOT_FOUND', 'CUSTOMER_NOT_FOUND', 'PAYMENT_METHOD_NOT_FOUND', 'INVALID_AMOUNT', 'CURRENCY_MISMATCH', 'AMOUNT_EXCEEDS_BALANCE', 'NOTHING_TO_CHARGE', 'PAYMENT_IN_PROGRESS', 'CHARGE_LIMIT_REACHED', 'PROCESSOR_NOT_CONNECTED', 'UPSTREAM_FAILED'] as const
const RefundSchema = Type.Object({ outcome: Type.String({ enum: ['succeeded', 'pending', 'failed'] }), refundId: Type.String() })
const QuoteSchema = Type.Object({ amount: MoneySchema, surcharge: MoneySchema, total: MoneySchema, surchargeReason: Type.String(), allocations: Type.Optional(Type.Array(AllocationSchema)) }, { description: 'what the charge would take and how it spreads' })

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
  serialiseUnfiltered(app)

  const loadInvoice = async (tenantId: string, invoiceId: string): Promise<InvoiceRow> => {
    const row = await app.db('invoices').where({ tenant_id: tenantId, id: uuidParam(invoiceId, 'The invoice id') }).first() as InvoiceRow | undefined
    if (row === undefined) throw new AppError('INVOICE_NOT_FOUND', 'No such invoice for this tenant.')
    return row
  }

  app.get('/api/v1/invoices/:invoiceId', {
    schema: {
      ...operation({
        tag: 'Payments', scope: 'payments:read', summary: 'Read an invoice with its payment methods and attempts',
        description: 'The invoice as synced from the PSA, its open balance, the client\'s saved payment methods and every payment attempt on it.',
        errors: ['INVOICE_NOT_FOUND'],
        responses: { 200: example(Type.Object({ invoice: Type.Object({ id: Type.String(), number: Type.String(), currency: Type.String(), total: MoneySchema, open: MoneySchema, status: Type.String() }), methods: Type.Array(Type.Object({ id: Type.String(), type: Type.String(), brand: Type.Union([Type.String(), Type.Null()]), last4: Type.String() })), attempts: Type.Array(AttemptSchema) }),
          { invoice: { id: EXAMPLE_ID, number: '10231', currency: 'USD', total: { amount: 80000, currency: 'USD' }, open: { amount: 80000, currency: 'USD' }, status: 'open' }, methods: [{ id: EXAMPLE_METHOD, type: 'card', brand: 'visa', last4: '4242' }], attempts: [] }) }
      }),
      params: idParams('invoiceId'), querystring: Strict({}) } }, async request => {
    const p = who(request, 'payments:read')
    const row = await loadInvoice(p.tenantId, request.params.invoiceId)
    const invoice = toInvoice(row)
    return {
      invoice: { ...invoice, open: { amount: openBalance(row), currency: invoice.currency } },
      methods: await listPaymentMethods(app.db, p.tenantId, invoice.customerId),
      attempts: await listAttempts(app.db, p.tenantId, invoice.id)
    }
  })

  app.post('/api/v1/invoices/:invoiceId/charges', {
    schema: {
      ...operation({
        tag: 'Payments', scope: 'payments:charge', summary: 'Charge card: charge a saved payment method for an invoice', hasBody: true,
        description: 'Charges the invoice\'s open balance (or `amount` cents of it) to a saved method, with the tenant\'s surcharge rules. 201 when the processor accepted or is still working, 402 with the decline when it refused; a second charge while one is in flight answers 409 with that attempt.',
        errors: CHARGE_ERRORS, responses: { 201: chargeResult, 402: ChargeResultSchema }, errorResponses: { 409: inProgress }
      }),
      params: idParams('invoiceId'), body: example(chargeBody, { paymentMethodId: EXAMPLE_METHOD, amount: 80000 })
    }
  }, async (request, reply) => {
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
  app.post('/api/v1/customers/:customerId/statement-quote', {
    schema: {
      ...operation({
        tag: 'Payments', scope: 'payments:read', summary: 'Quote a statement payment', hasBody: true,
        description: 'What one charge over several of a client\'s open invoices would take, surcharge included, and how it spreads over them, oldest due first. Charges nothing.',
        errors: ['CUSTOMER_NOT_FOUND', 'INVOICE_NOT_FOUND', 'PAYMENT_METHOD_NOT_FOUND', 'INVALID_AMOUNT', 'CURRENCY_MISMATCH', 'AMOUNT_EXCEEDS_BALANCE', 'NOTHING_TO_CHARGE'],
        responses: { 200: example(QuoteSchema, { amount: { amount: 120000, currency: 'USD' }, surcharge: { amount: 0, currency: 'USD' }, total: { amount: 120000, currency: 'USD' }, surchargeReason: 'no surcharge on this tenant', allocations: [{ invoiceId: EXAMPLE_ID, invoiceNumber: '10231', amount: 120000, position: 0 }] }) }
      }),
      params: idParams('customerId'), body: example(statementBody, { paymentMethodId: EXAMPLE_METHOD })
    }
  }, async request => {
    const p = who(request, 'payments:read')
    return await quoteStatement(app.db, { tenantId: p.tenantId, customerId: uuidParam(request.params.customerId, 'The customer id'), ...statement(request.body) })
  })

  /** One charge over several of a client's invoices (all open ones unless invoiceIds says which). */
  const statementChargeBody = Type.Composite([statementBody, Strict({ expectedSurcharge: Type.Optional(Type.Integer({ minimum: 0, description: 'the surcharge in cents the payer was shown (0 for none)' })) })], { additionalProperties: false })
  app.post('/api/v1/customers/:customerId/statement-charges', {
    schema: {
      ...operation({
        tag: 'Payments', scope: 'payments:charge', summary: 'Charge one payment over several invoices', hasBody: true,
        description: 'One charge over the client\'s open invoices (or those `invoiceIds` names), spread oldest due first. Send the surcharge the payer was shown as `expectedSurcharge`: if it changed, the answer is QUOTE_CHANGED and nothing is charged.',
        errors: [...CHARGE_ERRORS, 'QUOTE_CHANGED'], responses: { 201: chargeResult, 402: ChargeResultSchema }, errorResponses: { 409: inProgress }
      }),
      params: idParams('customerId'), body: example(statementChargeBody, { paymentMethodId: EXAMPLE_METHOD, expectedSurcharge: 0 })
    }
  }, async (request, reply) => {
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

  app.post('/api/v1/payments/:attemptId/refunds', {
    schema: {
      ...operation({
        tag: 'Payments', scope: 'payments:refund', summary: 'Refund a payment, in full or in part', hasBody: true,
        description: 'Sends `amount` cents (or what is left) of a succeeded payment back to the payer; the reason is kept with the refund. 402 when the processor refused it.',
        errors: ['ATTEMPT_NOT_FOUND', 'INVALID_AMOUNT', 'REFUND_NOT_ALLOWED', 'PROCESSOR_NOT_CONNECTED', 'UPSTREAM_FAILED'],
        responses: { 201: example(RefundSchema, { outcome: 'succeeded', refundId: 're_3Q' }), 402: RefundSchema }
      }),
      params: idParams('attemptId'), body: example(Strict({ amount: Type.Optional(Cents('a positive whole number of cents; leave it out to refund the rest')), reason: Type.Optional(Text(500)) }), { amount: 20000, reason: 'Duplicate licence line' })
    }
  }, async (request, reply) => {
    const p = who(request, 'payments:refund')
    const { amount, reason } = request.body
    const result = await refundPayment(app.db, await app.paymentsFor(app.db, p.tenantId), {
      tenantId: p.tenantId, attemptId: uuidParam(request.params.attemptId, 'The payment id'), ...(amount !== undefined ? { amount } : {}), reason: reason ?? '', actor: actor(p)
    })
    await audit(app.db, p.tenantId, actor(p), 'payment.refund', request.params.attemptId, { ...result, amount: amount ?? 'rest' })
    return await reply.status(result.outcome === 'failed' ? 402 : 201).send(result)
  })

  app.post('/api/v1/invoices/:invoiceId/pay-link', {
    schema: {
      ...operation({
        tag: 'Pay links', scope: 'paylinks:write', summary: 'Create a pay link for an invoice', hasBody: true,
        description: 'A signed link the client can pay the invoice at, without an account; it expires after the tenant\'s pay-link days.',
        errors: ['INVOICE_NOT_FOUND'],
        responses: { 200: example(Type.Object({ url: Type.String({ format: 'uri' }), expiresAt: Type.String({ format: 'date-time' }), validDays: Type.Integer() }), { url: 'https://pay.example.com/pay/eyJ0…', expiresAt: '2026-12-31T14:03:00.000Z', validDays: 30 }) }
      }),
      params: idParams('invoiceId'), body: example(noBody, {})
    }
  }, async request => {
    const p = who(request, 'paylinks:write')
    const invoice = await loadInvoice(p.tenantId, request.params.invoiceId)
    const link = payLinkUrl({ keyring: app.keyring, publicUrl, payLinkDays }, p.tenantId, invoice.id)
    await audit(app.db, p.tenantId, actor(p), 'pay_link.create', invoice.id, { expiresAt: link.expiresAt })
    return link
  })

  app.get('/api/v1/autopay/approvals', {
    schema: {
      ...operation({
        tag: 'Autopay', scope: 'payments:read', summary: 'List autopay charges waiting for approval',
        description: 'Autopay charges above the tenant\'s approval threshold, oldest first, until someone approves or declines them.',
        errors: [],
        responses: { 200: example(Type.Object({ approvals: Type.Array(Type.Object({ id: Type.String(), invoice_id: Type.String(), payment_method_id: Type.String(), amount: Type.Unknown({ description: 'cents' }), run_on: Type.Unknown(), created_at: Type.Unknown() })) }), { approvals: [{ id: EXAMPLE_ID, invoice_id: EXAMPLE_ID, payment_method_id: EXAMPLE_METHOD, amount: 450000, run_on: '2026-12-09', created_at: '2026-12-08T06:00:00.000Z' }] }) }
      }),
      querystring: Strict({})
    }
  }, async request => {
    const p = who(request, 'payments:read')
    return { approvals: await app.db('autopay_approvals').where({ tenant_id: p.tenantId, status: 'pending' }).orderBy('created_at').select('id', 'invoice_id', 'payment_method_id', 'amount', 'run_on', 'created_at') }
  })

  app.post('/api/v1/autopay/approvals/:approvalId', {
    schema: {
      ...operation({
        tag: 'Autopay', scope: 'autopay:approve', summary: 'Approve or decline a waiting autopay charge', hasBody: true,
        description: 'An approved charge runs on its day; a declined one does not run, and the invoice stays open.',
        errors: [], responses: { 200: example(Type.Object({ decision: Type.String({ enum: ['approved', 'declined'] }) }), { decision: 'approved' }) }
      }),
      params: idParams('approvalId'), body: example(Strict({ decision: OneOf(['approved', 'declined'] as const) }), { decision: 'approved' })
    }
  }, async request => {
    const p = who(request, 'autopay:approve')
    const { decision } = request.body
    await decideApproval(app.db, p.tenantId, uuidParam(request.params.approvalId, 'The approval id'), decision, actor(p))
    await audit(app.db, p.tenantId, actor(p), `autopay.${decision}`, request.params.approvalId)
    return { decision }
  })

  app.get('/api/v1/exceptions', {
    schema: {
      ...operation({
        tag: 'Exceptions', scope: 'payments:read', summary: 'List collection exceptions',
        description: 'Payments that need a person (a hard decline, a disputed charge, …), newest first, at most 500: open ones unless `status=all`.',
        errors: [],
        responses: { 200: example(Type.Object({ exceptions: Type.Array(Type.Object({ id: Type.String(), invoice_id: Type.String(), invoice_number: Type.String(), attempt_id: Type.Union([Type.String(), Type.Null()]), reason: Type.String(), explanation: Type.Unknown(), next_step: Type.Unknown(), created_at: Type.Unknown(), resolved_at: Type.Unknown(), resolved_by: Type.Unknown() })) }),
          { exceptions: [{ id: EXAMPLE_ID, invoice_id: EXAMPLE_ID, invoice_number: '10231', attempt_id: EXAMPLE_ID, reason: 'hard_decline', explanation: 'The card was reported stolen.', next_step: 'Ask the client for another card.', created_at: '2026-12-01T14:03:01.000Z', resolved_at: null, resolved_by: null }] }) }
      }),
      querystring: Strict({ status: Type.Optional(OneOf(['open', 'all'] as const)) }) } }, async request => {
    const p = who(request, 'payments:read')
    const query = app.db('collection_exceptions as e').join('invoices as i', function () { this.on('i.tenant_id', 'e.tenant_id').andOn('i.id', 'e.invoice_id') })
      .where('e.tenant_id', p.tenantId).orderBy('e.created_at', 'desc').limit(500)
      .select('e.id', 'e.invoice_id', 'i.number as invoice_number', 'e.attempt_id', 'e.reason', 'e.explanation', 'e.next_step', 'e.created_at', 'e.resolved_at', 'e.resolved_by')
    if (request.query.status !== 'all') void query.whereNull('e.resolved_at')
    return { exceptions: await query }
  })

  app.get('/api/v1/api-keys', {
    schema: {
      ...operation({
        tag: 'API keys', scope: 'api-keys:manage', summary: 'List this tenant\'s API keys',
        description: 'Names, scopes and last use of every key, revoked ones included; never a secret.',
        errors: [],
        responses: { 200: example(Type.Object({ keys: Type.Array(Type.Object({ id: Type.String(), name: Type.String(), scopes: Type.Array(Type.String()), createdAt: Type.String({ format: 'date-time' }), lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]), revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]) })) }),
          { keys: [{ id: EXAMPLE_ID, name: 'back office', scopes: ['payments:read'], createdAt: '2026-11-02T09:00:00.000Z', lastUsedAt: null, revokedAt: null }] }) }
      }),
      querystring: Strict({})
    }
  }, async request => {
    const p = who(request, 'api-keys:manage')
    return { keys: await listKeys(app.db, p.tenantId) }
  })

  app.delete('/api/v1/api-keys/:keyId', {
    schema: {
      ...operation({
        tag: 'API keys', scope: 'api-keys:manage', summary: 'Revoke an API key',
        description: 'At once: the next request with the key is refused.',
        errors: ['API_KEY_NOT_FOUND'],
        responses: { 200: example(Type.Object({ revoked: Type.Literal(true), id: Type.String(), name: Type.String() }), { revoked: true, id: EXAMPLE_ID, name: 'back office' }) }
      }),
      params: idParams('keyId')
    }
  }, async request => {
    const p = who(request, 'api-keys:manage')
    const name = await revokeApiKey(app.db, p.tenantId, uuidParam(request.params.keyId, 'The key id'))
    await audit(app.db, p.tenantId, actor(p), 'api_key.revoke', request.params.keyId, { name })
    return { revoked: true, id: request.params.keyId, name }
  })

  app.post('/api/v1/exceptions/:exceptionId/resolve', {
    schema: {
      ...operation({
        tag: 'Exceptions', scope: 'exceptions:resolve', summary: 'Resolve a collection exception', hasBody: true,
        description: 'Closes an open exception, with an optional note kept in the audit log.',
        errors: [], responses: { 200: example(Type.Object({ resolved: Type.Literal(true) }), { resolved: true }) }
      }),
      params: idParams('exceptionId'), body: example(OptionalBody(Strict({ note: Type.Optional(Text(2000)) })), { note: 'Client paid by cheque.' })
    }
  }, async request => {
    const p = who(request, 'exceptions:resolve')
    const n = await app.db('collection_exceptions').where({ tenant_id: p.tenantId, id: uuidParam(request.params.exceptionId, 'The exception id') }).whereNull('resolved_at')
      .update({ resolved_at: app.db.fn.now(), resolved_by: actor(p) })
    if (n === 0) throw new AppError('VALIDATION_FAILED', 'No open exception with that id.')
    await audit(app.db, p.tenantId, actor(p), 'exception.resolve', request.params.exceptionId, { note: request.body?.note ?? '' })
    return { resolved: true }
  })
}
