import type { Knex } from 'knex'
import { AppError } from '../errors.js'
import { attemptReach, customerOfPsaCompany, customerOfPsaInvoice, invoiceOwner } from '../db/link-scope.js'
import { isUuid } from '../db/tenants.js'
import type { EmbeddedSession, LinkScope } from '../security/embedded-sessions.js'

/** What a request on the embedded pages reaches. */
export type ScopeTarget =
  | { surface: 'invoice' | 'company' | 'quickbooks', psaId: string }
  | { invoiceId: unknown }
  | { customerId: unknown }
  | { attemptId: unknown }

const outside = (scope: LinkScope): AppError => new AppError('FORBIDDEN',
  `This link opens only Autotask ${scope.kind === 'invoice' ? `invoice ${scope.record}` : `company ${scope.record} and its invoices`}. ` +
  'Sign in to Settle with a staff key to see or do more.')

/**
 * A session from a signed LiveLink reaches only what the link was signed for:
 * an invoice link its invoice (pod, pay link, charge, attempts); a company
 * link that company, its invoices and its statement. Anything else, the
 * QuickBooks pod included, needs a staff sign-in. Staff sessions (a verified
 * ConnectWise member, an API-key sign-in) reach the whole tenant.
 */
export async function requireInScope (db: Knex, session: EmbeddedSession, target: ScopeTarget): Promise<void> {
  const scope = session.scope
  if (scope === undefined) return
  if (!await reaches(db, session, scope, target)) throw outside(scope)
}

async function reaches (db: Knex, session: EmbeddedSession, scope: LinkScope, target: ScopeTarget): Promise<boolean> {
  const { tenantId, system } = session
  const linkCustomer = async (): Promise<string | null> => scope.kind === 'company' ? await customerOfPsaCompany(db, tenantId, system, scope.record) : null
  if ('surface' in target) {
    if (target.surface === 'quickbooks') return false
    if (target.surface === scope.kind) return target.psaId === scope.record
    if (target.surface === 'company') return false
    const customer = await linkCustomer()
    return customer !== null && await customerOfPsaInvoice(db, tenantId, system, target.psaId) === customer
  }
  if ('invoiceId' in target) {
    // Unknown ids go on to the route, which says "no such invoice" as it would to anyone.
    if (!isUuid(target.invoiceId)) return true
    const owner = await invoiceOwner(db, tenantId, target.invoiceId)
    if (owner === null) return true
    if (owner.psaSystem !== system) return false
    return scope.kind === 'invoice' ? owner.psaInvoiceId === scope.record : owner.customerId === await linkCustomer()
  }
  if ('customerId' in target) {
    if (scope.kind === 'invoice') return false
    return isUuid(target.customerId) && target.customerId === await linkCustomer()
  }
  if (!isUuid(target.attemptId)) return true
  const reach = await attemptReach(db, tenantId, target.attemptId)
  if (reach === null) return true
  return scope.kind === 'invoice' ? reach.psaInvoiceIds.length > 0 && reach.psaInvoiceIds.every(ref => ref === `${system}:${scope.record}`) : reach.customerId === await linkCustomer()
}
