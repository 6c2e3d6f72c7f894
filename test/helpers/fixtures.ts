import type { Knex } from 'knex'
import { loadConfig, type Config } from '../../src/config.js'
import { createTenant, type Tenant } from '../../src/db/tenants.js'
import { upsertCustomer, type Customer } from '../../src/db/customers.js'
import { Keyring } from '../../src/security/keyring.js'
import { Accounts, type EntryInput } from '../../src/domain/ledger.js'
import { money } from '../../src/domain/money.js'

let counter = 0
const unique = (): string => `${process.pid.toString(36)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`

export function testConfig (env: Record<string, string> = {}): Config {
  return loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', WORKER_ENABLED: 'false', SETTLE_DEMO: 'false', ...env })
}

export const testKeyring = (): Keyring => new Keyring(Keyring.generateEntry('test'))

export async function makeTenant (db: Knex, name = 'Test MSP'): Promise<Tenant> {
  return await createTenant(db, { slug: `t-${unique()}`, name })
}

export async function makeCustomer (db: Knex, tenant: Tenant, name = 'Acme Dental'): Promise<Customer> {
  return await upsertCustomer(db, tenant.id, { name, psaSystem: 'connectwise', psaCompanyId: unique() })
}

/** Invoice billed: Dr receivable / Cr billed. */
export function invoiceEntry (customerId: string, cents: number, key: string, effectiveAt = new Date('2026-11-01T12:00:00Z')): EntryInput {
  return {
    idempotencyKey: key,
    kind: 'invoice.billed',
    effectiveAt,
    postings: [
      { account: Accounts.receivable(customerId), amount: money(cents, 'USD') },
      { account: Accounts.billed(), amount: money(-cents, 'USD') }
    ]
  }
}

/** Payment with its fee: Dr processor gross / Cr receivable; Dr fees / Cr processor. */
export function paymentEntry (customerId: string, cents: number, feeCents: number, key: string, effectiveAt = new Date('2026-11-10T12:00:00Z')): EntryInput {
  return {
    idempotencyKey: key,
    kind: 'payment.succeeded',
    effectiveAt,
    postings: [
      { account: Accounts.processorPending('stripe'), amount: money(cents, 'USD') },
      { account: Accounts.receivable(customerId), amount: money(-cents, 'USD') },
      { account: Accounts.processorFees(), amount: money(feeCents, 'USD') },
      { account: Accounts.processorPending('stripe'), amount: money(-feeCents, 'USD') }
    ]
  }
}

export async function countRows (db: Knex, table: string): Promise<number> {
  const [row] = await db(table).count('* as n') as Array<{ n: number | string }>
  return Number(row?.n ?? 0)
}
