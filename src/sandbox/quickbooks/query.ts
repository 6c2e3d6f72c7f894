/**
 * The subset of QBO's query language Settle sends:
 * select * | count(*) from Entity [where F op V [and …]] [orderby F [asc|desc], …] [startposition N] [maxresults N].
 * QBO has no OR and no joins; values are quoted strings or bare numbers/booleans.
 */
export type Op = '=' | '<' | '>' | '<=' | '>=' | '!=' | 'in' | 'like'
export interface Condition { field: string, op: Op, value: string | string[] }
export interface Query {
  entity: string
  count: boolean
  where: Condition[]
  orderBy: Array<{ field: string, desc: boolean }>
  startPosition: number
  maxResults: number
}

export class QuerySyntaxError extends Error { override name = 'QuerySyntaxError' }

type Tok = { t: 'word' | 'str' | 'num' | 'op' | 'punct', v: string }

function tokenize (s: string): Tok[] {
  const out: Tok[] = []
  let i = 0
  while (i < s.length) {
    const c = s[i] as string
    if (/\s/.test(c)) { i++; continue }
    if (c === "'") {
      let v = ''
      i++
      for (;;) {
        if (i >= s.length) throw new QuerySyntaxError('unterminated string literal')
        const d = s[i] as string
        if (d === '\\' && i + 1 < s.length) { v += s[i + 1]; i += 2; continue }
        if (d === "'" && s[i + 1] === "'") { v += "'"; i += 2; continue }
        if (d === "'") { i++; break }
        v += d; i++
      }
      out.push({ t: 'str', v })
      continue
    }
    const op = /^(<=|>=|!=|<>|=|<|>)/.exec(s.slice(i))
    if (op !== null) { out.push({ t: 'op', v: op[0] === '<>' ? '!=' : op[0] }); i += op[0].length; continue }
    if ('(),*'.includes(c)) { out.push({ t: 'punct', v: c }); i++; continue }
    const num = /^-?\d+(\.\d+)?/.exec(s.slice(i))
    if (num !== null) { out.push({ t: 'num', v: num[0] }); i += num[0].length; continue }
    const word = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(s.slice(i))
    if (word !== null) { out.push({ t: 'word', v: word[0] }); i += word[0].length; continue }
    throw new QuerySyntaxError(`Encountered " ${c} " at column ${i + 1}`)
  }
  return out
}

export function parseQuery (text: string): Query {
  const toks = tokenize(text)
  let p = 0
  const peek = (): Tok | undefined => toks[p]
  const kw = (w: string): boolean => { const t = peek(); if (t?.t === 'word' && t.v.toLowerCase() === w) { p++; return true } return false }
  const expect = (w: string): void => { if (!kw(w)) throw new QuerySyntaxError(`expected ${w} near "${peek()?.v ?? 'end of statement'}"`) }
  const punct = (c: string): boolean => { const t = peek(); if (t?.t === 'punct' && t.v === c) { p++; return true } return false }
  const word = (): string => { const t = toks[p++]; if (t?.t !== 'word') throw new QuerySyntaxError(`expected a name near "${t?.v ?? 'end of statement'}"`); return t.v }
  const literal = (): string => { const t = toks[p++]; if (t === undefined || (t.t !== 'str' && t.t !== 'num' && t.t !== 'word')) throw new QuerySyntaxError(`expected a value near "${t?.v ?? 'end of statement'}"`); return t.v }
  const int = (): number => { const t = toks[p++]; if (t?.t !== 'num' || !/^\d+$/.test(t.v)) throw new QuerySyntaxError('expected a whole number'); return Number(t.v) }

  expect('select')
  let count = false
  if (punct('*')) count = false
  else if (kw('count')) { if (!punct('(') || !punct('*') || !punct(')')) throw new QuerySyntaxError('expected count(*)'); count = true } else {
    // Field lists are accepted and ignored: the stand-in always returns whole entities.
    word(); while (punct(',')) word()
  }
  expect('from')
  const entity = word()
  const where: Condition[] = []
  if (kw('where')) {
    do {
      const field = word()
      const t = peek()
      if (t?.t === 'op') { p++; where.push({ field, op: t.v as Op, value: literal() }) } else if (kw('in')) {
        if (!punct('(')) throw new QuerySyntaxError('expected ( after IN')
        const values = [literal()]
        while (punct(',')) values.push(literal())
        if (!punct(')')) throw new QuerySyntaxError('expected ) closing IN')
        where.push({ field, op: 'in', value: values })
      } else if (kw('like')) {
        where.push({ field, op: 'like', value: literal() })
      } else throw new QuerySyntaxError(`expected an operator after ${field}`)
    } while (kw('and'))
  }
  const orderBy: Query['orderBy'] = []
  let startPosition = 1
  let maxResults = 100
  for (;;) {
    const order = kw('orderby') || (kw('order') && kw('by'))
    if (order) {
      do {
        const field = word()
        let desc = false
        if (kw('desc')) desc = true
        else kw('asc')
        orderBy.push({ field, desc })
      } while (punct(','))
    } else if (kw('startposition')) startPosition = int()
    else if (kw('maxresults')) maxResults = int()
    else break
  }
  if (p < toks.length) throw new QuerySyntaxError(`Encountered " ${toks[p]?.v ?? ''} " after the statement`)
  if (startPosition < 1) throw new QuerySyntaxError('startposition must be at least 1')
  if (maxResults > 1000) throw new QuerySyntaxError('maxresults is at most 1000')
  return { entity, count, where, orderBy, startPosition, maxResults }
}

/** A field by dotted path; references (CustomerRef) compare by their value. */
export function fieldValue (obj: Record<string, unknown>, path: string): unknown {
  let cur: unknown = obj
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined
    const rec = cur as Record<string, unknown>
    const key = Object.keys(rec).find(k => k.toLowerCase() === part.toLowerCase())
    cur = key === undefined ? undefined : rec[key]
  }
  if (cur !== null && typeof cur === 'object' && 'value' in (cur as Record<string, unknown>)) return (cur as Record<string, unknown>).value
  return cur
}

const DATETIME = /^\d{4}-\d{2}-\d{2}T/

function compare (a: unknown, b: string): number {
  if (typeof a === 'number' || (typeof a === 'string' && /^-?\d+(\.\d+)?$/.test(a) && /^-?\d+(\.\d+)?$/.test(b))) return Number(a) - Number(b)
  if (typeof a === 'boolean') return String(a) === b.toLowerCase() ? 0 : 1
  const s = String(a)
  if (DATETIME.test(s) || DATETIME.test(b)) {
    const x = Date.parse(s.length === 10 ? `${s}T00:00:00Z` : s)
    const y = Date.parse(b.length === 10 ? `${b}T00:00:00Z` : b)
    if (!Number.isNaN(x) && !Number.isNaN(y)) return x - y
  }
  const x = s.toLowerCase()
  const y = b.toLowerCase()
  return x < y ? -1 : x > y ? 1 : 0
}

export function matches (obj: Record<string, unknown>, c: Condition): boolean {
  const v = fieldValue(obj, c.field)
  if (v === undefined || v === null) return false
  switch (c.op) {
    case '=': return compare(v, c.value as string) === 0
    case '!=': return compare(v, c.value as string) !== 0
    case '<': return compare(v, c.value as string) < 0
    case '>': return compare(v, c.value as string) > 0
    case '<=': return compare(v, c.value as string) <= 0
    case '>=': return compare(v, c.value as string) >= 0
    case 'in': return (c.value as string[]).some(x => compare(v, x) === 0)
    case 'like': {
      const re = new RegExp('^' + (c.value as string).split('%').map(s => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', 'is')
      return re.test(String(v))
    }
  }
}

export function sortBy (rows: Array<Record<string, unknown>>, orderBy: Query['orderBy']): Array<Record<string, unknown>> {
  const keys = orderBy.length > 0 ? orderBy : [{ field: 'Id', desc: false }]
  return [...rows].sort((a, b) => {
    for (const k of keys) {
      const x = fieldValue(a, k.field)
      const y = fieldValue(b, k.field)
      if (x === y) continue
      if (x === undefined || x === null) return k.desc ? 1 : -1
      if (y === undefined || y === null) return k.desc ? -1 : 1
      const d = compare(x, String(y))
      if (d !== 0) return k.desc ? -d : d
    }
    return 0
  })
}
