import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Intuit's webhook deliveries. The `intuit-signature` header is the base64
 * HMAC-SHA256 of the raw body under the app's verifier token. Since 2026 a
 * body is a JSON array of CloudEvents (`type: "qbo.payment.created.v1"`,
 * `intuitaccountid` = realm, `intuitentityid` = entity id) [check the field
 * names against a live delivery]; the legacy shape
 * `{eventNotifications:[{realmId, dataChangeEvent:{entities:[{name, id, operation, lastUpdated}]}}]}`
 * may still arrive. Either way a delivery names entities only: the record
 * itself is read through the API.
 */
export interface QboChange { eventId: string, realmId: string, entity: string, entityId: string, operation: string }

export class QboWebhookError extends Error { override name = 'QboWebhookError' }

export function verifyIntuitSignature (rawBody: Buffer, signature: string | undefined, verifierToken: string): boolean {
  if (signature === undefined || signature === '' || verifierToken === '') return false
  const expected = createHmac('sha256', verifierToken).update(rawBody).digest()
  const given = Buffer.from(signature, 'base64')
  return given.length === expected.length && timingSafeEqual(given, expected)
}

const text = (value: unknown): string | null => typeof value === 'string' && value !== '' ? value : typeof value === 'number' ? String(value) : null

export function parseIntuitWebhook (rawBody: Buffer): QboChange[] {
  let body: unknown
  try { body = JSON.parse(rawBody.toString('utf8')) } catch { throw new QboWebhookError('the body is not JSON') }
  if (Array.isArray(body)) {
    return body.map((e: Record<string, unknown>, i) => {
      // qbo.<entity>.<operation>.v<n>
      const m = /^qbo\.([a-z]+)\.([a-z]+)\.v\d+$/i.exec(String(e?.type ?? ''))
      const eventId = text(e?.id)
      const realmId = text(e?.intuitaccountid)
      const entityId = text(e?.intuitentityid)
      if (m === null || eventId === null || realmId === null || entityId === null) throw new QboWebhookError(`event ${i} is not a QuickBooks CloudEvent (type, id, intuitaccountid, intuitentityid)`)
      return { eventId, realmId, entity: m[1]!.toLowerCase(), entityId, operation: m[2]!.toLowerCase() }
    })
  }
  const notifications = (body as { eventNotifications?: unknown })?.eventNotifications
  if (!Array.isArray(notifications)) throw new QboWebhookError('neither CloudEvents nor eventNotifications')
  const digest = createHash('sha256').update(rawBody).digest('hex').slice(0, 32)
  return notifications.flatMap((n: Record<string, unknown>) => {
    const realmId = text(n?.realmId)
    const entities = (n?.dataChangeEvent as { entities?: unknown } | undefined)?.entities
    if (realmId === null || !Array.isArray(entities)) throw new QboWebhookError('an eventNotification without realmId or dataChangeEvent.entities')
    return entities.map((x: Record<string, unknown>) => {
      const entityId = text(x?.id)
      if (entityId === null || text(x?.name) === null) throw new QboWebhookError('an entity without name or id')
      const operation = String(x.operation ?? '').toLowerCase()
      // Legacy deliveries carry no event id: the body's digest with the entity names the change.
      return { eventId: `${digest}:${realmId}:${String(x.name)}:${entityId}:${operation}`, realmId, entity: String(x.name).toLowerCase(), entityId, operation }
    })
  })
}
