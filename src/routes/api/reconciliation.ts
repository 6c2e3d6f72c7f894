import type { FastifyInstance, FastifyRequest } from 'fastify'
import { isUuid } from '../../db/tenants.js'
import { listExceptions, type ExceptionKind, type ExceptionStatus } from '../../db/reconciliation-exceptions.js'
import { AppError } from '../../errors.js'
import { guardWithApiKeys } from '../../security/api-keys.js'
import { acceptSuggestion, dismiss, importBankStatement, splitManually, writeOff } from '../../services/reconcile.js'
import { pullQuickBooksPayments } from '../../services/quickbooks-payments.js'
import type { AccountingFactory } from '../../ports/accounting.js'

/**
 * Reconciliation on the admin API: the exception queue, statement upload,
 * reading payments entered in QuickBooks now, and the four actions on an
 * exception. Reads need payments:read, anything that moves money needs
 * reconciliation:write; every query is scoped to the key's
 * tenant, so another tenant's exception id is simply not found.
 */
const STATUSES = new Set(['open', 'resolved', 'dismissed'])
const KINDS = new Set(['unmatched_payment', 'ambiguous_match', 'posting_failed', 'tieout_difference', 'mapping_needed'])

const body = (request: FastifyRequest): Record<string, unknown> => {
  const b = request.body
  if (b === null || typeof b !== 'object' || Array.isArray(b)) throw new AppError('VALIDATION_FAILED', 'Send a JSON object.')
  return b as Record<string, unknown>
}

const cents = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new AppError('VALIDATION_FAILED', `${what} must be a positive whole number of cents.`)
  return v
}

const uuid = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || !isUuid(v)) throw new AppError('VALIDATION_FAILED', `${what} must be a UUID.`)
  return v
}

export default async function reconciliationRoutes (app: FastifyInstance, { accountingFor }: { accountingFor: AccountingFactory }): Promise<void> {
  const { who, actor } = guardWithApiKeys(app)

  app.get<{ Querystring: { status?: string, kind?: string, customer?: string } }>('/api/v1/reconciliation/exceptions', async request => {
    const p = who(request, 'payments:read')
    const { status, kind, customer } = request.query
    if (status !== undefined && !STATUSES.has(status)) throw new AppError('VALIDATION_FAILED', `status must be one of ${[...STATUSES].join(', ')}.`)
    if (kind !== undefined && !KINDS.has(kind)) throw new AppError('VALIDATION_FAILED', `kind must be one of ${[...KINDS].join(', ')}.`)
    if (customer !== undefined) uuid(customer, 'customer')
    const exceptions = await listExceptions(app.db, p.tenantId, {
      ...(status === undefined ? {} : { status: status as ExceptionStatus }),
      ...(kind === undefined ? {} : { kind: kind as ExceptionKind }),
      ...(customer === undefined ? {} : { customerId: customer })
    })
    return { exceptions }
  })

  app.post('/api/v1/reconciliation/statements', async (request, reply) => {
    const p = who(request, 'reconciliation:write')
    const b = body(request)
    if (typeof b.text !== 'string') throw new AppError('VALIDATION_FAILED', 'text must be the statement file\'s contents.')
    if (typeof b.currency !== 'string') throw new AppError('VALIDATION_FAILED', 'currency is required, e.g. "USD".')
    const format = b.format ?? (/<OFX>|OFXHEADER/i.test(b.text) ? 'ofx' : 'csv')
    if (format !== 'csv' && format !== 'ofx') throw new AppError('VALIDATION_FAILED', 'format must be csv or ofx.')
    const result = await importBankStatement(app.db, p.tenantId, { text: b.text, currency: b.currency, actor: actor(p), source: format === 'ofx' ? 'bank_ofx' : 'bank_csv' })
    return await reply.status(201).send(result)
  })

  // Payments entered in QuickBooks, read now rather than at the daily run; it applies money, so the write scope.
  app.post('/api/v1/reconciliation/quickbooks-payments/sync', async request => {
    const p = who(request, 'reconciliation:write')
    return await pullQuickBooksPayments(app.db, p.tenantId, await accountingFor(p.tenantId), { actor: actor(p) })
  })

  app.post<{ Params: { id: string } }>('/api/v1/reconciliation/exceptions/:id/accept', async request => {
    const p = who(request, 'reconciliation:write')
    const rank = body(request).rank
    if (typeof rank !== 'number' || !Number.isSafeInteger(rank) || rank < 1) throw new AppError('VALIDATION_FAILED', 'rank must be a suggestion\'s rank (1, 2, …).')
    await acceptSuggestion(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), rank, actor(p))
    return { ok: true }
  })

  app.post<{ Params: { id: string } }>('/api/v1/reconciliation/exceptions/:id/split', async request => {
    const p = who(request, 'reconciliation:write')
    const list = body(request).applications
    if (!Array.isArray(list) || list.length === 0) throw new AppError('VALIDATION_FAILED', 'applications must be a list of {invoiceId, amount}.')
    const applications = list.map((a: { invoiceId?: unknown, amount?: unknown } | null, i) => ({
      invoiceId: uuid(a?.invoiceId, `applications[${i}].invoiceId`), amount: cents(a?.amount, `applications[${i}].amount`)
    }))
    await splitManually(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), applications, actor(p))
    return { ok: true }
  })

  app.post<{ Params: { id: string } }>('/api/v1/reconciliation/exceptions/:id/write-off', async request => {
    const p = who(request, 'reconciliation:write')
    const b = body(request)
    await writeOff(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), { invoiceId: uuid(b.invoiceId, 'invoiceId'), amount: cents(b.amount, 'amount') }, actor(p))
    return { ok: true }
  })

  app.post<{ Params: { id: string } }>('/api/v1/reconciliation/exceptions/:id/dismiss', async request => {
    const p = who(request, 'reconciliation:write')
    const reason = body(request).reason
    if (typeof reason !== 'string') throw new AppError('VALIDATION_FAILED', 'reason is required.')
    await dismiss(app.db, p.tenantId, uuid(request.params.id, 'The exception id'), reason, actor(p))
    return { ok: true }
  })
}
