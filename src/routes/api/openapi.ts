import type { FastifyInstance } from 'fastify'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { ERRORS, type ErrorCode } from '../../errors.js'
import type { ApiScope } from '../../security/api-keys.js'

/**
 * How an admin API operation is described in the OpenAPI document
 * (`GET /api/v1/openapi.json`, plugins/openapi.ts): its summary, the scope
 * its key needs, the catalogue codes it can answer and its success shapes.
 * The document is built from these, so it cannot drift from the routes.
 */

/** The security scheme every admin API operation names: `Authorization: Bearer settle_sk_…`. */
export const API_KEY_SCHEME = 'apiKey'

/** Every answer can be one of these: no or a bad key, a key without the scope, a field that fails its schema, our fault. */
const ALWAYS: readonly ErrorCode[] = ['UNAUTHENTICATED', 'FORBIDDEN', 'VALIDATION_FAILED', 'INTERNAL']
/** What the body parser refuses before a route sees it. */
const WITH_BODY: readonly ErrorCode[] = ['MALFORMED_JSON', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE']

/** The catalogue error body, `{error:{code,message}}`, narrowed to the codes one status can carry. */
export const errorBody = (codes: readonly ErrorCode[], extra: Record<string, TSchema> = {}) => Type.Object({
  error: Type.Object({
    code: Type.Unsafe<ErrorCode>({ type: 'string', enum: [...codes] }),
    message: Type.String({ description: 'what went wrong and what to do about it, for a person' })
  }, { additionalProperties: false }),
  ...extra
}, { additionalProperties: false, description: 'a catalogue error (src/errors.ts)' })

export interface OperationDoc {
  summary: string
  description: string
  scope: ApiScope
  tag: string
  /** The catalogue codes this operation answers beyond the ones every operation can. */
  errors: readonly ErrorCode[]
  /** Success responses by status. */
  responses: Record<number, TSchema>
  /** Error responses that carry more than the catalogue body (the 409 with the attempt in progress). */
  errorResponses?: Partial<Record<number, TSchema>>
  hasBody?: boolean
}

/**
 * The schema keys OpenAPI reads for one operation. The error responses are
 * grouped by status, each naming its codes in an enum; the scope appears both
 * as the security requirement and in the text a person reads.
 */
export function operation (doc: OperationDoc): { summary: string, description: string, tags: string[], security: Array<Record<string, string[]>>, response: Record<string, unknown> } {
  const codes = [...new Set([...ALWAYS, ...(doc.hasBody === true ? WITH_BODY : []), ...doc.errors])]
  const byStatus = new Map<number, ErrorCode[]>()
  for (const code of codes) byStatus.set(ERRORS[code], [...(byStatus.get(ERRORS[code]) ?? []), code])
  const response: Record<string, unknown> = { ...doc.responses }
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    const custom = doc.errorResponses?.[status]
    response[status] = { ...(custom ?? errorBody(list)), description: `Error codes: ${list.join(', ')}.` }
  }
  return {
    summary: doc.summary,
    description: `${doc.description}\n\nNeeds an API key with the \`${doc.scope}\` scope. Can answer: ${codes.join(', ')}.`,
    tags: [doc.tag],
    security: [{ [API_KEY_SCHEME]: [doc.scope] }],
    response
  }
}

/** A schema with one example, checked against the schema's type by the compiler. */
export const example = <T extends TSchema>(schema: T, value: Static<T>): T => ({ ...schema, examples: [value] })

/**
 * Response schemas here describe; they do not filter. fastify's default
 * serialiser drops every property a response schema does not name, so a
 * field the schema forgot would silently vanish from the API: the admin API
 * serialises with JSON.stringify, and the OpenAPI test checks real answers
 * against the documented schemas instead.
 */
export function serialiseUnfiltered (app: FastifyInstance): void {
  app.setSerializerCompiler(() => data => JSON.stringify(data))
}

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])
const Timestamp = Type.String({ format: 'date-time' })
const Uuid = Type.String({ format: 'uuid' })

export const MoneySchema = Type.Object({ amount: Type.Integer({ description: 'cents' }), currency: Type.String({ examples: ['USD'] }) }, { description: 'an amount in integer cents with its currency' })

export const AttemptSchema = Type.Object({
  id: Uuid,
  invoiceId: Nullable(Uuid),
  customerId: Uuid,
  paymentMethodId: Uuid,
  amount: MoneySchema,
  surcharge: MoneySchema,
  status: Type.String({ enum: ['created', 'processing', 'unknown', 'succeeded', 'failed', 'refunded', 'disputed'] }),
  trigger: Type.String(),
  actor: Type.String(),
  processorIntentRef: Nullable(Type.String()),
  failure: Type.Object({ code: Nullable(Type.String()), declineCode: Nullable(Type.String()), adviceCode: Nullable(Type.String()), class: Nullable(Type.String()), message: Nullable(Type.String()) }),
  retryNumber: Type.Integer(),
  createdAt: Timestamp,
  updatedAt: Timestamp
}, { description: 'one payment attempt' })

export const AllocationSchema = Type.Object({ invoiceId: Uuid, invoiceNumber: Type.String(), amount: Type.Integer({ description: 'cents' }), position: Type.Integer() })

export const ChargeResultSchema = Type.Object({
  outcome: Type.String({ enum: ['succeeded', 'processing', 'unknown', 'failed'] }),
  attempt: AttemptSchema,
  verdict: Type.Optional(Type.Object({}, { description: 'why a failed charge failed and whether it will be retried' })),
  allocations: Type.Optional(Type.Array(AllocationSchema, { description: 'statement charges: how the amount spread over the invoices' }))
})

export const ExceptionSchema = Type.Object({
  id: Uuid,
  kind: Type.String(),
  status: Type.String(),
  summary: Type.String(),
  likelyCause: Nullable(Type.String()),
  suggestedRepair: Nullable(Type.String()),
  amount: Nullable(MoneySchema),
  customerId: Nullable(Uuid),
  invoiceId: Nullable(Uuid),
  suggestions: Type.Array(Type.Object({ rank: Type.Integer(), confidence: Type.Number(), invoiceIds: Type.Array(Type.String()), amounts: Type.Array(Type.Integer()), reasons: Type.Array(Type.String()) })),
  createdAt: Timestamp
}, { description: 'one reconciliation exception' })

export const Ok = Type.Object({ ok: Type.Literal(true) })
