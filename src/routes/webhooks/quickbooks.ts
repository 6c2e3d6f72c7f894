import type { FastifyInstance } from 'fastify'
import { parseIntuitWebhook, QboWebhookError, verifyIntuitSignature } from '../../adapters/quickbooks/webhook.js'
import { storeWebhookEvent } from '../../db/webhooks.js'
import { AppError } from '../../errors.js'
import { QBO_PAYMENTS_QUEUE } from '../../jobs/quickbooks-payment-jobs.js'

export interface QuickBooksWebhookOptions {
  /** The Intuit app's verifier token (one per app, not per company); null when webhooks are not set up. */
  verifierToken: () => string | null
}

// The changes that can bring money Settle did not collect: it reads them through CDC.
const PAYMENT_CHANGES = new Set(['payment'])

/**
 * Intuit's webhook for every connected company of the app. The signature is
 * checked on the raw bytes before anything is stored; each payment change is
 * stored once by its event id for the tenant whose realm it names, and queues
 * a read of that tenant's QuickBooks payments (the same cursor-based read as
 * the daily run, so a redelivered or late event costs one CDC call at most).
 * Realms no tenant has connected are acknowledged and ignored.
 */
export default async function quickbooksWebhook (app: FastifyInstance, options: QuickBooksWebhookOptions): Promise<void> {
  app.addContentTypeParser(['application/json', 'application/cloudevents-batch+json', 'text/plain'], { parseAs: 'buffer', bodyLimit: 512 * 1024 }, (_request, body, done) => { done(null, body) })

  app.post('/webhooks/quickbooks', async request => {
    const raw = request.body
    if (!Buffer.isBuffer(raw)) throw new AppError('VALIDATION_FAILED', 'Send the notification body as JSON.')
    const token = options.verifierToken()
    if (token === null) throw new AppError('WEBHOOK_SIGNATURE_INVALID', 'QuickBooks webhooks are not set up here: set SETTLE_QBO_WEBHOOK_VERIFIER to the app\'s verifier token.')
    const signature = request.headers['intuit-signature']
    if (!verifyIntuitSignature(raw, typeof signature === 'string' ? signature : undefined, token)) {
      throw new AppError('WEBHOOK_SIGNATURE_INVALID', 'The intuit-signature header does not match the body.')
    }
    let changes
    try { changes = parseIntuitWebhook(raw) } catch (error) {
      throw new AppError('VALIDATION_FAILED', `Not a QuickBooks notification: ${error instanceof QboWebhookError ? error.message : 'unreadable'}.`)
    }
    const payments = changes.filter(c => PAYMENT_CHANGES.has(c.entity))
    const realms = [...new Set(payments.map(c => c.realmId))]
    const tenants = realms.length === 0
      ? []
      : await app.db('accounting_connections').where({ system: 'quickbooks', status: 'active' }).whereIn('realm_id', realms).select('tenant_id', 'realm_id') as Array<{ tenant_id: string, realm_id: string }>
    let queued = 0
    for (const change of payments) {
      for (const t of tenants.filter(x => x.realm_id === change.realmId)) {
        const fresh = await storeWebhookEvent(app.db, t.tenant_id, { source: 'quickbooks', eventId: change.eventId, kind: `${change.entity}.${change.operation}`, raw: JSON.stringify(change) }, {
          queue: QBO_PAYMENTS_QUEUE, payload: { trigger: 'webhook', paymentId: change.entityId }, dedupeKey: `qbo-hook:${change.eventId}`
        })
        if (fresh) queued++
      }
    }
    return { received: changes.length, queued }
  })
}
