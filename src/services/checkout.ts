import type { Knex } from 'knex'
import { activeConsents, enrolAutopay, recordConsent, revokeAutopay } from '../db/autopay.js'
import { enqueue } from '../db/jobs.js'
import { getPaymentMethod, savePaymentMethod, type PaymentMethod } from '../db/payments.js'
import { getBrand } from '../db/branding.js'
import { requireTenantId } from '../db/tenants.js'
import { AppError } from '../errors.js'
import { achMandateFormText, autopayAuthorisationText, CONSENT_TEXT_VERSION } from '../domain/consents.js'
import type { PaymentsPort } from '../ports/payments.js'

/**
 * The client adds a card or bank account on the pay page. The browser hands
 * the number to the processor directly (Stripe.js, or the stand-in's form);
 * Settle only ever sees the SetupIntent id, and then the method's ids, brand,
 * last 4 and expiry. What the client agreed to is recorded in the words shown.
 */

/** Who accepted, from where: the request that carried the acceptance. */
export interface Acceptance {
  name: string
  email: string | null
  ip: string
  userAgent: string
}

/** One processor customer per client: the idempotency key makes concurrent first visits create one. */
export async function processorCustomerFor (db: Knex, payments: PaymentsPort, tenantId: string, customerId: string): Promise<string> {
  requireTenantId(tenantId)
  const known = await db('processor_customers').where({ tenant_id: tenantId, customer_id: customerId, processor: payments.processor }).first('ref') as { ref: string } | undefined
  if (known !== undefined) return known.ref
  const customer = await db('customers').where({ tenant_id: tenantId, id: customerId }).first('name', 'billing_email') as { name: string, billing_email: string | null } | undefined
  if (customer === undefined) throw new AppError('CUSTOMER_NOT_FOUND', 'That client is not in Settle.')
  const { customerRef } = await payments.createCustomer({
    name: customer.name,
    email: customer.billing_email,
    metadata: { settle_tenant_id: tenantId, settle_customer_id: customerId },
    idempotencyKey: `settle_customer_${tenantId}_${customerId}`
  })
  await db('processor_customers').insert({ tenant_id: tenantId, customer_id: customerId, processor: payments.processor, ref: customerRef })
    .onConflict(['tenant_id', 'customer_id', 'processor']).ignore()
  const saved = await db('processor_customers').where({ tenant_id: tenantId, customer_id: customerId, processor: payments.processor }).first('ref') as { ref: string }
  return saved.ref
}

export interface SetupStart {
  setupId: string
  clientSecret: string
  publishableKey: string
  /** Null on the real service: the page loads Stripe.js instead. */
  sandboxApiBase: string | null
}

export async function beginAddMethod (db: Knex, payments: PaymentsPort, tenantId: string, customerId: string): Promise<SetupStart> {
  if (payments.browser.publishableKey === null) {
    throw new AppError('CHECKOUT_UNAVAILABLE', 'Adding a card or bank account online is not set up yet; please contact your IT provider to pay.')
  }
  const customerRef = await processorCustomerFor(db, payments, tenantId, customerId)
  const { setupId, clientSecret } = await payments.startSetup({ customerRef, metadata: { settle_tenant_id: tenantId, settle_customer_id: customerId } })
  return { setupId, clientSecret, publishableKey: payments.browser.publishableKey, sandboxApiBase: payments.browser.sandboxApiBase }
}

export interface CompleteAddMethod {
  tenantId: string
  customerId: string
  setupId: string
  acceptance: Acceptance
  makeDefault: boolean
  /** The client ticked the auto-pay authorisation. */
  autopay: boolean
}

/**
 * Saves the method a SetupIntent produced, after checking it belongs to this
 * client, with its authorisations. Sending the same SetupIntent twice (a
 * double submit, a reload) saves nothing more.
 */
export async function completeAddMethod (db: Knex, payments: PaymentsPort, input: CompleteAddMethod): Promise<PaymentMethod> {
  const { tenantId, customerId } = input
  if (!/^seti_\w+$/.test(input.setupId)) throw new AppError('VALIDATION_FAILED', 'The card or bank details did not reach us; please try again.')
  if (input.acceptance.name.trim() === '') throw new AppError('VALIDATION_FAILED', 'Type your name to accept the authorisation.')
  // Read, not created: a client whose page never started a setup has no processor customer, so any id is someone else's.
  const known = await db('processor_customers').where({ tenant_id: requireTenantId(tenantId), customer_id: customerId, processor: payments.processor }).first('ref') as { ref: string } | undefined
  const setup = await payments.retrieveSetup({ setupId: input.setupId })
  if (setup === null) throw new AppError('VALIDATION_FAILED', 'Those card or bank details did not reach us; please start again.')
  const customerRef = known?.ref ?? null
  // A SetupIntent id from another client's page must not attach their method here.
  if (customerRef === null || setup.customerRef !== customerRef || setup.metadata.settle_customer_id !== customerId) {
    throw new AppError('VALIDATION_FAILED', 'Those card or bank details belong to another payment page; please start again.')
  }
  if (setup.status !== 'succeeded' || setup.method === null) {
    throw new AppError('SETUP_INCOMPLETE', setup.error ?? 'Your card or bank account has not been confirmed yet; please finish the steps shown and try again.')
  }
  const details = setup.method
  const msp = (await getBrand(db, tenantId)).name
  return await db.transaction(async trx => {
    // Serialise per client so "default" and the consents stay consistent under double submits.
    await trx('customers').where({ tenant_id: tenantId, id: customerId }).forUpdate().first('id')
    const already = await trx('payment_methods').where({ tenant_id: tenantId, processor_method_ref: details.methodRef }).first('id', 'status') as { id: string, status: string } | undefined
    const makeDefault = input.makeDefault || await trx('payment_methods').where({ tenant_id: tenantId, customer_id: customerId, status: 'active' }).first('id') === undefined
    if (makeDefault) await trx('payment_methods').where({ tenant_id: tenantId, customer_id: customerId }).update({ is_default: false })
    const method = await savePaymentMethod(trx, tenantId, {
      customerId,
      processorCustomerRef: customerRef,
      processorMethodRef: details.methodRef,
      type: details.type,
      brand: details.brand,
      last4: details.last4,
      expMonth: details.expMonth,
      expYear: details.expYear,
      funding: details.funding,
      isDefault: makeDefault
    })
    if (already !== undefined) return method
    if (details.billingState !== null && /^[A-Z]{2}$/.test(details.billingState)) {
      await trx('customers').where({ tenant_id: tenantId, id: customerId }).whereNull('billing_state').update({ billing_state: details.billingState })
    }
    const who = { customerId, acceptedByName: input.acceptance.name.trim(), acceptedByEmail: input.acceptance.email, ip: input.acceptance.ip, userAgent: input.acceptance.userAgent, textVersion: CONSENT_TEXT_VERSION }
    if (method.type === 'ach') {
      await recordConsent(trx, tenantId, { ...who, paymentMethodId: method.id, kind: 'ach_mandate', text: achMandateFormText(msp) })
    }
    if (input.autopay) {
      const consents = await activeConsents(trx, tenantId, customerId)
      if (!consents.some(c => c.kind === 'autopay')) await recordConsent(trx, tenantId, { ...who, paymentMethodId: null, kind: 'autopay', text: autopayAuthorisationText(msp) })
      await enrolAutopay(trx, tenantId, customerId)
    }
    return method
  })
}

/** The client turns auto-pay off from the pay page; their methods stay on file. */
export async function cancelAutopay (db: Knex, tenantId: string, customerId: string, actor: string): Promise<void> {
  await db.transaction(async trx => {
    await revokeAutopay(trx, tenantId, customerId, actor, { kinds: ['autopay'] })
  })
}

/**
 * Removes a stored method: no longer offered or charged, its mandate revoked,
 * and detached at the processor through the outbox. Refused while a payment
 * on it is in flight or an installment plan depends on it.
 */
export async function removeMethod (db: Knex, tenantId: string, customerId: string, methodId: string, actor: string): Promise<void> {
  await db.transaction(async trx => {
    const method = await getPaymentMethod(trx, tenantId, methodId)
    if (method.customerId !== customerId) throw new AppError('PAYMENT_METHOD_NOT_FOUND', 'That payment method is not on file for this client.')
    await trx('payment_methods').where({ tenant_id: tenantId, id: method.id }).forUpdate().first('id')
    const inFlight = await trx('payment_attempts').where({ tenant_id: tenantId, payment_method_id: method.id }).whereIn('status', ['created', 'processing', 'unknown']).first('id')
    if (inFlight !== undefined) throw new AppError('PAYMENT_METHOD_IN_USE', 'A payment with this method is still processing; you can remove it once it has cleared.')
    const plan = await trx('installment_plans').where({ tenant_id: tenantId, payment_method_id: method.id, status: 'active' }).first('id')
    if (plan !== undefined) throw new AppError('PAYMENT_METHOD_IN_USE', 'An installment plan is paid with this method; cancel the plan or contact your IT provider first.')
    await trx('payment_methods').where({ tenant_id: tenantId, id: method.id }).update({ status: 'detached', is_default: false })
    await trx('payment_consents').where({ tenant_id: tenantId, payment_method_id: method.id }).whereNull('revoked_at').update({ revoked_at: trx.fn.now(), revoked_by: actor })
    // The next method on file becomes the default, so auto-pay keeps a clear choice.
    const next = await trx('payment_methods').where({ tenant_id: tenantId, customer_id: customerId, status: 'active' }).orderBy('created_at', 'desc').first('id') as { id: string } | undefined
    if (method.isDefault && next !== undefined) await trx('payment_methods').where({ tenant_id: tenantId, id: next.id }).update({ is_default: true })
    await enqueue(trx, tenantId, [{ queue: 'payments.detach-method', payload: { methodRef: method.processorMethodRef }, dedupeKey: `detach:${method.id}`, maxAttempts: 8 }])
  })
}
