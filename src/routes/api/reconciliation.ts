import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { isUuid } from '../../db/tenants.js'
import { listExceptions, type ExceptionKind, type ExceptionStatus } from '../../db/reconciliation-exceptions.js'
import { AppError } from '../../errors.js'
import { guardWithApiKeys } from '../../security/api-keys.js'
import { acceptSuggestion, dismiss, importBankStatement, splitManually, writeOff } from '../../services/reconcile.js'
import { pullQuickBooksPayments } from '../../services/quickbooks-payments.js'
import type { AccountingFactory } from '../../ports/accounting.js'
import { Cents, OneOf, OptionalBody, Strict, Text } from '../schemas.js'

/**
 * Reconciliation on the admin API: the exception queue, statement upload,
 * reading payments entered in QuickBooks now, and the four actions on an
 * exception. Reads need payments:read, anything that moves money needs
 * reconciliation:write; every query is scoped to the key's
 * tenant, so another tenant's exception id is simply not found.
 */
const STATUSES = ['open', 'resolved', 'dismissed'] as const satisfies readonly ExceptionStatus[]
const KINDS = ['unmatched_payment', 'ambiguous_match', 'posting_failed', 'tieout_difference', 'mapping_needed'] as const satisfies readonly ExceptionKind[]
const idParams = Type.Object({ id: Type.String() })
const invoiceId = Type.String({ maxLength: 100 })

const uuid = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || !isUuid(v)) throw new AppError('VALIDATION_FAILED', `${what} must be a UUID.`)
  return v
}

export default async function reconciliationRoutes (root: FastifyInstance, { accountingFor }: { accountingFor: AccountingFactory }): Promise<void> {
  const { who, actor } = guardWithApiKeys(root)
  const app = root.withTypeProvider<TypeBoxTypeProvider>()

  const listQuery = Strict({ status: Type.Optional(OneOf(STATUSES)), kind: Type.Optional(OneOf(KINDS)), customer: Type.Optional(Type.String({ maxLength: 100 })) })
  app.get('/api/v1/reconciliation/exceptions', { schema: { querystring: listQuery } }, async request => {
    const p = who(request, 'payments:read')
    const { status, kind, customer } = request.query
    if (customer !== undefined) uuid(customer, 'customer')
    const exceptions = await listExceptions(app.db, p.tenantId, {
      ...(status === undefined ? {} : { status }),
      ...(kind === undefined ? {} : { kind }),
      ...(customer === undefined ? {} : { customerId: customer })
    })
    return { exceptions }
  })

  const statementUpload = Strict({
    text: Type.String({ description: 'the statement file\'s contents' }),
    currency: Type.String({ minLength: 1, maxLength: 10, description: 'a currency code such as "USD"' }),
    format: Type.Optional(OneOf(['csv', 'ofx'] as const))
  })
  app.post('/api/v1/reconciliation/statements', { schema: { body: statementUpload } }, async (request, reply) => {
    const p = who(request, 'reconciliation:write')
    const b = request.body
    const format = b.format ?? (/<OFX>|OFXHEADER/i.test(b.text) ? 'ofx' : 'csv')
    if (format !== 'csv' && format !== 'ofx') throw new AppError('VALIDATION_FAILED', 'format must be csv or ofx.')
    const result = await importBankStatement(app.db, p.tenantId, { text: b.text, currency: b.currency, actor: actor(p), source: format === 'ofx' ? 'bank_ofx' : 'bank_csv' })
    return await reply.status(201).send(result)
  })

  // Payments entered in QuickBooks, read now rather than at the daily run; it applies money, so the write scope.
  app.post('/api/v1/reconciliation/quickbooks-payments/sync', { schema: { body: OptionalBody(Strict({})) } }, async request => {
    const p = who(request, 'reconciliation:write')
    return await pullQuickBooksPayments(app.db, p.tenantId, await accountingFor(p.tenantId), { actor: actor(p) })
  })

  const acceptBody = Strict({ rank: Type.Integer({ minimum: 1, maximum: 1000, description: 'a suggestion\'s rank (1, 2, …)' }) })
  app.post('/api/v1/reconciliation/exceptions/:id/accept', { schema: { params: idParams, body: acceptBody } }, async request => {
    const p = who(request, 'reconciliation:write')
    const { rank } = request.body
    await acceptSuggestion(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), rank, actor(p))
    return { ok: true }
  })

  const splitBody = Strict({ applications: Type.Array(Strict({ invoiceId, amount: Cents() }), { minItems: 1, maxItems: 500, description: 'a list of {invoiceId, amount}' }) })
  app.post('/api/v1/reconciliation/exceptions/:id/split', { schema: { params: idParams, body: splitBody } }, async request => {
    const p = who(request, 'reconciliation:write')
    const applications = request.body.applications.map((a, i) => ({ invoiceId: uuid(a.invoiceId, `applications[${i}].invoiceId`), amount: a.amount }))
    await splitManually(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), applications, actor(p))
    return { ok: true }
  })

  app.post('/api/v1/reconciliation/exceptions/:id/write-off', { schema: { params: idParams, body: Strict({ invoiceId, amount: Cents() }) } }, async request => {
    const p = who(request, 'reconciliation:write')
    const b = request.body
    await writeOff(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), { invoiceId: uuid(b.invoiceId, 'invoiceId'), amount: b.amount }, actor(p))
    return { ok: true }
  })

  app.post('/api/v1/reconciliation/exceptions/:id/dismiss', { schema: { params: idParams, body: Strict({ reason: Text(500) }) } }, async request => {
    const p = who(request, 'reconciliation:write')
    const { reason } = request.body
    await dismiss(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), reason, actor(p))
    return { ok: true }
  })
}
