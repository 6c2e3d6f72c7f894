import type { Knex } from 'knex'
import { listPsaConnections } from '../db/psa.js'
import { enqueue } from '../db/jobs.js'
import { putSecret } from '../db/secrets.js'
import { STRIPE_SANDBOX_API_KEY } from '../sandbox/stripe/index.js'
import { ensureTenant, type Tenant } from '../db/tenants.js'
import type { PsaSystem } from '../ports/psa.js'
import type { Keyring } from '../security/keyring.js'
import { connectAutotask, connectConnectWise } from '../services/psa-connections.js'
import { AUTOTASK_SANDBOX_CREDENTIALS } from '../sandbox/autotask/index.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS } from '../sandbox/connectwise/index.js'

/** Two demo MSPs, one on each PSA, so the demo also shows that tenants never see each other. */
export const DEMO_TENANTS: ReadonlyArray<{ slug: string, name: string, psa: PsaSystem, stripe: boolean }> = [
  { slug: 'brightline', name: 'Brightline Managed IT', psa: 'connectwise', stripe: true },
  { slug: 'cobalt', name: 'Cobalt IT Partners', psa: 'autotask', stripe: false }
]

/** The stand-in's endpoint secret for the demo tenant's webhooks (published in /sandbox.json; it opens nothing real). */
export const DEMO_STRIPE_WEBHOOK_SECRET = 'whsec_settle_sandbox_demo'

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
    if (demo.stripe) {
      await putSecret(db, keyring, tenant.id, 'stripe.secret_key', STRIPE_SANDBOX_API_KEY)
      await putSecret(db, keyring, tenant.id, 'stripe.webhook_secret', DEMO_STRIPE_WEBHOOK_SECRET)
      await enqueue(db, tenant.id, [{ queue: 'demo.collection-setup', dedupeKey: 'demo', maxAttempts: 40 }])
    }
    if (demo.psa === 'connectwise') {
      await connectConnectWise(db, keyring, tenant.id, { site: 'sandbox', ...CONNECTWISE_SANDBOX_CREDENTIALS })
    } else {
      await connectAutotask(db, keyring, tenant.id, { ...AUTOTASK_SANDBOX_CREDENTIALS, sandbox: true })
    }
  }
  return tenants
}
