/**
 * Errors the domain raises. The domain stays free of HTTP, so it only names
 * the problem; `src/errors.ts` maps each code to a status for clients.
 */
export type DomainErrorCode =
  | 'INVALID_AMOUNT'
  | 'UNKNOWN_CURRENCY'
  | 'CURRENCY_MISMATCH'
  | 'NEGATIVE_AMOUNT'
  | 'INVALID_ALLOCATION'
  | 'UNBALANCED_ENTRY'
  | 'INVALID_ENTRY'
  | 'INVALID_ACCOUNT'
  | 'INVALID_DATE'

export class DomainError extends Error {
  readonly code: string

  constructor (code: DomainErrorCode, message: string) {
    super(message)
    this.name = 'DomainError'
    this.code = code
  }
}
