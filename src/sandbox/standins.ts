import type { FastifyInstance } from 'fastify'
import autotaskSandbox, { AUTOTASK_SANDBOX_CREDENTIALS, createAutotaskStore, type AutotaskStore } from './autotask/index.js'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, CONNECTWISE_SANDBOX_PREFIX, createConnectWiseStore, type ConnectWiseStore } from './connectwise/index.js'
import quickbooksSandbox, { createQuickBooksStore, QUICKBOOKS_SANDBOX_CREDENTIALS, QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN, QUICKBOOKS_SANDBOX_PREFIX, QUICKBOOKS_SANDBOX_REALM_ID, QUICKBOOKS_SANDBOX_WEBHOOK_VERIFIER, quickbooksSandboxUrls, seedFromConnectWise, type QuickBooksStore } from './quickbooks/index.js'
import stripeSandbox, { createStripeStore, STRIPE_SANDBOX_API_KEY, type StripeStore } from './stripe/index.js'

export const AUTOTASK_SANDBOX_PREFIX = '/sandbox/autotask'

export interface StandIns {
  connectwise: ConnectWiseStore
  autotask: AutotaskStore
  quickbooks: QuickBooksStore
  stripe: StripeStore
}

/**
 * The four stand-ins on one Fastify server, seeded with the demo data: the
 * embedded default mounts them beside Settle, `npm run sandbox` on a server
 * of their own. Stripe answers at the root (its SDK calls /v1/…), the others
 * under /sandbox/{name}.
 */
export async function mountStandIns (app: FastifyInstance): Promise<StandIns> {
  const connectwise = createConnectWiseStore({ seed: 7 })
  const autotask = createAutotaskStore({ seed: 11 })
  await app.register(connectwiseSandbox, { prefix: CONNECTWISE_SANDBOX_PREFIX, store: connectwise, credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
  await app.register(autotaskSandbox, { prefix: AUTOTASK_SANDBOX_PREFIX, store: autotask, credentials: AUTOTASK_SANDBOX_CREDENTIALS })
  // QuickBooks holds what a PSA sync would have written from the ConnectWise stand-in, with a few
  // deliberate differences for the tie-out (see src/sandbox/quickbooks/README.md).
  const quickbooks = createQuickBooksStore({ seed: 7, realmId: QUICKBOOKS_SANDBOX_REALM_ID, demoRefreshToken: QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN, ...seedFromConnectWise(connectwise) })
  await app.register(quickbooksSandbox, { prefix: QUICKBOOKS_SANDBOX_PREFIX, store: quickbooks })
  // Seeded by the clock: Settle's database outlives these in-memory stand-ins, so ids must not repeat across restarts.
  const stripe = createStripeStore({ seed: Date.now() % 2_147_483_647 })
  await app.register(stripeSandbox, { store: stripe, apiKeys: [STRIPE_SANDBOX_API_KEY], events: { delayMs: 4000 } })
  return { connectwise, autotask, quickbooks, stripe }
}

/** What `GET /sandbox.json` lists: each stand-in with its base URL and demo credentials (all fake; they only open the stand-ins). */
export function standInsListing (base: string, stripeWebhookSecret: string | null): Record<string, unknown> {
  return {
    note: 'Stand-ins of the outside systems, answering in their real wire formats. Demo credentials only open these stand-ins.',
    standIns: [
      {
        name: 'connectwise',
        title: 'ConnectWise PSA',
        baseUrl: `${base}${CONNECTWISE_SANDBOX_PREFIX}`,
        apiBase: `${base}${CONNECTWISE_SANDBOX_PREFIX}/v4_6_release/apis/3.0`,
        credentials: CONNECTWISE_SANDBOX_CREDENTIALS,
        auth: 'Authorization: Basic base64("companyId+publicKey:privateKey"), clientId header',
        tenant: 'brightline'
      },
      {
        name: 'stripe',
        title: 'Stripe',
        baseUrl: base,
        sdk: 'new Stripe(apiKey, { host, port, protocol: "http" }) with the host and port of baseUrl',
        credentials: { apiKey: STRIPE_SANDBOX_API_KEY, ...(stripeWebhookSecret === null ? {} : { webhookSecret: stripeWebhookSecret }) },
        testPaymentMethods: 'pm_card_visa, pm_card_chargeDeclinedInsufficientFunds, pm_card_authenticationRequired, pm_usBankAccount_success, pm_usBankAccount_insufficientFunds, …',
        tenant: 'brightline'
      },
      {
        name: 'autotask',
        title: 'Autotask PSA',
        baseUrl: `${base}${AUTOTASK_SANDBOX_PREFIX}`,
        zoneDiscoveryUrl: `${base}${AUTOTASK_SANDBOX_PREFIX}/ATServicesRest/V1.0/zoneInformation?user=${encodeURIComponent(AUTOTASK_SANDBOX_CREDENTIALS.apiUser)}`,
        credentials: AUTOTASK_SANDBOX_CREDENTIALS,
        auth: 'ApiIntegrationcode, UserName and Secret headers',
        tenant: 'cobalt'
      },
      {
        name: 'quickbooks',
        title: 'QuickBooks Online',
        ...quickbooksSandboxUrls(base),
        credentials: { ...QUICKBOOKS_SANDBOX_CREDENTIALS, realmId: QUICKBOOKS_SANDBOX_REALM_ID, refreshToken: QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN, webhookVerifierToken: QUICKBOOKS_SANDBOX_WEBHOOK_VERIFIER },
        auth: 'Authorization: Bearer <access token>; tokens from tokenUrl (Basic client auth, grant_type=refresh_token); refresh tokens rotate',
        sdk: 'node-quickbooks: QuickBooks.V3_ENDPOINT_BASE_URL = apiBase, QuickBooks.TOKEN_URL = tokenUrl; intuit-oauth: OAuthClient.tokenEndpoint = tokenUrl',
        tenant: 'brightline'
      }
    ]
  }
}
