/**
 * What to do after a failed charge. Stripe's `advice_code` speaks first (it
 * is the issuer's own advice), then the decline or error code. Each failure
 * falls in one class: try again later, never try again, or the client must
 * act (authenticate, give a new card). Schedules are per class and
 * configurable, and no invoice is charged more than 15 times in 30 days
 * (card networks penalise more).
 */
export type PaymentMethodType = 'card' | 'ach'
export type FailureClass = 'retry_later' | 'never_retry' | 'needs_client'

export interface FailureInput {
  method: PaymentMethodType
  /** Stripe error `code` (card_declined, expired_card, authentication_required, …) or ACH failure code. */
  code?: string | null
  declineCode?: string | null
  adviceCode?: string | null
}

export interface FailureVerdict {
  class: FailureClass
  /** The most specific code we classified by. */
  reason: string
  /** Plain words for a technician or finance lead. */
  explanation: string
  /** What a person should do next. */
  nextStep: string
}

const NEEDS_CLIENT = new Set([
  'authentication_required', 'expired_card', 'incorrect_cvc', 'incorrect_number', 'invalid_cvc', 'invalid_expiry_month',
  'invalid_expiry_year', 'invalid_number', 'card_not_supported', 'currency_not_supported', 'confirm_card_data', 'lost_card',
  'stolen_card', 'pickup_card'
])
const NEVER = new Set([
  'fraudulent', 'merchant_blacklist', 'restricted_card', 'security_violation', 'revocation_of_all_authorizations',
  'revocation_of_authorization', 'stop_payment_order', 'invalid_account', 'new_account_information_available',
  'do_not_try_again', 'transaction_not_allowed', 'not_permitted',
  // ACH returns that will never clear: closed or wrong account (R02–R04), not authorised (R05, R07, R08, R10, R11, R29, R31).
  'bank_account_closed', 'account_closed', 'bank_account_invalid_details', 'no_account', 'debit_not_authorized',
  'bank_account_restricted', 'bank_account_frozen', 'account_frozen'
])
const RETRY_LATER = new Set([
  'insufficient_funds', 'generic_decline', 'try_again_later', 'processing_error', 'issuer_not_available', 'reenter_transaction',
  'approve_with_id', 'do_not_honor', 'card_velocity_exceeded', 'withdrawal_count_limit_exceeded', 'call_issuer',
  'service_not_allowed', 'no_action_taken', 'testmode_decline', 'card_declined', 'rate_limit'
])

const WORDS: Record<string, [string, string]> = {
  insufficient_funds: ['The account did not have enough funds.', 'Settle will retry on the schedule; the client may also pay with another method.'],
  expired_card: ['The card on file has expired.', 'Send the client a pay link to add a new card.'],
  authentication_required: ['The bank asked the cardholder to confirm this payment.', 'Send the client a pay link so they can approve it.'],
  fraudulent: ['The bank flagged this payment as possible fraud.', 'Do not retry; contact the client for another payment method.'],
  lost_card: ['The card was reported lost.', 'Ask the client for a new card through a pay link.'],
  stolen_card: ['The card was reported stolen.', 'Ask the client for a new card through a pay link.'],
  do_not_honor: ['The bank declined without giving a reason.', 'Settle will retry; if it keeps failing, ask the client to call their bank.'],
  generic_decline: ['The bank declined without giving a reason.', 'Settle will retry; if it keeps failing, ask the client to call their bank.'],
  bank_account_closed: ['The bank account has been closed (ACH return R02).', 'Ask the client to add a new bank account or card.'],
  bank_account_invalid_details: ['The bank account details are wrong (ACH return R03/R04).', 'Ask the client to add the bank account again.'],
  debit_not_authorized: ['The account holder disputed or did not authorise the debit (ACH return).', 'Do not retry; talk to the client before charging again.'],
  try_again_later: ['The bank asked us to try again later.', 'Settle will retry on the schedule.'],
  do_not_try_again: ['The bank asked us never to retry this card.', 'Ask the client for another payment method.'],
  processing_error: ['The payment could not be processed.', 'Settle will retry on the schedule.']
}

export function classifyFailure (input: FailureInput): FailureVerdict {
  const codes = [input.adviceCode, input.declineCode, input.code].filter((c): c is string => typeof c === 'string' && c !== '')
  const verdict = (cls: FailureClass, reason: string): FailureVerdict => {
    const [explanation, nextStep] = WORDS[reason] ?? [
      `The payment failed (${reason.replaceAll('_', ' ')}).`,
      cls === 'retry_later' ? 'Settle will retry on the schedule.' : cls === 'needs_client' ? 'Send the client a pay link.' : 'Do not retry; ask the client for another payment method.'
    ]
    return { class: cls, reason, explanation, nextStep }
  }
  for (const code of codes) {
    if (code === 'confirm_card_data') return verdict('needs_client', code)
    if (NEVER.has(code)) return verdict('never_retry', code)
    if (NEEDS_CLIENT.has(code)) return verdict('needs_client', code)
    if (RETRY_LATER.has(code)) return verdict('retry_later', code)
  }
  // Unknown codes are treated as soft, so a new code from the processor never silently stops collection.
  return verdict('retry_later', codes[0] ?? 'unknown')
}

export interface RetryPolicy {
  /** Days after the first failure for each card retry (soft declines). */
  cardRetryDays: readonly number[]
  /** Business days after an ACH insufficient-funds return (R01/R09) before the one retry Nacha allows to be useful. */
  achRetryBusinessDays: number
  achMaxRetries: number
  /** Hard cap on attempts per invoice within `capWindowDays`. */
  maxAttemptsInWindow: number
  capWindowDays: number
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  cardRetryDays: [1, 3, 5, 7],
  achRetryBusinessDays: 3,
  achMaxRetries: 1,
  maxAttemptsInWindow: 15,
  capWindowDays: 30
}

export type RetryDecision =
  | { retry: true, at: Date, retryNumber: number }
  | { retry: false, why: 'never_retry' | 'needs_client' | 'schedule_exhausted' | 'attempt_cap', verdict: FailureVerdict }

const DAY = 86_400_000

/** Adds business days (Monday–Friday, UTC). Bank holidays are not counted out. */
export function addBusinessDays (from: Date, days: number): Date {
  const at = new Date(from.getTime())
  let left = days
  while (left > 0) {
    at.setTime(at.getTime() + DAY)
    const weekday = at.getUTCDay()
    if (weekday !== 0 && weekday !== 6) left--
  }
  return at
}

export interface RetryInput {
  failure: FailureInput
  /** When the first attempt of this collection failed; retry days count from it. */
  firstFailedAt: Date
  /** When this (latest) attempt failed. */
  failedAt: Date
  /** Retries already made for this collection (0 after the first failure). */
  retriesSoFar: number
  /** Start times of every attempt on this invoice, for the 15-in-30-days cap. */
  attemptTimes: readonly Date[]
}

export function decideRetry (input: RetryInput, policy: RetryPolicy = DEFAULT_RETRY_POLICY): RetryDecision {
  const verdict = classifyFailure(input.failure)
  if (verdict.class !== 'retry_later') return { retry: false, why: verdict.class, verdict }
  let at: Date
  if (input.failure.method === 'ach') {
    if (input.retriesSoFar >= policy.achMaxRetries) return { retry: false, why: 'schedule_exhausted', verdict }
    at = addBusinessDays(input.failedAt, policy.achRetryBusinessDays)
  } else {
    const offset = policy.cardRetryDays[input.retriesSoFar]
    if (offset === undefined) return { retry: false, why: 'schedule_exhausted', verdict }
    at = new Date(Math.max(input.firstFailedAt.getTime() + offset * DAY, input.failedAt.getTime() + 60 * 60_000))
  }
  if (chargeAllowedFrom(input.attemptTimes, at, policy) !== null) return { retry: false, why: 'attempt_cap', verdict }
  return { retry: true, at, retryNumber: input.retriesSoFar + 1 }
}

/**
 * The cap on charges per invoice, whatever started them: null when one more
 * attempt at `at` stays within it, else when the oldest attempt in the
 * window leaves it and a charge is allowed again.
 */
export function chargeAllowedFrom (attemptTimes: readonly Date[], at: Date, policy: RetryPolicy = DEFAULT_RETRY_POLICY): Date | null {
  const windowMs = policy.capWindowDays * DAY
  const inWindow = attemptTimes.map(t => t.getTime()).filter(t => t > at.getTime() - windowMs).sort((a, b) => a - b)
  if (inWindow.length + 1 <= policy.maxAttemptsInWindow) return null
  // Enough of the oldest must leave the window for one more to fit.
  const mustLeave = inWindow.length + 1 - policy.maxAttemptsInWindow
  return new Date((inWindow[mustLeave - 1] as number) + windowMs)
}
