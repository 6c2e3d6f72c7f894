import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import Stripe from 'stripe'
import stripeSandbox, { STRIPE_SANDBOX_API_KEY, createStripeStore, type StripeSandboxOptions, type StripeStore, type StripeStoreOptions } from '../../src/sandbox/stripe/index.js'

export interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

export const SECOND_KEY = 'sk_test_settle_second'

export function client (port: number, key = STRIPE_SANDBOX_API_KEY): Stripe {
  return new Stripe(key, { host: '127.0.0.1', port, protocol: 'http', apiVersion: '2026-10-28.endive' as never, maxNetworkRetries: 0 })
}

export async function start (t: Teardown, storeOpts: StripeStoreOptions = {}, plugin: Partial<Omit<StripeSandboxOptions, 'store'>> = {}): Promise<{ app: FastifyInstance, store: StripeStore, port: number, stripe: Stripe }> {
  const store = createStripeStore({ seed: 7, ...storeOpts })
  const app = Fastify()
  await app.register(stripeSandbox, { store, apiKeys: [STRIPE_SANDBOX_API_KEY, SECOND_KEY], ...plugin })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const port = (app.server.address() as AddressInfo).port
  return { app, store, port, stripe: client(port) }
}

export interface Received { raw: string, signature: string }

/** A webhook endpoint that keeps each raw body and signature, in arrival order. */
export async function receiver (t: Teardown, status = 200): Promise<{ url: string, received: Received[] }> {
  const app = Fastify()
  const received: Received[] = []
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => { done(null, body) })
  app.post('/hooks/stripe', async (req, reply) => {
    received.push({ raw: String(req.body), signature: String(req.headers['stripe-signature']) })
    return reply.code(status).send({ received: true })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/hooks/stripe`, received }
}

export const ACCEPTANCE = { customer_acceptance: { type: 'online' as const, online: { ip_address: '203.0.113.7', user_agent: 'Mozilla/5.0 (Settle test)' } } }

/** A customer with an ACH account set up through a SetupIntent (mandate included). */
export async function achCustomer (stripe: Stripe, testPm: string): Promise<{ customer: string, pm: string }> {
  const customer = await stripe.customers.create({ email: 'ap@example.com' })
  const si = await stripe.setupIntents.create({ customer: customer.id, payment_method: testPm, confirm: true, usage: 'off_session', mandate_data: ACCEPTANCE })
  return { customer: customer.id, pm: String(si.payment_method) }
}
