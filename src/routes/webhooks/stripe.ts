import type { FastifyInstance } from 'fastify'
import { stripeEventEssentials, StripeEventMalformed, verifyStripeEvent } from '../../adapters/stripe/webhook.js'
import { storeWebhookEvent } from '../../db/webhooks.js'
import { readThroughCache } from '../../cache.js'
import { getSecret } from '../../db/secrets.js'
import { findTenantBySlug } from '../../db/tenants.js'
import { AppError } from '../../errors.js'

/**
 * Stripe events for one tenant. The signature is checked on the raw bytes
 * with the tenant's secret before anything is stored (a tenant without a
 * secret accepts nothing); the event is stored by its id, so a redelivery is
 * a no-op; the answer is immediate, and a job does the work.
 */
export default async function stripeWebhook (app: FastifyInstance): Promise<void> {
  app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer', bodyLimit: 512 * 1024 }, (_request, body, done) => { done(null, body) })

  // Tenant and endpoint secret, read through a short per-process cache: every
  // event would otherwise cost two queries and a decryption before the real work.
  const endpoints = readThroughCache(30_000, async (slug: string) => {
    const tenant = await findTenantBySlug(app.db, slug)
    const secret = tenant === null ? null : await getSecret(app.db, app.keyring, tenant.id, 'stripe.webhook_secret')
    return tenant === null || secret === null ? null : { tenant, secret }
  })

  app.post<{ Params: { tenant: string } }>('/webhooks/stripe/:tenant', async request => {
    const raw = request.body
    if (!Buffer.isBuffer(raw)) throw new AppError('VALIDATION_FAILED', 'Send the event body as JSON.')
    const refuse = (): AppError => new AppError('WEBHOOK_SIGNATURE_INVALID', 'Unknown tenant or bad Stripe-Signature.')
    const endpoint = await endpoints.get(request.params.tenant)
    if (endpoint === null) throw refuse()
    const { tenant, secret } = endpoint
    const signature = request.headers['stripe-signature']
    let event
    try { event = verifyStripeEvent(raw, typeof signature === 'string' ? signature : undefined, secret) } catch { throw refuse() }
    let essentials
    try { essentials = stripeEventEssentials(event) } catch (error) {
      if (error instanceof StripeEventMalformed) throw new AppError('VALIDATION_FAILED', `Signed, but not a Stripe event: ${error.message}.`)
      throw error
    }
    const { id, type, objectType, objectId } = essentials
    const fresh = await storeWebhookEvent(app.db, tenant.id, { source: 'stripe', eventId: id, kind: type, raw: raw.toString('utf8') }, {
      queue: 'stripe.event', payload: { eventId: id, type, objectType, objectId }, dedupeKey: `stripe:${id}`
    })
    return { received: true, duplicate: !fresh }
  })
}
