/** Stripe's test PaymentMethod ids and what each one does, mirroring https://docs.stripe.com/testing. */

export interface CardSpec { brand: 'visa' | 'mastercard', last4: string, funding: 'credit' | 'debit', country: string, fingerprint: string }
export interface BankSpec { last4: string, routing_number: string, bank_name: string, account_type: 'checking' | 'savings', fingerprint: string }

export interface Decline { code: string, decline_code: string | null, advice_code: string | null, message: string, param?: string }
/** An ACH return: the R code, and the failure code Stripe reports for it. */
export interface AchReturn { returnCode: string, code: string, message: string }

export type Behaviour =
  | { kind: 'succeed' }
  | { kind: 'decline', decline: Decline }
  | { kind: 'authentication_required' }
  | { kind: 'dispute' }
  | { kind: 'ach_succeed' }
  | { kind: 'ach_fail', ret: AchReturn }
  | { kind: 'ach_late_return', ret: AchReturn }

export type TestPm =
  | { type: 'card', card: CardSpec, behaviour: Behaviour, setupSucceeds?: boolean, setupNeedsAuthentication?: boolean }
  | { type: 'us_bank_account', bank: BankSpec, behaviour: Behaviour }

const visa = (last4: string, fingerprint: string, funding: 'credit' | 'debit' = 'credit'): CardSpec => ({ brand: 'visa', last4, funding, country: 'US', fingerprint })
const bank = (last4: string, fingerprint: string): BankSpec => ({ last4, routing_number: '110000000', bank_name: 'STRIPE TEST BANK', account_type: 'checking', fingerprint })

const INSUFFICIENT: AchReturn = { returnCode: 'R01', code: 'insufficient_funds', message: "The customer's account has insufficient funds to cover this payment." }
const CLOSED: AchReturn = { returnCode: 'R02', code: 'bank_account_closed', message: "The customer's bank account has been closed." }
const UNAUTHORIZED: AchReturn = { returnCode: 'R10', code: 'debit_not_authorized', message: 'The customer has notified their bank that this payment was unauthorized.' }

export const TEST_PAYMENT_METHODS: Readonly<Record<string, TestPm>> = {
  pm_card_visa: { type: 'card', card: visa('4242', 'Xt5EWLLDS7FJjR1c'), behaviour: { kind: 'succeed' } },
  pm_card_mastercard: { type: 'card', card: { brand: 'mastercard', last4: '4444', funding: 'credit', country: 'US', fingerprint: 'Mv5qZ2rG7xLw1b3K' }, behaviour: { kind: 'succeed' } },
  pm_card_visa_debit: { type: 'card', card: visa('5556', 'Dq3T8sHk2Lw9vBnA', 'debit'), behaviour: { kind: 'succeed' } },
  pm_card_chargeDeclined: { type: 'card', card: visa('0002', 'Cd0QyGq8Wv1nZ4pH'), behaviour: { kind: 'decline', decline: { code: 'card_declined', decline_code: 'generic_decline', advice_code: null, message: 'Your card was declined.' } } },
  pm_card_chargeDeclinedInsufficientFunds: { type: 'card', card: visa('9995', 'If9Rk2Xw7Tq3Lm5N'), behaviour: { kind: 'decline', decline: { code: 'card_declined', decline_code: 'insufficient_funds', advice_code: null, message: 'Your card has insufficient funds.' } } },
  pm_card_chargeDeclinedExpiredCard: { type: 'card', card: visa('0069', 'Ex6Hn1Vb8Jc4Kw2P'), behaviour: { kind: 'decline', decline: { code: 'expired_card', decline_code: 'expired_card', advice_code: null, message: 'Your card has expired.', param: 'exp_month' } } },
  pm_card_chargeDeclinedFraudulent: { type: 'card', card: visa('0019', 'Fr4Ud7Lm2Qs9Xz1C'), behaviour: { kind: 'decline', decline: { code: 'card_declined', decline_code: 'fraudulent', advice_code: 'do_not_try_again', message: 'Your card was declined.' } } },
  // The same declines as Stripe documents them under their visa-named aliases, and the other decline reasons.
  pm_card_visa_chargeDeclined: { type: 'card', card: visa('0002', 'Vd2Gk7Lq1Ws8Zx3N'), behaviour: { kind: 'decline', decline: { code: 'card_declined', decline_code: 'generic_decline', advice_code: null, message: 'Your card was declined.' } } },
  pm_card_visa_chargeDeclinedInsufficientFunds: { type: 'card', card: visa('9995', 'Vi5Nf3Kd8Qa2Lm7R'), behaviour: { kind: 'decline', decline: { code: 'card_declined', decline_code: 'insufficient_funds', advice_code: 'try_again_later', message: 'Your card has insufficient funds.' } } },
  pm_card_chargeDeclinedProcessingError: { type: 'card', card: visa('0119', 'Pe1Rr9Ox4Cs6Tq2B'), behaviour: { kind: 'decline', decline: { code: 'processing_error', decline_code: 'processing_error', advice_code: 'try_again_later', message: 'An error occurred while processing your card. Try again in a little bit.' } } },
  pm_card_chargeDeclinedLostCard: { type: 'card', card: visa('9987', 'Lc8Ds2Wm5Hn1Kq4V'), behaviour: { kind: 'decline', decline: { code: 'card_declined', decline_code: 'lost_card', advice_code: 'do_not_try_again', message: 'Your card was declined.' } } },
  pm_card_chargeDeclinedStolenCard: { type: 'card', card: visa('9979', 'Sc3Tl7Pv9Jb2Fy6M'), behaviour: { kind: 'decline', decline: { code: 'card_declined', decline_code: 'stolen_card', advice_code: 'do_not_try_again', message: 'Your card was declined.' } } },
  // 3D Secure 2 on every payment (4000000000003220): on-session it asks, off-session it declines authentication_required.
  pm_card_threeDSecure2Required: { type: 'card', card: visa('3220', 'Ts2Rq6Hn4Bx8Vc1K'), behaviour: { kind: 'authentication_required' }, setupNeedsAuthentication: true },
  // attaches and sets up fine; every charge afterwards declines (4000000000000341)
  pm_card_chargeCustomerFail: { type: 'card', card: visa('0341', 'Cf8Ms3Jd6Wq2Xe4T'), behaviour: { kind: 'decline', decline: { code: 'card_declined', decline_code: 'generic_decline', advice_code: null, message: 'Your card was declined.' } }, setupSucceeds: true },
  // asks for 3D Secure when set up on-session, then charges off-session without it (4000002500003155)
  pm_card_authenticationRequiredSetupForOffSession: { type: 'card', card: visa('3155', 'As9Fo2Kx6Rb1Zq8W'), behaviour: { kind: 'succeed' }, setupNeedsAuthentication: true },
  pm_card_authenticationRequired: { type: 'card', card: visa('3184', 'Au3Th8Rq5Dn1Vy6M'), behaviour: { kind: 'authentication_required' } },
  pm_card_createDispute: { type: 'card', card: visa('0259', 'Dp2Sx7Yt4Gk9Hw3E'), behaviour: { kind: 'dispute' } },
  pm_usBankAccount_success: { type: 'us_bank_account', bank: bank('6789', 'Bk1Sc6Qw8Mz3Tn5R'), behaviour: { kind: 'ach_succeed' } },
  pm_usBankAccount_insufficientFunds: { type: 'us_bank_account', bank: bank('2227', 'Bk2If4Ve9Nx1Wp7L'), behaviour: { kind: 'ach_fail', ret: INSUFFICIENT } },
  pm_usBankAccount_accountClosed: { type: 'us_bank_account', bank: bank('1113', 'Bk3Ac5Zr2Hy8Ju4D'), behaviour: { kind: 'ach_fail', ret: CLOSED } },
  pm_usBankAccount_debitNotAuthorized: { type: 'us_bank_account', bank: bank('3335', 'Bk4Dn7Cs1Gb6Fo9Q'), behaviour: { kind: 'ach_fail', ret: UNAUTHORIZED } },
  pm_usBankAccount_lateReturn: { type: 'us_bank_account', bank: bank('5559', 'Bk5Lr3Ek8Pa2Yi6U'), behaviour: { kind: 'ach_late_return', ret: UNAUTHORIZED } }
}

export const isTestPaymentMethod = (id: string): boolean => Object.prototype.hasOwnProperty.call(TEST_PAYMENT_METHODS, id)

/**
 * Stripe's test card and bank numbers, as a client types them into the
 * payment form, and the test payment method each one behaves as.
 * https://docs.stripe.com/testing
 */
export const TEST_CARD_NUMBERS: Readonly<Record<string, string>> = {
  '4242424242424242': 'pm_card_visa',
  '5555555555554444': 'pm_card_mastercard',
  '4000056655665556': 'pm_card_visa_debit',
  '4000000000000002': 'pm_card_chargeDeclined',
  '4000000000009995': 'pm_card_chargeDeclinedInsufficientFunds',
  '4000000000000069': 'pm_card_chargeDeclinedExpiredCard',
  '4100000000000019': 'pm_card_chargeDeclinedFraudulent',
  '4000000000000341': 'pm_card_chargeCustomerFail',
  '4000002760003184': 'pm_card_authenticationRequired',
  '4000002500003155': 'pm_card_authenticationRequiredSetupForOffSession',
  '4000000000000259': 'pm_card_createDispute',
  '4000000000000119': 'pm_card_chargeDeclinedProcessingError',
  '4000000000009987': 'pm_card_chargeDeclinedLostCard',
  '4000000000009979': 'pm_card_chargeDeclinedStolenCard',
  '4000000000003220': 'pm_card_threeDSecure2Required'
}

export const TEST_ROUTING_NUMBER = '110000000'
export const TEST_BANK_ACCOUNTS: Readonly<Record<string, string>> = {
  '000123456789': 'pm_usBankAccount_success',
  '000222222227': 'pm_usBankAccount_insufficientFunds',
  '000111111113': 'pm_usBankAccount_accountClosed',
  '000333333335': 'pm_usBankAccount_debitNotAuthorized',
  // not one of Stripe's numbers: succeeds, then comes back as unauthorised days later
  '000555555559': 'pm_usBankAccount_lateReturn'
}

/** The Luhn check card networks use; Stripe answers `incorrect_number` when it fails. */
export function luhnValid (digits: string): boolean {
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i])
    if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9 }
    sum += d
  }
  return digits.length >= 12 && sum % 10 === 0
}
