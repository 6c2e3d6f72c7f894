import { readFileSync } from 'node:fs'
import { projectPath } from '../../paths.js'
import { QboFault, type EntityName, type Obj } from './store.js'
import type { Query } from './query.js'

interface Shapes {
  entities: Record<string, { fields: Record<string, string>, filterable: string[], filterableAlso?: string[] }>
  types: Record<string, Record<string, string>>
  opaque: string[]
}
const shapes = JSON.parse(readFileSync(projectPath('src', 'sandbox', 'quickbooks', 'shapes.json'), 'utf8')) as Shapes
const opaque = new Set(shapes.opaque)

/**
 * What a LinkedTxn may name: QBO's transaction entity names, as they are
 * spelled on the wire ([check] whether QBO also takes other casings).
 */
export const LINKABLE_TXN_TYPES: ReadonlySet<string> = new Set([
  'Invoice', 'Payment', 'CreditMemo', 'JournalEntry', 'Estimate', 'SalesReceipt', 'RefundReceipt', 'Deposit', 'Bill', 'BillPaymentCheck',
  'Check', 'Expense', 'Purchase', 'PurchaseOrder', 'VendorCredit', 'Transfer', 'TimeActivity', 'ReimburseCharge', 'ChargeCredit', 'StatementCharge'
])

/** QBO's own answer to a property it cannot bind (it deserialises with Jackson into the XSD classes). */
function unsupported (detail: string, element: string): QboFault {
  return new QboFault(400, '2010', 'Request has invalid or unsupported property', `Property Name:${detail} specified value is not supported`, element)
}

const kindOf = (v: unknown): string => Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v

/** Body of a create/update/delete/void of `entity`: every property known and of its type; throws a 2010 Fault. */
export function validateEntityBody (entity: EntityName, body: unknown): void {
  const shape = shapes.entities[entity]
  if (shape === undefined) return
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw unsupported(`the request body must be a ${entity} object, not ${kindOf(body)}`, entity)
  checkObject(body as Obj, shape.fields, entity, entity)
}

function checkObject (o: Obj, fields: Record<string, string>, typeName: string, path: string): void {
  for (const [key, value] of Object.entries(o)) {
    const type = fields[key]
    const at = `${path}.${key}`
    if (type === undefined) throw unsupported(`Unrecognized field "${key}" (class com.intuit.schema.finance.v3.${typeName}), not marked as ignorable`, at)
    checkValue(value, type, at)
  }
  if (typeName === 'Line') checkLine(o, path)
  if (typeName === 'LinkedTxn' && o.TxnType !== undefined && o.TxnType !== null && !LINKABLE_TXN_TYPES.has(String(o.TxnType))) {
    throw unsupported(`TxnType "${String(o.TxnType)}" at ${path} is not a transaction type (expected an entity name such as Invoice or Payment)`, `${path}.TxnType`)
  }
}

/** A line carries at most one detail object, and DetailType names it (contract: oneOfGroup LineDetail). */
function checkLine (line: Obj, path: string): void {
  const details = Object.keys(line).filter(k => k.endsWith('LineDetail'))
  if (details.length > 1) throw unsupported(`a line may carry one line detail, not ${details.join(' and ')} (${path})`, path)
  const detail = details[0]
  const type = line.DetailType
  if (type === undefined || type === null) {
    if (detail !== undefined) throw new QboFault(400, '2020', 'Required param missing, need to supply the required value for the API', `Required parameter ${path}.DetailType is missing in the request`, `${path}.DetailType`)
    return
  }
  const expected = type === 'DescriptionOnly' ? 'DescriptionLineDetail' : String(type)
  if (detail !== expected) throw unsupported(`DetailType ${String(type)} at ${path} needs its ${expected} object${detail === undefined ? '' : `, not ${detail}`}`, `${path}.DetailType`)
}

function checkValue (value: unknown, type: string, path: string): void {
  if (value === null) return
  const wrong = (): QboFault => unsupported(`${path} expects ${type}, got ${kindOf(value)} ${JSON.stringify(value)?.slice(0, 60) ?? ''}`, path)
  if (type.startsWith('array:')) {
    if (!Array.isArray(value)) throw wrong()
    const item = type.slice(6)
    // `array:Line` holds Line objects; `array:ref` holds references.
    const itemType = shapes.types[item] !== undefined || opaque.has(item) ? `object:${item}` : item
    value.forEach((v, i) => { checkValue(v, itemType, `${path}[${i}]`) })
    return
  }
  switch (type) {
    case 'string':
      if (typeof value === 'object') throw wrong()
      return
    case 'decimal':
    case 'integer': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : NaN
      if (!Number.isFinite(n) || (type === 'integer' && !Number.isInteger(n))) throw wrong()
      return
    }
    case 'boolean':
      if (typeof value !== 'boolean' && value !== 'true' && value !== 'false') throw wrong()
      return
    case 'date':
      if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(value)) throw wrong()
      return
    case 'datetime':
      if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) throw wrong()
      return
    case 'ref':
      if (typeof value !== 'object' || Array.isArray(value)) throw wrong()
      checkObject(value as Obj, { value: 'string', name: 'string', type: 'string' }, 'ReferenceType', path)
      return
  }
  if (type.startsWith('object:')) {
    if (typeof value !== 'object' || Array.isArray(value)) throw wrong()
    const name = type.slice(7)
    const fields = shapes.types[name]
    if (fields !== undefined) checkObject(value as Obj, fields, name, path)
    else if (!opaque.has(name)) throw wrong()
  }
}

const ALWAYS_FILTERABLE = ['Id', 'MetaData.CreateTime', 'MetaData.LastUpdatedTime']

/** A query may filter only on fields QBO marks filterable, and sort on fields the entity has; throws a 4001 Fault. */
export function validateQueryFields (entity: EntityName, q: Pick<Query, 'where' | 'orderBy'>): void {
  const shape = shapes.entities[entity]
  if (shape === undefined) return
  const lower = (s: string): string => s.toLowerCase()
  const filterable = new Set([...ALWAYS_FILTERABLE, ...shape.filterable, ...(shape.filterableAlso ?? [])].map(lower))
  const exists = (field: string): boolean => {
    const [head, ...rest] = field.split('.')
    const key = Object.keys(shape.fields).find(k => lower(k) === lower(head ?? ''))
    if (key === undefined) return false
    if (rest.length === 0) return true
    const type = shape.fields[key] ?? ''
    const nested = type.startsWith('object:') ? shapes.types[type.slice(7)] : undefined
    return rest.length === 1 && nested !== undefined && Object.keys(nested).some(k => lower(k) === lower(rest[0] ?? ''))
  }
  const invalid = (detail: string): QboFault => new QboFault(400, '4001', 'Invalid query', `QueryValidationError: ${detail}`)
  for (const c of q.where) {
    if (!exists(c.field)) throw invalid(`Property ${c.field} not found for Entity ${entity}`)
    if (!filterable.has(lower(c.field))) throw invalid(`property '${c.field}' is not queryable`)
  }
  for (const o of q.orderBy) if (!exists(o.field)) throw invalid(`Property ${o.field} not found for Entity ${entity}`)
}
