import type { FastifyInstance } from 'fastify'
import { DEMO_STRIPE_WEBHOOK_SECRET } from '../../demo/seed.js'
import { mountStandIns, standInsListing } from '../../sandbox/standins.js'

/**
 * The embedded default's stand-ins for the outside systems, mounted on this
 * server, and `/sandbox.json` listing each with its base URL and demo
 * credentials (all fake; they only open the stand-ins).
 */
export default async function sandboxRoutes (app: FastifyInstance, { origin }: { origin: () => string | null }): Promise<void> {
  const { stripe } = await mountStandIns(app)
  // Events go to the demo tenant's webhook route a few seconds after each change, so ACH
  // visibly goes from processing to paid. The URL needs this server's address, known once it listens.
  app.addHook('onListen', async () => {
    const base = origin()
    if (base !== null) stripe.configure({ webhook: { url: `${base}/webhooks/stripe/brightline`, secret: DEMO_STRIPE_WEBHOOK_SECRET }, delayMs: 4000 })
  })

  app.get('/sandbox.json', async request => standInsListing(origin() ?? `${request.protocol}://${request.host}`, DEMO_STRIPE_WEBHOOK_SECRET))
}
