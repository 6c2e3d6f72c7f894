import type { FastifyInstance } from 'fastify'
import { createHash } from 'node:crypto'
import { ConnectWiseCallbackError, createSigningKeyFetcher, parseCallback, verifyConnectWiseSignature, type SigningKeyFetcher } from '../../adapters/connectwise/webhook.js'
import { getPsaConnection } from '../../db/psa.js'
import { storeWebhookEvent } from '../../db/webhooks.js'
import { findTenantBySlug } from '../../db/tenants.js'
import { AppError } from '../../errors.js'

export interface ConnectWiseWebhookOptions {
  /** Extra origins allowed to serve signing keys (the sandbox stand-in on the embedded default). */
  keyOrigins?: () => string[]
}

/**
 * ConnectWise invoice callbacks. Order matters: read the raw bytes, verify
 * the signature against them, and only then store the event (by a digest of
 * the body, so a redelivery is a no-op) and queue a re-sync of the invoice.
 * Nothing is stored for a request that fails verification.
 */
export default async function connectwiseWebhook (app: FastifyInstance, options: ConnectWiseWebhookOptions): Promise<void> {
  app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer', bodyLimit: 512 * 1024 }, (_request, body, done) => { done(null, body) })
  let fetcher: SigningKeyFetcher | null = null
  const keys = (): SigningKeyFetcher => {
    fetcher ??= createSigningKeyFetcher({ extraAllowedOrigins: options.keyOrigins?.() ?? [] })
    return fetcher
  }

  app.post<{ Params: { tenant: string } }>('/webhooks/connectwise/:tenant', async (request, reply) => {
    const raw = request.body
    if (!Buffer.isBuffer(raw)) throw new AppError('VALIDATION_FAILED', 'Send the callback body as JSON.')
    const reject = (why: string): AppError => new AppError('WEBHOOK_SIGNATURE_INVALID', why)
    const tenant = await findTenantBySlug(app.db, request.params.tenant)
    if (tenant === null) throw reject('Unknown tenant or bad signature.')
    let callback
    try { callback = parseCallback(raw) } catch (error) {
      throw reject(error instanceof ConnectWiseCallbackError ? `Not a ConnectWise callback: ${error.message}` : 'Not a ConnectWise callback.')
    }
    if (!keys().isAllowed(callback.keyUrl)) throw reject('The callback names a signing key outside ConnectWise.')
    let signingKey: string
    try { signingKey = await keys().getSigningKey(callback.keyUrl) } catch {
      // Not our fault nor the sender's: ask ConnectWise to deliver again later.
      return await reply.status(503).send({ error: { code: 'UPSTREAM_FAILED', message: 'Could not fetch the ConnectWise signing key; retry later.' } })
    }
    const signature = request.headers['x-content-signature']
    if (!verifyConnectWiseSignature({ rawBody: raw, signature: typeof signature === 'string' ? signature : undefined, signingKey })) {
      throw reject('The x-content-signature header does not match the body.')
    }
    const connection = await getPsaConnection(app.db, tenant.id, 'connectwise')
    if (callback.companyId.toLowerCase() !== String(connection.settings.companyId).toLowerCase()) {
      throw reject('The callback is for a different ConnectWise company.')
    }
    const eventId = createHash('sha256').update(raw).digest('hex')
    const fresh = await storeWebhookEvent(app.db, tenant.id, { source: 'connectwise', eventId, kind: `invoice.${callback.action.toLowerCase()}`, raw: raw.toString('utf8') }, {
      queue: 'psa.sync-invoice', payload: { system: 'connectwise', invoiceId: String(callback.entityId) }, dedupeKey: `cw-callback:${eventId}`
    })
    return { received: true, duplicate: !fresh }
  })
}
