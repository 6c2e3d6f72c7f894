import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { AppError } from '../errors.js'

/**
 * How route schemas validate: an unknown field is refused, not silently
 * dropped (`removeAdditional` would answer a `currency:"EUR"` in USD); types
 * are not coerced (`true` is not 1 cent, `"12"` is not 12); the failing
 * schema travels with the error so its `description` can say what it expects.
 */
export const AJV_OPTIONS = { customOptions: { removeAdditional: false, coerceTypes: false, verbose: true } } as const

/** One registered route; the route table is what the fuzz test walks (and an OpenAPI document would). */
export interface RouteEntry { method: string, url: string, hasSchema: boolean }

declare module 'fastify' {
  interface FastifyInstance {
    routeTable: readonly RouteEntry[]
  }
}

const PARTS = [['body', 'Body field'], ['query', 'Query parameter'], ['params', 'URL part']] as const

/** The first place a NUL hides in a parsed value (keys included), as a field path; null when there is none. */
function nulIn (value: unknown): string | null {
  const stack: Array<[unknown, string]> = [[value, '']]
  while (stack.length > 0) {
    const [item, path] = stack.pop()!
    if (typeof item === 'string') { if (item.includes('\u0000')) return path; continue }
    if (item === null || typeof item !== 'object' || Buffer.isBuffer(item)) continue
    for (const [key, child] of Object.entries(item)) {
      const childPath = Array.isArray(item) ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`
      if (key.includes('\u0000')) return childPath
      stack.push([child, childPath])
    }
  }
  return null
}

/**
 * No client text may carry a NUL: PostgreSQL cannot store one in text or
 * jsonb, so it would fail as a 500 deep inside a service (after earlier
 * writes). Refused up front, for every route, naming the field.
 */
export default fp(async app => {
  const routes: RouteEntry[] = []
  app.decorate('routeTable', routes)
  app.addHook('onRoute', route => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, hasSchema: route.schema !== undefined })
  })
  app.addHook('preValidation', async (request: FastifyRequest) => {
    for (const [part, label] of PARTS) {
      const path = nulIn(request[part])
      if (path !== null) throw new AppError('VALIDATION_FAILED', `${path === '' ? `The ${part === 'query' ? 'query string' : part}` : `${label} "${path}"`} contains a NUL character; remove it.`)
    }
  })
}, { name: 'settle-input' })
