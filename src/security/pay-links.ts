import { createHmac, timingSafeEqual } from 'node:crypto'
import { AppError } from '../errors.js'
import { isUuid } from '../db/tenants.js'
import type { Keyring } from './keyring.js'

/**
 * Signed, expiring links to pay an invoice: the token names the tenant, the
 * invoice and the expiry, and carries an HMAC under a key derived from the
 * encryption key ring (HKDF), so there is no extra secret to manage and a
 * rotated key keeps old links valid until they expire.
 */
export interface PayLink { tenantId: string, invoiceId: string, expiresAt: Date }

const b64 = (buf: Buffer): string => buf.toString('base64url')

const linkKey = (keyring: Keyring, keyId: string): Buffer => keyring.derivedKey(keyId, 'pay-links v1')

export function signPayLink (keyring: Keyring, link: PayLink): string {
  const payload = Buffer.from(JSON.stringify({ t: link.tenantId, i: link.invoiceId, e: Math.floor(link.expiresAt.getTime() / 1000) }))
  const mac = createHmac('sha256', linkKey(keyring, keyring.activeKeyId)).update(payload).digest()
  return `${b64(payload)}.${keyring.activeKeyId}.${b64(mac)}`
}

export function verifyPayLink (keyring: Keyring, token: string, now: Date): PayLink {
  const link = readPayLink(keyring, token)
  if (link.expiresAt <= now) throw new AppError('PAY_LINK_EXPIRED', 'This payment link has expired. Ask your IT provider for a new one.')
  return link
}

/**
 * A link whose signature holds, expired or not: an expired link still names
 * the MSP (for its brand on the error page) and the invoice (to send a fresh
 * link to the client's billing contact). Anything unsigned is PAY_LINK_INVALID.
 */
export function readPayLink (keyring: Keyring, token: string): PayLink {
  const invalid = new AppError('PAY_LINK_INVALID', 'This payment link is not valid. Ask your IT provider for a new one.')
  const [payloadText, keyId, macText] = token.split('.')
  if (payloadText === undefined || keyId === undefined || macText === undefined || !keyring.hasKey(keyId)) throw invalid
  const payload = Buffer.from(payloadText, 'base64url')
  const expected = createHmac('sha256', linkKey(keyring, keyId)).update(payload).digest()
  const given = Buffer.from(macText, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid
  let parsed: { t?: unknown, i?: unknown, e?: unknown }
  try { parsed = JSON.parse(payload.toString('utf8')) as typeof parsed } catch { throw invalid }
  // Signed is not well-formed: a token minted with ids that are not UUIDs (a shared key, an old format) names nothing.
  if (!isUuid(parsed.t) || !isUuid(parsed.i) || typeof parsed.e !== 'number' || !Number.isFinite(parsed.e)) throw invalid
  return { tenantId: parsed.t, invoiceId: parsed.i, expiresAt: new Date(parsed.e * 1000) }
}
