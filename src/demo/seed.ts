import type { Knex } from 'knex'
import { listPsaConnections } from '../db/psa.js'
import { ensureTenant, type Tenant } from '../db/tenants.js'
import type { PsaSystem } from '../ports/psa.js'
import type { Keyring } from '../security/keyring.js'
import { connectAutotask, connectConnectWise } from '../services/psa-connections.js'
import { AUTOTASK_SANDBOX_CREDENTIALS } from '../sandbox/autotask/index.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS } from '../sandbox/connectwise/index.js'

/** Two demo MSPs, one on each PSA, so the demo also shows that tenants never see each other. */
export const DEMO_TENANTS: ReadonlyArray<{ slug: string, name: string, psa: PsaSystem }> = [
  { slug: 'brightline', name: 'Brightline Managed IT', psa: 'connectwise' },
  { slug: 'cobalt', name: 'Cobalt IT Partners', psa: 'autotask' }
]

/**
 * Connects each demo tenant to its PSA stand-in (credentials stored exactly
 * as a real tenant's are, private parts encrypted). The scheduler's first
 * tick syncs them through the real adapters. Safe on every boot.
 */
export async function seedDemo (db: Knex, keyring: Keyring): Promise<Tenant[]> {
  const tenants: Tenant[] = []
  for (const demo of DEMO_TENANTS) {
    const tenant = await ensureTenant(db, { slug: demo.slug, name: demo.name })
    tenants.push(tenant)
    if ((await listPsaConnections(db, { tenantId: tenant.id })).length > 0) continue
    if (demo.psa === 'connectwise') {
      await connectConnectWise(db, keyring, tenant.id, { site: 'sandbox', ...CONNECTWISE_SANDBOX_CREDENTIALS })
    } else {
      await connectAutotask(db, keyring, tenant.id, { ...AUTOTASK_SANDBOX_CREDENTIALS, sandbox: true })
    }
  }
  return tenants
}
