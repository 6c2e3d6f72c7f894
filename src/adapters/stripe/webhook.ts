import Stripe from 'stripe'

/** Stripe's tolerance for the signature timestamp, so a captured request cannot be replayed later. */
const TOLERANCE_SECONDS = 300

/**
 * Verifies `Stripe-Signature` on the raw bytes with the tenant's endpoint
 * secret and returns the event, or throws. Nothing about the body is
 * trusted before this returns.
 */
export function verifyStripeEvent (rawBody: Buffer, signature: string | undefined, secret: string): Stripe.Event {
  if (signature === undefined || signature === '') throw new Error('missing Stripe-Signature header')
  return Stripe.webhooks.constructEvent(rawBody, signature, secret, TOLERANCE_SECONDS)
}

/** For tests and the sandbox: a header Stripe would send for `payload`. */
export function signStripePayload (payload: string, secret: string): string {
  return Stripe.webhooks.generateTestHeaderString({ payload, secret })
}
