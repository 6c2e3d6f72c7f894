import { DomainError } from './errors.js'
import { formatMoney, split, type Money } from './money.js'

/**
 * Installment plans: an invoice's open balance split into 2–12 monthly
 * charges on a stored method. Pure: the caller passes today's date, the
 * balance and the tenant's settings.
 */
export const MIN_INSTALLMENTS = 2
export const MAX_INSTALLMENTS = 12

function checkPartCount (parts: number): void {
  if (!Number.isSafeInteger(parts) || parts < MIN_INSTALLMENTS || parts > MAX_INSTALLMENTS) {
    throw new DomainError('INVALID_ALLOCATION', `An installment plan has ${MIN_INSTALLMENTS} to ${MAX_INSTALLMENTS} parts; got ${String(parts)}.`)
  }
}

/** Near-equal parts that add up to `total` exactly; the earliest parts carry the remainder cents. */
export function splitInstallments (total: Money, parts: number): Money[] {
  checkPartCount(parts)
  if (total.amount < parts) {
    throw new DomainError('INVALID_ALLOCATION', `Cannot split ${String(total.amount)} cents into ${parts} installments of at least one cent.`)
  }
  return split(total, parts)
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/

function parseDate (day: string): { y: number, m: number, d: number } {
  const match = ISO_DATE.exec(day)
  const [y, m, d] = match === null ? [] : [Number(match[1]), Number(match[2]) - 1, Number(match[3])]
  if (y === undefined || m === undefined || d === undefined || d < 1 || m < 0 || m > 11 || d > daysInMonth(y, m)) {
    throw new DomainError('INVALID_DATE', `Expected a calendar date as YYYY-MM-DD; got ${JSON.stringify(day)}.`)
  }
  return { y, m, d }
}

const daysInMonth = (year: number, month: number): number => new Date(Date.UTC(year, month + 1, 0)).getUTCDate()

/**
 * Due dates one month apart from the first. Every date keeps the first
 * date's day of the month, or the month's last day when it is shorter, so
 * Jan 31 → Feb 28 (29) → Mar 31 does not drift to the 28th.
 */
export function installmentSchedule (firstDueOn: string, parts: number): string[] {
  checkPartCount(parts)
  const { y, m, d } = parseDate(firstDueOn)
  return Array.from({ length: parts }, (_, i) => {
    const year = y + Math.floor((m + i) / 12)
    const month = (m + i) % 12
    const day = Math.min(d, daysInMonth(year, month))
    return `${year}-${String(month + 1).padStart(2, '0')}-${String(day).padStart(2, '0')}`
  })
}

export interface InstallmentLine { seq: number, dueOn: string, amount: Money }

/** The plan a client would agree to: part 1 due on `firstDueOn`, then monthly. */
export function installmentPlanLines (open: Money, parts: number, firstDueOn: string): InstallmentLine[] {
  const dates = installmentSchedule(firstDueOn, parts)
  return splitInstallments(open, parts).map((amount, i) => ({ seq: i + 1, dueOn: dates[i] as string, amount }))
}

export interface EligibilityInput {
  /** The tenant's minimum open balance; null switches installments off. */
  minAmount: Money | null
  /** The tenant's most parts, 2–12. */
  maxParts: number
  open: Money
  invoiceVoided: boolean
  /** The invoice already has an active plan. */
  activePlan: boolean
  /** A charge on the invoice has not settled yet (ACH processing, unknown outcome). */
  paymentInFlight: boolean
}

export type IneligibleReason = 'disabled' | 'voided' | 'nothing_open' | 'currency' | 'below_minimum' | 'plan_active' | 'payment_in_flight'

export type Eligibility =
  | { eligible: true, partCounts: number[] }
  | { eligible: false, reason: IneligibleReason, message: string }

/** Which part counts a client may choose for this invoice, or why none. */
export function installmentEligibility (input: EligibilityInput): Eligibility {
  const no = (reason: IneligibleReason, message: string): Eligibility => ({ eligible: false, reason, message })
  const min = input.minAmount
  if (min === null) return no('disabled', 'Installment plans are not offered.')
  if (input.invoiceVoided) return no('voided', 'This invoice is voided.')
  if (input.open.amount <= 0) return no('nothing_open', 'Nothing is open on this invoice.')
  if (input.activePlan) return no('plan_active', 'This invoice is already being paid in installments.')
  if (input.paymentInFlight) return no('payment_in_flight', 'A payment on this invoice is still being processed.')
  // The minimum is in the tenant's currency; amounts are never converted.
  if (min.currency !== input.open.currency) return no('currency', `Installment plans are offered for invoices in ${min.currency} only.`)
  if (input.open.amount < min.amount) return no('below_minimum', `Installment plans are offered for balances of ${formatMoney(min)} or more.`)
  const most = Math.min(Math.max(input.maxParts, MIN_INSTALLMENTS), MAX_INSTALLMENTS)
  const partCounts: number[] = []
  for (let n = MIN_INSTALLMENTS; n <= most && n <= input.open.amount; n++) partCounts.push(n)
  // Every part is at least a cent.
  if (partCounts.length === 0) return no('below_minimum', `Installment plans need at least ${MIN_INSTALLMENTS} cents open.`)
  return { eligible: true, partCounts }
}
