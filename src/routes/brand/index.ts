import type { FastifyInstance } from 'fastify'
import { getBrand, getLogo } from '../../db/branding.js'
import { isUuid } from '../../db/tenants.js'
import { AppError } from '../../errors.js'

/** Mixes a `#rrggbb` colour with white: the pale tint behind badges and highlights. */
export function tint (hex: string, whiteShare: number): string {
  const channel = (i: number): string => {
    const c = parseInt(hex.slice(1 + i * 2, 3 + i * 2), 16)
    return Math.round(c + (255 - c) * whiteShare).toString(16).padStart(2, '0')
  }
  return `#${channel(0)}${channel(1)}${channel(2)}`
}

/**
 * The tenant's colours and logo for the client's pages. A stylesheet rather
 * than inline styles, because the pages' CSP allows styles from this server
 * only. URLs carry the brand's version, so both cache for a long time.
 */
export default async function brandRoutes (app: FastifyInstance): Promise<void> {
  const notFound = (): AppError => new AppError('ROUTE_NOT_FOUND', 'No such brand asset.')

  app.get<{ Params: { tenantId: string } }>('/brand/:tenantId/theme.css', async (request, reply) => {
    if (!isUuid(request.params.tenantId)) throw notFound()
    const brand = await getBrand(app.db, request.params.tenantId)
    const accent = brand.accent ?? '#0f766e'
    return await reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=86400')
      .send(`:root { --accent: ${accent}; --accent-2: ${tint(accent, 0.86)}; }\n`)
  })

  app.get<{ Params: { tenantId: string } }>('/brand/:tenantId/logo', async (request, reply) => {
    if (!isUuid(request.params.tenantId)) throw notFound()
    const logo = await getLogo(app.db, request.params.tenantId)
    if (logo === null) throw notFound()
    // An SVG opened on its own must not run script: sandbox it.
    return await reply.type(logo.type).header('cache-control', 'public, max-age=86400')
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; sandbox")
      .header('x-content-type-options', 'nosniff')
      .send(logo.bytes)
  })
}
