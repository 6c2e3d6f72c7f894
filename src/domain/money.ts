import { DomainError } from './errors.js'

/**
 * Money is an integer count of minor units (cents) with its currency.
 * Decimals exist only at the edges: `parseAmount` takes PSA/QuickBooks JSON in,
 * `toDecimalString` and `formatMoney` take it out.
 */
export interface Money {
  readonly amount: number
  readonly currency: Currency
}

/** Currencies Settle bills in, with their minor-unit exponent (ISO 4217). */
export const CURRENCIES = { USD: 2, CAD: 2, EUR: 2, GBP: 2, AUD: 2, NZD: 2 } as const
export type Currency = keyof typeof CURRENCIES

export function isCurrency (value: unknown): value is Currency {
  return typeof value === 'string' && Object.hasOwn(CURRENCIES, value)
}

export function asCurrency (value: unknown): Currency {
  if (!isCurrency(value)) {
    throw new DomainError('UNKNOWN_CURRENCY',
      `Unknown currency ${JSON.stringify(value)}: expected one of ${Object.keys(CURRENCIES).join(', ')}.`)
  }
  return value
}

export function money (amount: number, currency: Currency | string): Money {
  const cur = asCurrency(currency)
  if (!Number.isSafeInteger(amount)) {
    throw new DomainError('INVALID_AMOUNT', `Amount must be a whole number of minor units (cents); got ${String(amount)}.`)
  }
  return { amount, currency: cur }
}

export const zero = (currency: Currency): Money => ({ amount: 0, currency })

export type Rounding = 'reject' | 'half-away-from-zero'

const DECIMAL = /^([+-])?(\d+)(?:\.(\d+))?$/

/**
 * Parses a decimal amount from a wire payload ("1234.5", 1234.5, "-0.07") into
 * minor units. JSON numbers are read through their shortest decimal form, so
 * 0.1 + 0.2 style binary noise never leaks in. Extra precision is rejected
 * unless the caller asks for half-away-from-zero rounding (unit prices, rates).
 */
export function parseAmount (input: unknown, currency: Currency | string, rounding: Rounding = 'reject'): Money {
  const cur = asCurrency(currency)
  const text = decimalText(input)
  const match = DECIMAL.exec(text)
  if (match === null) {
    throw new DomainError('INVALID_AMOUNT', `Amount ${JSON.stringify(input)} is not a decimal number.`)
  }
  const [, sign, whole = '0', fraction = ''] = match
  const digits = CURRENCIES[cur]
  const significant = fraction.replace(/0+$/, '')
  let minor = BigInt(whole + fraction.slice(0, digits).padEnd(digits, '0'))
  if (significant.length > digits) {
    if (rounding === 'reject') {
      throw new DomainError('INVALID_AMOUNT',
        `Amount ${JSON.stringify(input)} has more than ${digits} decimal places for ${cur}.`)
    }
    if (Number(fraction[digits]) >= 5) minor += 1n
  }
  if (sign === '-') minor = -minor
  if (minor > BigInt(Number.MAX_SAFE_INTEGER) || minor < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new DomainError('INVALID_AMOUNT', `Amount ${JSON.stringify(input)} is too large.`)
  }
  // `-0` would compare equal but print oddly; normalise it.
  return { amount: Number(minor) + 0, currency: cur }
}

function decimalText (input: unknown): string {
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) {
      throw new DomainError('INVALID_AMOUNT', `Amount ${String(input)} is not a finite number.`)
    }
    // Shortest round-trip form; expand exponents (1e-7, 1e21) to plain digits.
    const text = String(input)
    return /e/i.test(text) ? expandExponent(text) : text
  }
  if (typeof input === 'string') return input.trim()
  throw new DomainError('INVALID_AMOUNT', `Amount must be a number or a decimal string; got ${input === null ? 'null' : typeof input}.`)
}

function expandExponent (text: string): string {
  const [mantissa = '', exponentText = '0'] = text.toLowerCase().split('e')
  const exponent = Number(exponentText)
  const negative = mantissa.startsWith('-')
  const [intPart = '', fracPart = ''] = mantissa.replace('-', '').split('.')
  const digits = intPart + fracPart
  const point = intPart.length + exponent
  const body = point <= 0
    ? '0.' + '0'.repeat(-point) + digits
    : point >= digits.length ? digits + '0'.repeat(point - digits.length) : digits.slice(0, point) + '.' + digits.slice(point)
  return (negative ? '-' : '') + body
}

/** The plain decimal string of an amount, e.g. for QuickBooks or PSA JSON: "1234.50". */
export function toDecimalString (m: Money): string {
  const digits: number = CURRENCIES[m.currency]
  const abs = Math.abs(m.amount).toString().padStart(digits + 1, '0')
  const text = digits === 0 ? abs : `${abs.slice(0, -digits)}.${abs.slice(-digits)}`
  return m.amount < 0 ? `-${text}` : text
}

// Building a NumberFormat costs ~0.1 ms, formatting with one a microsecond; pages format hundreds of amounts.
const moneyFormats = new Map<string, Intl.NumberFormat>()

/** What a person reads: "$1,234.50", "-CA$12.00". Intl formats the exact decimal string, never a float. */
export function formatMoney (m: Money, locale = 'en-US'): string {
  const key = `${locale}|${m.currency}`
  let format = moneyFormats.get(key)
  if (format === undefined) {
    format = new Intl.NumberFormat(locale, { style: 'currency', currency: m.currency })
    moneyFormats.set(key, format)
  }
  // Intl accepts decimal strings exactly (no binary rounding) since V8 10.6.
  return format.format(toDecimalString(m) as unknown as number)
}

function sameCurrency (a: Money, b: Money): void {
  if (a.currency !== b.currency) {
    throw new DomainError('CURRENCY_MISMATCH', `Cannot combine ${a.currency} with ${b.currency}; amounts in different currencies are never converted.`)
  }
}

export function add (a: Money, b: Money): Money {
  sameCurrency(a, b)
  return money(a.amount + b.amount, a.currency)
}

export function subtract (a: Money, b: Money): Money {
  sameCurrency(a, b)
  return money(a.amount - b.amount, a.currency)
}

export function negate (m: Money): Money {
  return { amount: -m.amount + 0, currency: m.currency }
}

export function sum (items: readonly Money[], currency: Currency): Money {
  return items.reduce((total, item) => add(total, item), zero(currency))
}

export function isZero (m: Money): boolean {
  return m.amount === 0
}

/**
 * Multiplies by a rate given in basis points (1% = 100), rounding half away
 * from zero (processor fees, late fees) or toward zero where the rate is a
 * legal ceiling that a rounded-up cent would break (card surcharges).
 */
export function percentOf (m: Money, basisPoints: number, rounding: 'half-away-from-zero' | 'toward-zero' = 'half-away-from-zero'): Money {
  if (!Number.isSafeInteger(basisPoints)) {
    throw new DomainError('INVALID_AMOUNT', `Rate must be whole basis points; got ${String(basisPoints)}.`)
  }
  const product = BigInt(m.amount) * BigInt(basisPoints)
  const quotient = product / 10000n
  const remainder = product % 10000n
  const abs = remainder < 0n ? -remainder : remainder
  const rounded = rounding === 'half-away-from-zero' && abs * 2n >= 10000n ? quotient + (product < 0n ? -1n : 1n) : quotient
  return money(Number(rounded), m.currency)
}

/**
 * Splits `total` into parts proportional to integer `weights`, handing the
 * remainder cents one at a time to the largest fractional shares (ties to the
 * earlier part), so the parts always add up to the whole and the result is
 * the same every time.
 */
export function allocate (total: Money, weights: readonly number[]): Money[] {
  if (weights.length === 0) {
    throw new DomainError('INVALID_ALLOCATION', 'Allocation needs at least one part.')
  }
  if (weights.some(w => !Number.isSafeInteger(w) || w < 0)) {
    throw new DomainError('INVALID_ALLOCATION', 'Allocation weights must be whole numbers of zero or more.')
  }
  const weightSum = weights.reduce((a, b) => a + b, 0)
  if (weightSum === 0) {
    throw new DomainError('INVALID_ALLOCATION', 'Allocation weights must not all be zero.')
  }
  const sign = total.amount < 0 ? -1n : 1n
  const whole = BigInt(Math.abs(total.amount))
  const bigSum = BigInt(weightSum)
  const shares = weights.map((w, index) => {
    const exact = whole * BigInt(w)
    return { index, base: exact / bigSum, fraction: exact % bigSum }
  })
  let left = whole - shares.reduce((acc, s) => acc + s.base, 0n)
  const order = [...shares].sort((a, b) => (b.fraction > a.fraction ? 1 : b.fraction < a.fraction ? -1 : a.index - b.index))
  for (const share of order) {
    if (left === 0n) break
    share.base += 1n
    left -= 1n
  }
  return shares.map(s => ({ amount: Number(s.base * sign) + 0, currency: total.currency }))
}

/** `n` near-equal parts (installments): the first parts carry the extra cents. */
export function split (total: Money, parts: number): Money[] {
  if (!Number.isSafeInteger(parts) || parts < 1) {
    throw new DomainError('INVALID_ALLOCATION', `Cannot split into ${String(parts)} parts; give a whole number of 1 or more.`)
  }
  return allocate(total, Array.from({ length: parts }, () => 1))
}
