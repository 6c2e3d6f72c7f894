import type { PaymentMethodType } from './retry-policy.js'

/**
 * Auto-pay rules and the decision for one invoice on one day. Pure: the
 * caller passes today's date, the invoice and the client's stored methods.
 */
export type AutopayTiming =
  | { kind: 'days_before_due', days: number }
  | { kind: 'on_due' }
  | { kind: 'days_after_issue', days: number }
  | { kind: 'day_of_month', day: number }

export interface AutopayRule {
  paused: boolean
  /** ACH first where the client has both: cheaper for the MSP. */
  methodPreference: 'ach_first' | 'card_first' | 'ach_only' | 'card_only'
  timing: AutopayTiming
  /** Invoice kinds to charge (null: all). */
  invoiceKinds: readonly string[] | null
  /** Agreement names to charge (null: any, including none). */
  agreements: readonly string[] | null
  /** Never auto-charge more than this (null: no cap). */
  amountCap: number | null
  /** A person approves charges above this (null: never). */
  approvalAbove: number | null
}

/** What a tenant starts with: ACH first, on the due date, every invoice, approval above $10,000. */
export const DEFAULT_AUTOPAY_RULE: AutopayRule = {
  paused: false,
  methodPreference: 'ach_first',
  timing: { kind: 'on_due' },
  invoiceKinds: null,
  agreements: null,
  amountCap: null,
  approvalAbove: 1_000_000
}

/** The customer's rule wins, field by field, over the tenant's. */
export function effectiveRule (tenant: AutopayRule, customer: Partial<AutopayRule> | null): AutopayRule {
  if (customer === null) return tenant
  const defined = Object.fromEntries(Object.entries(customer).filter(([, v]) => v !== undefined)) as Partial<AutopayRule>
  return { ...tenant, ...defined }
}

export interface RuleProblem { field: string, message: string }

/** Checks a rule from a settings form or the API; empty when valid. */
export function validateRule (rule: AutopayRule): RuleProblem[] {
  const problems: RuleProblem[] = []
  const t = rule.timing
  if ((t.kind === 'days_before_due' || t.kind === 'days_after_issue') && (!Number.isInteger(t.days) || t.days < 0 || t.days > 90)) {
    problems.push({ field: 'timing.days', message: 'Days must be a whole number from 0 to 90.' })
  }
  if (t.kind === 'day_of_month' && (!Number.isInteger(t.day) || t.day < 1 || t.day > 31)) {
    problems.push({ field: 'timing.day', message: 'Day of month must be from 1 to 31 (months without it charge on their last day).' })
  }
  for (const [field, value] of [['amountCap', rule.amountCap], ['approvalAbove', rule.approvalAbove]] as const) {
    if (value !== null && (!Number.isSafeInteger(value) || value <= 0)) problems.push({ field, message: 'Amounts are whole cents above zero.' })
  }
  return problems
}

export interface AutopayInvoice {
  kind: string
  agreementName: string | null
  /** What is still open, in cents. */
  open: number
  /** YYYY-MM-DD */
  issuedOn: string
  dueOn: string | null
}

export interface StoredMethod {
  id: string
  type: PaymentMethodType
  isDefault: boolean
  /** Cards: YYYY-MM of expiry; null for bank accounts. */
  expires: string | null
  /** Auto-pay needs an authorisation on record (the ACH mandate or the card auto-pay consent). */
  authorised: boolean
}

export type AutopayDecision =
  | { action: 'charge', method: StoredMethod, amount: number, runOn: string }
  | { action: 'needs_approval', method: StoredMethod, amount: number, runOn: string }
  | { action: 'wait', until: string }
  | { action: 'skip', reason: string }

const iso = (d: Date): string => d.toISOString().slice(0, 10)
const addDays = (day: string, days: number): string => iso(new Date(Date.parse(`${day}T00:00:00Z`) + days * 86_400_000))

/** The day the rule wants this invoice charged. */
export function chargeDay (timing: AutopayTiming, invoice: Pick<AutopayInvoice, 'issuedOn' | 'dueOn'>): string {
  const due = invoice.dueOn ?? invoice.issuedOn
  switch (timing.kind) {
    case 'days_before_due': {
      const day = addDays(due, -timing.days)
      return day < invoice.issuedOn ? invoice.issuedOn : day
    }
    case 'on_due': return due
    case 'days_after_issue': return addDays(invoice.issuedOn, timing.days)
    case 'day_of_month': {
      // The first such day on or after issue; short months use their last day.
      const issued = new Date(`${invoice.issuedOn}T00:00:00Z`)
      for (let month = 0; month < 2; month++) {
        const y = issued.getUTCFullYear()
        const m = issued.getUTCMonth() + month
        const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate()
        const candidate = iso(new Date(Date.UTC(y, m, Math.min(timing.day, last))))
        if (candidate >= invoice.issuedOn) return candidate
      }
      return invoice.issuedOn
    }
  }
}

function pickMethod (preference: AutopayRule['methodPreference'], methods: readonly StoredMethod[], today: string): StoredMethod | null {
  const usable = methods.filter(m => m.authorised && (m.expires === null || m.expires >= today.slice(0, 7)))
  const of = (type: PaymentMethodType): StoredMethod | undefined =>
    usable.filter(m => m.type === type).sort((a, b) => Number(b.isDefault) - Number(a.isDefault))[0]
  const order: PaymentMethodType[] = preference === 'ach_first' ? ['ach', 'card'] : preference === 'card_first' ? ['card', 'ach'] : preference === 'ach_only' ? ['ach'] : ['card']
  for (const type of order) {
    const method = of(type)
    if (method !== undefined) return method
  }
  return null
}

export function decideAutopay (rule: AutopayRule, invoice: AutopayInvoice, methods: readonly StoredMethod[], today: string): AutopayDecision {
  if (rule.paused) return { action: 'skip', reason: 'Auto-pay is paused for this client.' }
  if (invoice.open <= 0) return { action: 'skip', reason: 'Nothing is open on this invoice.' }
  if (rule.invoiceKinds !== null && !rule.invoiceKinds.includes(invoice.kind)) return { action: 'skip', reason: `Auto-pay does not cover ${invoice.kind.replaceAll('_', ' ')} invoices.` }
  if (rule.agreements !== null && (invoice.agreementName === null || !rule.agreements.includes(invoice.agreementName))) {
    return { action: 'skip', reason: 'Auto-pay covers only the listed agreements.' }
  }
  if (rule.amountCap !== null && invoice.open > rule.amountCap) return { action: 'skip', reason: 'The open amount is above the auto-pay cap; collect it by pay link or Charge card.' }
  const runOn = chargeDay(rule.timing, invoice)
  if (runOn > today) return { action: 'wait', until: runOn }
  const method = pickMethod(rule.methodPreference, methods, today)
  if (method === null) return { action: 'skip', reason: 'The client has no authorised, unexpired payment method for auto-pay.' }
  if (rule.approvalAbove !== null && invoice.open > rule.approvalAbove) return { action: 'needs_approval', method, amount: invoice.open, runOn }
  return { action: 'charge', method, amount: invoice.open, runOn }
}
