import { createHmac } from 'node:crypto'
import { prng } from '../random.js'
import { TEST_BANK_ACCOUNTS, TEST_CARD_NUMBERS, TEST_PAYMENT_METHODS, TEST_ROUTING_NUMBER, isTestPaymentMethod, luhnValid, type AchReturn, type Decline, type TestPm } from './testpms.js'

export const API_VERSION = '2026-10-28.endive'

type Obj = Record<string, unknown>
type Params = Record<string, unknown>

/** A Stripe error response: `status` and the fields of `{"error":{…}}`. The plugin adds doc_url and request_log_url. */
export class StripeApiError extends Error {
  constructor (readonly status: number, readonly error: Obj, readonly saved = false) {
    super(String(error.message))
  }
}

const invalid = (message: string, extra: { param?: string, code?: string } = {}): StripeApiError =>
  new StripeApiError(400, { type: 'invalid_request_error', ...extra, message })
const missing = (what: string, id: string, param = 'id'): StripeApiError =>
  new StripeApiError(404, { type: 'invalid_request_error', code: 'resource_missing', param, message: `No such ${what}: '${id}'` })

export interface RequestContext {
  requestId: string | null
  idempotencyKey: string | null
  /** Set when the browser calls with a publishable key (as Stripe.js does): only a client_secret opens the object. */
  client?: { ip: string, userAgent: string }
}
const NO_REQUEST: RequestContext = { requestId: null, idempotencyKey: null }

// ---- fees (integer cents) ----

/** num/den rounded half away from zero, in integers. */
export function divRound (num: number, den: number): number {
  const q = Math.floor((Math.abs(num) * 2 + den) / (2 * den))
  return num < 0 ? -q : q
}
export const cardFee = (amount: number): number => divRound(amount * 29, 1000) + 30
export const achFee = (amount: number): number => Math.min(divRound(amount * 8, 1000), 500)
export const DISPUTE_FEE = 1500

// ---- internal records ----

interface Customer { id: string, created: number, email: string | null, name: string | null, description: string | null, phone: string | null, metadata: Record<string, string>, invoicePrefix: string, defaultPaymentMethod: string | null }
interface PaymentMethod { id: string, created: number, customer: string | null, metadata: Record<string, string>, spec: TestPm, alias: string, billing?: Obj, exp?: { month: number, year: number } }
interface Mandate { id: string, created: number, paymentMethod: string, acceptance: Obj }
interface SetupIntent { id: string, created: number, secret: string, customer: string | null, description: string | null, metadata: Record<string, string>, status: string, usage: string, paymentMethod: string | null, mandate: string | null, types: string[], nextAction: Obj | null, lastSetupError: Obj | null }
interface PaymentIntent { id: string, created: number, secret: string, amount: number, amountReceived: number, currency: string, customer: string | null, description: string | null, metadata: Record<string, string>, status: string, paymentMethod: string | null, latestCharge: string | null, lastPaymentError: Obj | null, nextAction: Obj | null, canceledAt: number | null, cancellationReason: string | null, types: string[], setupFutureUsage: string | null, receiptEmail: string | null, statementDescriptor: string | null, statementDescriptorSuffix: string | null, mandate: string | null }
interface Charge { id: string, created: number, amount: number, currency: string, customer: string | null, description: string | null, metadata: Record<string, string>, paymentIntent: string, paymentMethod: string, status: 'succeeded' | 'pending' | 'failed', balanceTransaction: string | null, failureCode: string | null, failureMessage: string | null, outcome: Obj, amountRefunded: number, refunds: string[], disputed: boolean, mandate: string | null, receiptEmail: string | null }
interface BalanceTransaction { id: string, created: number, amount: number, currency: string, description: string | null, fee: number, feeDescription: string, net: number, source: string, type: string, reportingCategory: string, availableOn: number, payout?: string | null }
/** An automatic payout: `transactions` are the balance transactions it paid out; `balanceTransaction` is its own (type payout). */
interface Payout { id: string, created: number, amount: number, currency: string, arrivalDate: number, status: 'pending' | 'in_transit' | 'paid' | 'failed' | 'canceled', balanceTransaction: string, transactions: string[], failureBalanceTransaction: string | null, failureCode: string | null, failureMessage: string | null }
interface Refund { id: string, created: number, amount: number, currency: string, charge: string, paymentIntent: string, balanceTransaction: string, metadata: Record<string, string>, reason: string | null, bank: boolean }
interface Dispute { id: string, created: number, amount: number, currency: string, charge: string, paymentIntent: string, balanceTransactions: string[], status: string, reason: string, bank: boolean, brand: string | null }
interface StripeEventRecord { id: string, created: number, type: string, object: Obj, request: RequestContext }

interface Task { id: number, dueAt: number, kind: 'ach' | 'dispute', ref: string }

/** A webhook endpoint registered through the API (POST /v1/webhook_endpoints), as the store delivers to it. */
export interface DeliveryEndpoint { url: string, secret: string, enabledEvents: readonly string[] }

export interface DeliveryConfig {
  webhook?: { url: string, secret: string } | undefined
  /** Endpoints registered through the API; each gets the events it enabled, signed with its own secret. */
  endpoints?: () => readonly DeliveryEndpoint[]
  /** Real-time delay before ACH outcomes, disputes and webhook deliveries. Unset: nothing happens until advance/settleAch/runAll/flushEvents. */
  delayMs?: number | undefined
  shuffle?: boolean | undefined
  duplicates?: number | undefined
}

export interface DeliveryResult { eventId: string, type: string, status: number | null, error?: string }
export interface PendingDelivery { eventId: string, type: string, attempts: number, url: string }

export interface StripeStoreOptions {
  seed?: number
  now?: () => number
  /** Virtual time from an ACH confirm to its outcome; default 4 days. */
  achSettleMs?: number
  /** Virtual time from an ACH success to the late return (dispute); default 3 days. */
  lateReturnMs?: number
}

const DAY = 86_400_000
const ALNUM = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const PI_STATUSES_CONFIRMABLE = ['requires_payment_method', 'requires_confirmation', 'requires_action']
const PI_STATUSES_CANCELABLE = ['requires_payment_method', 'requires_capture', 'requires_confirmation', 'requires_action']
const clone = <T>(v: T): T => structuredClone(v)

// ---- param readers: Stripe sends everything as strings ----

export function str (p: Params, key: string, param = key): string | null {
  const v = p[key]
  if (v === undefined || v === '') return null
  if (typeof v !== 'string') throw invalid(`Invalid string: ${param}`, { param })
  return v
}
export function int (p: Params, key: string): number | null {
  const v = str(p, key)
  if (v === null) return null
  if (!/^-?\d+$/.test(v)) throw invalid(`Invalid integer: ${v}`, { param: key, code: 'parameter_invalid_integer' })
  return Number(v)
}
export function bool (p: Params, key: string): boolean | null {
  const v = str(p, key)
  if (v === null) return null
  if (v !== 'true' && v !== 'false') throw invalid(`Invalid boolean: ${v}`, { param: key })
  return v === 'true'
}
function hash (p: Params, key: string): Params | null {
  const v = p[key]
  if (v === undefined || v === '') return null
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`Invalid object: ${key}`, { param: key })
  return v as Params
}
function metadata (p: Params, into: Record<string, string> = {}): Record<string, string> {
  const m = hash(p, 'metadata')
  if (m === null) {
    if (p.metadata === '') for (const k of Object.keys(into)) delete into[k] // metadata='' clears all keys
    return into
  }
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'string') throw invalid(`Invalid string: metadata[${k}]`, { param: `metadata[${k}]` })
    if (v === '') delete into[k] // Stripe unsets a key sent empty
    else into[k] = v
  }
  return into
}
function only (p: Params, allowed: readonly string[]): void {
  for (const k of Object.keys(p)) {
    if (k === 'payment_method_types') {
      throw invalid(`The parameter \`payment_method_types\` is no longer supported in API version ${API_VERSION}. Use automatic_payment_methods or allowed_payment_method_types instead.`, { param: 'payment_method_types', code: 'payment_method_types_no_longer_supported' })
    }
    if (!allowed.includes(k) && k !== 'expand') throw invalid(`Received unknown parameter: ${k}`, { param: k, code: 'parameter_unknown' })
  }
}

function amountParam (p: Params, required: boolean): number | null {
  const a = int(p, 'amount')
  if (a === null) {
    if (required) throw invalid('Missing required param: amount.', { param: 'amount', code: 'parameter_missing' })
    return null
  }
  if (a < 1) throw invalid('This value must be greater than or equal to 1.', { param: 'amount', code: 'parameter_invalid_integer' })
  if (a > 99_999_999) throw invalid('Amount must be no more than $999,999.99', { param: 'amount', code: 'amount_too_large' })
  return a
}

function mandateAcceptance (p: Params, now: number, client?: RequestContext['client']): Obj | null {
  const md = hash(p, 'mandate_data')
  if (md === null) return null
  const ca = hash(md, 'customer_acceptance')
  if (ca === null) throw invalid('Missing required param: mandate_data[customer_acceptance].', { param: 'mandate_data[customer_acceptance]', code: 'parameter_missing' })
  const type = str(ca, 'type', 'mandate_data[customer_acceptance][type]')
  if (type !== 'online' && type !== 'offline') throw invalid('Missing required param: mandate_data[customer_acceptance][type].', { param: 'mandate_data[customer_acceptance][type]', code: 'parameter_missing' })
  const acceptedAt = int(ca, 'accepted_at') ?? Math.floor(now / 1000)
  if (type === 'offline') return { accepted_at: acceptedAt, offline: {}, type }
  const online = hash(ca, 'online')
  // Stripe.js asks Stripe to take the IP and user agent from the browser's own request.
  const infer = online !== null && client !== undefined && str(online, 'infer_from_client') === 'true'
  const ip = infer ? client.ip : online === null ? null : str(online, 'ip_address', 'mandate_data[customer_acceptance][online][ip_address]')
  const ua = infer ? client.userAgent : online === null ? null : str(online, 'user_agent', 'mandate_data[customer_acceptance][online][user_agent]')
  if (ip === null) throw invalid('Missing required param: mandate_data[customer_acceptance][online][ip_address].', { param: 'mandate_data[customer_acceptance][online][ip_address]', code: 'parameter_missing' })
  if (ua === null) throw invalid('Missing required param: mandate_data[customer_acceptance][online][user_agent].', { param: 'mandate_data[customer_acceptance][online][user_agent]', code: 'parameter_missing' })
  return { accepted_at: acceptedAt, online: { ip_address: ip, user_agent: ua }, type }
}

const CUSTOMER_PARAMS = ['address', 'description', 'email', 'metadata', 'name', 'phone', 'payment_method', 'invoice_settings', 'preferred_locales', 'shipping', 'tax_exempt']
const PI_CONFIRM_PARAMS = ['payment_method', 'off_session', 'mandate', 'mandate_data', 'return_url', 'setup_future_usage', 'receipt_email', 'error_on_requires_action', 'payment_method_options', 'use_stripe_sdk', 'shipping']
const PI_CREATE_PARAMS = ['amount', 'currency', 'customer', 'confirm', 'metadata', 'description', 'automatic_payment_methods', 'allowed_payment_method_types', 'capture_method', 'confirmation_method', 'statement_descriptor', 'statement_descriptor_suffix', 'excluded_payment_method_types', ...PI_CONFIRM_PARAMS]
const SI_CONFIRM_PARAMS = ['payment_method', 'mandate_data', 'return_url', 'payment_method_options', 'use_stripe_sdk']
/** What a browser may add when it confirms with a publishable key and the client secret. */
const CLIENT_CONFIRM_PARAMS = ['client_secret', 'key', 'payment_method_data', 'expected_payment_method_type']
const SI_CREATE_PARAMS = ['customer', 'usage', 'confirm', 'metadata', 'description', 'automatic_payment_methods', 'allowed_payment_method_types', 'excluded_payment_method_types', ...SI_CONFIRM_PARAMS]
const DYNAMIC_TYPES = ['card', 'us_bank_account']

export type StripeStore = ReturnType<typeof createStripeStore>

export function createStripeStore (opts: StripeStoreOptions = {}) {
  const seed = opts.seed ?? 1
  const rand = prng(seed)
  // separate streams, so request ids and shuffling never shift the object ids
  const reqRand = prng(seed ^ 0x5eed)
  const shuffleRand = prng(seed ^ 0xd00d)
  let offset = 0
  const now = (): number => (opts.now?.() ?? Date.now()) + offset
  const ts = (): number => Math.floor(now() / 1000)
  const achSettleMs = opts.achSettleMs ?? 4 * DAY
  const lateReturnMs = opts.lateReturnMs ?? 3 * DAY

  const customers = new Map<string, Customer>()
  const paymentMethods = new Map<string, PaymentMethod>()
  const mandates = new Map<string, Mandate>()
  const setupIntents = new Map<string, SetupIntent>()
  const paymentIntents = new Map<string, PaymentIntent>()
  const charges = new Map<string, Charge>()
  const balanceTransactions = new Map<string, BalanceTransaction>()
  const refunds = new Map<string, Refund>()
  const disputes = new Map<string, Dispute>()
  const payouts = new Map<string, Payout>()
  const events = new Map<string, StripeEventRecord>()
  /** Saved idempotent responses, keyed by API key and Idempotency-Key. Handlers run synchronously, so no request is ever in flight beside another. */
  const idempotency = new Map<string, { fingerprint: string, status: number, body: string, requestId: string }>()

  const chars = (r: () => number, n: number): string => { let s = ''; for (let i = 0; i < n; i++) s += ALNUM[Math.floor(r() * ALNUM.length)]; return s }
  const newId = (prefix: string): string => `${prefix}_${chars(rand, 24)}`
  const requestId = (): string => `req_${chars(reqRand, 14)}`

  // ---- wire objects: every key of Stripe's example object, same names and nullability ----

  const address = (): Obj => ({ city: null, country: null, line1: null, line2: null, postal_code: null, state: null })

  function customerWire (c: Customer): Obj {
    return {
      id: c.id,
      object: 'customer',
      address: null,
      balance: 0,
      created: c.created,
      currency: null,
      default_source: null,
      delinquent: false,
      description: c.description,
      discount: null,
      email: c.email,
      invoice_prefix: c.invoicePrefix,
      invoice_settings: { custom_fields: null, default_payment_method: c.defaultPaymentMethod, footer: null, rendering_options: null },
      livemode: false,
      metadata: clone(c.metadata),
      name: c.name,
      next_invoice_sequence: 1,
      phone: c.phone,
      preferred_locales: [],
      shipping: null,
      tax_exempt: 'none',
      test_clock: null
    }
  }

  const expYear = (): number => new Date(now()).getUTCFullYear() + 3

  function paymentMethodWire (pm: PaymentMethod): Obj {
    const base: Obj = {
      id: pm.id,
      object: 'payment_method',
      allow_redisplay: 'unspecified',
      billing_details: pm.billing === undefined ? { address: address(), email: null, name: null, phone: null, tax_id: null } : clone(pm.billing),
      created: pm.created,
      customer: pm.customer,
      livemode: false,
      metadata: clone(pm.metadata),
      type: pm.spec.type
    }
    if (pm.spec.type === 'card') {
      const c = pm.spec.card
      base.card = {
        brand: c.brand,
        checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: 'unchecked' },
        country: c.country,
        display_brand: c.brand,
        exp_month: pm.exp?.month ?? 12,
        exp_year: pm.exp?.year ?? expYear(),
        fingerprint: c.fingerprint,
        funding: c.funding,
        generated_from: null,
        last4: c.last4,
        networks: { available: [c.brand], preferred: null },
        regulated_status: c.funding === 'debit' ? 'regulated' : 'unregulated',
        three_d_secure_usage: { supported: true },
        wallet: null
      }
    } else {
      const b = pm.spec.bank
      base.billing_details = pm.billing === undefined ? { address: address(), email: null, name: 'Jenny Rosen', phone: null, tax_id: null } : clone(pm.billing)
      base.us_bank_account = {
        account_holder_type: 'individual',
        account_type: b.account_type,
        bank_name: b.bank_name,
        financial_connections_account: null,
        fingerprint: b.fingerprint,
        last4: b.last4,
        networks: { preferred: 'ach', supported: ['ach'] },
        routing_number: b.routing_number,
        status_details: {}
      }
    }
    return base
  }

  function mandateWire (m: Mandate): Obj {
    return {
      id: m.id,
      object: 'mandate',
      customer_acceptance: clone(m.acceptance),
      livemode: false,
      multi_use: {},
      payment_method: m.paymentMethod,
      payment_method_details: { type: 'us_bank_account', us_bank_account: {} },
      status: 'active',
      type: 'multi_use'
    }
  }

  function setupIntentWire (si: SetupIntent): Obj {
    return {
      id: si.id,
      object: 'setup_intent',
      application: null,
      automatic_payment_methods: { enabled: true },
      cancellation_reason: null,
      client_secret: si.secret,
      created: si.created,
      customer: si.customer,
      description: si.description,
      excluded_payment_method_types: null,
      flow_directions: null,
      last_setup_error: clone(si.lastSetupError),
      latest_attempt: null,
      livemode: false,
      mandate: si.mandate,
      metadata: clone(si.metadata),
      next_action: clone(si.nextAction),
      on_behalf_of: null,
      payment_method: si.paymentMethod,
      payment_method_configuration_details: null,
      payment_method_options: {},
      payment_method_types: [...si.types],
      single_use_mandate: null,
      status: si.status,
      usage: si.usage
    }
  }

  function paymentIntentWire (pi: PaymentIntent): Obj {
    return {
      id: pi.id,
      object: 'payment_intent',
      amount: pi.amount,
      amount_capturable: 0,
      amount_details: { tip: {} },
      amount_received: pi.amountReceived,
      application: null,
      application_fee_amount: null,
      automatic_payment_methods: { enabled: true },
      canceled_at: pi.canceledAt,
      cancellation_reason: pi.cancellationReason,
      capture_method: 'automatic',
      client_secret: pi.secret,
      confirmation_method: 'automatic',
      created: pi.created,
      currency: pi.currency,
      customer: pi.customer,
      description: pi.description,
      excluded_payment_method_types: null,
      last_payment_error: clone(pi.lastPaymentError),
      latest_charge: pi.latestCharge,
      livemode: false,
      metadata: clone(pi.metadata),
      next_action: clone(pi.nextAction),
      on_behalf_of: null,
      payment_method: pi.paymentMethod,
      payment_method_configuration_details: null,
      payment_method_options: {},
      payment_method_types: [...pi.types],
      processing: null,
      receipt_email: pi.receiptEmail,
      review: null,
      setup_future_usage: pi.setupFutureUsage,
      shipping: null,
      source: null,
      statement_descriptor: pi.statementDescriptor,
      statement_descriptor_suffix: pi.statementDescriptorSuffix,
      status: pi.status,
      transfer_data: null,
      transfer_group: null
    }
  }

  function chargeMethodDetails (ch: Charge): Obj {
    const pm = paymentMethods.get(ch.paymentMethod)
    if (pm === undefined) return { type: 'card' }
    if (pm.spec.type === 'us_bank_account') {
      const b = pm.spec.bank
      return {
        type: 'us_bank_account',
        us_bank_account: { account_holder_type: 'individual', account_type: b.account_type, bank_name: b.bank_name, expected_debit_date: null, fingerprint: b.fingerprint, last4: b.last4, mandate: ch.mandate, payment_reference: null, routing_number: b.routing_number }
      }
    }
    const c = pm.spec.card
    return {
      type: 'card',
      card: {
        amount_authorized: ch.status === 'failed' ? null : ch.amount,
        authorization_code: null,
        brand: c.brand,
        checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: null },
        country: c.country,
        exp_month: 12,
        exp_year: expYear(),
        extended_authorization: { status: 'disabled' },
        fingerprint: c.fingerprint,
        funding: c.funding,
        incremental_authorization: { status: 'unavailable' },
        installments: null,
        last4: c.last4,
        mandate: null,
        multicapture: { status: 'unavailable' },
        network: c.brand,
        network_token: { used: false },
        network_transaction_id: null,
        overcapture: { maximum_amount_capturable: ch.amount, status: 'unavailable' },
        regulated_status: c.funding === 'debit' ? 'regulated' : 'unregulated',
        three_d_secure: null,
        wallet: null
      }
    }
  }

  function chargeWire (ch: Charge): Obj {
    const rs = ch.refunds.map(id => refunds.get(id)).filter((r): r is Refund => r !== undefined).map(refundWire)
    return {
      id: ch.id,
      object: 'charge',
      amount: ch.amount,
      amount_captured: ch.status === 'succeeded' ? ch.amount : 0,
      amount_refunded: ch.amountRefunded,
      application: null,
      application_fee: null,
      application_fee_amount: null,
      balance_transaction: ch.balanceTransaction,
      billing_details: { address: address(), email: null, name: null, phone: null, tax_id: null },
      calculated_statement_descriptor: ch.status === 'failed' ? null : 'SETTLE SANDBOX',
      captured: ch.status === 'succeeded',
      created: ch.created,
      currency: ch.currency,
      customer: ch.customer,
      description: ch.description,
      disputed: ch.disputed,
      failure_balance_transaction: null,
      failure_code: ch.failureCode,
      failure_message: ch.failureMessage,
      fraud_details: {},
      livemode: false,
      metadata: clone(ch.metadata),
      on_behalf_of: null,
      outcome: clone(ch.outcome),
      paid: ch.status === 'succeeded',
      payment_intent: ch.paymentIntent,
      payment_method: ch.paymentMethod,
      payment_method_details: chargeMethodDetails(ch),
      receipt_email: ch.receiptEmail,
      receipt_number: null,
      receipt_url: `https://pay.stripe.com/receipts/payment/${ch.id}`,
      refunded: ch.amountRefunded > 0 && ch.amountRefunded === ch.amount,
      refunds: { object: 'list', data: rs, has_more: false, url: `/v1/charges/${ch.id}/refunds` },
      review: null,
      shipping: null,
      source: null,
      source_transfer: null,
      statement_descriptor: null,
      statement_descriptor_suffix: null,
      status: ch.status,
      transfer_data: null,
      transfer_group: null
    }
  }

  function balanceTransactionWire (bt: BalanceTransaction): Obj {
    return {
      id: bt.id,
      object: 'balance_transaction',
      amount: bt.amount,
      available_on: bt.availableOn,
      balance_type: 'payments',
      created: bt.created,
      currency: bt.currency,
      description: bt.description,
      exchange_rate: null,
      fee: bt.fee,
      fee_details: bt.fee === 0 ? [] : [{ amount: bt.fee, application: null, currency: bt.currency, description: bt.feeDescription, type: 'stripe_fee' }],
      net: bt.net,
      reporting_category: bt.reportingCategory,
      source: bt.source,
      status: bt.availableOn * 1000 <= now() ? 'available' : 'pending',
      type: bt.type
    }
  }

  function refundWire (r: Refund): Obj {
    return {
      id: r.id,
      object: 'refund',
      amount: r.amount,
      balance_transaction: r.balanceTransaction,
      charge: r.charge,
      created: r.created,
      currency: r.currency,
      destination_details: r.bank ? { type: 'us_bank_transfer', us_bank_transfer: { reference: null, reference_status: 'pending' } } : { card: { reference_status: 'pending', reference_type: 'acquirer_reference_number', type: 'refund' }, type: 'card' },
      metadata: clone(r.metadata),
      payment_intent: r.paymentIntent,
      reason: r.reason,
      receipt_number: null,
      source_transfer_reversal: null,
      status: 'succeeded',
      transfer_reversal: null
    }
  }

  function disputeWire (d: Dispute): Obj {
    const evidence: Obj = {}
    for (const k of ['access_activity_log', 'billing_address', 'cancellation_policy', 'cancellation_policy_disclosure', 'cancellation_rebuttal', 'customer_communication', 'customer_email_address', 'customer_name', 'customer_purchase_ip', 'customer_signature', 'duplicate_charge_documentation', 'duplicate_charge_explanation', 'duplicate_charge_id', 'product_description', 'receipt', 'refund_policy', 'refund_policy_disclosure', 'refund_refusal_explanation', 'service_date', 'service_documentation', 'shipping_address', 'shipping_carrier', 'shipping_date', 'shipping_documentation', 'shipping_tracking_number', 'uncategorized_file', 'uncategorized_text']) evidence[k] = null
    evidence.enhanced_evidence = {}
    return {
      id: d.id,
      object: 'dispute',
      amount: d.amount,
      balance_transactions: d.balanceTransactions.map(id => balanceTransactions.get(id)).filter((b): b is BalanceTransaction => b !== undefined).map(balanceTransactionWire),
      charge: d.charge,
      created: d.created,
      currency: d.currency,
      enhanced_eligibility_types: [],
      evidence,
      evidence_details: { due_by: d.bank ? null : d.created + 7 * 86_400, enhanced_eligibility: {}, has_evidence: false, past_due: false, submission_count: 0 },
      is_charge_refundable: false,
      livemode: false,
      metadata: {},
      payment_intent: d.paymentIntent,
      payment_method_details: d.bank ? { type: 'us_bank_account', us_bank_account: {} } : { card: { brand: d.brand, case_type: 'chargeback', network_reason_code: '10.4' }, type: 'card' },
      reason: d.reason,
      status: d.status
    }
  }

  function payoutWire (po: Payout): Obj {
    return {
      id: po.id,
      object: 'payout',
      amount: po.amount,
      application_fee: null,
      application_fee_amount: null,
      arrival_date: po.arrivalDate,
      automatic: true,
      balance_transaction: po.balanceTransaction,
      created: po.created,
      currency: po.currency,
      description: 'STRIPE PAYOUT',
      destination: 'ba_settleSandboxOperating0000',
      failure_balance_transaction: po.failureBalanceTransaction,
      failure_code: po.failureCode,
      failure_message: po.failureMessage,
      livemode: false,
      metadata: {},
      method: 'standard',
      original_payout: null,
      payout_method: null,
      reconciliation_status: po.status === 'paid' ? 'completed' : 'not_applicable',
      reversed_by: null,
      source_type: 'card',
      statement_descriptor: null,
      status: po.status,
      trace_id: { status: po.status === 'paid' ? 'supported' : 'pending', value: null },
      type: 'bank_account'
    }
  }

  function eventWire (e: StripeEventRecord): Obj {
    return {
      id: e.id,
      object: 'event',
      api_version: API_VERSION,
      created: e.created,
      data: { object: clone(e.object) },
      livemode: false,
      pending_webhooks: targets(e.type).length,
      request: { id: e.request.requestId, idempotency_key: e.request.idempotencyKey },
      type: e.type
    }
  }

  // ---- lookups ----

  function getCustomer (id: string, param = 'id'): Customer {
    const c = customers.get(id)
    if (c === undefined) throw missing('customer', id, param)
    return c
  }
  function getPi (id: string): PaymentIntent {
    const pi = paymentIntents.get(id)
    if (pi === undefined) throw missing('payment_intent', id, 'intent')
    return pi
  }
  function getSi (id: string): SetupIntent {
    const si = setupIntents.get(id)
    if (si === undefined) throw missing('setupintent', id, 'intent')
    return si
  }

  /** Any object by id, rendered; used by GETs and by `expand`. */
  function render (id: string): Obj | null {
    const prefix = id.slice(0, id.indexOf('_'))
    const table: Record<string, () => Obj | null> = {
      cus: () => { const c = customers.get(id); return c === undefined ? null : customerWire(c) },
      pm: () => { const p = paymentMethods.get(id); return p === undefined ? null : paymentMethodWire(p) },
      mandate: () => { const m = mandates.get(id); return m === undefined ? null : mandateWire(m) },
      seti: () => { const s = setupIntents.get(id); return s === undefined ? null : setupIntentWire(s) },
      pi: () => { const p = paymentIntents.get(id); return p === undefined ? null : paymentIntentWire(p) },
      ch: () => { const c = charges.get(id); return c === undefined ? null : chargeWire(c) },
      txn: () => { const b = balanceTransactions.get(id); return b === undefined ? null : balanceTransactionWire(b) },
      re: () => { const r = refunds.get(id); return r === undefined ? null : refundWire(r) },
      dp: () => { const d = disputes.get(id); return d === undefined ? null : disputeWire(d) },
      evt: () => { const e = events.get(id); return e === undefined ? null : eventWire(e) },
      po: () => { const o = payouts.get(id); return o === undefined ? null : payoutWire(o) }
    }
    return table[prefix]?.() ?? null
  }

  // ---- events, tasks and delivery ----

  let config: DeliveryConfig = {}
  const outbox: PendingDelivery[] = []
  const tasks: Task[] = []
  let taskSeq = 0
  const timers = new Set<NodeJS.Timeout>()
  let flushTimer: NodeJS.Timeout | null = null

  function later (ms: number, fn: () => void): void {
    const timer = setTimeout(() => { timers.delete(timer); fn() }, ms)
    timer.unref()
    timers.add(timer)
  }

  /** Where an event of this type goes: the configured webhook, and every registered endpoint that enabled it. */
  function targets (type: string): Array<{ url: string, secret: string }> {
    const out = config.webhook === undefined ? [] : [config.webhook]
    for (const e of config.endpoints?.() ?? []) if (e.enabledEvents.includes('*') || e.enabledEvents.includes(type)) out.push({ url: e.url, secret: e.secret })
    return out
  }

  function emit (type: string, object: Obj, ctx: RequestContext): void {
    const e: StripeEventRecord = { id: newId('evt'), created: ts(), type, object, request: ctx }
    events.set(e.id, e)
    const to = targets(type)
    if (to.length === 0) return
    for (const t of to) outbox.push({ eventId: e.id, type, attempts: 0, url: t.url })
    scheduleFlush(0)
  }

  function scheduleFlush (attempts: number): void {
    if (config.delayMs === undefined || flushTimer !== null) return
    flushTimer = setTimeout(() => {
      flushTimer = null
      flushEvents().catch(() => {})
    }, config.delayMs * 2 ** Math.min(attempts, 6))
    flushTimer.unref()
  }

  function schedule (kind: Task['kind'], ref: string, delay: number): void {
    const task: Task = { id: ++taskSeq, dueAt: now() + delay, kind, ref }
    tasks.push(task)
    if (config.delayMs !== undefined) later(config.delayMs, () => { runTasks(t => t === task) })
  }

  function runTasks (select: (t: Task) => boolean): number {
    let n = 0
    for (;;) {
      tasks.sort((a, b) => a.dueAt - b.dueAt || a.id - b.id)
      const k = tasks.findIndex(select)
      if (k < 0) return n
      const [task] = tasks.splice(k, 1)
      if (task === undefined) return n
      if (task.kind === 'ach') settleAchCharge(task.ref)
      else openDispute(task.ref)
      n++
    }
  }

  function sign (payload: string, secret: string): string {
    // Stripe signs with the wall clock; constructEvent checks it against the receiver's clock, not ours
    const t = Math.floor(Date.now() / 1000)
    return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${payload}`).digest('hex')}`
  }

  async function flushEvents (): Promise<DeliveryResult[]> {
    const batch = outbox.splice(0, outbox.length)
    const copies: PendingDelivery[] = []
    for (const d of batch) for (let i = 0; i <= Math.max(0, config.duplicates ?? 0); i++) copies.push(d)
    if (config.shuffle === true) {
      for (let i = copies.length - 1; i > 0; i--) {
        const j = Math.floor(shuffleRand() * (i + 1))
        const a = copies[i] as PendingDelivery
        copies[i] = copies[j] as PendingDelivery
        copies[j] = a
      }
    }
    const results: DeliveryResult[] = []
    const delivered = new Set<PendingDelivery>()
    // one at a time, so the receiver sees exactly the order chosen here
    for (const d of copies) {
      const e = events.get(d.eventId)
      // An endpoint deleted (or no longer enabled for the type) since the event gets nothing more.
      const webhook = targets(d.type).find(t => t.url === d.url)
      if (e === undefined || webhook === undefined) { delivered.add(d); continue }
      const payload = JSON.stringify(eventWire(e), null, 2)
      try {
        const res = await fetch(webhook.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': sign(payload, webhook.secret), 'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)' },
          body: payload,
          signal: AbortSignal.timeout(10_000)
        })
        await res.arrayBuffer()
        results.push({ eventId: d.eventId, type: d.type, status: res.status })
        if (res.ok) delivered.add(d)
      } catch (err) {
        results.push({ eventId: d.eventId, type: d.type, status: null, error: err instanceof Error ? err.message : String(err) })
      }
    }
    // Stripe retries failed deliveries; keep them for the next flush
    for (const d of batch) {
      if (delivered.has(d)) continue
      d.attempts++
      outbox.push(d)
    }
    // automatic retries back off and give up after 8 attempts; a manual flush still sends them
    const retry = outbox.filter(d => d.attempts < 8)
    if (retry.length > 0) scheduleFlush(Math.min(...retry.map(d => d.attempts)))
    return results
  }

  // ---- payment methods ----

  function concretePm (alias: string, customer: string | null): PaymentMethod {
    const spec = TEST_PAYMENT_METHODS[alias] as TestPm
    const pm: PaymentMethod = { id: newId('pm'), created: ts(), customer, metadata: {}, spec, alias }
    paymentMethods.set(pm.id, pm)
    return pm
  }

  /** A test id becomes a fresh concrete PaymentMethod on every use, as in Stripe test mode. */
  function usePm (id: string, customer: string | null): PaymentMethod {
    if (isTestPaymentMethod(id)) return concretePm(id, null)
    const pm = paymentMethods.get(id)
    if (pm === undefined) throw missing('PaymentMethod', id, 'payment_method')
    if (pm.customer !== null && customer === null) throw invalid('The provided PaymentMethod belongs to a Customer, but you did not provide a Customer. Provide the customer parameter to use this PaymentMethod.', { param: 'payment_method' })
    if (pm.customer !== null && pm.customer !== customer) throw invalid('The provided PaymentMethod belongs to a different Customer.', { param: 'payment_method' })
    return pm
  }

  function attach (pm: PaymentMethod, customer: string): PaymentMethod {
    if (pm.customer === customer) return pm
    if (pm.customer !== null) throw invalid('The payment method you provided has already been attached to a customer.', { param: 'payment_method', code: 'payment_method_already_attached' })
    pm.customer = customer
    return pm
  }

  function createMandate (pm: PaymentMethod, acceptance: Obj): Mandate {
    const m: Mandate = { id: newId('mandate'), created: ts(), paymentMethod: pm.id, acceptance }
    mandates.set(m.id, m)
    return m
  }
  const mandateFor = (pmId: string): Mandate | undefined => [...mandates.values()].find(m => m.paymentMethod === pmId)

  function allowedTypes (p: Params): string[] {
    const v = p.allowed_payment_method_types
    if (v === undefined) return [...DYNAMIC_TYPES]
    if (!Array.isArray(v) || v.length === 0 || !v.every(x => typeof x === 'string' && DYNAMIC_TYPES.includes(x))) throw invalid('Invalid allowed_payment_method_types: must be a list of card and/or us_bank_account.', { param: 'allowed_payment_method_types' })
    return [...new Set(v as string[])]
  }

  function cardDeclineError (d: Decline): Obj {
    const e: Obj = { type: 'card_error', code: d.code, decline_code: d.decline_code }
    if (d.advice_code !== null) e.advice_code = d.advice_code
    e.message = d.message
    if (d.param !== undefined) e.param = d.param
    return e
  }

  function declineFor (pm: PaymentMethod, offSession: boolean): Decline | null {
    const b = pm.spec.behaviour
    if (b.kind === 'decline') return b.decline
    if (b.kind === 'authentication_required' && offSession) return { code: 'authentication_required', decline_code: 'authentication_required', advice_code: null, message: 'Your card was declined. This transaction requires authentication.' }
    return null
  }

  const threeDsAction = (): Obj => ({ type: 'use_stripe_sdk', use_stripe_sdk: { type: 'three_d_secure_redirect', stripe_js: 'https://hooks.stripe.com/3d_secure_2/hosted', source: 'src_sandbox' } })

  // ---- charges and money movement ----

  function newCharge (pi: PaymentIntent, pm: PaymentMethod, status: Charge['status']): Charge {
    const ch: Charge = {
      id: newId('ch'), created: ts(), amount: pi.amount, currency: pi.currency, customer: pi.customer, description: pi.description, metadata: clone(pi.metadata), paymentIntent: pi.id, paymentMethod: pm.id, status, balanceTransaction: null, failureCode: null, failureMessage: null, outcome: {}, amountRefunded: 0, refunds: [], disputed: false, mandate: pi.mandate, receiptEmail: pi.receiptEmail
    }
    charges.set(ch.id, ch)
    pi.latestCharge = ch.id
    return ch
  }

  const outcome = (type: string, networkStatus: string, reason: string | null, sellerMessage: string, adviceCode: string | null = null): Obj =>
    ({ advice_code: adviceCode, network_advice_code: null, network_decline_code: null, network_status: networkStatus, reason, risk_level: 'normal', seller_message: sellerMessage, type })

  function captureFunds (pi: PaymentIntent, ch: Charge, pm: PaymentMethod): void {
    const bank = pm.spec.type === 'us_bank_account'
    const fee = bank ? achFee(ch.amount) : cardFee(ch.amount)
    const bt: BalanceTransaction = {
      id: newId('txn'), created: ts(), amount: ch.amount, currency: ch.currency, description: ch.description, fee, feeDescription: 'Stripe processing fees', net: ch.amount - fee, source: ch.id, type: 'charge', reportingCategory: 'charge', availableOn: ts() + (bank ? 4 : 2) * 86_400
    }
    balanceTransactions.set(bt.id, bt)
    ch.status = 'succeeded'
    ch.balanceTransaction = bt.id
    ch.outcome = outcome('authorized', 'approved_by_network', null, 'Payment complete.')
    pi.status = 'succeeded'
    pi.amountReceived = ch.amount
    pi.lastPaymentError = null
    pi.nextAction = null
  }

  function failCharge (pi: PaymentIntent, ch: Charge, pm: PaymentMethod, error: Obj): void {
    ch.status = 'failed'
    ch.failureCode = String(error.code)
    ch.failureMessage = String(error.message)
    ch.outcome = pm.spec.type === 'card'
      ? outcome('issuer_declined', 'declined_by_network', typeof error.decline_code === 'string' ? error.decline_code : null, 'The bank did not return any further details with this decline.', typeof error.advice_code === 'string' ? error.advice_code : null)
      : outcome('issuer_declined', 'declined_by_network', String(error.code), String(error.message))
    pi.status = 'requires_payment_method'
    pi.lastPaymentError = { ...error, charge: ch.id, doc_url: `https://stripe.com/docs/error-codes/${String(error.code)}`, payment_method: paymentMethodWire(pm) }
  }

  function settleAchCharge (chargeId: string): void {
    const ch = charges.get(chargeId)
    const pi = ch === undefined ? undefined : paymentIntents.get(ch.paymentIntent)
    const pm = ch === undefined ? undefined : paymentMethods.get(ch.paymentMethod)
    if (ch === undefined || pi === undefined || pm === undefined || ch.status !== 'pending') return
    const b = pm.spec.behaviour
    if (b.kind === 'ach_fail') {
      failCharge(pi, ch, pm, achReturnError(b.ret))
      emit('charge.failed', chargeWire(ch), NO_REQUEST)
      emit('payment_intent.payment_failed', paymentIntentWire(pi), NO_REQUEST)
      return
    }
    captureFunds(pi, ch, pm)
    emit('charge.succeeded', chargeWire(ch), NO_REQUEST)
    emit('payment_intent.succeeded', paymentIntentWire(pi), NO_REQUEST)
    if (b.kind === 'ach_late_return') schedule('dispute', ch.id, lateReturnMs)
  }

  // ACH failures are reported with type card_error, as Stripe does for async payment failures
  const achReturnError = (r: AchReturn): Obj => ({ type: 'card_error', code: r.code, message: r.message })

  function openDispute (chargeId: string): void {
    const ch = charges.get(chargeId)
    const pm = ch === undefined ? undefined : paymentMethods.get(ch.paymentMethod)
    if (ch === undefined || pm === undefined || ch.disputed) return
    const bank = pm.spec.type === 'us_bank_account'
    const amount = ch.amount - ch.amountRefunded
    const d: Dispute = {
      id: newId('dp'), created: ts(), amount, currency: ch.currency, charge: ch.id, paymentIntent: ch.paymentIntent, balanceTransactions: [],
      // a returned ACH debit cannot be contested: it arrives already lost
      status: bank ? 'lost' : 'needs_response',
      reason: bank ? (pm.spec.behaviour.kind === 'ach_late_return' ? 'debit_not_authorized' : 'general') : 'fraudulent',
      bank,
      brand: pm.spec.type === 'card' ? pm.spec.card.brand : null
    }
    disputes.set(d.id, d)
    ch.disputed = true
    emit('charge.dispute.created', disputeWire(d), NO_REQUEST)
    const bt: BalanceTransaction = {
      id: newId('txn'), created: ts(), amount: -amount, currency: ch.currency, description: `Chargeback withdrawal for ${ch.id}`, fee: DISPUTE_FEE, feeDescription: 'Dispute fee', net: -amount - DISPUTE_FEE, source: d.id, type: 'adjustment', reportingCategory: 'dispute', availableOn: ts()
    }
    balanceTransactions.set(bt.id, bt)
    d.balanceTransactions.push(bt.id)
    emit('charge.dispute.funds_withdrawn', disputeWire(d), NO_REQUEST)
    if (bank) emit('charge.dispute.closed', disputeWire(d), NO_REQUEST)
  }

  /** Resolve a card dispute by hand (Stripe does it when the network rules). A win returns the disputed amount, not the fee. */
  function closeDispute (id: string, result: 'won' | 'lost'): Obj {
    const d = disputes.get(id)
    if (d === undefined) throw missing('dispute', id)
    if (d.status === 'won' || d.status === 'lost') throw invalid(`This dispute is already closed (${d.status}).`)
    d.status = result
    if (result === 'won') {
      const bt: BalanceTransaction = { id: newId('txn'), created: ts(), amount: d.amount, currency: d.currency, description: `Chargeback reversal for ${d.charge}`, fee: 0, feeDescription: '', net: d.amount, source: d.id, type: 'adjustment', reportingCategory: 'dispute_reversal', availableOn: ts() }
      balanceTransactions.set(bt.id, bt)
      d.balanceTransactions.push(bt.id)
      emit('charge.dispute.funds_reinstated', disputeWire(d), NO_REQUEST)
    }
    emit('charge.dispute.closed', disputeWire(d), NO_REQUEST)
    return disputeWire(d)
  }

  // ---- payouts (automatic, as Stripe's daily schedule makes them) ----

  /**
   * The automatic payout: every available balance transaction not paid out
   * yet (charges net of fees, refunds and dispute withdrawals negative) in
   * one currency becomes one payout, with its own `payout` balance
   * transaction. `payout.created` then (unless left in transit)
   * `payout.paid`. Null when the balance is zero or negative: Stripe pays out
   * nothing then. `includePending` pays out what is still pending too (the
   * demo cannot wait two days).
   */
  function runPayout (o: { arrivalDate?: number, includePending?: boolean, currency?: string, status?: 'paid' | 'in_transit' } = {}): Obj | null {
    const currency = (o.currency ?? 'usd').toLowerCase()
    const due = [...balanceTransactions.values()].filter(bt => (bt.payout ?? null) === null && bt.type !== 'payout' && bt.currency === currency &&
      (o.includePending === true || bt.availableOn * 1000 <= now()))
    const net = due.reduce((sum, bt) => sum + bt.net, 0)
    if (due.length === 0 || net <= 0) return null
    const id = newId('po')
    // Stripe's arrival_date is midnight UTC of the day the bank gets it: today when it is paid at once.
    const today = Math.floor(ts() / 86_400) * 86_400
    const own: BalanceTransaction = { id: newId('txn'), created: ts(), amount: -net, currency, description: 'STRIPE PAYOUT', fee: 0, feeDescription: '', net: -net, source: id, type: 'payout', reportingCategory: 'payout', availableOn: ts(), payout: id }
    balanceTransactions.set(own.id, own)
    const po: Payout = { id, created: ts(), amount: net, currency, arrivalDate: o.arrivalDate ?? today + (o.status === 'in_transit' ? 86_400 : 0), status: 'pending', balanceTransaction: own.id, transactions: due.map(bt => bt.id), failureBalanceTransaction: null, failureCode: null, failureMessage: null }
    for (const bt of due) bt.payout = id
    payouts.set(id, po)
    emit('payout.created', payoutWire(po), NO_REQUEST)
    if (o.status === 'in_transit') {
      po.status = 'in_transit'
      emit('payout.updated', payoutWire(po), NO_REQUEST)
    } else {
      po.status = 'paid'
      emit('payout.paid', payoutWire(po), NO_REQUEST)
    }
    return payoutWire(po)
  }

  function getPayout (id: string): Payout {
    const po = payouts.get(id)
    if (po === undefined) throw missing('payout', id)
    return po
  }

  /** A payout in transit lands. */
  function payPayout (id: string): Obj {
    const po = getPayout(id)
    if (po.status !== 'in_transit' && po.status !== 'pending') throw invalid(`This payout is ${po.status}; only a payout in transit can be paid.`)
    po.status = 'paid'
    emit('payout.paid', payoutWire(po), NO_REQUEST)
    return payoutWire(po)
  }

  /** The bank refused the payout (even after `paid`, as happens days later): the money returns to the balance. */
  function failPayout (id: string, code = 'account_closed'): Obj {
    const po = getPayout(id)
    if (po.status === 'failed' || po.status === 'canceled') throw invalid(`This payout is already ${po.status}.`)
    const back: BalanceTransaction = { id: newId('txn'), created: ts(), amount: po.amount, currency: po.currency, description: 'STRIPE PAYOUT FAILURE', fee: 0, feeDescription: '', net: po.amount, source: po.id, type: 'payout_failure', reportingCategory: 'payout_reversal', availableOn: ts() }
    balanceTransactions.set(back.id, back)
    po.status = 'failed'
    po.failureCode = code
    po.failureMessage = 'The bank account has been closed.'
    po.failureBalanceTransaction = back.id
    emit('payout.failed', payoutWire(po), NO_REQUEST)
    return payoutWire(po)
  }

  /** GET /v1/balance_transactions: newest first, cursor paging as Stripe's lists do. */
  function listBalanceTransactions (p: Params): Obj {
    only(p, ['payout', 'limit', 'starting_after', 'ending_before', 'type', 'currency', 'source'])
    const payout = str(p, 'payout')
    if (payout !== null) getPayout(payout)
    const type = str(p, 'type')
    const currency = str(p, 'currency')
    const source = str(p, 'source')
    const limit = int(p, 'limit') ?? 10
    if (limit < 1 || limit > 100) throw invalid('This value must be between 1 and 100.', { param: 'limit' })
    let all = [...balanceTransactions.values()].filter(bt => (payout === null || bt.payout === payout) && (type === null || bt.type === type) &&
      (currency === null || bt.currency === currency.toLowerCase()) && (source === null || bt.source === source)).reverse()
    const after = str(p, 'starting_after')
    const before = str(p, 'ending_before')
    if (after !== null) {
      const k = all.findIndex(bt => bt.id === after)
      if (k < 0) throw invalid(`Invalid starting_after: no such balance transaction ${after} in this list.`, { param: 'starting_after' })
      all = all.slice(k + 1)
    } else if (before !== null) {
      const k = all.findIndex(bt => bt.id === before)
      if (k < 0) throw invalid(`Invalid ending_before: no such balance transaction ${before} in this list.`, { param: 'ending_before' })
      all = all.slice(Math.max(0, k - limit), k)
      return { object: 'list', data: all.map(balanceTransactionWire), has_more: k - limit > 0, url: '/v1/balance_transactions' }
    }
    return { object: 'list', data: all.slice(0, limit).map(balanceTransactionWire), has_more: all.length > limit, url: '/v1/balance_transactions' }
  }

  // ---- operations (one per endpoint) ----

  function createCustomer (p: Params, _ctx: RequestContext): Obj {
    only(p, CUSTOMER_PARAMS)
    const c: Customer = { id: newId('cus'), created: ts(), email: str(p, 'email'), name: str(p, 'name'), description: str(p, 'description'), phone: str(p, 'phone'), metadata: metadata(p), invoicePrefix: chars(rand, 8).toUpperCase(), defaultPaymentMethod: null }
    const pmId = str(p, 'payment_method')
    const pm = pmId === null ? null : usePm(pmId, null)
    customers.set(c.id, c)
    if (pm !== null) attach(pm, c.id)
    applyInvoiceSettings(c, p)
    return customerWire(c)
  }

  function applyInvoiceSettings (c: Customer, p: Params): void {
    const is = hash(p, 'invoice_settings')
    if (is === null || is.default_payment_method === undefined) return
    const id = str(is, 'default_payment_method', 'invoice_settings[default_payment_method]')
    if (id !== null) {
      const pm = paymentMethods.get(id)
      if (pm === undefined || pm.customer !== c.id) throw invalid(`No such PaymentMethod: '${id}'; It may not belong to this customer.`, { param: 'invoice_settings[default_payment_method]', code: 'resource_missing' })
    }
    c.defaultPaymentMethod = id
  }

  function updateCustomer (id: string, p: Params): Obj {
    const c = getCustomer(id)
    only(p, CUSTOMER_PARAMS.filter(k => k !== 'payment_method'))
    if (p.email !== undefined) c.email = str(p, 'email')
    if (p.name !== undefined) c.name = str(p, 'name')
    if (p.description !== undefined) c.description = str(p, 'description')
    if (p.phone !== undefined) c.phone = str(p, 'phone')
    applyInvoiceSettings(c, p)
    metadata(p, c.metadata)
    return customerWire(c)
  }

  function listCustomerPaymentMethods (id: string, p: Params): Obj {
    getCustomer(id)
    const type = str(p, 'type')
    const limit = int(p, 'limit') ?? 10
    const all = [...paymentMethods.values()].filter(pm => pm.customer === id && (type === null || pm.spec.type === type)).reverse()
    return { object: 'list', data: all.slice(0, limit).map(paymentMethodWire), has_more: all.length > limit, url: `/v1/customers/${id}/payment_methods` }
  }

  function retrievePaymentMethod (id: string): Obj {
    if (isTestPaymentMethod(id)) return paymentMethodWire(concretePm(id, null))
    const pm = paymentMethods.get(id)
    if (pm === undefined) throw missing('PaymentMethod', id)
    return paymentMethodWire(pm)
  }

  function attachPaymentMethod (id: string, p: Params): Obj {
    only(p, ['customer'])
    const customer = str(p, 'customer')
    if (customer === null) throw invalid('Missing required param: customer.', { param: 'customer', code: 'parameter_missing' })
    getCustomer(customer, 'customer')
    const pm = isTestPaymentMethod(id) ? concretePm(id, null) : paymentMethods.get(id)
    if (pm === undefined) throw missing('PaymentMethod', id)
    return paymentMethodWire(attach(pm, customer))
  }

  function detachPaymentMethod (id: string): Obj {
    const pm = paymentMethods.get(id)
    if (pm === undefined) throw missing('PaymentMethod', id)
    if (pm.customer === null) throw invalid('The payment method you provided is not attached to a customer so detachment is impossible.', { param: 'payment_method' })
    const c = customers.get(pm.customer)
    if (c !== undefined && c.defaultPaymentMethod === pm.id) c.defaultPaymentMethod = null
    pm.customer = null
    return paymentMethodWire(pm)
  }

  function createSetupIntent (p: Params, ctx: RequestContext): Obj {
    only(p, SI_CREATE_PARAMS)
    const customer = str(p, 'customer')
    if (customer !== null) getCustomer(customer, 'customer')
    const usage = str(p, 'usage') ?? 'off_session'
    if (usage !== 'off_session' && usage !== 'on_session') throw invalid(`Invalid usage: must be one of off_session or on_session`, { param: 'usage' })
    const types = allowedTypes(p)
    const pmId = str(p, 'payment_method')
    const confirm = bool(p, 'confirm') ?? false
    const acceptance = mandateAcceptance(p, now())
    const pm = pmId === null ? null : usePm(pmId, customer)
    const id = newId('seti')
    const si: SetupIntent = { id, created: ts(), secret: `${id}_secret_${chars(rand, 32)}`, customer, description: str(p, 'description'), metadata: metadata(p), status: pm === null ? 'requires_payment_method' : 'requires_confirmation', usage, paymentMethod: pm?.id ?? null, mandate: null, types, nextAction: null, lastSetupError: null }
    setupIntents.set(si.id, si)
    if (!confirm) return setupIntentWire(si)
    try {
      return doConfirmSetup(si, null, acceptance, ctx)
    } catch (err) {
      if (err instanceof StripeApiError && !err.saved) setupIntents.delete(si.id)
      throw err
    }
  }

  function confirmSetupIntent (id: string, p: Params, ctx: RequestContext): Obj {
    const si = getSi(id)
    if (ctx.client !== undefined) {
      only(p, [...SI_CONFIRM_PARAMS, ...CLIENT_CONFIRM_PARAMS])
      requireClientSecret(p, si.secret, 'setup_intent')
    } else {
      only(p, SI_CONFIRM_PARAMS)
    }
    const pmId = str(p, 'payment_method')
    const acceptance = mandateAcceptance(p, now(), ctx.client)
    const data = hash(p, 'payment_method_data')
    const pm = data !== null ? pmFromData(data) : pmId === null ? null : usePm(pmId, si.customer)
    return doConfirmSetup(si, pm, acceptance, ctx)
  }

  /** A browser holding only the publishable key proves which object it may touch with its client secret. */
  function requireClientSecret (p: Params, secret: string, kind: string): void {
    if (str(p, 'client_secret') !== secret) throw new StripeApiError(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'client_secret', message: `The client_secret provided does not match any associated ${kind.replace('_', ' ')}.` })
  }

  /**
   * What Stripe.js sends from the payment form: the card number or bank
   * account goes to Stripe, never to the merchant. Test numbers pick the
   * behaviour; anything else is refused as Stripe's test mode does.
   */
  function pmFromData (data: Params): PaymentMethod {
    const type = str(data, 'type', 'payment_method_data[type]')
    const billing = hash(data, 'billing_details')
    const addr = billing === null ? null : hash(billing, 'address')
    const billingWire: Obj = {
      address: { ...address(), ...(addr === null ? {} : Object.fromEntries(['city', 'country', 'line1', 'line2', 'postal_code', 'state'].map(k => [k, str(addr, k)]))) },
      email: billing === null ? null : str(billing, 'email'),
      name: billing === null ? null : str(billing, 'name'),
      phone: null,
      tax_id: null
    }
    if (type === 'card') {
      const card = hash(data, 'card')
      const number = (card === null ? '' : str(card, 'number') ?? '').replace(/[\s-]/g, '')
      if (!/^\d+$/.test(number) || !luhnValid(number)) throw new StripeApiError(402, { type: 'card_error', code: 'incorrect_number', param: 'number', message: 'Your card number is incorrect.' })
      const alias = TEST_CARD_NUMBERS[number]
      if (alias === undefined) throw new StripeApiError(402, { type: 'card_error', code: 'card_declined', decline_code: 'test_mode_live_card', message: 'Your card was declined. Your request was in test mode, but used a non test card. For a list of valid test cards, visit: https://stripe.com/docs/testing.' })
      const month = int(card as Params, 'exp_month')
      const year = int(card as Params, 'exp_year')
      if (month === null || month < 1 || month > 12) throw new StripeApiError(402, { type: 'card_error', code: 'invalid_expiry_month', param: 'exp_month', message: "Your card's expiration month is invalid." })
      const fullYear = year === null ? 0 : year < 100 ? 2000 + year : year
      const current = new Date(now())
      if (fullYear < current.getUTCFullYear() || (fullYear === current.getUTCFullYear() && month < current.getUTCMonth() + 1)) throw new StripeApiError(402, { type: 'card_error', code: 'invalid_expiry_year', param: 'exp_year', message: "Your card's expiration year is invalid." })
      const cvc = str(card as Params, 'cvc')
      if (cvc === null || !/^\d{3,4}$/.test(cvc)) throw new StripeApiError(402, { type: 'card_error', code: 'incorrect_cvc', param: 'cvc', message: "Your card's security code is incorrect." })
      const pm = concretePm(alias, null)
      pm.billing = billingWire
      pm.exp = { month, year: fullYear }
      return pm
    }
    if (type === 'us_bank_account') {
      const bank = hash(data, 'us_bank_account')
      const routing = bank === null ? null : str(bank, 'routing_number')
      const account = bank === null ? null : str(bank, 'account_number')
      if (routing !== TEST_ROUTING_NUMBER) throw invalid('Invalid routing number: use 110000000 in test mode.', { param: 'payment_method_data[us_bank_account][routing_number]', code: 'routing_number_invalid' })
      const alias = account === null ? undefined : TEST_BANK_ACCOUNTS[account]
      if (alias === undefined) throw invalid('Invalid account number: use one of the test account numbers.', { param: 'payment_method_data[us_bank_account][account_number]', code: 'account_number_invalid' })
      if (billingWire.name === null) throw invalid('Missing required param: payment_method_data[billing_details][name].', { param: 'payment_method_data[billing_details][name]', code: 'parameter_missing' })
      const pm = concretePm(alias, null)
      pm.billing = billingWire
      return pm
    }
    throw invalid('Invalid payment_method_data[type]: must be card or us_bank_account.', { param: 'payment_method_data[type]' })
  }

  /**
   * The cardholder's answer to their bank's challenge (3D Secure). Stripe.js
   * runs the challenge in its own frame; the stand-in takes the answer here.
   */
  function authenticateSetupIntent (id: string, p: Params, ctx: RequestContext): Obj {
    const si = getSi(id)
    only(p, ['client_secret', 'key', 'result'])
    requireClientSecret(p, si.secret, 'setup_intent')
    if (si.status !== 'requires_action') throw invalid(`You cannot authenticate this SetupIntent because it has a status of ${si.status}.`, { code: 'setup_intent_unexpected_state' })
    const pm = paymentMethods.get(si.paymentMethod ?? '') as PaymentMethod
    if (str(p, 'result') !== 'approve') {
      si.status = 'requires_payment_method'
      si.nextAction = null
      si.lastSetupError = { type: 'invalid_request_error', code: 'setup_intent_authentication_failure', message: 'We are unable to authenticate your payment method. Please choose a different payment method and try again.', payment_method: paymentMethodWire(pm) }
      emit('setup_intent.setup_failed', setupIntentWire(si), ctx)
      return setupIntentWire(si)
    }
    if (si.customer !== null) attach(pm, si.customer)
    si.status = 'succeeded'
    si.nextAction = null
    emit('setup_intent.succeeded', setupIntentWire(si), ctx)
    return setupIntentWire(si)
  }

  function doConfirmSetup (si: SetupIntent, newPm: PaymentMethod | null, acceptance: Obj | null, ctx: RequestContext): Obj {
    if (!PI_STATUSES_CONFIRMABLE.includes(si.status)) throw invalid(`You cannot confirm this SetupIntent because it has a status of ${si.status}.`, { code: 'setup_intent_unexpected_state' })
    if (newPm !== null) si.paymentMethod = newPm.id
    const pm = si.paymentMethod === null ? undefined : paymentMethods.get(si.paymentMethod)
    if (pm === undefined) throw invalid("You cannot confirm this SetupIntent because it's missing a payment method. Update the SetupIntent with a payment method and then confirm it again.", { param: 'payment_method', code: 'setup_intent_unexpected_state' })
    if (!si.types.includes(pm.spec.type)) throw invalid(`The PaymentMethod provided (${pm.spec.type}) is not allowed for this SetupIntent.`, { param: 'payment_method', code: 'payment_method_invalid_parameter' })
    if (pm.spec.type === 'us_bank_account') {
      if (acceptance === null) throw invalid('A mandate is required to set up a us_bank_account PaymentMethod: provide mandate_data[customer_acceptance].', { param: 'mandate_data', code: 'setup_intent_mandate_invalid' })
      si.mandate = createMandate(pm, acceptance).id
    } else if (pm.spec.behaviour.kind === 'authentication_required' || (pm.spec.type === 'card' && pm.spec.setupNeedsAuthentication === true)) {
      si.status = 'requires_action'
      si.nextAction = threeDsAction()
      return setupIntentWire(si)
    } else if (pm.spec.behaviour.kind === 'decline' && pm.spec.setupSucceeds !== true) {
      si.status = 'requires_payment_method'
      si.lastSetupError = { ...cardDeclineError(pm.spec.behaviour.decline), payment_method: paymentMethodWire(pm) }
      emit('setup_intent.setup_failed', setupIntentWire(si), ctx)
      throw new StripeApiError(402, { ...cardDeclineError(pm.spec.behaviour.decline), payment_method: paymentMethodWire(pm), setup_intent: setupIntentWire(si) }, true)
    }
    if (si.customer !== null) attach(pm, si.customer)
    si.status = 'succeeded'
    si.nextAction = null
    si.lastSetupError = null
    emit('setup_intent.succeeded', setupIntentWire(si), ctx)
    return setupIntentWire(si)
  }

  function createPaymentIntent (p: Params, ctx: RequestContext): Obj {
    only(p, PI_CREATE_PARAMS)
    const amount = amountParam(p, true) as number
    const currency = str(p, 'currency')
    if (currency === null) throw invalid('Missing required param: currency.', { param: 'currency', code: 'parameter_missing' })
    if (!/^[a-z]{3}$/.test(currency)) throw invalid(`Invalid currency: ${currency}. Stripe currently supports these currencies: usd, eur, gbp, cad, aud, ...`, { param: 'currency', code: 'parameter_invalid_string' })
    if (currency === 'usd' && amount < 50) throw invalid('Amount must be at least $0.50 usd', { param: 'amount', code: 'amount_too_small' })
    const capture = str(p, 'capture_method')
    if (capture !== null && capture !== 'automatic' && capture !== 'automatic_async') throw invalid(`capture_method=${capture} is not supported by the Settle Stripe sandbox.`, { param: 'capture_method' })
    const customer = str(p, 'customer')
    if (customer !== null) getCustomer(customer, 'customer')
    const sfu = str(p, 'setup_future_usage')
    if (sfu !== null && sfu !== 'off_session' && sfu !== 'on_session') throw invalid('Invalid setup_future_usage: must be one of off_session or on_session', { param: 'setup_future_usage' })
    if (sfu !== null && customer === null) throw invalid('setup_future_usage requires a customer.', { param: 'customer' })
    const types = allowedTypes(p)
    const confirm = bool(p, 'confirm') ?? false
    const offSession = bool(p, 'off_session')
    if (offSession !== null && !confirm) throw invalid('off_session can only be set when confirm=true.', { param: 'off_session' })
    const acceptance = mandateAcceptance(p, now())
    const pmId = str(p, 'payment_method')
    const pm = pmId === null ? null : usePm(pmId, customer)
    const id = newId('pi')
    const pi: PaymentIntent = {
      id, created: ts(), secret: `${id}_secret_${chars(rand, 25)}`, amount, amountReceived: 0, currency, customer, description: str(p, 'description'), metadata: metadata(p), status: pm === null ? 'requires_payment_method' : 'requires_confirmation', paymentMethod: pm?.id ?? null, latestCharge: null, lastPaymentError: null, nextAction: null, canceledAt: null, cancellationReason: null, types, setupFutureUsage: sfu, receiptEmail: str(p, 'receipt_email'), statementDescriptor: str(p, 'statement_descriptor'), statementDescriptorSuffix: str(p, 'statement_descriptor_suffix'), mandate: null
    }
    paymentIntents.set(pi.id, pi)
    const created = (): void => { emit('payment_intent.created', paymentIntentWire(pi), ctx) }
    if (!confirm) {
      created()
      return paymentIntentWire(pi)
    }
    try {
      return doConfirmPayment(pi, null, offSession ?? false, acceptance, str(p, 'mandate'), ctx, created)
    } catch (err) {
      // a request that fails validation creates nothing, as in Stripe
      if (err instanceof StripeApiError && !err.saved) paymentIntents.delete(pi.id)
      throw err
    }
  }

  function confirmPaymentIntent (id: string, p: Params, ctx: RequestContext): Obj {
    const pi = getPi(id)
    only(p, PI_CONFIRM_PARAMS)
    const acceptance = mandateAcceptance(p, now())
    const pmId = str(p, 'payment_method')
    const sfu = str(p, 'setup_future_usage')
    if (sfu !== null) pi.setupFutureUsage = sfu
    return doConfirmPayment(pi, pmId === null ? null : usePm(pmId, pi.customer), bool(p, 'off_session') ?? false, acceptance, str(p, 'mandate'), ctx)
  }

  function doConfirmPayment (pi: PaymentIntent, newPm: PaymentMethod | null, offSession: boolean, acceptance: Obj | null, mandateId: string | null, ctx: RequestContext, validated: () => void = () => {}): Obj {
    if (!PI_STATUSES_CONFIRMABLE.includes(pi.status)) {
      throw invalid(`You cannot confirm this PaymentIntent because it has a status of ${pi.status}.`, { code: 'payment_intent_unexpected_state' })
    }
    if (newPm !== null) pi.paymentMethod = newPm.id
    const pm = pi.paymentMethod === null ? undefined : paymentMethods.get(pi.paymentMethod)
    if (pm === undefined) throw invalid("You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the PaymentIntent with a payment method, provide payment_method.", { param: 'payment_method', code: 'payment_intent_unexpected_state' })
    if (!pi.types.includes(pm.spec.type)) throw invalid(`The PaymentMethod provided (${pm.spec.type}) is not allowed for this PaymentIntent.`, { param: 'payment_method', code: 'payment_intent_incompatible_payment_method' })
    const keep = (): void => { if (pi.setupFutureUsage !== null && pi.customer !== null) attach(pm, pi.customer) }

    if (pm.spec.type === 'us_bank_account') {
      if (pi.currency !== 'usd') throw invalid('us_bank_account payments must be in usd.', { param: 'currency' })
      let mandate = mandateId === null ? undefined : mandates.get(mandateId)
      if (mandateId !== null && (mandate === undefined || mandate.paymentMethod !== pm.id)) throw invalid(`No such mandate for this PaymentMethod: '${mandateId}'`, { param: 'mandate', code: 'resource_missing' })
      if (mandate === undefined && acceptance === null) mandate = mandateFor(pm.id)
      if (mandate === undefined && acceptance === null) throw invalid('This PaymentIntent requires a mandate, but no existing mandate was found. Collect mandate acceptance from the customer and try again, providing acceptance data in the mandate_data parameter.', { param: 'mandate_data', code: 'payment_intent_mandate_invalid' })
      validated()
      mandate ??= createMandate(pm, acceptance as Obj)
      pi.mandate = mandate.id
      keep()
      const ch = newCharge(pi, pm, 'pending')
      ch.outcome = outcome('authorized', 'approved_by_network', null, 'Payment complete.')
      pi.status = 'processing'
      pi.lastPaymentError = null
      pi.nextAction = null
      emit('charge.pending', chargeWire(ch), ctx)
      emit('payment_intent.processing', paymentIntentWire(pi), ctx)
      schedule('ach', ch.id, achSettleMs)
      return paymentIntentWire(pi)
    }

    validated()
    if (pm.spec.behaviour.kind === 'authentication_required' && !offSession) {
      pi.status = 'requires_action'
      pi.nextAction = threeDsAction()
      emit('payment_intent.requires_action', paymentIntentWire(pi), ctx)
      return paymentIntentWire(pi)
    }
    const decline = declineFor(pm, offSession)
    const ch = newCharge(pi, pm, 'pending')
    if (decline !== null) {
      const error = cardDeclineError(decline)
      failCharge(pi, ch, pm, error)
      emit('charge.failed', chargeWire(ch), ctx)
      emit('payment_intent.payment_failed', paymentIntentWire(pi), ctx)
      // the SDK surfaces these as StripeCardError with .payment_intent and .payment_method
      throw new StripeApiError(402, { ...error, charge: ch.id, payment_intent: paymentIntentWire(pi), payment_method: paymentMethodWire(pm) }, true)
    }
    keep()
    captureFunds(pi, ch, pm)
    emit('charge.succeeded', chargeWire(ch), ctx)
    emit('payment_intent.succeeded', paymentIntentWire(pi), ctx)
    if (pm.spec.behaviour.kind === 'dispute') schedule('dispute', ch.id, 0)
    return paymentIntentWire(pi)
  }

  function cancelPaymentIntent (id: string, p: Params, ctx: RequestContext): Obj {
    const pi = getPi(id)
    only(p, ['cancellation_reason'])
    const reason = str(p, 'cancellation_reason')
    if (reason !== null && !['duplicate', 'fraudulent', 'requested_by_customer', 'abandoned'].includes(reason)) throw invalid('Invalid cancellation_reason: must be one of duplicate, fraudulent, requested_by_customer, or abandoned', { param: 'cancellation_reason' })
    if (!PI_STATUSES_CANCELABLE.includes(pi.status)) {
      throw invalid(`You cannot cancel this PaymentIntent because it has a status of ${pi.status}. Only a PaymentIntent with one of the following statuses may be canceled: ${PI_STATUSES_CANCELABLE.join(', ')}.`, { code: 'payment_intent_unexpected_state' })
    }
    pi.status = 'canceled'
    pi.canceledAt = ts()
    pi.cancellationReason = reason
    pi.nextAction = null
    emit('payment_intent.canceled', paymentIntentWire(pi), ctx)
    return paymentIntentWire(pi)
  }

  /** Stripe's search language, the part Settle needs: `field:'value'` clauses joined by AND or by OR. */
  function searchPaymentIntents (p: Params): Obj {
    const query = str(p, 'query')
    if (query === null) throw invalid('Missing required param: query.', { param: 'query', code: 'parameter_missing' })
    const hasAnd = / AND /.test(query)
    const hasOr = / OR /.test(query)
    if (hasAnd && hasOr) throw invalid('Search queries cannot combine AND and OR.', { param: 'query' })
    const clauses = query.split(hasOr ? / OR / : / AND /).map(s => s.trim())
    const tests = clauses.map(clause => {
      const m = /^(-?)(metadata\[(?:'([^']*)'|"([^"]*)")\]|[a-z_]+):(?:'([^']*)'|"([^"]*)"|(\d+))$/.exec(clause)
      if (m === null) throw invalid(`We were unable to parse your search query. Try using the format \`metadata["key"]:"value"\` to query for metadata or \`key:"value"\` to query for other fields. Could not parse: ${clause}`, { param: 'query' })
      const negate = m[1] === '-'
      const metaKey = m[3] ?? m[4]
      const value = m[5] ?? m[6] ?? m[7] ?? ''
      const field = metaKey === undefined ? m[2] as string : 'metadata'
      const get: Record<string, (pi: PaymentIntent) => string | number | null | undefined> = {
        metadata: pi => pi.metadata[metaKey ?? ''],
        status: pi => pi.status,
        customer: pi => pi.customer,
        currency: pi => pi.currency,
        amount: pi => pi.amount
      }
      const read = get[field]
      if (read === undefined) throw invalid(`Field \`${field}\` is an unsupported search field for resource \`payment_intents\`.`, { param: 'query' })
      return (pi: PaymentIntent): boolean => (String(read(pi) ?? '\u0000') === value) !== negate
    })
    const hits = [...paymentIntents.values()].filter(pi => hasOr ? tests.some(f => f(pi)) : tests.every(f => f(pi))).reverse()
    const limit = Math.min(Math.max(int(p, 'limit') ?? 10, 1), 100)
    const page = str(p, 'page')
    const start = page === null ? 0 : Number.parseInt(page.replace(/^page_/, ''), 10) || 0
    const data = hits.slice(start, start + limit)
    const more = start + limit < hits.length
    return { object: 'search_result', data: data.map(paymentIntentWire), has_more: more, next_page: more ? `page_${start + limit}` : null, url: '/v1/payment_intents/search' }
  }

  function createRefund (p: Params, ctx: RequestContext): Obj {
    only(p, ['payment_intent', 'charge', 'amount', 'metadata', 'reason'])
    const piId = str(p, 'payment_intent')
    const chId = str(p, 'charge')
    if (piId === null && chId === null) throw invalid('Missing required param: payment_intent or charge.', { param: 'payment_intent', code: 'parameter_missing' })
    let ch: Charge | undefined
    if (chId !== null) {
      ch = charges.get(chId)
      if (ch === undefined) throw missing('charge', chId, 'charge')
    } else {
      const pi = paymentIntents.get(piId as string)
      if (pi === undefined) throw missing('payment_intent', piId as string, 'payment_intent')
      ch = pi.latestCharge === null ? undefined : charges.get(pi.latestCharge)
      if (ch === undefined || ch.status !== 'succeeded') throw invalid(`This PaymentIntent (${pi.id}) does not have a successful charge to refund.`, { param: 'payment_intent' })
    }
    if (ch.status !== 'succeeded') throw invalid(`Charge ${ch.id} has not succeeded; it cannot be refunded.`, { param: 'charge' })
    if (ch.disputed) throw invalid(`Charge ${ch.id} has been charged back; cannot issue a refund.`, { code: 'charge_disputed' })
    const remaining = ch.amount - ch.amountRefunded
    if (remaining === 0) throw invalid(`Charge ${ch.id} has already been refunded.`, { code: 'charge_already_refunded' })
    const amount = amountParam(p, false) ?? remaining
    const dollars = (c: number): string => `$${(c / 100).toFixed(2)}`
    if (amount > remaining) throw invalid(`Refund amount (${dollars(amount)}) is greater than unrefunded amount on charge (${dollars(remaining)})`, { param: 'amount' })
    const reason = str(p, 'reason')
    if (reason !== null && !['duplicate', 'fraudulent', 'requested_by_customer'].includes(reason)) throw invalid('Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer', { param: 'reason' })
    const pm = paymentMethods.get(ch.paymentMethod)
    // Stripe keeps its processing fee on a refund
    const bt: BalanceTransaction = { id: newId('txn'), created: ts(), amount: -amount, currency: ch.currency, description: 'REFUND FOR CHARGE', fee: 0, feeDescription: '', net: -amount, source: '', type: 'refund', reportingCategory: 'refund', availableOn: ts() }
    const r: Refund = { id: newId('re'), created: ts(), amount, currency: ch.currency, charge: ch.id, paymentIntent: ch.paymentIntent, balanceTransaction: bt.id, metadata: metadata(p), reason, bank: pm?.spec.type === 'us_bank_account' }
    bt.source = r.id
    balanceTransactions.set(bt.id, bt)
    refunds.set(r.id, r)
    ch.amountRefunded += amount
    ch.refunds.unshift(r.id)
    emit('refund.created', refundWire(r), ctx)
    emit('charge.refunded', chargeWire(ch), ctx)
    return refundWire(r)
  }

  function retrieve (kind: string, id: string, prefix: string): Obj {
    const o = id.startsWith(`${prefix}_`) ? render(id) : null
    if (o === null) throw missing(kind, id)
    return o
  }

  return {
    seed,
    now,
    requestId,
    customers,
    paymentMethods,
    mandates,
    setupIntents,
    paymentIntents,
    charges,
    balanceTransactions,
    refunds,
    disputes,
    payouts,
    events,
    idempotency,
    render,
    createCustomer,
    retrieveCustomer: (id: string): Obj => customerWire(getCustomer(id)),
    updateCustomer,
    listCustomerPaymentMethods,
    retrievePaymentMethod,
    attachPaymentMethod,
    detachPaymentMethod,
    createSetupIntent,
    confirmSetupIntent,
    authenticateSetupIntent,
    retrieveSetupIntent: (id: string): Obj => setupIntentWire(getSi(id)),
    createPaymentIntent,
    confirmPaymentIntent,
    cancelPaymentIntent,
    retrievePaymentIntent: (id: string): Obj => paymentIntentWire(getPi(id)),
    searchPaymentIntents,
    retrieveCharge: (id: string): Obj => retrieve('charge', id, 'ch'),
    retrieveBalanceTransaction: (id: string): Obj => retrieve('balance transaction', id, 'txn'),
    retrieveRefund: (id: string): Obj => retrieve('refund', id, 're'),
    retrieveDispute: (id: string): Obj => retrieve('dispute', id, 'dp'),
    retrieveMandate: (id: string): Obj => retrieve('mandate', id, 'mandate'),
    retrieveEvent: (id: string): Obj => retrieve('event', id, 'evt'),
    createRefund,
    closeDispute,
    runPayout,
    payPayout,
    failPayout,
    retrievePayout: (id: string): Obj => payoutWire(getPayout(id)),
    listBalanceTransactions,
    /** Set where and how events are delivered (the plugin calls this). */
    configure (cfg: DeliveryConfig): void { config = { ...cfg } },
    pendingDeliveries: (): PendingDelivery[] => outbox.map(d => ({ ...d })),
    flushEvents,
    /** Move the virtual clock forward and run what fell due (ACH outcomes, disputes); returns how many ran. */
    advance (ms: number): number {
      offset += Math.max(0, ms)
      const t = now()
      return runTasks(task => task.dueAt <= t)
    },
    /** Settle every processing ACH payment now, whatever the clock says. */
    settleAch: (): number => runTasks(task => task.kind === 'ach'),
    /** Run every scheduled transition, including ones scheduled by those (late returns). */
    runAll: (): number => runTasks(() => true),
    scheduled: (): Array<{ kind: string, ref: string, dueAt: number }> => tasks.map(t => ({ kind: t.kind, ref: t.ref, dueAt: t.dueAt })),
    /** Stop real-time timers (the plugin calls this when the server closes). */
    close (): void {
      for (const t of timers) clearTimeout(t)
      timers.clear()
      if (flushTimer !== null) clearTimeout(flushTimer)
      flushTimer = null
    }
  }
}
