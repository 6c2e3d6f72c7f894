import type { FastifyInstance } from 'fastify'
import autotaskSandbox, { AUTOTASK_SANDBOX_CREDENTIALS, createAutotaskStore } from '../../sandbox/autotask/index.js'
import stripeSandbox, { createStripeStore, STRIPE_SANDBOX_API_KEY } from '../../sandbox/stripe/index.js'
import { DEMO_STRIPE_WEBHOOK_SECRET } from '../../demo/seed.js'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, CONNECTWISE_SANDBOX_PREFIX, createConnectWiseStore } from '../../sandbox/connectwise/index.js'
import quickbooksSandbox, { createQuickBooksStore, QUICKBOOKS_SANDBOX_CREDENTIALS, QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN, QUICKBOOKS_SANDBOX_PREFIX, QUICKBOOKS_SANDBOX_WEBHOOK_VERIFIER, QUICKBOOKS_SANDBOX_REALM_ID, quickbooksSandboxUrls, seedFromConnectWise } from '../../sandbox/quickbooks/index.js'

const AUTOTASK_PREFIX = '/sandbox/autotask'

/**
 * The embedded default's stand-ins for the outside systems, mounted on this
 * server, and `/sandbox.json` listing each with its base URL and demo
 * credentials (all fake; they only open the stand-ins).
 */
export default async function sandboxRoutes (app: FastifyInstance, { origin }: { origin: () => string | null }): Promise<void> {
  const connectwise = createConnectWiseStore({ seed: 7 })
  const autotask = createAutotaskStore({ seed: 11 })
  await app.register(connectwiseSandbox, { prefix: CONNECTWISE_SANDBOX_PREFIX, store: connectwise, credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
  await app.register(autotaskSandbox, { prefix: AUTOTASK_PREFIX, store: autotask, credentials: AUTOTASK_SANDBOX_CREDENTIALS })
  // QuickBooks holds what a PSA sync would have written from the ConnectWise stand-in, with a few
  // deliberate differences for the tie-out (see src/sandbox/quickbooks/README.md).
  const quickbooks = createQuickBooksStore({ seed: 7, realmId: QUICKBOOKS_SANDBOX_REALM_ID, demoRefreshToken: QUICKBOOKS_SANDBOX_DEMO_REFRESH_TOKEN, ...seedFromConnectWise(connectwise) })
  await app.register(quickbooksSandbox, { prefix: QUICKBOOKS_SANDBOX_PREFIX, store: quickbooks })
  // Stripe's SDK calls /v1/… at the root of its host. Events go to the demo tenant's
  // webhook route a few seconds after each change, so ACH visibly goes from processing to paid.
  // Seeded by the clock: the demo's database outlives this in-memory stand-in, so ids must not repeat across restarts.
  const stripeStore = createStripeStore({ seed: Date.now() % 2_147_483_647 })
  await app.register(stripeSandbox, { store: stripeStore, apiKeys: [STRIPE_SANDBOX_API_KEY], events: { delayMs: 4000 } })
  // The webhook URL needs this server's address, known once it listens.
  app.addHook('onListen', async () => {
    const base = origin()
    if (base !== null) stripeStore.configure({ webhook: { url: `${base}/webhooks/stripe/brightline`, secret: DEMO_STRIPE_WEBHOOK_SECRET }, delayMs: 4000 })
  })

  app.get('/sandbox.json', async request => {
    const base = origin() ?? `${request.protocol}://${request.host}`
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
          credentials: { apiKey: STRIPE_SANDBOX_API_KEY, webhookSecret: DEMO_STRIPE_WEBHOOK_SECRET },
          testPaymentMethods: 'pm_card_visa, pm_card_chargeDeclinedInsufficientFunds, pm_card_authenticationRequired, pm_usBankAccount_success, pm_usBankAccount_insufficientFunds, …',
          tenant: 'brightline'
        },
        {
          name: 'autotask',
          title: 'Autotask PSA',
          baseUrl: `${base}${AUTOTASK_PREFIX}`,
          zoneDiscoveryUrl: `${base}${AUTOTASK_PREFIX}/ATServicesRest/V1.0/zoneInformation?user=${encodeURIComponent(AUTOTASK_SANDBOX_CREDENTIALS.apiUser)}`,
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
  })
}
