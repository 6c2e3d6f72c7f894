/**
 * The words a client agrees to. Versioned: a consent record stores the
 * version and the exact text shown, so a change of wording never rewrites
 * what someone accepted.
 */
export const CONSENT_TEXT_VERSION = '2026-11'

export function autopayAuthorisationText (msp: string): string {
  return `I authorise ${msp} to charge my saved payment method for each invoice when it is due under the auto-pay terms shown, ` +
    `until I cancel. I can cancel at any time from the payment page or by contacting ${msp}; cancelling does not affect payments already made.`
}

export function achMandateText (msp: string, bank: string, last4: string): string {
  return `I authorise ${msp} to debit my ${bank} account ending ${last4} for the amounts of invoices I approve or that are due under auto-pay, ` +
    `and, if a debit is returned, to debit it again once. This authorisation stays in effect until I cancel it in writing with reasonable notice.`
}
