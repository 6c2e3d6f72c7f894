import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { AppError } from '../../errors.js'
import { versionedCache } from '../../cache.js'
import { audit } from '../../db/audit.js'
import { getPsaConnection } from '../../db/psa.js'
import { getAttempt, listPaymentMethods, type PaymentMethod } from '../../db/payments.js'
import { isUuid } from '../../db/tenants.js'
import { formatMoney } from '../../domain/money.js'
import { formatDay } from '../../domain/dates.js'
import { payLinkUrl } from '../../jobs/notice-jobs.js'
import { MEMBER_FIELD_PATTERN, verifyHostedMember } from '../../adapters/connectwise/member.js'
import { authenticateApiKey } from '../../security/api-keys.js'
import { activeKeyNamed } from '../../db/api-keys.js'
import {
  checkCsrf, CSRF_HEADER, issueSession, liveLinkKeyFingerprint, liveLinkValid, requirePermission, sessionEnded, SESSION_HEADER, SIGN_IN_MAX_AGE_MS, verifySession,
  type EmbeddedPermission, type EmbeddedSession, type EmbeddedSystem
} from '../../security/embedded-sessions.js'
import { chargeInvoice, chargeStatement, quoteCharge, quoteStatement, type ChargeResult } from '../../services/charge.js'
import {
  attemptView, autotaskOrigins, companyModel, connectWiseEmbedding, embedTenant, existingLiveLinkKey, invoiceModel, invoiceVersion, memberPermissions, quickbooksModel, syncQuickBooks,
  type EmbedTenant, type QuickBooksDeps
} from '../../services/embedded.js'
import type { AccountingFactory } from '../../ports/accounting.js'
import { getAccountingConnection, type QboAppCredentials } from '../../services/accounting-connections.js'
import { requireInScope } from '../../services/link-scope.js'
import { startQuickBooksConnect } from '../connect/quickbooks.js'

export interface EmbeddedRouteOptions {
  publicUrl: string
  /** PAY_LINK_DAYS: how long the pay links the pod makes stay valid. */
  payLinkDays: number
  /** The server's own origin on the embedded default (the ConnectWise stand-in and the demo host live there). */
  sandboxOrigin: () => string | null
  /** The Intuit app's keys, for connecting a real QuickBooks company from the pod. */
  intuitApp: QboAppCredentials | null
}

const SURFACES = ['invoice', 'company', 'quickbooks'] as const
type Surface = typeof SURFACES[number]
const LAYOUT = { layout: 'layouts/embedded.hbs' } as const

const surfaceOf = (value: string): Surface => {
  if (!(SURFACES as readonly string[]).includes(value)) throw new AppError('ROUTE_NOT_FOUND', 'No such embedded page.')
  return value as Surface
}

/** PSA record ids are numbers in both PSAs; anything else is refused before it reaches a query. */
const recordId = (value: unknown, surface: Surface): string => {
  if (surface === 'quickbooks') return ''
  if (typeof value !== 'string' || !/^\d{1,18}$/.test(value)) throw new AppError('VALIDATION_FAILED', 'The PSA record id is missing or not a number; check the URL in the PSA setup ([cw_id]).')
  return value
}

/** What a staff API key may do on these pages, by its scopes. */
const apiKeyPermissions = (scopes: readonly string[]): EmbeddedPermission[] =>
  ['view', ...(scopes.includes('payments:charge') ? ['charge' as const] : []), ...(scopes.includes('exceptions:resolve') ? ['sync' as const] : []), ...(scopes.includes('paylinks:write') ? ['paylink' as const] : [])]

/** Helmet refuses all framing; these pages allow exactly the tenant's PSA origins. */
function allowFraming (reply: FastifyReply, origins: readonly string[]): void {
  const current = String(reply.getHeader('content-security-policy') ?? "default-src 'self'")
  const ancestors = origins.length === 0 ? "'none'" : origins.join(' ')
  const csp = current.split(';').map(d => d.trim()).filter(d => d !== '' && !d.startsWith('frame-ancestors')).concat(`frame-ancestors ${ancestors}`).join('; ')
  reply.header('content-security-policy', csp).removeHeader('x-frame-options').header('cache-control', 'no-store').header('referrer-policy', 'no-referrer')
}

/**
 * Pages that ConnectWise frames (Hosted API pods, tabs, toolbar dialogs) and
 * Autotask opens by LiveLink. The first response carries no data: a
 * ConnectWise page proves its member through the Hosted API handshake
 * (views/assets/embedded.js) and POST /embedded/cw/session; an Autotask page
 * needs a signed link or a sign-in. Either way the result is a session token
 * the script sends as a header, and each change also needs its CSRF token.
 */
/** The Hosted API handshake as the page script sends it: member fields are cookie values, refused as the client's mistake before ConnectWise is called. */
const memberField = Type.Optional(Type.String({ pattern: MEMBER_FIELD_PATTERN, description: 'what ConnectWise sends: up to 512 letters, digits or . _ ~ + / = % -' }))
const memberProof = Type.Object({
  tenant: Type.Optional(Type.String({ maxLength: 100 })), site: Type.Optional(Type.String({ maxLength: 2048 })),
  companyid: memberField, memberid: memberField, memberHash: memberField, memberContext: memberField
}, { additionalProperties: false })

export default async function embeddedRoutes (app: FastifyInstance, options: EmbeddedRouteOptions): Promise<void> {
  // QuickBooks through app.accountingFor once the reconciliation side decorates it; until then "not connected".
  const qb: QuickBooksDeps = { db: app.db, accountingFor: () => app.hasDecorator('accountingFor') ? (app as unknown as { accountingFor: AccountingFactory }).accountingFor : null }

  // Kept encoded: sending a Buffer skips measuring and encoding ~15 KB of text on every request.
  const invoicePods = versionedCache<string, Buffer>(2_000)

  const browserOrigin = (request: FastifyRequest): string | null => options.sandboxOrigin() === null ? null : `${request.protocol}://${request.host}`
  const originsFor = async (request: FastifyRequest, system: EmbeddedSystem, tenantId: string): Promise<string[]> => system === 'connectwise'
    ? (await connectWiseEmbedding(app.db, tenantId, options.sandboxOrigin(), browserOrigin(request)))?.origins ?? []
    : await autotaskOrigins(app.db, tenantId, options.sandboxOrigin(), browserOrigin(request))

  const shell = async (request: FastifyRequest, reply: FastifyReply, system: EmbeddedSystem, surface: Surface, t: EmbedTenant, id: string, extra: Record<string, unknown> = {}): Promise<FastifyReply> => {
    const origins = await originsFor(request, system, t.tenant.id)
    allowFraming(reply, origins)
    return await reply.view('embedded/shell', {
      title: `${surface === 'quickbooks' ? 'QuickBooks sync' : surface === 'invoice' ? 'Invoice payments' : 'Payment status'} · Settle`,
      tenantId: t.tenant.id, slug: t.tenant.slug, system, surface, id, origins: origins.join(' '), ...extra
    }, LAYOUT)
  }

  // --- ConnectWise: the page, then the member proof -------------------------------------------
  app.get<{ Params: { surface: string }, Querystring: { tenant?: string, id?: string } }>('/embedded/cw/:surface', async (request, reply) => {
    const surface = surfaceOf(request.params.surface)
    const t = await embedTenant(app.db, request.query.tenant)
    return await shell(request, reply, 'connectwise', surface, t, recordId(request.query.id, surface))
  })

  app.post<{ Body: Record<string, unknown> }>('/embedded/cw/session', { schema: { body: memberProof } }, async request => {
    const b = request.body ?? {}
    const t = await embedTenant(app.db, b.tenant)
    const cw = await connectWiseEmbedding(app.db, t.tenant.id, options.sandboxOrigin())
    if (cw === null) throw new AppError('PSA_NOT_CONNECTED', 'This Settle account has no ConnectWise connection.')
    const field = (name: string): string => { const v = b[name]; if (typeof v !== 'string' || v === '') throw new AppError('UNAUTHENTICATED', 'ConnectWise did not send the member\'s sign-in; reload the screen.'); return v }
    const member = { companyId: field('companyid'), memberId: field('memberid'), memberHash: field('memberHash'), memberContext: field('memberContext') }
    const stored = (await getPsaConnection(app.db, t.tenant.id, 'connectwise')).settings
    // The member must belong to the tenant's own ConnectWise company, whatever the frame claims.
    const companyOk = String(stored.companyId ?? '').toLowerCase() === member.companyId.toLowerCase()
    let verified = false
    if (companyOk) {
      try { verified = await verifyHostedMember(cw, member) } catch (error) {
        request.log.warn({ err: error }, 'connectwise member verification failed')
        throw new AppError('UPSTREAM_FAILED', 'ConnectWise did not answer to confirm who you are. Try again in a minute.')
      }
    }
    if (!verified) {
      await audit(app.db, t.tenant.id, `cw:${member.memberId}`, 'embedded.sign_in_refused', null, { companyOk })
      throw new AppError('UNAUTHENTICATED', 'ConnectWise did not confirm your sign-in. Reload the screen; if it keeps happening, sign out of ConnectWise and back in.')
    }
    const permissions = await memberPermissions(app.db, t.tenant.id, 'connectwise', [member.memberId])
    const issued = issueSession(app.keyring, { tenantId: t.tenant.id, system: 'connectwise', member: `cw:${member.memberId}`, permissions })
    return { session: issued.token, csrf: issued.csrf, expiresAt: issued.session.expiresAt, permissions }
  })

  // --- Autotask: LiveLinks, signed or followed by sign-in --------------------------------------
  app.get<{ Params: { surface: string }, Querystring: { tenant?: string, id?: string, exp?: string, sig?: string } }>('/embedded/autotask/:surface', async (request, reply) => {
    const surface = surfaceOf(request.params.surface)
    const t = await embedTenant(app.db, request.query.tenant)
    const id = recordId(request.query.id, surface)
    const key = await existingLiveLinkKey(app.db, app.keyring, t.tenant.id)
    // LiveLinks open one invoice or one company; the QuickBooks pod is for staff only.
    if (surface === 'quickbooks' || key === null || !liveLinkValid(key, { tenantSlug: t.tenant.slug, kind: surface, recordId: id, exp: request.query.exp, sig: request.query.sig })) {
      allowFraming(reply, await originsFor(request, 'autotask', t.tenant.id))
      return await reply.view('embedded/sign-in', {
        title: 'Sign in · Settle', tenantId: t.tenant.id, slug: t.tenant.slug, surface, id,
        stale: request.query.sig !== undefined
      }, LAYOUT)
    }
    const permissions = await memberPermissions(app.db, t.tenant.id, 'autotask', ['livelink'])
    // Bound to the record the link was signed for, and to the key that signed it.
    const issued = issueSession(app.keyring, { tenantId: t.tenant.id, system: 'autotask', member: 'at:livelink', permissions, scope: { kind: surface, record: id }, linkKey: liveLinkKeyFingerprint(key) })
    return await shell(request, reply, 'autotask', surface, t, id, { session: issued.token, csrf: issued.csrf })
  })

  app.post<{ Body: Record<string, unknown> }>('/embedded/autotask/sign-in', async (request, reply) => {
    const b = request.body ?? {}
    const t = await embedTenant(app.db, b.tenant)
    const surface = surfaceOf(String(b.surface ?? ''))
    const id = recordId(b.id, surface)
    let principal
    try { principal = await authenticateApiKey(app.db, `Bearer ${String(b.apiKey ?? '').trim()}`) } catch { principal = null }
    if (principal === null || principal.tenantId !== t.tenant.id || !principal.scopes.includes('payments:read')) {
      allowFraming(reply, await originsFor(request, 'autotask', t.tenant.id))
      return await reply.status(401).view('embedded/sign-in', { title: 'Sign in · Settle', tenantId: t.tenant.id, slug: t.tenant.slug, surface, id, refused: true }, LAYOUT)
    }
    const permissions = apiKeyPermissions(principal.scopes)
    const issued = issueSession(app.keyring, { tenantId: t.tenant.id, system: 'autotask', member: `api:${principal.name}`, permissions })
    await audit(app.db, t.tenant.id, `api:${principal.name}`, 'embedded.sign_in', null, { surface })
    return await shell(request, reply, 'autotask', surface, t, id, { session: issued.token, csrf: issued.csrf })
  })

  // --- Data: only with a session ---------------------------------------------------------------
  // A session from an API-key sign-in lives no longer than its key: a revoked key ends it at once.
  app.addHook('preHandler', async request => {
    const token = request.headers[SESSION_HEADER]
    if (typeof token !== 'string') return
    let session: EmbeddedSession
    try { session = verifySession(app.keyring, token) } catch { return }
    if (session.member.startsWith('api:') && await activeKeyNamed(app.db, session.tenantId, session.member.slice(4)) === undefined) throw sessionEnded()
  })
  const sessionOf = (request: FastifyRequest, system: EmbeddedSystem): EmbeddedSession => {
    const session = verifySession(app.keyring, request.headers[SESSION_HEADER])
    if (session.system !== system) throw new AppError('UNAUTHENTICATED', 'This session belongs to another PSA. Reload the screen.')
    return session
  }
  const changing = (request: FastifyRequest, system: EmbeddedSystem, permission: EmbeddedPermission): EmbeddedSession => {
    const session = sessionOf(request, system)
    checkCsrf(app.keyring, String(request.headers[SESSION_HEADER]), session, request.headers[CSRF_HEADER])
    requirePermission(session, permission)
    return session
  }
  const systemOf = (prefix: string): EmbeddedSystem => {
    if (prefix === 'cw') return 'connectwise'
    if (prefix === 'autotask') return 'autotask'
    throw new AppError('ROUTE_NOT_FOUND', 'No such embedded page.')
  }

  /**
   * A page left open renews its session before it ends, with permissions
   * read again (a revoked grant or API key takes effect at the next renewal).
   * After SIGN_IN_MAX_AGE_MS the member must be proven again: ConnectWise
   * pages re-run the handshake, Autotask pages are reopened.
   */
  app.post<{ Params: { psa: string } }>('/embedded/:psa/session/renew', async request => {
    const session = changing(request, systemOf(request.params.psa), 'view')
    if (Date.now() - session.signedInAt.getTime() > SIGN_IN_MAX_AGE_MS) throw sessionEnded()
    let permissions: EmbeddedPermission[]
    const [kind, ...rest] = session.member.split(':')
    const name = rest.join(':')
    if (kind === 'api') {
      const key = await activeKeyNamed(app.db, session.tenantId, name)
      if (key === undefined) throw sessionEnded()
      permissions = apiKeyPermissions(key.scopes)
    } else {
      if (session.linkKey !== undefined) {
        // A LiveLink session lives only as long as the key that signed its link.
        const current = await existingLiveLinkKey(app.db, app.keyring, session.tenantId)
        if (current === null || liveLinkKeyFingerprint(current) !== session.linkKey) throw sessionEnded()
      }
      permissions = await memberPermissions(app.db, session.tenantId, session.system, [name])
    }
    const issued = issueSession(app.keyring, {
      tenantId: session.tenantId, system: session.system, member: session.member, permissions, signedInAt: session.signedInAt,
      ...(session.scope !== undefined ? { scope: session.scope } : {}), ...(session.linkKey !== undefined ? { linkKey: session.linkKey } : {})
    })
    return { session: issued.token, csrf: issued.csrf, expiresAt: issued.session.expiresAt, permissions }
  })

  app.get<{ Params: { psa: string, surface: string }, Querystring: { id?: string } }>('/embedded/:psa/:surface/view', async (request, reply) => {
    const system = systemOf(request.params.psa)
    const surface = surfaceOf(request.params.surface)
    const session = sessionOf(request, system)
    const id = recordId(request.query.id, surface)
    await requireInScope(app.db, session, { surface, psaId: id })
    const can = { charge: session.permissions.includes('charge'), sync: session.permissions.includes('sync'), paylink: session.permissions.includes('paylink') }
    reply.header('cache-control', 'no-store').type('text/html; charset=utf-8')
    if (surface === 'invoice') {
      // Technicians open the same invoices over and over: rebuild the pod only when a row behind it changed.
      const version = await invoiceVersion(app.db, session.tenantId, system, id)
      const key = `${session.tenantId}|${system}|${id}|${session.member}|${can.charge ? 'c' : ''}${can.sync ? 's' : ''}${can.paylink ? 'p' : ''}`
      return await reply.send(await invoicePods.get(key, version, async () =>
        Buffer.from(await app.view('embedded/invoice', { ...await invoiceModel(app.db, session.tenantId, system, id), can, member: session.member, payLinkDays: options.payLinkDays }) as string)))
    }
    const model = surface === 'company' ? await companyModel(app.db, session.tenantId, system, id) : await quickbooksModel(qb, session.tenantId)
    return await reply.view(`embedded/${surface}`, { ...model, can, member: session.member })
  })

  const invoiceIdOf = (value: unknown): string => {
    if (!isUuid(value)) throw new AppError('VALIDATION_FAILED', 'invoiceId is missing.')
    return value
  }
  const amountOf = (value: unknown): number | undefined => {
    if (value === undefined || value === null || value === '') return undefined
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new AppError('INVALID_AMOUNT', 'Enter an amount greater than zero, for example 125.00.')
    return value
  }

  const methodWords = (method: PaymentMethod | undefined): string =>
    method === undefined ? 'the selected method' : `${method.brand ?? (method.type === 'ach' ? 'bank account' : 'card')} ending ${method.last4}`
  const methodIdOf = (value: unknown): string => {
    if (typeof value !== 'string' || !isUuid(value)) throw new AppError('VALIDATION_FAILED', 'Pick a stored payment method.')
    return value
  }

  /** A charge's answer to the page: the attempt in plain words, 409 when another payment is in flight, 402 when declined. */
  const chargeReply = async (reply: FastifyReply, tenantId: string, result: ChargeResult, inFlightOn: string): Promise<FastifyReply> => {
    const view = attemptView(result.attempt, await listPaymentMethods(app.db, tenantId, result.attempt.customerId))
    if (result.outcome === 'already_processing') {
      return await reply.status(409).send({ error: { code: 'PAYMENT_IN_PROGRESS', message: `A payment on ${inFlightOn} is already ${result.attempt.status}; wait for it before charging again.` }, attempt: view })
    }
    return await reply.status(result.outcome === 'failed' ? 402 : 201).send({ outcome: result.outcome, attempt: view, amountText: formatMoney(result.attempt.amount) })
  }

  app.post<{ Params: { psa: string }, Body: Record<string, unknown> }>('/embedded/:psa/invoice/quote', async request => {
    const session = changing(request, systemOf(request.params.psa), 'charge')
    const b = request.body ?? {}
    await requireInScope(app.db, session, { invoiceId: b.invoiceId })
    const amount = amountOf(b.amount)
    const quote = await quoteCharge(app.db, session.tenantId, { invoiceId: invoiceIdOf(b.invoiceId), paymentMethodId: String(b.paymentMethodId ?? ''), ...(amount !== undefined ? { amount } : {}) })
    const method = (await listPaymentMethods(app.db, session.tenantId, (await app.db('invoices').where({ tenant_id: session.tenantId, id: b.invoiceId }).first('customer_id') as { customer_id: string }).customer_id)).find(m => m.id === b.paymentMethodId)
    return {
      quote,
      surchargeCents: quote.surcharge.amount,
      text: `Charge ${formatMoney(quote.total)} to ${methodWords(method)}` +
        (quote.surcharge.amount > 0 ? `: ${formatMoney(quote.amount)} applied to the invoice plus a ${formatMoney(quote.surcharge)} card surcharge.` : ', applied to the invoice.')
    }
  })

  app.post<{ Params: { psa: string }, Body: Record<string, unknown> }>('/embedded/:psa/invoice/charge', async (request, reply) => {
    const session = changing(request, systemOf(request.params.psa), 'charge')
    const b = request.body ?? {}
    await requireInScope(app.db, session, { invoiceId: b.invoiceId })
    const invoiceId = invoiceIdOf(b.invoiceId)
    const amount = amountOf(b.amount)
    const expected = b.expectedSurcharge
    const result = await chargeInvoice(app.db, await app.paymentsFor(app.db, session.tenantId), {
      tenantId: session.tenantId, invoiceId, paymentMethodId: methodIdOf(b.paymentMethodId), actor: session.member, trigger: 'charge_card',
      ...(amount !== undefined ? { amount } : {}), ...(typeof expected === 'number' ? { expectedSurcharge: expected } : {})
    })
    await audit(app.db, session.tenantId, session.member, 'payment.charge', invoiceId, { attemptId: result.attempt.id, outcome: result.outcome, amount: result.attempt.amount.amount, via: 'embedded' })
    return await chargeReply(reply, session.tenantId, result, 'this invoice')
  })

  /** The company tab's statement payment: which invoices, which method, how much (applied oldest due first). */
  const statementOf = (session: EmbeddedSession, b: Record<string, unknown>): { tenantId: string, customerId: string, paymentMethodId: string, invoiceIds: string[], amount?: number } => {
    if (!isUuid(b.customerId)) throw new AppError('VALIDATION_FAILED', 'customerId is missing.')
    if (!Array.isArray(b.invoiceIds) || b.invoiceIds.length === 0) throw new AppError('VALIDATION_FAILED', 'Tick at least one invoice to pay.')
    const amount = amountOf(b.amount)
    return { tenantId: session.tenantId, customerId: b.customerId, paymentMethodId: methodIdOf(b.paymentMethodId), invoiceIds: b.invoiceIds.map(String), ...(amount !== undefined ? { amount } : {}) }
  }

  app.post<{ Params: { psa: string }, Body: Record<string, unknown> }>('/embedded/:psa/company/quote', async request => {
    const session = changing(request, systemOf(request.params.psa), 'charge')
    await requireInScope(app.db, session, { customerId: request.body?.customerId })
    const statement = statementOf(session, request.body ?? {})
    const quote = await quoteStatement(app.db, statement)
    const method = (await listPaymentMethods(app.db, session.tenantId, statement.customerId)).find(m => m.id === statement.paymentMethodId)
    const count = quote.allocations.length
    return {
      quote,
      surchargeCents: quote.surcharge.amount,
      text: `Charge ${formatMoney(quote.total)} to ${methodWords(method)} in one payment over ${count === 1 ? 'one invoice' : `${count} invoices`}, oldest due first` +
        (quote.surcharge.amount > 0 ? `, plus a ${formatMoney(quote.surcharge)} card surcharge:` : ':'),
      lines: quote.allocations.map(a => `${a.number}: ${formatMoney(a.applied)}${a.applied.amount === a.open.amount ? ' (pays it in full)' : ` of ${formatMoney(a.open)} open`}`)
    }
  })

  app.post<{ Params: { psa: string }, Body: Record<string, unknown> }>('/embedded/:psa/company/charge', async (request, reply) => {
    const session = changing(request, systemOf(request.params.psa), 'charge')
    const b = request.body ?? {}
    await requireInScope(app.db, session, { customerId: b.customerId })
    const statement = statementOf(session, b)
    const expected = b.expectedSurcharge
    const result = await chargeStatement(app.db, await app.paymentsFor(app.db, session.tenantId), {
      ...statement, actor: session.member, trigger: 'charge_card', ...(typeof expected === 'number' ? { expectedSurcharge: expected } : {})
    })
    await audit(app.db, session.tenantId, session.member, 'payment.charge_statement', statement.customerId, { attemptId: result.attempt.id, outcome: result.outcome, amount: result.attempt.amount.amount, invoiceIds: statement.invoiceIds, via: 'embedded' })
    return await chargeReply(reply, session.tenantId, result, 'one of these invoices')
  })

  app.get<{ Params: { psa: string, attemptId: string } }>('/embedded/:psa/attempts/:attemptId', async request => {
    const session = sessionOf(request, systemOf(request.params.psa))
    if (!isUuid(request.params.attemptId)) throw new AppError('ATTEMPT_NOT_FOUND', 'No such payment.')
    await requireInScope(app.db, session, { attemptId: request.params.attemptId })
    const attempt = await getAttempt(app.db, session.tenantId, request.params.attemptId)
    const view = attemptView(attempt, await listPaymentMethods(app.db, session.tenantId, attempt.customerId))
    return { attempt: view, amountText: formatMoney(attempt.amount), done: ['succeeded', 'failed', 'refunded', 'disputed'].includes(attempt.status) }
  })

  app.post<{ Params: { psa: string }, Body: Record<string, unknown> }>('/embedded/:psa/invoice/pay-link', async request => {
    const session = changing(request, systemOf(request.params.psa), 'paylink')
    const invoiceId = invoiceIdOf(request.body?.invoiceId)
    await requireInScope(app.db, session, { invoiceId })
    const row = await app.db('invoices').where({ tenant_id: session.tenantId, id: invoiceId }).first('id') as { id: string } | undefined
    if (row === undefined) throw new AppError('INVOICE_NOT_FOUND', 'No such invoice.')
    const link = payLinkUrl({ keyring: app.keyring, publicUrl: options.publicUrl, payLinkDays: options.payLinkDays }, session.tenantId, invoiceId)
    await audit(app.db, session.tenantId, session.member, 'pay_link.create', invoiceId, { expiresAt: link.expiresAt, via: 'embedded' })
    return { ...link, validUntil: formatDay(link.expiresAt) }
  })

  // QuickBooks' sign-in page refuses to be framed: the pod opens this URL in a new window.
  app.post<{ Params: { psa: string }, Body: Record<string, unknown> }>('/embedded/:psa/quickbooks/connect', async request => {
    const session = changing(request, systemOf(request.params.psa), 'sync')
    await requireInScope(app.db, session, { surface: 'quickbooks', psaId: '' })
    const connection = await getAccountingConnection(app.db, session.tenantId)
    const sandbox = connection !== null ? connection.settings.site === 'sandbox' : options.sandboxOrigin() !== null
    const moveRealm = request.body?.move === true
    const url = await startQuickBooksConnect(app.db, options, { tenantId: session.tenantId, sandbox, moveRealm, startedBy: session.member })
    await audit(app.db, session.tenantId, session.member, 'quickbooks.connect_started', null, { via: 'embedded', reconnect: connection !== null, moveRealm })
    return { url }
  })

  app.post<{ Params: { psa: string }, Body: Record<string, unknown> }>('/embedded/:psa/quickbooks/sync', async request => {
    const session = changing(request, systemOf(request.params.psa), 'sync')
    await requireInScope(app.db, session, { surface: 'quickbooks', psaId: '' })
    const result = await syncQuickBooks(qb, session.tenantId)
    await audit(app.db, session.tenantId, session.member, 'quickbooks.sync', null, { connected: result.connected, posted: result.posted.length, failed: result.failed.length })
    return result
  })
}
