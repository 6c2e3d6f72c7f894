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
import { ExceptionSchema, Ok, example, operation, serialiseUnfiltered } from './openapi.js'

/**
 * Reconciliation on the admin API: the exception queue, statement upload,
 * reading payments entered in QuickBooks now, and the four actions on an
 * exception. Reads need payments:read, anything that moves money needs
 * reconciliation:write; every query is scoped to the key's
 * tenant, so another tenant's exception id is simply not found.
 */
const STATUSES = ['open', 'resolved', 'dismissed'] as const satisfies readonly ExceptionStatus[]
const KINDS = ['unmatched_payment', 'ambiguous_match', 'posting_failed', 'tieout_difference', 'mapping_needed'] as const satisfies readonly ExceptionKind[]
const EXAMPLE_ID = '5d0c7e21-3b8f-4a6d-9c14-2e7f0b9a6d38'
const EXAMPLE_INVOICE = '3f1c2a4e-8b7d-4c2e-9a51-0d6f2b9e7c13'
const idParams = Type.Object({ id: Type.String({ description: 'the exception\'s UUID', examples: [EXAMPLE_ID] }) })
const invoiceId = Type.String({ maxLength: 100 })

const uuid = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || !isUuid(v)) throw new AppError('VALIDATION_FAILED', `${what} must be a UUID.`)
  return v
}

export default async function reconciliationRoutes (root: FastifyInstance, { accountingFor }: { accountingFor: AccountingFactory }): Promise<void> {
  const { who, actor } = guardWithApiKeys(root)
  const app = root.withTypeProvider<TypeBoxTypeProvider>()
  serialiseUnfiltered(app)
  const EXCEPTION_ERRORS = ['EXCEPTION_NOT_FOUND', 'EXCEPTION_CLOSED', 'INVOICE_NOT_FOUND', 'CONFLICT'] as const
  const okResponse = { 200: example(Ok, { ok: true }) }

  const listQuery = Strict({ status: Type.Optional(OneOf(STATUSES)), kind: Type.Optional(OneOf(KINDS)), customer: Type.Optional(Type.String({ maxLength: 100 })) })
  app.get('/api/v1/reconciliation/exceptions', {
    schema: {
      ...operation({
        tag: 'Reconciliation', scope: 'payments:read', summary: 'List the reconciliation exception queue',
        description: 'Money Settle could not place by itself (unmatched or ambiguous payments, failed postings, tie-out differences, customers to map), with ranked suggestions; filter by status, kind or customer.',
        errors: [],
        responses: { 200: example(Type.Object({ exceptions: Type.Array(ExceptionSchema) }), { exceptions: [{ id: EXAMPLE_ID, kind: 'unmatched_payment', status: 'open', summary: 'A deposit of $1,200.00 matches no open invoice', likelyCause: 'Two invoices paid in one transfer', suggestedRepair: 'Split it over invoices 10231 and 10240', amount: { amount: 120000, currency: 'USD' }, customerId: null, invoiceId: null, suggestions: [], createdAt: '2026-12-02T06:00:00.000Z' }] }) }
      }),
      querystring: listQuery
    }
  }, async request => {
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
  app.post('/api/v1/reconciliation/statements', {
    schema: {
      ...operation({
        tag: 'Reconciliation', scope: 'reconciliation:write', summary: 'Upload a bank statement (CSV or OFX)', hasBody: true,
        description: 'Reads the statement\'s deposits and matches them to payments and invoices; what cannot be placed becomes an exception. A line already imported is not imported twice.',
        errors: [], responses: { 201: example(Type.Object({ imported: Type.Integer(), duplicates: Type.Integer({ description: 'lines already imported before' }), autoApplied: Type.Integer(), exceptions: Type.Integer() }), { imported: 12, duplicates: 0, autoApplied: 11, exceptions: 1 }) }
      }),
      body: example(statementUpload, { text: 'Date,Description,Amount\n2026-12-01,ACH HARBOR DENTAL,1200.00\n', currency: 'USD', format: 'csv' })
    }
  }, async (request, reply) => {
    const p = who(request, 'reconciliation:write')
    const b = request.body
    const format = b.format ?? (/<OFX>|OFXHEADER/i.test(b.text) ? 'ofx' : 'csv')
    if (format !== 'csv' && format !== 'ofx') throw new AppError('VALIDATION_FAILED', 'format must be csv or ofx.')
    const result = await importBankStatement(app.db, p.tenantId, { text: b.text, currency: b.currency, actor: actor(p), source: format === 'ofx' ? 'bank_ofx' : 'bank_csv' })
    return await reply.status(201).send(result)
  })

  // Payments entered in QuickBooks, read now rather than at the daily run; it applies money, so the write scope.
  app.post('/api/v1/reconciliation/quickbooks-payments/sync', {
    schema: {
      ...operation({
        tag: 'Reconciliation', scope: 'reconciliation:write', summary: 'Read payments entered in QuickBooks now', hasBody: true,
        description: 'What the daily run does, now: payments entered in QuickBooks are applied to their invoices; those that cannot be placed become exceptions.',
        errors: ['ACCOUNTING_NOT_CONNECTED', 'ACCOUNTING_RECONNECT_REQUIRED', 'SYNC_IN_PROGRESS', 'UPSTREAM_FAILED', 'RATE_BUDGET_EXHAUSTED'],
        responses: { 200: example(Type.Object({ since: Type.String({ format: 'date-time' }), cursor: Type.String({ format: 'date-time' }), gap: Type.Boolean({ description: 'the cursor was older than QuickBooks keeps: changes in between may have been missed' }), seen: Type.Integer(), imported: Type.Integer(), alreadyImported: Type.Integer(), autoApplied: Type.Integer(), exceptions: Type.Integer() }),
          { since: '2026-12-07T05:00:00.000Z', cursor: '2026-12-08T05:00:00.000Z', gap: false, seen: 3, imported: 3, alreadyImported: 0, autoApplied: 3, exceptions: 0 }) }
      }),
      body: example(OptionalBody(Strict({})), {})
    }
  }, async request => {
    const p = who(request, 'reconciliation:write')
    return await pullQuickBooksPayments(app.db, p.tenantId, await accountingFor(p.tenantId), { actor: actor(p) })
  })

  const acceptBody = Strict({ rank: Type.Integer({ minimum: 1, maximum: 1000, description: 'a suggestion\'s rank (1, 2, …)' }) })
  app.post('/api/v1/reconciliation/exceptions/:id/accept', {
    schema: {
      ...operation({ tag: 'Reconciliation', scope: 'reconciliation:write', summary: 'Accept a suggested match', hasBody: true, description: 'Applies the money as the suggestion with that rank says, and closes the exception.', errors: EXCEPTION_ERRORS, responses: okResponse }),
      params: idParams, body: example(acceptBody, { rank: 1 })
    }
  }, async request => {
    const p = who(request, 'reconciliation:write')
    const { rank } = request.body
    await acceptSuggestion(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), rank, actor(p))
    return { ok: true }
  })

  const splitBody = Strict({ applications: Type.Array(Strict({ invoiceId, amount: Cents() }), { minItems: 1, maxItems: 500, description: 'a list of {invoiceId, amount}' }) })
  app.post('/api/v1/reconciliation/exceptions/:id/split', {
    schema: {
      ...operation({ tag: 'Reconciliation', scope: 'reconciliation:write', summary: 'Split a payment over invoices by hand', hasBody: true, description: 'Applies the payment to the invoices and amounts given; they must add up to the payment.', errors: EXCEPTION_ERRORS, responses: okResponse }),
      params: idParams, body: example(splitBody, { applications: [{ invoiceId: EXAMPLE_INVOICE, amount: 80000 }] })
    }
  }, async request => {
    const p = who(request, 'reconciliation:write')
    const applications = request.body.applications.map((a, i) => ({ invoiceId: uuid(a.invoiceId, `applications[${i}].invoiceId`), amount: a.amount }))
    await splitManually(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), applications, actor(p))
    return { ok: true }
  })

  app.post('/api/v1/reconciliation/exceptions/:id/write-off', {
    schema: {
      ...operation({ tag: 'Reconciliation', scope: 'reconciliation:write', summary: 'Write off a small difference', hasBody: true, description: 'Closes the gap between a payment and an invoice as a write-off, booked on the ledger.', errors: EXCEPTION_ERRORS, responses: okResponse }),
      params: idParams, body: example(Strict({ invoiceId, amount: Cents() }), { invoiceId: EXAMPLE_INVOICE, amount: 150 })
    }
  }, async request => {
    const p = who(request, 'reconciliation:write')
    const b = request.body
    await writeOff(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), { invoiceId: uuid(b.invoiceId, 'invoiceId'), amount: b.amount }, actor(p))
    return { ok: true }
  })

  app.post('/api/v1/reconciliation/exceptions/:id/dismiss', {
    schema: {
      ...operation({ tag: 'Reconciliation', scope: 'reconciliation:write', summary: 'Dismiss an exception', hasBody: true, description: 'Closes the exception without moving money; the reason is kept.', errors: EXCEPTION_ERRORS, responses: okResponse }),
      params: idParams, body: example(Strict({ reason: Text(500) }), { reason: 'Owner\'s transfer between own accounts' })
    }
  }, async request => {
    const p = who(request, 'reconciliation:write')
    const { reason } = request.body
    await dismiss(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), reason, actor(p))
    return { ok: true }
  })
}
