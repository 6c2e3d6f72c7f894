import type { Knex } from 'knex'
import { createStripeClient } from '../adapters/stripe/client.js'
import { createStripePayments } from '../adapters/stripe/payments.js'
import { getSecret } from '../db/secrets.js'
import { AppError } from '../errors.js'
import type { PaymentsFactory } from '../jobs/payment-jobs.js'
import type { PaymentsPort } from '../ports/payments.js'
import type { Keyring } from '../security/keyring.js'

export interface PaymentsFactoryOptions {
  keyring: Keyring
  /** On the embedded default: where the Stripe stand-in answers, and the demo key that routes there. */
  sandbox?: { origin: () => string | null, apiKey: string, publishableKey: string }
  /** STRIPE_API_BASE: where every other key's calls go (a shared stand-in); null is Stripe's own API. */
  apiBase?: string | null
}

/** The payments adapter for a tenant, on its own Stripe key (encrypted at rest). */
export function createPaymentsFactory (options: PaymentsFactoryOptions): PaymentsFactory {
  return async (db: Knex, tenantId: string): Promise<PaymentsPort> => {
    const secretKey = await getSecret(db, options.keyring, tenantId, 'stripe.secret_key')
    if (secretKey === null) throw new AppError('PROCESSOR_NOT_CONNECTED', 'This tenant has not connected Stripe yet; add its secret key in settings.')
    const sandbox = options.sandbox !== undefined && secretKey === options.sandbox.apiKey ? options.sandbox.origin() : null
    const base = sandbox ?? options.apiBase ?? null
    const browser = sandbox !== null && options.sandbox !== undefined
      ? { publishableKey: options.sandbox.publishableKey, sandboxApiBase: sandbox }
      // Stripe.js only talks to Stripe: pointed elsewhere, the pay page uses the stand-in's browser flow there.
      : { publishableKey: await getSecret(db, options.keyring, tenantId, 'stripe.publishable_key'), sandboxApiBase: base }
    return createStripePayments(createStripeClient({ secretKey, ...(base !== null ? { baseUrl: base } : {}) }), browser)
  }
}
