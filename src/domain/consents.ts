import { DomainError } from './errors.js'
import { formatMoney, sum } from './money.js'
import type { InstallmentLine } from './installments.js'

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

/** The mandate as the pay page shows it, before the client has typed the account: recorded in exactly these words. */
export function achMandateFormText (msp: string): string {
  return `By adding a bank account I authorise ${msp} to debit it for the amounts of invoices I approve or that are due under auto-pay, ` +
    `and, if a debit is returned, to debit it again once. This authorisation stays in effect until I cancel it here or in writing with reasonable notice.`
}

export function achMandateText (msp: string, bank: string, last4: string): string {
  return `I authorise ${msp} to debit my ${bank} account ending ${last4} for the amounts of invoices I approve or that are due under auto-pay, ` +
    `and, if a debit is returned, to debit it again once. This authorisation stays in effect until I cancel it in writing with reasonable notice.`
}

/** One line per installment, so the record shows the exact amounts and dates the client agreed to. */
export function installmentsAuthorisationText (msp: string, schedule: readonly InstallmentLine[]): string {
  const first = schedule[0]
  if (first === undefined) throw new DomainError('INVALID_ALLOCATION', 'An installment authorisation needs its schedule.')
  const total = sum(schedule.map(line => line.amount), first.amount.currency)
  const lines = schedule.map(line => `${line.seq}. ${formatMoney(line.amount)} on ${line.dueOn}`).join('; ')
  return `I authorise ${msp} to charge my saved payment method ${formatMoney(total)} in ${schedule.length} installments: ${lines}. ` +
    `If an installment is declined, ${msp} may retry it on its retry schedule. I can cancel the remaining installments at any time from the payment page or by contacting ${msp}; ` +
    'cancelling does not affect payments already made, and what is unpaid on the invoice stays due.'
}
