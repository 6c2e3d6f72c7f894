/**
 * Parser and evaluator for the subset of ConnectWise's `conditions` language
 * the stand-in accepts: comparisons (= != < <= > >= like contains in, with
 * `not` forms), and/or with parentheses, values as "strings" (\" and \\
 * escapes), [dates], numbers, true/false, null, and (lists).
 */
export type Value = string | number | boolean | null | Date | Value[]
export type Node =
  | { kind: 'cmp', field: string, op: string, value: Value }
  | { kind: 'and' | 'or', left: Node, right: Node }

export class ConditionSyntaxError extends Error {
  override readonly name = 'ConditionSyntaxError'
}

export function parseConditions (text: string): Node {
  let pos = 0
  const ws = (): void => { while (pos < text.length && /\s/.test(text[pos] ?? '')) pos++ }
  const fail = (what: string): never => { throw new ConditionSyntaxError(`conditions: expected ${what} at position ${pos}`) }
  const word = (w: string): boolean => {
    ws()
    const slice = text.slice(pos, pos + w.length).toLowerCase()
    if (slice === w && !/[A-Za-z0-9_]/.test(text[pos + w.length] ?? '')) { pos += w.length; return true }
    return false
  }

  function value (): Value {
    ws()
    const c = text[pos]
    if (c === '"') {
      pos++
      let out = ''
      while (pos < text.length && text[pos] !== '"') {
        if (text[pos] === '\\') pos++
        out += text[pos] ?? ''
        pos++
      }
      if (text[pos] !== '"') fail('closing quote')
      pos++
      return out
    }
    if (c === '[') {
      const end = text.indexOf(']', pos)
      if (end < 0) fail('closing ]')
      const date = new Date(text.slice(pos + 1, end))
      if (Number.isNaN(date.getTime())) fail('a date')
      pos = end + 1
      return date
    }
    if (c === '(') {
      pos++
      const list: Value[] = []
      for (;;) {
        list.push(value())
        ws()
        if (text[pos] === ',') { pos++; continue }
        if (text[pos] === ')') { pos++; return list }
        fail(', or )')
      }
    }
    if (word('true')) return true
    if (word('false')) return false
    if (word('null')) return null
    const match = /^-?\d+(\.\d+)?/.exec(text.slice(pos))
    if (match === null) return fail('a value')
    pos += match[0].length
    return Number(match[0])
  }

  function comparison (): Node {
    ws()
    if (text[pos] === '(') {
      pos++
      const inner = orExpr()
      ws()
      if (text[pos] !== ')') fail(')')
      pos++
      return inner
    }
    const match = /^[A-Za-z_][A-Za-z0-9_]*(\/[A-Za-z_][A-Za-z0-9_]*)*/.exec(text.slice(pos))
    if (match === null) return fail('a field name')
    pos += match[0].length
    ws()
    let op: string | null = null
    for (const candidate of ['<=', '>=', '!=', '=', '<', '>']) {
      if (text.startsWith(candidate, pos)) { op = candidate; pos += candidate.length; break }
    }
    if (op === null) {
      const negated = word('not')
      for (const w of ['like', 'contains', 'in']) {
        if (word(w)) { op = negated ? `not ${w}` : w; break }
      }
    }
    if (op === null) return fail('an operator')
    return { kind: 'cmp', field: match[0], op, value: value() }
  }

  function andExpr (): Node {
    let left = comparison()
    while (word('and')) left = { kind: 'and', left, right: comparison() }
    return left
  }

  function orExpr (): Node {
    let left = andExpr()
    while (word('or')) left = { kind: 'or', left, right: andExpr() }
    return left
  }

  const node = orExpr()
  ws()
  if (pos !== text.length) fail('end of conditions')
  return node
}

type Scalar = string | number | boolean | null | Date

function comparable (v: Scalar | undefined): string | number | boolean | null {
  if (v instanceof Date) return v.getTime()
  return v ?? null
}

function compare (actual: Scalar | undefined, op: string, expected: Value): boolean {
  if (op === 'in' || op === 'not in') {
    const list = Array.isArray(expected) ? expected : [expected]
    const hit = list.some(item => !Array.isArray(item) && compare(actual, '=', item))
    return op === 'in' ? hit : !hit
  }
  if (Array.isArray(expected)) return false
  let a = comparable(actual)
  let b = comparable(expected)
  // A date field compared with a date literal: both as epoch ms.
  if (expected instanceof Date && typeof a === 'string') a = Date.parse(a)
  if (actual instanceof Date && typeof b === 'string') b = Date.parse(b)
  switch (op) {
    case '=': return typeof a === 'string' && typeof b === 'string' ? a.toLowerCase() === b.toLowerCase() : a === b
    case '!=': return typeof a === 'string' && typeof b === 'string' ? a.toLowerCase() !== b.toLowerCase() : a !== b
    case 'like':
    case 'not like': {
      if (typeof a !== 'string' || typeof b !== 'string') return op === 'not like'
      const pattern = new RegExp(`^${b.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*')}$`, 'i')
      return pattern.test(a) === (op === 'like')
    }
    case 'contains':
    case 'not contains':
      return (typeof a === 'string' && typeof b === 'string' && a.toLowerCase().includes(b.toLowerCase())) === (op === 'contains')
  }
  if (a === null || b === null) return false
  switch (op) {
    case '<': return a < b
    case '<=': return a <= b
    case '>': return a > b
    case '>=': return a >= b
    default: return false
  }
}

/** Evaluates against a record through `get(fieldPath)`. */
export function evaluate (node: Node, get: (field: string) => Scalar | undefined): boolean {
  if (node.kind === 'cmp') return compare(get(node.field), node.op, node.value)
  return node.kind === 'and' ? evaluate(node.left, get) && evaluate(node.right, get) : evaluate(node.left, get) || evaluate(node.right, get)
}

/** Reads a path such as `company/id` from a plain wire object; `lastUpdated` is `_info/lastUpdated`. */
export function getPath (record: unknown, field: string): Scalar | undefined {
  if (field === 'lastUpdated' || field === 'dateEntered') {
    const info = (record as { _info?: Record<string, string> })._info
    const stamp = info?.[field]
    return stamp === undefined ? undefined : new Date(stamp)
  }
  let current: unknown = record
  for (const part of field.split('/')) {
    if (typeof current !== 'object' || current === null) return undefined
    current = (current as Record<string, unknown>)[part]
  }
  if (current === undefined || current === null || typeof current === 'string' || typeof current === 'number' || typeof current === 'boolean') return current
  return undefined
}

/** Every field path a wire record has (`company/id`), plus the `_info` stamps conditions name bare. */
export function wirePaths (record: Record<string, unknown>): Set<string> {
  const out = new Set<string>(['lastUpdated', 'dateEntered'])
  const walk = (o: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(o)) {
      out.add(prefix + k)
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, `${prefix}${k}/`)
    }
  }
  walk(record, '')
  return out
}

export function fieldsOf (node: Node): string[] {
  return node.kind === 'cmp' ? [node.field] : [...fieldsOf(node.left), ...fieldsOf(node.right)]
}
