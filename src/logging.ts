import type { LoggerOptions } from 'pino'

/**
 * Fields that must never reach a log line: credentials, signatures, tokens,
 * card and bank details. Listed at the depths our objects actually nest.
 */
const SENSITIVE_KEYS = [
  'password', 'secret', 'token', 'apiKey', 'api_key', 'privateKey', 'private_key', 'accessToken', 'access_token',
  'refreshToken', 'refresh_token', 'clientSecret', 'client_secret', 'webhookSecret', 'encryptionKeys', 'databaseUrl',
  'authorization', 'cookie', 'cardNumber', 'card_number', 'cvc', 'cvv', 'exp_month', 'exp_year', 'accountNumber',
  'account_number', 'routingNumber', 'routing_number', 'iban', 'memberHash'
]

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["stripe-signature"]',
  'req.headers["x-content-signature"]',
  'req.headers["intuit-signature"]',
  'req.headers.apiintegrationcode',
  'req.headers.secret',
  'res.headers["set-cookie"]',
  'card.number', '*.card.number', '*.*.card.number',
  ...SENSITIVE_KEYS.flatMap(key => [key, `*.${key}`, `*.*.${key}`])
]

export function loggerOptions (level: string, production: boolean): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(production ? {} : { timestamp: () => `,"time":"${new Date().toISOString()}"` })
  }
}
