/**
 * Settle's codes in the words a person reads on a page: who did something,
 * what a ledger entry records, how auto-pay picks a method. A code without
 * words of its own is spelled out rather than shown raw.
 */

const spelled = (code: string): string => {
  const text = code.replace(/[._:]+/g, ' ').trim()
  return text === '' ? code : text.charAt(0).toUpperCase() + text.slice(1)
}

/** Who: `cw:jsmith` (a ConnectWise member), `api:back office` (an API key), `client`, `autopay`, … */
export function actorWords (actor: string): string {
  const colon = actor.indexOf(':')
  if (colon < 0) return ACTORS[actor] ?? actor
  const kind = actor.slice(0, colon)
  const name = actor.slice(colon + 1)
  switch (kind) {
    case 'cw': return `${name} (ConnectWise)`
    case 'member': return actorWords(name)
    case 'at': return name === 'livelink' ? 'Autotask LiveLink' : `${name} (Autotask)`
    case 'api': return `API key “${name}”`
  }
  return actor
}

const ACTORS: Record<string, string> = { client: 'The client, on the pay page', autopay: 'Auto-pay', retry: 'Scheduled retry', installments: 'Installment plan', system: 'Settle' }

const ENTRY_KINDS: Record<string, string> = {
  'invoice.billed': 'Invoice billed',
  'invoice.adjusted': 'Invoice changed',
  'invoice.voided': 'Invoice voided',
  'invoice.paid_elsewhere': 'Paid outside Settle',
  'invoice.reopened': 'Reopened in the PSA',
  'payment.succeeded': 'Payment received',
  'payment.refunded': 'Refund',
  'payout.paid': 'Payout to bank',
  'payout.fees': 'Processing fees',
  'outside_payment.applied': 'Outside payment matched',
  'dispute.funds_withdrawn': 'Dispute: funds held',
  'dispute.won': 'Dispute won',
  'dispute.lost': 'Dispute lost',
  'ach.returned': 'Bank payment returned'
}

/** What a ledger entry records: `payment.succeeded` is "Payment received". */
export const entryKindWords = (kind: string): string => ENTRY_KINDS[kind] ?? spelled(kind)

const PREFERENCES: Record<string, string> = {
  ach_first: 'bank account first, then card',
  card_first: 'card first, then bank account',
  ach_only: 'bank account only',
  card_only: 'card only'
}

/** Auto-pay's method rule: `ach_first` is "bank account first, then card". */
export const methodPreferenceWords = (preference: string): string => PREFERENCES[preference] ?? spelled(preference).toLowerCase()

const CONSENTS: Record<string, string> = { ach_mandate: 'bank debit authorisation', autopay: 'auto-pay authorisation', installments: 'installment plan agreement' }

/** A recorded authorisation: `ach_mandate` is "bank debit authorisation". */
export const consentWords = (kind: string): string => CONSENTS[kind] ?? spelled(kind).toLowerCase()

const PLAN_STATES: Record<string, string> = { active: 'in progress', completed: 'paid in full', defaulted: 'stopped: a payment failed', cancelled: 'cancelled' }

export const planStateWords = (status: string): string => PLAN_STATES[status] ?? spelled(status).toLowerCase()

const PAYOUT_STATES: Record<string, string> = { paid: 'Paid to bank', in_transit: 'On its way', pending: 'Pending', failed: 'Failed', canceled: 'Cancelled' }

export const payoutStateWords = (status: string): string => PAYOUT_STATES[status] ?? spelled(status)
