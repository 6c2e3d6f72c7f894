import { DomainError, type DomainErrorCode } from './domain/errors.js'

/**
 * The error catalogue: every code a client can see, declared once with its
 * HTTP status. Messages are written for a person and never carry secrets or
 * stack traces.
 */
export const ERRORS = {
  // From the domain
  INVALID_AMOUNT: 400,
  UNKNOWN_CURRENCY: 400,
  CURRENCY_MISMATCH: 400,
  NEGATIVE_AMOUNT: 400,
  INVALID_ALLOCATION: 400,
  UNBALANCED_ENTRY: 422,
  INVALID_ENTRY: 400,
  INVALID_ACCOUNT: 400,
  INVALID_DATE: 400,
  // From the application
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  MALFORMED_REQUEST: 400,
  REQUEST_TIMEOUT: 408,
  URL_TOO_LONG: 414,
  HEADERS_TOO_LARGE: 431,
  TENANT_REQUIRED: 400,
  TENANT_NOT_FOUND: 404,
  CUSTOMER_NOT_FOUND: 404,
  ENTRY_NOT_FOUND: 404,
  INVOICE_NOT_FOUND: 404,
  PAYMENT_METHOD_NOT_FOUND: 404,
  ATTEMPT_NOT_FOUND: 404,
  API_KEY_NOT_FOUND: 404,
  PAYOUT_NOT_FOUND: 404,
  EXCEPTION_NOT_FOUND: 404,
  EXCEPTION_CLOSED: 409,
  ACCOUNTING_NOT_CONNECTED: 409,
  ACCOUNTING_RECONNECT_REQUIRED: 409,
  ACCOUNTING_CUSTOMER_TAKEN: 409,
  ACCOUNTING_REALM_TAKEN: 409,
  AMOUNT_EXCEEDS_BALANCE: 422,
  NOTHING_TO_CHARGE: 409,
  QUOTE_CHANGED: 409,
  PAYMENT_IN_PROGRESS: 409,
  CHARGE_LIMIT_REACHED: 409,
  INSTALLMENTS_DISABLED: 409,
  INSTALLMENTS_BELOW_MINIMUM: 422,
  INSTALLMENT_PARTS_INVALID: 422,
  INSTALLMENT_PLAN_EXISTS: 409,
  INSTALLMENT_PLAN_NOT_FOUND: 404,
  INSTALLMENT_PLAN_NOT_ACTIVE: 409,
  INSTALLMENT_TERMS_CHANGED: 409,
  REFUND_NOT_ALLOWED: 409,
  PSA_NOT_CONNECTED: 409,
  PROCESSOR_NOT_CONNECTED: 409,
  SYNC_IN_PROGRESS: 409,
  TIEOUT_IN_PROGRESS: 409,
  TIEOUT_NOT_FOUND: 404,
  UPSTREAM_FAILED: 502,
  RATE_BUDGET_EXHAUSTED: 503,
  WEBHOOK_SIGNATURE_INVALID: 401,
  PAY_LINK_INVALID: 404,
  PAY_LINK_EXPIRED: 410,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  SETUP_INCOMPLETE: 409,
  CHECKOUT_UNAVAILABLE: 409,
  PAYMENT_METHOD_IN_USE: 409,
  ROUTE_NOT_FOUND: 404,
  IDEMPOTENCY_KEY_REUSED: 409,
  ALREADY_REVERSED: 409,
  LEDGER_IMMUTABLE: 409,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  UNSUPPORTED_MEDIA_TYPE: 415,
  SECRET_NOT_FOUND: 404,
  SECRET_UNREADABLE: 500,
  NOT_READY: 503,
  INTERNAL: 500
} as const satisfies Record<DomainErrorCode | string, number>

export type ErrorCode = keyof typeof ERRORS

export class AppError extends Error {
  readonly code: ErrorCode
  readonly status: number

  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AppError'
    this.code = code
    this.status = ERRORS[code]
  }
}

export function isErrorCode (code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code)
}

/** Domain errors keep their code; anything unknown becomes INTERNAL with a safe message. */
export function toAppError (error: unknown): AppError {
  if (error instanceof AppError) return error
  if (error instanceof DomainError && isErrorCode(error.code)) return new AppError(error.code, error.message, { cause: error })
  return new AppError('INTERNAL', 'Something went wrong on our side. It has been logged; please try again.', { cause: error })
}

export function errorBody (error: AppError): { error: { code: ErrorCode, message: string } } {
  return { error: { code: error.code, message: error.message } }
}
