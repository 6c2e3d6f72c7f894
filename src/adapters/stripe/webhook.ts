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

/** A signed body that is not an event Settle can store and act on (no id, type or data.object). */
export class StripeEventMalformed extends Error { override readonly name = 'StripeEventMalformed' }

/**
 * What the route stores and queues, checked: a body signed with the right
 * secret is authentic, not necessarily an event (a test tool, a
 * hand-written replay), and must not reach the job half-formed.
 */
export function stripeEventEssentials (event: unknown): { id: string, type: string, objectType: string | null, objectId: string | null } {
  const e = event as { id?: unknown, type?: unknown, data?: { object?: unknown } } | null
  if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new StripeEventMalformed('the body is not an object')
  if (typeof e.id !== 'string' || !/^[A-Za-z0-9_-]{1,255}$/.test(e.id)) throw new StripeEventMalformed('"id" is not an event id')
  if (typeof e.type !== 'string' || !/^[a-z0-9_.]{1,100}$/.test(e.type)) throw new StripeEventMalformed('"type" is not an event type')
  const object = typeof e.data === 'object' && e.data !== null ? e.data.object : undefined
  if (typeof object !== 'object' || object === null || Array.isArray(object)) throw new StripeEventMalformed('"data.object" is missing')
  const { id, object: kind } = object as { id?: unknown, object?: unknown }
  return { id: e.id, type: e.type, objectType: typeof kind === 'string' ? kind : null, objectId: typeof id === 'string' ? id : null }
}

/** For tests and the sandbox: a header Stripe would send for `payload`. */
export function signStripePayload (payload: string, secret: string): string {
  return Stripe.webhooks.generateTestHeaderString({ payload, secret })
}
