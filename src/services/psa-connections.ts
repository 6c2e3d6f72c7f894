import type { Knex } from 'knex'
import { createAutotaskPsa } from '../adapters/autotask/psa.js'
import { createConnectWisePsa } from '../adapters/connectwise/psa.js'
import { dbCallBudget } from '../db/call-budget.js'
import { getPsaConnection, savePsaConnection, updatePsaSettings } from '../db/psa.js'
import { getSecret, putSecret } from '../db/secrets.js'
import { getTenant } from '../db/tenants.js'
import { AppError } from '../errors.js'
import type { PsaFactory } from '../jobs/sync-jobs.js'
import type { PsaPort, PsaSystem } from '../ports/psa.js'
import type { Keyring } from '../security/keyring.js'

/** Autotask allows 10,000 calls an hour per database, shared by every integration. */
export const AUTOTASK_CALLS_PER_HOUR = 10_000

export interface ConnectWiseCredentials { site: string, companyId: string, publicKey: string, privateKey: string, clientId: string }
export interface AutotaskCredentials { apiUser: string, secret: string, integrationCode: string }

/** Saves a connection: identifiers in settings, the private part encrypted. `site: 'sandbox'` means the built-in stand-in. */
export async function connectConnectWise (db: Knex, keyring: Keyring, tenantId: string, creds: ConnectWiseCredentials): Promise<void> {
  await db.transaction(async trx => {
    await savePsaConnection(trx, tenantId, 'connectwise', { site: creds.site, companyId: creds.companyId, publicKey: creds.publicKey, clientId: creds.clientId })
    await putSecret(trx, keyring, tenantId, 'connectwise.private_key', creds.privateKey)
  })
}

export async function connectAutotask (db: Knex, keyring: Keyring, tenantId: string, creds: AutotaskCredentials & { sandbox?: boolean }): Promise<void> {
  await db.transaction(async trx => {
    await savePsaConnection(trx, tenantId, 'autotask', { apiUser: creds.apiUser, integrationCode: creds.integrationCode, ...(creds.sandbox === true ? { site: 'sandbox' } : {}) })
    await putSecret(trx, keyring, tenantId, 'autotask.secret', creds.secret)
  })
}

export interface PsaFactoryOptions {
  keyring: Keyring
  /** The running server's own origin, where the sandbox stand-ins answer (embedded default only). */
  sandboxOrigin?: () => string | null
  /** AUTOTASK_ZONE_URL: zone discovery for connections other than the built-in stand-in; null is Autotask's own. */
  autotaskZoneUrl?: string | null
}

/**
 * Builds a tenant's adapter from its saved connection. Production and the
 * sandbox share every line of adapter code; only the base URL differs.
 */
export function createPsaFactory (options: PsaFactoryOptions): PsaFactory {
  return async (db: Knex, tenantId: string, system: PsaSystem): Promise<PsaPort> => {
    const connection = await getPsaConnection(db, tenantId, system)
    const s = connection.settings
    let sandbox: string | null = null
    if (s.site === 'sandbox') {
      sandbox = options.sandboxOrigin?.() ?? null
      if (sandbox === null) throw new AppError('PSA_NOT_CONNECTED', 'This connection uses the built-in sandbox, which only runs on the embedded default once the server is listening.')
    }
    const missing = (what: string): AppError => new AppError('PSA_NOT_CONNECTED', `The ${system} connection has no ${what}; reconnect it in settings.`)
    if (system === 'connectwise') {
      const privateKey = await getSecret(db, options.keyring, tenantId, 'connectwise.private_key')
      if (privateKey === null) throw missing('private key')
      return createConnectWisePsa({
        site: sandbox === null ? String(s.site) : `${sandbox}/sandbox/connectwise`,
        companyId: String(s.companyId),
        publicKey: String(s.publicKey),
        privateKey,
        clientId: String(s.clientId),
        ...(typeof s.codebase === 'string' ? { codebase: s.codebase } : {}),
        // Who ConnectWise says applied our payments: how a re-statement tells Settle's payments from a person's.
        ...(typeof s.apiMember === 'string' ? { apiMember: s.apiMember } : {}),
        onApiMemberLearned: async (member: string) => { await updatePsaSettings(db, tenantId, 'connectwise', { apiMember: member }) }
      })
    }
    const secret = await getSecret(db, options.keyring, tenantId, 'autotask.secret')
    if (secret === null) throw missing('API secret')
    const tenant = await getTenant(db, tenantId)
    return createAutotaskPsa({
      apiUser: String(s.apiUser),
      secret,
      integrationCode: String(s.integrationCode),
      currency: tenant.defaultCurrency,
      budget: dbCallBudget(db, { tenantId, system: 'autotask', perHour: AUTOTASK_CALLS_PER_HOUR }),
      ...(sandbox !== null
        ? { zoneDiscoveryUrl: `${sandbox}/sandbox/autotask/ATServicesRest/V1.0/zoneInformation` }
        : {
            ...(typeof options.autotaskZoneUrl === 'string' ? { zoneDiscoveryUrl: options.autotaskZoneUrl } : {}),
            ...(typeof s.zoneUrl === 'string' ? { zoneUrl: s.zoneUrl } : {}),
            // Zone discovery costs a call; remember the answer per tenant.
            onZoneDiscovered: async (url: string) => { await updatePsaSettings(db, tenantId, 'autotask', { zoneUrl: url }) }
          })
    })
  }
}
