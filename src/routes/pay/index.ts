import type { FastifyInstance, FastifyReply } from 'fastify'
import { activeConsents } from '../../db/autopay.js'
import { enqueue } from '../../db/jobs.js'
import { getBrand } from '../../db/branding.js'
import { tenantToday } from '../../db/tenants.js'
import { allocationsByAttempt, getAttempt, getPaymentMethod, listPaymentMethods, listAttempts, type PaymentAttempt, type PaymentMethod } from '../../db/payments.js'
import { openBalance } from '../../db/invoices.js'
import { AppError, toAppError } from '../../errors.js'
import { achMandateFormText, autopayAuthorisationText } from '../../domain/consents.js'
import { formatMoney, type Money } from '../../domain/money.js'
import { classifyFailure } from '../../domain/retry-policy.js'
import type { PaymentsPort } from '../../ports/payments.js'
import { readPayLink, verifyPayLink } from '../../security/pay-links.js'
import { isUuid } from '../../db/tenants.js'
import { formatDay } from '../../domain/dates.js'
import { RESEND_PAY_LINK_QUEUE } from '../../jobs/notice-jobs.js'
import { wantsHtml } from '../../plugins/errors.js'
import { capitalised, chargeInvoice, chargeStatement, quoteCharge, quoteStatement } from '../../services/charge.js'
import { beginAddMethod, cancelAutopay, completeAddMethod, removeMethod } from '../../services/checkout.js'
import { cancelInstallmentPlan, createInstallmentPlan, getInstallmentPlan, offerInstallments } from '../../services/installments.js'

interface InvoiceRow { id: string, number: string, currency: string, issued_on: string | Date, due_on: string | Date | null, total: number, voided: boolean, customer_id: string, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number, name: string }
type Notice = { kind: 'ok' | 'wait' | 'bad', text: string } | null
type Form = Record<string, string | undefined>

/**
 * What a form post came to, carried to the page it redirects to
 * (POST/redirect/GET: a reload shows the result again and never posts again).
 * Only ids and fixed words travel; the page reads the rest from the database.
 */
interface Outcome { done?: Done, method?: string, paid?: string }
const DONE = ['method-saved', 'surcharge', 'method-removed', 'plan-set', 'plan-cancelled', 'autopay-off'] as const
type Done = typeof DONE[number]
type PageQuery = { done?: string, method?: string, paid?: string }

const day = (d: string | Date | null): string => formatDay(d)

export const methodLabel = (m: Pick<PaymentMethod, 'type' | 'brand' | 'last4' | 'expMonth' | 'expYear'>): string =>
  `${m.type === 'ach' ? (m.brand ?? 'Bank account') : capitalised(m.brand ?? 'Card')} ending ${m.last4}` +
  (m.expMonth !== null && m.expYear !== null ? `, expires ${String(m.expMonth).padStart(2, '0')}/${m.expYear}` : '')

/** "3 monthly payments of $411.52 (the first $411.53), the first today": remainder cents go to the earliest parts. */
function planSummary (schedule: ReadonlyArray<{ amount: Money }>): string {
  const first = schedule[0]?.amount
  const last = schedule[schedule.length - 1]?.amount
  if (first === undefined || last === undefined) return ''
  const firstDiffers = first.amount !== last.amount ? ` (the first ${formatMoney(first)})` : ''
  return `${schedule.length} monthly payments of ${formatMoney(last)}${firstDiffers}, the first today`
}

/** Stripe.js and its frames, on the real service only; the stand-in's form posts to this server. */
const STRIPE_CSP = "default-src 'self'; script-src 'self' https://js.stripe.com; style-src 'self'; img-src 'self' data: https://*.stripe.com; " +
  "font-src 'self'; connect-src 'self' https://api.stripe.com; frame-src https://js.stripe.com https://hooks.stripe.com; form-action 'self'; " +
  "frame-ancestors 'self'; base-uri 'none'; object-src 'none'"

/**
 * The client's pay page, reached by a signed, expiring link: white-label
 * (the MSP's name, colours and logo, not Settle's). The client pays with a
 * method on file, or adds a card or bank account (handed to the processor by
 * the browser, never to Settle), may keep it and turn on auto-pay, and can
 * withdraw those authorisations here too.
 */
export default async function payRoutes (app: FastifyInstance, { publicUrl }: { publicUrl: string, payLinkDays: number }): Promise<void> {
  const load = async (token: string): Promise<{ tenantId: string, invoice: InvoiceRow, open: number }> => {
    const link = verifyPayLink(app.keyring, token, new Date())
    const invoice = await app.db('invoices as i').join('customers as c', function () { this.on('c.tenant_id', 'i.tenant_id').andOn('c.id', 'i.customer_id') })
      .where({ 'i.tenant_id': link.tenantId, 'i.id': link.invoiceId }).first('i.*', 'c.name') as InvoiceRow | undefined
    if (invoice === undefined) throw new AppError('PAY_LINK_INVALID', 'This payment link is not valid. Ask your IT provider for a new one.')
    return { tenantId: link.tenantId, invoice, open: openBalance(invoice) }
  }

  /** The tenant's processor, or null when it has none connected (the page then says whom to contact). */
  const processorOf = async (tenantId: string): Promise<PaymentsPort | null> => {
    try { return await app.paymentsFor(app.db, tenantId) } catch (error) {
      if (toAppError(error).code === 'PROCESSOR_NOT_CONNECTED') return null
      throw error
    }
  }

  const render = async (reply: FastifyReply, token: string, given: Notice, chosenParts: number | null = null, query: PageQuery = {}): Promise<FastifyReply> => {
    const { tenantId, invoice, open } = await load(token)
    const brand = await getBrand(app.db, tenantId)
    const told = await outcomeNotices(tenantId, invoice, brand.name, query)
    const notices = given === null ? told.notices : [given]
    const payments = await processorOf(tenantId)
    const methods = await listPaymentMethods(app.db, tenantId, invoice.customer_id)
    const consents = await activeConsents(app.db, tenantId, invoice.customer_id)
    const money = (cents: number): string => formatMoney({ amount: cents, currency: invoice.currency as 'USD' })
    const attempts = await listAttempts(app.db, tenantId, invoice.id)
    const inFlight = attempts.some(a => a.status === 'processing' || a.status === 'created' || a.status === 'unknown')
    const plan = await getInstallmentPlan(app.db, tenantId, invoice.id)
    // An invoice in a running plan is paid by its schedule: no offer to pay it in full, or again in parts.
    const planned = plan?.status === 'active'
    const payable = open > 0 && !invoice.voided && !inFlight && !planned
    const autopay = consents.find(c => c.kind === 'autopay')
    const browser = payments?.browser
    const offer = payable && methods.length > 0 ? await offerInstallments(app.db, tenantId, invoice.id) : null
    const options = offer?.eligible === true ? offer.options : []
    const chosen = options.find(o => o.parts === chosenParts) ?? null
    const statement = payable ? await statementOffer(tenantId, invoice.customer_id, methods) : null
    // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on the page's own forms.
    reply.header('cache-control', 'no-store').header('referrer-policy', 'same-origin')
    if (browser !== undefined && browser.publishableKey !== null && browser.sandboxApiBase === null) reply.header('content-security-policy', STRIPE_CSP)
    return await reply.view('pay', {
      title: `Invoice ${invoice.number} · ${brand.name}`,
      brand,
      invoice: { number: invoice.number, client: invoice.name, issued: day(invoice.issued_on), due: day(invoice.due_on), total: money(Number(invoice.total)), open: money(Math.max(open, 0)) },
      payable,
      settled: open <= 0,
      processing: inFlight && !planned,
      planned,
      receipt: told.receipt,
      methods: await Promise.all(methods.map(async m => {
        // A card surcharge is shown before paying, per method, and the form carries what was shown.
        const surcharge = payable ? (await quoteCharge(app.db, tenantId, { invoiceId: invoice.id, paymentMethodId: m.id })).surcharge.amount : 0
        return {
          id: m.id,
          value: `${m.id}:${surcharge}`,
          label: methodLabel(m),
          surcharge: surcharge > 0 ? `${money(open + surcharge)}, including a ${money(surcharge)} credit card surcharge` : null,
          checked: m.isDefault,
          mandate: consents.some(c => c.kind === 'ach_mandate' && c.paymentMethodId === m.id)
        }
      })),
      canAdd: browser !== undefined && browser.publishableKey !== null,
      checkout: browser === undefined ? null : { publishableKey: browser.publishableKey, sandbox: browser.sandboxApiBase !== null, setupUrl: `/pay/${token}/setup` },
      autopay: autopay === undefined ? null : { since: day(autopay.acceptedAt) },
      installments: options.length === 0 ? null : {
        options: options.map(o => ({ parts: o.parts, summary: planSummary(o.schedule) })),
        chosen: chosen === null ? null : { parts: chosen.parts, text: chosen.authorisationText, schedule: chosen.schedule.map(l => ({ seq: l.seq, due: day(l.dueOn), amount: formatMoney(l.amount) })) }
      },
      plan: plan === null || plan.status === 'cancelled' ? null : {
        id: plan.id,
        active: plan.status === 'active',
        status: { active: 'In progress', completed: 'Paid in full', defaulted: 'Stopped: a payment failed', cancelled: 'Cancelled' }[plan.status],
        parts: plan.parts.map(part => ({
          seq: part.seq,
          due: day(part.dueOn),
          amount: formatMoney(part.amount),
          state: part.status === 'paid' ? 'Paid' : part.status === 'cancelled' ? 'Cancelled' : part.latestAttempt?.status === 'failed' ? `Declined${part.status === 'failed' ? '' : ', will retry'}` : part.status === 'charging' || part.latestAttempt?.status === 'processing' ? 'Processing' : 'Scheduled'
        }))
      },
      statement,
      texts: { autopay: autopayAuthorisationText(brand.name), mandate: achMandateFormText(brand.name) },
      action: `/pay/${token}`,
      notices
    }, { layout: 'layouts/pay.hbs' })
  }

  /** The notices (and, for a payment, the receipt) for what the last form post came to. Anything not of this client's is ignored. */
  const outcomeNotices = async (tenantId: string, invoice: InvoiceRow, brandName: string, query: PageQuery): Promise<{ notices: Notice[], receipt: Record<string, unknown> | null }> => {
    const notices: Notice[] = []
    let receipt: Record<string, unknown> | null = null
    const done = (DONE as readonly string[]).includes(query.done ?? '') ? query.done as Done : null
    const method = isUuid(query.method) ? await getPaymentMethod(app.db, tenantId, query.method).catch(() => null) : null
    const ours = method !== null && method.customerId === invoice.customer_id ? method : null
    const attempt = isUuid(query.paid) ? await getAttempt(app.db, tenantId, query.paid).catch(() => null) : null
    const paid = attempt !== null && attempt.customerId === invoice.customer_id ? attempt : null
    if (done === 'method-saved' && ours !== null) notices.push({ kind: 'ok', text: `${methodLabel(ours)} is on file.` })
    if (done === 'surcharge' && ours !== null) {
      const quote = await quoteCharge(app.db, tenantId, { invoiceId: invoice.id, paymentMethodId: ours.id }).catch(() => null)
      if (quote !== null && quote.surcharge.amount > 0) {
        // A credit card with a surcharge: the client sees the total and confirms it above before anything is charged.
        notices.push({ kind: 'wait', text: `${methodLabel(ours)} is on file. It is a credit card, so a ${formatMoney(quote.surcharge)} surcharge applies: confirm the total of ${formatMoney(quote.total)} above to pay, or use a bank account or debit card without one.` })
      }
    }
    if (done === 'method-removed') notices.push({ kind: 'ok', text: 'That payment method is removed; it will not be charged again.' })
    if (done === 'plan-cancelled') notices.push({ kind: 'ok', text: 'The remaining payments are cancelled. What is unpaid on the invoice stays due.' })
    if (done === 'autopay-off') notices.push({ kind: 'ok', text: 'Auto-pay is off. Your invoices will not be charged automatically; your saved methods stay on file until you remove them.' })
    if (done === 'plan-set') {
      const plan = await getInstallmentPlan(app.db, tenantId, invoice.id)
      if (plan !== null) notices.push({ kind: 'ok', text: `Your plan of ${plan.parts.length} payments is set up.` })
    }
    if (paid !== null) {
      const notice = await paymentNotice(tenantId, paid, brandName)
      notices.push(done === 'plan-set' && notice !== null ? { kind: notice.kind, text: notice.text.replace(/^Thank you: your payment/, 'The first payment').replace(/^Your payment/, 'The first payment') } : notice)
      if (paid.status === 'succeeded' || paid.status === 'processing') {
        const lines = (await allocationsByAttempt(app.db, tenantId, [paid.id])).get(paid.id) ?? []
        const money = (cents: number): string => formatMoney({ amount: cents, currency: paid.amount.currency })
        receipt = {
          heading: paid.status === 'succeeded' ? 'Paid' : 'Submitted, clearing',
          when: day(paid.createdAt),
          lines: lines.map(l => ({ number: l.invoiceNumber, amount: money(l.amount) })),
          surcharge: paid.surcharge.amount > 0 ? formatMoney(paid.surcharge) : null,
          total: money(paid.amount.amount + paid.surcharge.amount),
          count: lines.length
        }
      }
    }
    return { notices, receipt }
  }

  /** Where a post lands: the page again, saying what happened. */
  const redirectTo = async (reply: FastifyReply, token: string, outcome: Outcome): Promise<FastifyReply> => {
    const params = new URLSearchParams(Object.entries(outcome).filter((e): e is [string, string] => typeof e[1] === 'string'))
    const query = params.toString()
    return await reply.redirect(`/pay/${encodeURIComponent(token)}${query === '' ? '' : `?${query}`}`, 303)
  }

  /**
   * When the client owes more than this invoice: everything open in one
   * payment, oldest due first, with each method's surcharge shown as for a
   * single invoice. None when it is only this invoice, or the client owes in
   * more than one currency (each invoice is then paid on its own).
   */
  const statementOffer = async (tenantId: string, customerId: string, methods: readonly PaymentMethod[]): Promise<Record<string, unknown> | null> => {
    if (methods.length === 0) return null
    const quotes = []
    for (const m of methods) {
      try { quotes.push({ m, quote: await quoteStatement(app.db, { tenantId, customerId, paymentMethodId: m.id }) }) } catch (error) {
        if (toAppError(error).status >= 500) throw error
        return null
      }
    }
    const first = quotes[0]?.quote
    if (first === undefined || first.allocations.length < 2) return null
    return {
      count: first.allocations.length,
      total: formatMoney(first.amount),
      invoices: first.allocations.map(a => ({ number: a.number, due: day(a.dueOn), open: formatMoney(a.open) })),
      methods: quotes.map(({ m, quote }) => ({
        value: `${m.id}:${quote.surcharge.amount}`,
        label: methodLabel(m),
        surcharge: quote.surcharge.amount > 0 ? `${formatMoney(quote.total)}, including a ${formatMoney(quote.surcharge)} credit card surcharge` : null,
        checked: m.isDefault
      }))
    }
  }

  /** The radio's `method:surcharge shown`: the charge is refused if the surcharge is no longer what the client saw. Null when none was chosen. */
  const chosenMethod = (body: Form): { methodId: string, shown: number } | null => {
    const [methodId, shown] = (body.method ?? '').split(':')
    if (methodId === undefined || methodId === '' || shown === undefined || !/^\d+$/.test(shown)) return null
    return { methodId, shown: Number(shown) }
  }

  /**
   * What a payment came to, in words the client can act on. No receipt email
   * exists yet, so none is promised: the page itself is the record.
   */
  const paymentNotice = async (tenantId: string, attempt: PaymentAttempt, brandName: string): Promise<Notice> => {
    const amount = formatMoney({ amount: attempt.amount.amount + attempt.surcharge.amount, currency: attempt.amount.currency })
    if (attempt.status === 'succeeded') return { kind: 'ok', text: `Thank you: your payment of ${amount} went through, and ${brandName} has it. Keep this page for your records; no receipt is emailed.` }
    if (attempt.status === 'processing' || attempt.status === 'created') return { kind: 'wait', text: `Your payment of ${amount} is processing. Bank payments take a few business days to clear; nothing more to do.` }
    if (attempt.status === 'unknown') return { kind: 'wait', text: 'We are confirming your payment with the bank. Please do not pay again; this page will show the result shortly.' }
    if (attempt.status !== 'failed') return null
    const method = await getPaymentMethod(app.db, tenantId, attempt.paymentMethodId).catch(() => null)
    const verdict = classifyFailure({ method: method?.type ?? 'card', code: attempt.failure.code, declineCode: attempt.failure.declineCode, adviceCode: attempt.failure.adviceCode })
    return { kind: 'bad', text: `Your payment did not go through. ${verdict.explanation}` }
  }

  /** Runs a form action and redirects to the page with what it came to; a refusal the client can fix re-renders the page with it, anything else is a real error. */
  const act = async (request: { params: { token: string }, body?: Form }, reply: FastifyReply, action: (ctx: { tenantId: string, invoice: InvoiceRow, body: Form }) => Promise<Outcome>): Promise<FastifyReply> => {
    const { tenantId, invoice } = await load(request.params.token)
    try {
      return await redirectTo(reply, request.params.token, await action({ tenantId, invoice, body: request.body ?? {} }))
    } catch (error) {
      const appError = toAppError(error)
      if (appError.status >= 500) throw error
      return await render(reply.status(appError.status), request.params.token, { kind: 'bad', text: appError.message })
    }
  }

  // The token in the URL is the capability; a form posted from another site is still refused.
  app.addHook('preHandler', async request => {
    if (request.method !== 'POST') return
    const origin = request.headers.origin
    if (origin !== undefined && origin !== new URL(publicUrl).origin && origin !== `${request.protocol}://${request.host}`) {
      throw new AppError('VALIDATION_FAILED', 'This form can only be sent from the payment page itself.')
    }
  })

  /**
   * An expired or broken link: the MSP's own page when the link still names
   * it (an expired link is still signed), with a form to have a fresh link
   * sent to the billing contact on file. Never Settle's navigation.
   */
  const linkProblem = async (reply: FastifyReply, token: string, code: string, sent: boolean): Promise<FastifyReply> => {
    let tenantId: string | null = null
    try { tenantId = readPayLink(app.keyring, token).tenantId } catch { /* unsigned: no MSP to name */ }
    const brand = tenantId !== null && isUuid(tenantId) ? await getBrand(app.db, tenantId).catch(() => null) : null
    const expired = code === 'PAY_LINK_EXPIRED'
    reply.status(expired ? 410 : 404).header('cache-control', 'no-store').header('referrer-policy', 'same-origin')
    return await reply.view('pay-link', {
      title: `${expired ? 'This payment link has expired' : 'This payment link does not work'}${brand === null ? '' : ` · ${brand.name}`}`,
      brand, expired, sent, action: brand === null ? null : `/pay/${token}/renew`
    }, { layout: 'layouts/pay.hbs' })
  }
  const LINK_PROBLEMS = ['PAY_LINK_EXPIRED', 'PAY_LINK_INVALID']

  app.get<{ Params: { token: string }, Querystring: PageQuery & { sent?: string } }>('/pay/:token', async (request, reply) => {
    try {
      return await render(reply, request.params.token, null, null, request.query ?? {})
    } catch (error) {
      const code = toAppError(error).code
      // The MSP's page is for a person's browser; a program asking for JSON gets the catalogue's answer.
      if (!LINK_PROBLEMS.includes(code) || !wantsHtml(request)) throw error
      return await linkProblem(reply, request.params.token, code, request.query?.sent === '1')
    }
  })

  /**
   * "Send me a new link": queued only when the address is the invoice's
   * billing contact, at most once an hour per invoice, and answered the same
   * whether or not it is, so the form tells a stranger nothing.
   */
  app.post<{ Params: { token: string }, Body: Form }>('/pay/:token/renew', async (request, reply) => {
    const email = (request.body?.email ?? '').trim().toLowerCase()
    let link = null
    try { link = readPayLink(app.keyring, request.params.token) } catch { /* answered the same below */ }
    if (link !== null && isUuid(link.tenantId) && isUuid(link.invoiceId) && email.length > 3 && email.length <= 254) {
      const contact = await app.db('invoices as i').join('customers as c', function () { this.on('c.tenant_id', 'i.tenant_id').andOn('c.id', 'i.customer_id') })
        .where({ 'i.tenant_id': link.tenantId, 'i.id': link.invoiceId }).first('c.billing_email') as { billing_email: string | null } | undefined
      if (contact?.billing_email != null && contact.billing_email.trim().toLowerCase() === email) {
        const hour = new Date().toISOString().slice(0, 13)
        await enqueue(app.db, link.tenantId, [{ queue: RESEND_PAY_LINK_QUEUE, payload: { invoiceId: link.invoiceId }, dedupeKey: `resend:${link.invoiceId}:${hour}`, maxAttempts: 8 }])
      }
    }
    return await reply.redirect(`/pay/${encodeURIComponent(request.params.token)}?sent=1`, 303)
  })

  app.post<{ Params: { token: string }, Body: Form }>('/pay/:token', async (request, reply) => await act(request, reply, async ({ tenantId, invoice, body }) => {
    const chosen = chosenMethod(body)
    if (chosen === null) throw new AppError('VALIDATION_FAILED', 'Choose a payment method.')
    const result = await chargeInvoice(app.db, await app.paymentsFor(app.db, tenantId), { tenantId, invoiceId: invoice.id, paymentMethodId: chosen.methodId, actor: 'client', trigger: 'checkout', expectedSurcharge: chosen.shown })
    return { paid: result.attempt.id }
  }))

  /** Everything the client owes in one payment (the statement), oldest due first. */
  app.post<{ Params: { token: string }, Body: Form }>('/pay/:token/statement', async (request, reply) => await act(request, reply, async ({ tenantId, invoice, body }) => {
    const chosen = chosenMethod(body)
    if (chosen === null) throw new AppError('VALIDATION_FAILED', 'Choose a payment method.')
    const result = await chargeStatement(app.db, await app.paymentsFor(app.db, tenantId), { tenantId, customerId: invoice.customer_id, paymentMethodId: chosen.methodId, actor: 'client', trigger: 'checkout', expectedSurcharge: chosen.shown })
    return { paid: result.attempt.id }
  }))

  /** Step 1 of adding a method (JSON, from the page's script): a SetupIntent the browser confirms with the processor. */
  app.post<{ Params: { token: string } }>('/pay/:token/setup', async request => {
    const { tenantId, invoice } = await load(request.params.token)
    const payments = await processorOf(tenantId)
    if (payments === null) throw new AppError('CHECKOUT_UNAVAILABLE', 'Online payment is not set up yet; please contact your IT provider to pay.')
    const setup = await beginAddMethod(app.db, payments, tenantId, invoice.customer_id)
    return { setupId: setup.setupId, clientSecret: setup.clientSecret, publishableKey: setup.publishableKey, sandboxApiBase: setup.sandboxApiBase }
  })

  /** Step 2: the confirmed SetupIntent comes back with the client's choices; save, authorise, and pay if asked. */
  app.post<{ Params: { token: string }, Body: Form }>('/pay/:token/methods', async (request, reply) => await act(request, reply, async ({ tenantId, invoice, body }) => {
    const keep = body.keep === 'on'
    const autopay = body.autopay === 'on'
    if (autopay && !keep) throw new AppError('VALIDATION_FAILED', 'Auto-pay needs the method kept on file; tick "Keep it on file" or untick auto-pay.')
    const payments = await app.paymentsFor(app.db, tenantId)
    const method = await completeAddMethod(app.db, payments, {
      tenantId,
      customerId: invoice.customer_id,
      setupId: body.setup_intent ?? '',
      acceptance: { name: body.name ?? '', email: (body.email ?? '').trim() === '' ? null : (body.email ?? '').trim(), ip: request.ip, userAgent: String(request.headers['user-agent'] ?? 'unknown') },
      makeDefault: keep,
      autopay
    })
    let outcome: Outcome = { done: 'method-saved', method: method.id }
    if (body.pay_now === 'on' && openBalance(invoice) > 0) {
      const quote = await quoteCharge(app.db, tenantId, { invoiceId: invoice.id, paymentMethodId: method.id })
      if (quote.surcharge.amount > 0) {
        outcome = { done: 'surcharge', method: method.id }
      } else {
        const result = await chargeInvoice(app.db, payments, { tenantId, invoiceId: invoice.id, paymentMethodId: method.id, actor: 'client', trigger: 'checkout', expectedSurcharge: 0 })
        outcome = { paid: result.attempt.id }
      }
    }
    // Not kept: forgotten once the payment no longer needs it (a job waits out a processing bank debit).
    if (!keep) await enqueue(app.db, tenantId, [{ queue: 'payments.forget-method', payload: { customerId: invoice.customer_id, methodId: method.id }, dedupeKey: `forget:${method.id}`, maxAttempts: 40 }])
    return outcome
  }))

  app.post<{ Params: { token: string, methodId: string }, Body: Form }>('/pay/:token/methods/:methodId/remove', async (request, reply) => await act(request, reply, async ({ tenantId, invoice }) => {
    await removeMethod(app.db, tenantId, invoice.customer_id, request.params.methodId, 'client')
    return { done: 'method-removed' }
  }))

  /** Installments, step 1: the client picks a number of parts and sees the exact schedule and words before agreeing. */
  app.post<{ Params: { token: string }, Body: Form }>('/pay/:token/installments/preview', async (request, reply) => {
    const parts = Number(request.body?.parts)
    return await render(reply, request.params.token, Number.isInteger(parts) ? null : { kind: 'bad', text: 'Choose how many payments.' }, parts)
  })

  /** Step 2: the plan, with the consent in the words shown; part 1 is charged now. */
  app.post<{ Params: { token: string }, Body: Form }>('/pay/:token/installments', async (request, reply) => await act(request, reply, async ({ tenantId, invoice, body }) => {
    const created = await createInstallmentPlan(app.db, await app.paymentsFor(app.db, tenantId), {
      tenantId,
      invoiceId: invoice.id,
      paymentMethodId: body.method ?? '',
      parts: Number(body.parts),
      actor: 'client',
      acceptance: { name: body.name ?? '', email: null, ip: request.ip, userAgent: String(request.headers['user-agent'] ?? 'unknown'), textShown: body.text_shown ?? '' },
      today: await tenantToday(app.db, tenantId)
    })
    const first = created.firstCharge
    return first.outcome === 'skipped' ? { done: 'plan-set' } : { done: 'plan-set', paid: first.attempt.id }
  }))

  app.post<{ Params: { token: string, planId: string }, Body: Form }>('/pay/:token/installments/:planId/cancel', async (request, reply) => await act(request, reply, async ({ tenantId, invoice }) => {
    const plan = await getInstallmentPlan(app.db, tenantId, invoice.id)
    if (plan === null || plan.id !== request.params.planId) throw new AppError('INSTALLMENT_PLAN_NOT_FOUND', 'That plan is not on this invoice.')
    await cancelInstallmentPlan(app.db, tenantId, plan.id, 'client')
    return { done: 'plan-cancelled' }
  }))

  app.post<{ Params: { token: string }, Body: Form }>('/pay/:token/autopay/cancel', async (request, reply) => await act(request, reply, async ({ tenantId, invoice }) => {
    await cancelAutopay(app.db, tenantId, invoice.customer_id, 'client')
    return { done: 'autopay-off' }
  }))
}
