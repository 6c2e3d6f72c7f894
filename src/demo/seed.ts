import type { Knex } from 'knex'
import { listPsaConnections } from '../db/psa.js'
import { enqueue } from '../db/jobs.js'
import { putSecret } from '../db/secrets.js'
import { setBrand } from '../db/branding.js'
import { setInstallmentSettings } from '../db/installments.js'
import { STRIPE_SANDBOX_API_KEY } from '../sandbox/stripe/index.js'
import { ensureTenant, type Tenant } from '../db/tenants.js'
import type { PsaSystem } from '../ports/psa.js'
import type { Keyring } from '../security/keyring.js'
import { connectAutotask, connectConnectWise } from '../services/psa-connections.js'
import { AUTOTASK_SANDBOX_CREDENTIALS } from '../sandbox/autotask/index.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS, CONNECTWISE_SANDBOX_MEMBER } from '../sandbox/connectwise/index.js'
import { grantMember } from '../services/embedded.js'
import { connectQuickBooks } from '../services/accounting-connections.js'
import { QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN, QUICKBOOKS_SANDBOX_REALM_ID } from '../sandbox/quickbooks/index.js'

/** Two demo MSPs, one on each PSA, so the demo also shows that tenants never see each other. */
export const DEMO_TENANTS: ReadonlyArray<{ slug: string, name: string, psa: PsaSystem, stripe: boolean, accent: string }> = [
  { slug: 'brightline', name: 'Brightline Managed IT', psa: 'connectwise', stripe: true, accent: '#1d4ed8' },
  { slug: 'cobalt', name: 'Cobalt IT Partners', psa: 'autotask', stripe: false, accent: '#7c3aed' }
]

/** A wordmark in the tenant's colour, so the pay page shows white-label branding out of the box. */
const demoLogo = (name: string, accent: string): Buffer => Buffer.from(
  `<svg xmlns="http://www.w3.org/2000/svg" width="${48 + name.length * 11}" height="40" viewBox="0 0 ${48 + name.length * 11} 40" role="img" aria-label="${name}">` +
  `<rect x="0" y="6" width="28" height="28" rx="7" fill="${accent}"/><path d="M8 20l5 5 9-10" stroke="#fff" stroke-width="3" fill="none" stroke-linecap="round" stroke-linejoin="round"/>` +
  `<text x="38" y="27" font-family="system-ui, sans-serif" font-size="18" font-weight="700" fill="#0f172a">${name}</text></svg>`)

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
    await setBrand(db, tenant.id, { accent: demo.accent, supportEmail: `billing@${demo.slug}.example`, logo: { type: 'image/svg+xml', bytes: demoLogo(demo.name, demo.accent) } })
    if (demo.stripe) {
      await putSecret(db, keyring, tenant.id, 'stripe.secret_key', STRIPE_SANDBOX_API_KEY)
      await putSecret(db, keyring, tenant.id, 'stripe.webhook_secret', DEMO_STRIPE_WEBHOOK_SECRET)
      await enqueue(db, tenant.id, [{ queue: 'demo.collection-setup', dedupeKey: 'demo', maxAttempts: 40 }])
      // Invoices from $1,000 may be paid in up to 6 monthly parts, so the pay page shows the option.
      await setInstallmentSettings(db, tenant.id, { minAmount: 100_000, maxParts: 6 })
    }
    if (demo.slug === 'brightline') {
      // Books on the QuickBooks stand-in: its demo refresh token always works, so the first call refreshes a real pair.
      await connectQuickBooks(db, keyring, { tenantId: tenant.id, realmId: QUICKBOOKS_SANDBOX_REALM_ID, companyName: 'Brightline Managed IT (sandbox books)', sandbox: true, tokens: { access_token: 'demo-not-yet-issued', refresh_token: QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN, expires_in: 0, x_refresh_token_expires_in: 100 * 86_400 } })
    }
    if (demo.psa === 'connectwise') {
      await connectConnectWise(db, keyring, tenant.id, { site: 'sandbox', ...CONNECTWISE_SANDBOX_CREDENTIALS })
      // The demo host page's member may view, charge and sync inside ConnectWise.
      await grantMember(db, tenant.id, 'connectwise', CONNECTWISE_SANDBOX_MEMBER.memberId, ['view', 'charge', 'sync', 'paylink'])
    } else {
      await connectAutotask(db, keyring, tenant.id, { ...AUTOTASK_SANDBOX_CREDENTIALS, sandbox: true })
    }
  }
  return tenants
}
