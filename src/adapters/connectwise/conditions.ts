/**
 * A tiny builder for ConnectWise's `conditions` query language. Every value
 * that reaches a query string goes through `literal`, so user input can never
 * change the shape of a condition (quotes and backslashes are escaped, field
 * names are checked, dates are formatted by us).
 */
export type ConditionValue = string | number | boolean | null | Date
export type ComparisonOperator = '=' | '!=' | '<' | '<=' | '>' | '>='
export type Operator = ComparisonOperator | 'like' | 'not like' | 'contains' | 'in' | 'not in'

/** An already-rendered, safe condition. Only this module constructs one. */
export class Condition {
  readonly #text: string
  private constructor (text: string) { this.#text = text }
  toString (): string { return this.#text }
  /** @internal */
  static of (text: string): Condition { return new Condition(text) }
}

const FIELD = /^[A-Za-z_][A-Za-z0-9_]*(\/[A-Za-z_][A-Za-z0-9_]*)*$/

function field (name: string): string {
  if (!FIELD.test(name)) throw new TypeError(`Not a ConnectWise field path: ${JSON.stringify(name)}`)
  return name
}

/** ISO UTC to the second: ConnectWise stamps carry no milliseconds, and flooring keeps `>=` inclusive. */
export function formatDate (date: Date): string {
  if (Number.isNaN(date.getTime())) throw new TypeError('Invalid date in a condition')
  return `[${date.toISOString().replace(/\.\d{3}Z$/, 'Z')}]`
}

/** One value as the conditions language spells it. */
export function literal (value: ConditionValue): string {
  if (value === null) return 'null'
  if (value instanceof Date) return formatDate(value)
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('Non-finite number in a condition')
    return String(value)
  }
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

export function cond (name: string, op: '=' | '!=', value: ConditionValue): Condition
export function cond (name: string, op: '<' | '<=' | '>' | '>=', value: number | Date | string): Condition
export function cond (name: string, op: 'like' | 'not like' | 'contains', value: string): Condition
export function cond (name: string, op: 'in' | 'not in', value: ReadonlyArray<string | number>): Condition
export function cond (name: string, op: Operator, value: ConditionValue | ReadonlyArray<string | number>): Condition {
  if (Array.isArray(value)) {
    if (op !== 'in' && op !== 'not in') throw new TypeError(`Operator ${op} takes one value`)
    if (value.length === 0) throw new TypeError('An `in` list needs at least one value')
    return Condition.of(`${field(name)} ${op} (${(value as ReadonlyArray<string | number>).map(v => literal(v)).join(', ')})`)
  }
  if (op === 'in' || op === 'not in') throw new TypeError(`Operator ${op} takes a list`)
  return Condition.of(`${field(name)} ${op} ${literal(value as ConditionValue)}`)
}

function join (word: 'and' | 'or', parts: ReadonlyArray<Condition | undefined>): Condition | undefined {
  const present = parts.filter((p): p is Condition => p !== undefined)
  if (present.length === 0) return undefined
  if (present.length === 1) return present[0]
  return Condition.of(present.map(p => `(${p.toString()})`).join(` ${word} `))
}

/** All of the parts; undefined parts are skipped (optional filters). */
export const and = (...parts: Array<Condition | undefined>): Condition | undefined => join('and', parts)
export const or = (...parts: Array<Condition | undefined>): Condition | undefined => join('or', parts)
