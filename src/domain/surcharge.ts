import { DomainError } from './errors.js'
import { add, allocate, percentOf, zero, type Money } from './money.js'

/**
 * The optional card surcharge: a tenant's percentage on credit card
 * payments, capped at 3%, never on debit, prepaid or bank payments, and
 * never for clients in states the tenant lists. Pure: callers bring the
 * tenant's settings, the client's billing state and the method.
 */

/** 3%: the card networks' ceiling; the database check on tenants enforces the same. */
export const MAX_SURCHARGE_BP = 300

export interface SurchargeSettings {
  /** Basis points, 0 (off) to 300. */
  rateBp: number
  /** Two-letter US state codes, upper case, where no surcharge may be added. */
  blockedStates: readonly string[]
}

export interface SurchargeInput extends SurchargeSettings {
  /** The client's billing state as stored (two-letter code), or null when the PSA did not say. */
  billingState: string | null
  method: { type: 'card' | 'ach', funding: string | null }
  /** What is being charged against the invoice; the surcharge rides on top. */
  amount: Money
  /** A scheduled charge no person confirms (auto-pay, a retry, an installment): never surcharged. */
  unattended?: boolean
}

export interface SurchargeQuote {
  surcharge: Money
  /** One plain sentence for the screen: why there is, or is not, a surcharge. */
  reason: string
}

/** "2.5" for 250 bp: what a person reads next to a percent sign. */
export function formatRate (rateBp: number): string {
  return (rateBp / 100).toFixed(2).replace(/\.?0+$/, '')
}

export function surchargeFor (input: SurchargeInput): SurchargeQuote {
  const none = (reason: string): SurchargeQuote => ({ surcharge: zero(input.amount.currency), reason })
  // A rate that is not whole basis points is a bug upstream; charging nothing is the safe reading.
  if (!Number.isSafeInteger(input.rateBp) || input.rateBp <= 0) return none('No surcharge: card surcharging is off.')
  // Only a person who sees the total is surcharged; auto-pay, retries and installments were agreed without one.
  if (input.unattended === true) return none('No surcharge on scheduled charges (auto-pay, retries, installments).')
  if (input.method.type !== 'card') return none('No surcharge on bank (ACH) payments.')
  if (input.method.funding === 'debit') return none('No surcharge on debit cards.')
  if (input.method.funding === 'prepaid') return none('No surcharge on prepaid cards.')
  if (input.method.funding !== 'credit') return none('No surcharge: the card could not be confirmed as a credit card.')
  const state = usStateCode(input.billingState)
  if (state === null && input.blockedStates.length > 0) {
    // Conservative: an unknown address might be in a blocked state.
    return none('No surcharge: the client\'s billing state is not known, and surcharges are not allowed in some states.')
  }
  if (state !== null && input.blockedStates.includes(state)) return none(`No surcharge for clients billed in ${state}.`)
  if (input.amount.amount <= 0) return none('No surcharge on this amount.')
  const rate = Math.min(input.rateBp, MAX_SURCHARGE_BP)
  // Toward zero: a rounded-up cent would put the charge above the stated rate.
  const surcharge = percentOf(input.amount, rate, 'toward-zero')
  if (surcharge.amount === 0) return none('No surcharge: it would be less than a cent on this amount.')
  return { surcharge, reason: `A ${formatRate(rate)}% surcharge applies to credit card payments.` }
}

/**
 * Money going back on a payment (a refund, a lost dispute), split between
 * the invoice and the surcharge in proportion to what was charged, in exact
 * cents. The split is taken on the running total returned, so any sequence
 * of partial returns ends exactly at the invoice amount and the surcharge.
 */
export function splitReturned (charged: { amount: Money, surcharge: Money }, returnedBefore: Money, returned: Money): { invoice: Money, surcharge: Money } {
  const total = add(charged.amount, charged.surcharge)
  const after = add(returnedBefore, returned)
  if (returnedBefore.amount < 0 || returned.amount < 0 || after.amount > total.amount) {
    throw new DomainError('INVALID_ALLOCATION', `Cannot return ${returned.amount} after ${returnedBefore.amount} of a ${total.amount} payment.`)
  }
  const invoiceShare = (m: Money): number => allocate(m, [charged.amount.amount, charged.surcharge.amount])[0]?.amount ?? 0
  const invoice = invoiceShare(after) - invoiceShare(returnedBefore)
  return { invoice: { amount: invoice, currency: total.currency }, surcharge: { amount: returned.amount - invoice, currency: total.currency } }
}

/** Two-letter codes of the states, DC and the territories (USPS). */
export const US_STATES: Readonly<Record<string, string>> = {
  AL: 'Alabama', AK: 'Alaska', AZ: 'Arizona', AR: 'Arkansas', CA: 'California', CO: 'Colorado', CT: 'Connecticut', DE: 'Delaware',
  DC: 'District of Columbia', FL: 'Florida', GA: 'Georgia', HI: 'Hawaii', ID: 'Idaho', IL: 'Illinois', IN: 'Indiana', IA: 'Iowa',
  KS: 'Kansas', KY: 'Kentucky', LA: 'Louisiana', ME: 'Maine', MD: 'Maryland', MA: 'Massachusetts', MI: 'Michigan', MN: 'Minnesota',
  MS: 'Mississippi', MO: 'Missouri', MT: 'Montana', NE: 'Nebraska', NV: 'Nevada', NH: 'New Hampshire', NJ: 'New Jersey',
  NM: 'New Mexico', NY: 'New York', NC: 'North Carolina', ND: 'North Dakota', OH: 'Ohio', OK: 'Oklahoma', OR: 'Oregon',
  PA: 'Pennsylvania', RI: 'Rhode Island', SC: 'South Carolina', SD: 'South Dakota', TN: 'Tennessee', TX: 'Texas', UT: 'Utah',
  VT: 'Vermont', VA: 'Virginia', WA: 'Washington', WV: 'West Virginia', WI: 'Wisconsin', WY: 'Wyoming',
  PR: 'Puerto Rico', GU: 'Guam', VI: 'U.S. Virgin Islands', AS: 'American Samoa', MP: 'Northern Mariana Islands'
}

const BY_NAME = new Map(Object.entries(US_STATES).map(([code, name]) => [name.toLowerCase().replace(/[^a-z]/g, ''), code]))

/**
 * A PSA's free-text state ("CT", "ct.", "Connecticut") as a two-letter
 * code; null for anything else (blank, a Canadian province, a typo), which
 * the surcharge rule treats as unknown.
 */
export function usStateCode (text: unknown): string | null {
  if (typeof text !== 'string') return null
  const trimmed = text.trim().replace(/\.$/, '')
  const upper = trimmed.toUpperCase()
  if (Object.hasOwn(US_STATES, upper)) return upper
  return BY_NAME.get(trimmed.toLowerCase().replace(/[^a-z]/g, '')) ?? null
}

export type SettingsCheck = { ok: true, settings: SurchargeSettings } | { ok: false, problem: string }

/** A tenant's surcharge settings as entered: whole basis points 0..300, two-letter state codes (any case), deduplicated and sorted. */
export function checkSurchargeSettings (input: { rateBp: unknown, blockedStates: unknown }): SettingsCheck {
  const { rateBp, blockedStates } = input
  if (typeof rateBp !== 'number' || !Number.isSafeInteger(rateBp) || rateBp < 0 || rateBp > MAX_SURCHARGE_BP) {
    const got = typeof rateBp === 'number' && Number.isSafeInteger(rateBp) ? `${formatRate(rateBp)}% (${rateBp} basis points)` : JSON.stringify(rateBp)
    return { ok: false, problem: `The surcharge rate must be from 0 (off) to ${formatRate(MAX_SURCHARGE_BP)}% (${MAX_SURCHARGE_BP} basis points), in whole basis points; got ${got}.` }
  }
  if (!Array.isArray(blockedStates) || blockedStates.some(s => typeof s !== 'string')) {
    return { ok: false, problem: 'Blocked states must be a list of two-letter state codes.' }
  }
  const codes = (blockedStates as string[]).map(s => s.trim().toUpperCase())
  const bad = codes.filter(code => !/^[A-Z]{2}$/.test(code) || !Object.hasOwn(US_STATES, code))
  if (bad.length > 0) {
    return { ok: false, problem: `Not US state codes: ${bad.map(b => JSON.stringify(b)).join(', ')}. Use two-letter codes such as CT, MA.` }
  }
  return { ok: true, settings: { rateBp, blockedStates: [...new Set(codes)].sort() } }
}

/** "2.5", "2.5%", "0", "off" → basis points; null when it is not a percentage with at most two decimals. */
export function parseRatePercent (text: string): number | null {
  const trimmed = text.trim().replace(/%$/, '').trim()
  if (/^off$/i.test(trimmed)) return 0
  const match = /^(\d{1,3})(?:\.(\d{1,2}))?$/.exec(trimmed)
  if (match === null) return null
  return Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'))
}
