import type { Knex } from 'knex'
import { recordConsent } from '../db/autopay.js'
import { getBrand } from '../db/branding.js'
import { enqueue } from '../db/jobs.js'
import { openBalance } from '../db/invoices.js'
import {
  claimPart, duePartIds, endPlan, getInstallmentSettings, getPlan, hasActivePlan, latestPlanForInvoice, releasePart, type InstallmentPart, type InstallmentPlan, type PlanStatus
} from '../db/installments.js'
import { pgError, type Db } from '../db/knex.js'
import { attemptInFlightOn, getPaymentMethod, type AttemptStatus } from '../db/payments.js'
import { isUuid, requireTenantId, tenantToday } from '../db/tenants.js'
import { AppError, type ErrorCode } from '../errors.js'
import { CONSENT_TEXT_VERSION, installmentsAuthorisationText } from '../domain/consents.js'
import { installmentEligibility, installmentPlanLines, type Eligibility, type IneligibleReason, type InstallmentLine } from '../domain/installments.js'
import { money, type Money } from '../domain/money.js'
import type { PaymentsPort } from '../ports/payments.js'
import { chargeInvoice, type ChargeResult } from './charge.js'
import type { Acceptance } from './checkout.js'

/**
 * Installment plans: a client splits an invoice's open balance into 2–12
 * monthly charges on a stored method. Each part is charged through the
 * ordinary charge path (its own attempt and key, the usual retries); the
 * part's and the plan's status follow the attempts (see db/installments.ts).
 */


interface InvoiceForPlan {
  id: string, customer_id: string, number: string, currency: string, voided: boolean, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number
}

interface Terms { invoice: InvoiceForPlan, open: Money, msp: string, eligibility: Eligibility }

/** What an offer and a plan are decided from; `lock` holds the invoice row until the caller's transaction ends. */
async function termsFor (db: Db, tenantId: string, invoiceId: string, lock: boolean): Promise<Terms> {
  requireTenantId(tenantId)
  const query = db('invoices').where({ tenant_id: tenantId, id: invoiceId })
  const invoice = isUuid(invoiceId) ? await (lock ? query.forUpdate() : query).first() as InvoiceForPlan | undefined : undefined
  if (invoice === undefined) throw new AppError('INVOICE_NOT_FOUND', 'That invoice is not in Settle.')
  const settings = await getInstallmentSettings(db, tenantId)
  const open = money(openBalance(invoice), invoice.currency)
  const inFlight = await attemptInFlightOn(db, tenantId, [invoice.id])
  const eligibility = installmentEligibility({
    ...settings,
    open,
    invoiceVoided: invoice.voided,
    activePlan: await hasActivePlan(db, tenantId, invoice.id),
    paymentInFlight: inFlight !== undefined
  })
  return { invoice, open, msp: (await getBrand(db, tenantId)).name, eligibility }
}

export interface InstallmentOption {
  parts: number
  schedule: InstallmentLine[]
  /** The exact words to show; the plan records them as the client's consent. */
  authorisationText: string
}

export type InstallmentOffer =
  | { eligible: true, open: Money, options: InstallmentOption[] }
  | { eligible: false, reason: IneligibleReason, message: string }

function optionFor (terms: Terms, parts: number, firstDueOn: string): InstallmentOption {
  const schedule = installmentPlanLines(terms.open, parts, firstDueOn)
  return { parts, schedule, authorisationText: installmentsAuthorisationText(terms.msp, schedule) }
}

/** What the pay page may offer for an invoice: a schedule per part count, part 1 due today. */
export async function offerInstallments (db: Knex, tenantId: string, invoiceId: string, today?: string): Promise<InstallmentOffer> {
  const terms = await termsFor(db, tenantId, invoiceId, false)
  if (!terms.eligibility.eligible) return { eligible: false, reason: terms.eligibility.reason, message: terms.eligibility.message }
  const firstDueOn = today ?? await tenantToday(db, tenantId)
  return { eligible: true, open: terms.open, options: terms.eligibility.partCounts.map(parts => optionFor(terms, parts, firstDueOn)) }
}

const REFUSALS: Record<IneligibleReason, ErrorCode> = {
  disabled: 'INSTALLMENTS_DISABLED',
  voided: 'NOTHING_TO_CHARGE',
  nothing_open: 'NOTHING_TO_CHARGE',
  currency: 'CURRENCY_MISMATCH',
  below_minimum: 'INSTALLMENTS_BELOW_MINIMUM',
  plan_active: 'INSTALLMENT_PLAN_EXISTS',
  payment_in_flight: 'PAYMENT_IN_PROGRESS'
}

export interface CreatePlanInput {
  tenantId: string
  invoiceId: string
  paymentMethodId: string
  parts: number
  /** `client` from the pay page, or a member id. */
  actor: string
  /** `textShown`, when given, must equal the terms about to be recorded (the balance or the date may have moved since). */
  acceptance: Acceptance & { textShown?: string }
  /** YYYY-MM-DD: part 1 is due (and charged) today. */
  today: string
}

export interface CreatedPlan { plan: InstallmentPlan, firstCharge: PartChargeResult }

/**
 * Creates the plan and charges part 1 at once. Checks, the consent, the plan
 * and its parts are one transaction under the invoice's row lock, so two
 * submits make one plan; the charge runs after commit, like every charge.
 */
export async function createInstallmentPlan (db: Knex, payments: PaymentsPort, input: CreatePlanInput): Promise<CreatedPlan> {
  const { tenantId } = input
  const planId = await db.transaction(async trx => {
    const terms = await termsFor(trx, tenantId, input.invoiceId, true)
    const { eligibility, invoice } = terms
    if (!eligibility.eligible) throw new AppError(REFUSALS[eligibility.reason], eligibility.message)
    if (!eligibility.partCounts.includes(input.parts)) {
      throw new AppError('INSTALLMENT_PARTS_INVALID', `Choose from ${eligibility.partCounts[0] ?? 2} to ${eligibility.partCounts.at(-1) ?? 2} installments.`)
    }
    const method = await getPaymentMethod(trx, tenantId, input.paymentMethodId)
    if (method.customerId !== invoice.customer_id) throw new AppError('PAYMENT_METHOD_NOT_FOUND', 'That payment method is not on file for this client.')
    const { schedule, authorisationText } = optionFor(terms, input.parts, input.today)
    if (input.acceptance.textShown !== undefined && input.acceptance.textShown !== authorisationText) {
      throw new AppError('INSTALLMENT_TERMS_CHANGED', 'The installment terms changed since they were shown; please read and accept them again.')
    }
    const consentId = await recordConsent(trx, tenantId, {
      customerId: invoice.customer_id,
      paymentMethodId: method.id,
      kind: 'installments',
      text: authorisationText,
      textVersion: CONSENT_TEXT_VERSION,
      acceptedByName: input.acceptance.name.trim(),
      acceptedByEmail: input.acceptance.email,
      ip: input.acceptance.ip,
      userAgent: input.acceptance.userAgent
    })
    let inserted: Array<{ id: string }>
    try {
      inserted = await trx('installment_plans').insert({
        tenant_id: tenantId,
        invoice_id: invoice.id,
        customer_id: invoice.customer_id,
        payment_method_id: method.id,
        total: terms.open.amount,
        currency: terms.open.currency,
        part_count: input.parts,
        created_by: input.actor,
        consent_id: consentId
      }).returning('id') as Array<{ id: string }>
    } catch (error) {
      // The partial unique index: another plan became active first.
      if (pgError(error).code === '23505') throw new AppError('INSTALLMENT_PLAN_EXISTS', 'This invoice is already being paid in installments.')
      throw error
    }
    const id = (inserted[0] as { id: string }).id
    await trx('installment_parts').insert(schedule.map(line => ({ tenant_id: tenantId, plan_id: id, seq: line.seq, amount: line.amount.amount, due_on: line.dueOn })))
    return id
  })
  const created = await getPlan(db, tenantId, planId) as InstallmentPlan
  const firstCharge = await chargeInstallmentPart(db, payments, tenantId, (created.parts[0] as InstallmentPart).id, input.actor)
  return { plan: await getPlan(db, tenantId, planId) as InstallmentPlan, firstCharge }
}

export type PartChargeResult = ChargeResult | { outcome: 'skipped', reason: string }

/**
 * Charges one part: at most what is still open on the invoice. A plan whose
 * invoice was paid another way (or voided) ends here instead. The claim makes
 * a part chargeable once; retries of a failed part go through
 * `payments.retry`, not here.
 */
export async function chargeInstallmentPart (db: Knex, payments: PaymentsPort, tenantId: string, partId: string, actor: string): Promise<PartChargeResult> {
  requireTenantId(tenantId)
  const row = isUuid(partId)
    ? await db('installment_parts as p')
      .join('installment_plans as pl', function () { this.on('pl.tenant_id', 'p.tenant_id').andOn('pl.id', 'p.plan_id') })
      .join('invoices as i', function () { this.on('i.tenant_id', 'pl.tenant_id').andOn('i.id', 'pl.invoice_id') })
      .where({ 'p.tenant_id': tenantId, 'p.id': partId })
      .first('p.amount', 'pl.id as plan_id', 'pl.status as plan_status', 'pl.payment_method_id', 'pl.invoice_id', 'i.voided', 'i.ledger_billed', 'i.paid_via_settle', 'i.ledger_paid_elsewhere') as
      { amount: number | string, plan_id: string, plan_status: PlanStatus, payment_method_id: string, invoice_id: string, voided: boolean, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number } | undefined
    : undefined
  if (row === undefined) return { outcome: 'skipped', reason: 'No such installment.' }
  if (row.plan_status !== 'active') return { outcome: 'skipped', reason: `The plan is ${row.plan_status}.` }
  const open = openBalance(row)
  if (row.voided || open <= 0) {
    await endPlan(db, tenantId, row.plan_id, row.voided ? 'cancelled' : 'completed')
    return { outcome: 'skipped', reason: row.voided ? 'The invoice was voided; the plan is cancelled.' : 'The invoice was paid another way; the plan is complete.' }
  }
  if (!await claimPart(db, tenantId, partId)) return { outcome: 'skipped', reason: 'The installment is already paid, being charged, or ended.' }
  let result: ChargeResult
  try {
    result = await chargeInvoice(db, payments, {
      tenantId, invoiceId: row.invoice_id, paymentMethodId: row.payment_method_id, amount: Math.min(Number(row.amount), open), actor, trigger: 'installment', installmentPartId: partId
    })
  } catch (error) {
    // Refused before an attempt was written: the part is due again. (An attempt that was written is resolved by the sweep.)
    await releasePart(db, tenantId, partId)
    throw error
  }
  // Another payment on the invoice is in flight: try again on the next run.
  if (result.outcome === 'already_processing') await releasePart(db, tenantId, partId)
  return result
}

export interface InstallmentRunSummary {
  queued: number
  ended: Array<{ planId: string, invoiceId: string, status: 'completed' | 'cancelled' }>
}

/**
 * One tenant's installments for one day: plans whose invoice was paid another
 * way (or voided) end; every part due by today and not yet taken gets one
 * charge job per day (the dedupe key), so a second run queues nothing more,
 * and a part put back (another payment was in flight) or left by a runner
 * that died is tried again the next day.
 */
export async function runInstallments (db: Knex, tenantId: string, today: string): Promise<InstallmentRunSummary> {
  requireTenantId(tenantId)
  const summary: InstallmentRunSummary = { queued: 0, ended: [] }
  const plans = await db('installment_plans as pl').join('invoices as i', function () { this.on('i.tenant_id', 'pl.tenant_id').andOn('i.id', 'pl.invoice_id') })
    .where({ 'pl.tenant_id': tenantId, 'pl.status': 'active' })
    .select('pl.id', 'pl.invoice_id', 'i.voided', 'i.ledger_billed', 'i.paid_via_settle', 'i.ledger_paid_elsewhere') as
    Array<{ id: string, invoice_id: string, voided: boolean, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number }>
  for (const plan of plans) {
    if (!plan.voided && openBalance(plan) > 0) continue
    const status = plan.voided ? 'cancelled' : 'completed'
    if (await endPlan(db, tenantId, plan.id, status)) summary.ended.push({ planId: plan.id, invoiceId: plan.invoice_id, status })
  }
  const jobs = await enqueue(db, tenantId, (await duePartIds(db, tenantId, today)).map(partId => ({
    queue: 'installments.charge', payload: { partId, runOn: today }, dedupeKey: `installment:${partId}:${today}`, maxAttempts: 3
  })))
  summary.queued = jobs.length
  return summary
}

/** The client or a member stops the plan: what is not yet paid is cancelled, and the plan's authorisation is revoked. */
export async function cancelInstallmentPlan (db: Knex, tenantId: string, planId: string, actor: string): Promise<InstallmentPlan> {
  const plan = await getPlan(db, tenantId, planId)
  if (plan === null) throw new AppError('INSTALLMENT_PLAN_NOT_FOUND', 'That installment plan is not in Settle.')
  await db.transaction(async trx => {
    if (!await endPlan(trx, tenantId, plan.id, 'cancelled')) throw new AppError('INSTALLMENT_PLAN_NOT_ACTIVE', `This installment plan is already ${plan.status}.`)
    if (plan.consentId !== null) {
      await trx('payment_consents').where({ tenant_id: tenantId, id: plan.consentId }).whereNull('revoked_at').update({ revoked_at: trx.fn.now(), revoked_by: actor })
    }
  })
  return await getPlan(db, tenantId, plan.id) as InstallmentPlan
}

export interface PartView extends InstallmentPart {
  /** The part's most recent attempt (a retry after a decline is newer than the decline). */
  latestAttempt: { id: string, status: AttemptStatus, failureMessage: string | null, at: Date } | null
}

export interface PlanView extends Omit<InstallmentPlan, 'parts'> { parts: PartView[] }

/** The invoice's plan for display (the active one, else the most recent), or null when it never had one. */
export async function getInstallmentPlan (db: Knex, tenantId: string, invoiceId: string): Promise<PlanView | null> {
  const plan = await latestPlanForInvoice(db, tenantId, invoiceId)
  if (plan === null) return null
  const attempts = await db('payment_attempts').where({ tenant_id: tenantId }).whereIn('installment_part_id', plan.parts.map(p => p.id))
    .orderBy('created_at', 'desc').select('id', 'installment_part_id', 'status', 'failure_message', 'created_at') as
    Array<{ id: string, installment_part_id: string, status: AttemptStatus, failure_message: string | null, created_at: Date }>
  return {
    ...plan,
    parts: plan.parts.map(part => {
      const latest = attempts.find(a => a.installment_part_id === part.id)
      return { ...part, latestAttempt: latest === undefined ? null : { id: latest.id, status: latest.status, failureMessage: latest.failure_message, at: latest.created_at } }
    })
  }
}
