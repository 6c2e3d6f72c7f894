import type { Knex } from 'knex'
import { ensureTenant, type Tenant } from '../db/tenants.js'
import { upsertCustomer } from '../db/customers.js'
import { postEntry } from '../db/ledger.js'
import { Accounts } from '../domain/ledger.js'
import { add, money, percentOf, type Money } from '../domain/money.js'

export const DEMO_TENANT = { slug: 'brightline', name: 'Brightline Managed IT' } as const

/** An MSP's clients, as they would come from ConnectWise. */
const CLIENTS = [
  { id: '19301', name: 'Harbor Dental Group', monthly: 4_850_00, pays: 'ach' },
  { id: '19302', name: 'Cedar & Pine Law LLP', monthly: 7_420_00, pays: 'card' },
  { id: '19303', name: 'Summit Logistics', monthly: 12_980_00, pays: 'ach' },
  { id: '19304', name: 'Maple Street Veterinary', monthly: 2_315_50, pays: 'card' },
  { id: '19305', name: 'Riverbend Credit Union', monthly: 9_760_00, pays: 'late' },
  { id: '19306', name: 'Atlas Architecture', monthly: 3_640_25, pays: 'card' },
  { id: '19307', name: 'Kestrel Manufacturing', monthly: 15_225_00, pays: 'late' },
  { id: '19308', name: 'Bluejay Realty', monthly: 1_890_00, pays: 'ach' }
] as const

const DAY = 86_400_000

/** Card: 2.9% + 30¢. ACH: 0.8%, capped at $5. */
function processorFee (gross: Money, method: 'card' | 'ach'): Money {
  if (method === 'card') return add(percentOf(gross, 290), money(30, gross.currency))
  const fee = percentOf(gross, 80)
  return fee.amount > 500 ? money(500, gross.currency) : fee
}

/**
 * A realistic quarter for the demo tenant, written through the real ledger:
 * three monthly agreement invoices per client, card and ACH payments with
 * their fees, a weekly payout, and two clients running late. Seeds once; a
 * tenant that already has entries is left alone.
 */
export async function seedDemo (db: Knex, today: Date): Promise<Tenant> {
  const tenant = await ensureTenant(db, DEMO_TENANT)
  if (await db('journal_entries').where({ tenant_id: tenant.id }).first('id') !== undefined) return tenant
  const usd = (cents: number): Money => money(cents, 'USD')
  let invoiceNumber = 1040
  let pendingAtProcessor = 0
  for (const monthsAgo of [2, 1, 0]) {
    const issued = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - monthsAgo, 1, 14))
    for (const client of CLIENTS) {
      const customer = await upsertCustomer(db, tenant.id, { name: client.name, psaSystem: 'connectwise', psaCompanyId: client.id })
      invoiceNumber += 1
      const total = usd(client.monthly + (invoiceNumber % 3) * 125_00)
      await postEntry(db, tenant.id, {
        idempotencyKey: `demo:invoice:${invoiceNumber}`,
        kind: 'invoice.billed',
        effectiveAt: issued,
        memo: `Invoice ${invoiceNumber} · Managed services agreement`,
        postings: [
          { account: Accounts.receivable(customer.id), amount: total },
          { account: Accounts.billed(), amount: usd(-total.amount) }
        ],
        source: { system: 'connectwise', invoiceNumber: String(invoiceNumber) }
      })
      // Card clients are on auto-pay at issue; ACH clients pay on the net-30 due date.
      const paidAt = new Date(issued.getTime() + (client.pays === 'ach' ? 29 : 4) * DAY)
      const paysThis = client.pays !== 'late' ? paidAt < today : monthsAgo === 2
      if (!paysThis) continue
      const method = client.pays === 'ach' ? 'ach' : 'card'
      const fee = processorFee(total, method)
      await postEntry(db, tenant.id, {
        idempotencyKey: `demo:payment:${invoiceNumber}`,
        kind: 'payment.succeeded',
        effectiveAt: client.pays === 'late' ? new Date(issued.getTime() + 47 * DAY) : paidAt,
        memo: `${method === 'ach' ? 'ACH debit' : 'Card payment'} for invoice ${invoiceNumber}`,
        postings: [
          { account: Accounts.processorPending('stripe'), amount: total },
          { account: Accounts.receivable(customer.id), amount: usd(-total.amount) },
          { account: Accounts.processorFees(), amount: fee },
          { account: Accounts.processorPending('stripe'), amount: usd(-fee.amount) }
        ],
        source: { system: 'stripe', invoiceNumber: String(invoiceNumber) }
      })
      pendingAtProcessor += total.amount - fee.amount
    }
    // The month's payouts land in the bank; the newest month's are still in transit.
    if (monthsAgo > 0 && pendingAtProcessor > 0) {
      await postEntry(db, tenant.id, {
        idempotencyKey: `demo:payout:${monthsAgo}`,
        kind: 'payout.paid',
        effectiveAt: new Date(issued.getTime() + 20 * DAY),
        memo: 'Stripe payout to Operating ····6021',
        postings: [
          { account: Accounts.bank('operating'), amount: usd(pendingAtProcessor) },
          { account: Accounts.processorPending('stripe'), amount: usd(-pendingAtProcessor) }
        ],
        source: { system: 'stripe' }
      })
      pendingAtProcessor = 0
    }
  }
  return tenant
}
