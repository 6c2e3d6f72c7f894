import Stripe from 'stripe'

export interface StripeClientOptions {
  secretKey: string
  /** The sandbox stand-in on the embedded default: `http://127.0.0.1:3000`. */
  baseUrl?: string
  timeoutMs?: number
  /** Network retries the SDK makes with the same idempotency key; default 2. */
  maxNetworkRetries?: number
}

/**
 * One Stripe client per tenant key. The SDK is this adapter's request
 * function: it signs, times out, and retries network failures with the same
 * idempotency key (safe by design), pinned to the API version Settle was
 * written against.
 */
export function createStripeClient (options: StripeClientOptions): Stripe {
  const base = options.baseUrl === undefined ? null : new URL(options.baseUrl)
  return new Stripe(options.secretKey, {
    apiVersion: '2026-10-28.endive' as Stripe.LatestApiVersion,
    maxNetworkRetries: options.maxNetworkRetries ?? 2,
    timeout: options.timeoutMs ?? 30_000,
    appInfo: { name: 'Settle', url: 'https://github.com/settle-msp/settle' },
    ...(base !== null ? { host: base.hostname, port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)), protocol: base.protocol.replace(':', '') as 'http' | 'https' } : {})
  })
}
