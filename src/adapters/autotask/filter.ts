/**
 * Autotask REST query filters, as the wire takes them:
 * `[{"op":"eq","field":"companyID","value":1}, {"op":"or","items":[…]}]`.
 * Top-level conditions are ANDed by Autotask.
 */
export type AutotaskScalar = string | number | boolean

export type AutotaskValueOp = 'eq' | 'noteq' | 'gt' | 'gte' | 'lt' | 'lte' | 'beginsWith' | 'endsWith' | 'contains'
export type AutotaskListOp = 'in' | 'notIn'
export type AutotaskPresenceOp = 'exist' | 'notExist'

export type AutotaskCondition =
  | { op: AutotaskValueOp, field: string, value: AutotaskScalar, udf?: boolean }
  | { op: AutotaskListOp, field: string, value: AutotaskScalar[], udf?: boolean }
  | { op: AutotaskPresenceOp, field: string, udf?: boolean }
  | { op: 'and' | 'or', items: AutotaskCondition[] }

export type AutotaskFilter = AutotaskCondition[]

const value = (op: AutotaskValueOp) => (field: string, v: AutotaskScalar): AutotaskCondition => ({ op, field, value: v })

/** Typed builders; `f.and(...)`/`f.or(...)` nest groups. */
export const f = {
  eq: value('eq'),
  noteq: value('noteq'),
  gt: value('gt'),
  gte: value('gte'),
  lt: value('lt'),
  lte: value('lte'),
  beginsWith: (field: string, v: string): AutotaskCondition => ({ op: 'beginsWith', field, value: v }),
  endsWith: (field: string, v: string): AutotaskCondition => ({ op: 'endsWith', field, value: v }),
  contains: (field: string, v: string): AutotaskCondition => ({ op: 'contains', field, value: v }),
  exist: (field: string): AutotaskCondition => ({ op: 'exist', field }),
  notExist: (field: string): AutotaskCondition => ({ op: 'notExist', field }),
  in: (field: string, values: readonly AutotaskScalar[]): AutotaskCondition => ({ op: 'in', field, value: [...values] }),
  notIn: (field: string, values: readonly AutotaskScalar[]): AutotaskCondition => ({ op: 'notIn', field, value: [...values] }),
  and: (...items: AutotaskCondition[]): AutotaskCondition => ({ op: 'and', items }),
  or: (...items: AutotaskCondition[]): AutotaskCondition => ({ op: 'or', items }),
  /** Autotask requires a non-empty filter; this is the documented "match all". */
  all: (): AutotaskFilter => [{ op: 'gte', field: 'id', value: 0 }]
}

/** Autotask datetime filter values: ISO-8601 UTC, floored to the second (gte stays inclusive). */
export function autotaskDateTime (date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z')
}
