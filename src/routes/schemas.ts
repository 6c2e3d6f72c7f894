import { Type, type TProperties, type TSchema } from '@sinclair/typebox'

/**
 * Building blocks for route schemas (TypeBox, checked by fastify's ajv with
 * unknown fields refused, see plugins/input.ts). A `description` says what
 * a value must be, in words a person can act on: the error plugin quotes it.
 */

/** An object that refuses fields it does not name. */
export const Strict = <T extends TProperties>(properties: T) => Type.Object(properties, { additionalProperties: false })

/** A body that may be left out entirely (fastify validates a missing body as null). */
export const OptionalBody = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

export const Cents = (what = 'a positive whole number of cents (12345 for $123.45)') =>
  Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: what })

export const Text = (maxLength: number) => Type.String({ maxLength, description: `text of at most ${maxLength} characters` })

/** An id Settle issued or a processor's; its shape is checked where it is used, its size here. */
export const Id = Type.String({ minLength: 1, maxLength: 100, description: 'an id of up to 100 characters' })

export const OneOf = <const T extends readonly string[]>(values: T) => Type.Unsafe<T[number]>({ type: 'string', enum: [...values] })
