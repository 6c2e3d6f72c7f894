import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config.js'
import { DEMO_TENANTS } from '../../demo/seed.js'
import { findTenantBySlug } from '../../db/tenants.js'
import { ledgerOverview } from '../../services/overview.js'
import { isPglite } from '../../db/knex.js'
import { MAIN_LAYOUT } from '../../plugins/view.js'

export default async function homeRoutes (app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  app.get<{ Querystring: { tenant?: string } }>('/', {
    schema: { querystring: { type: 'object', properties: { tenant: { type: 'string', pattern: '^[a-z0-9-]{2,63}$' } }, additionalProperties: false } }
  }, async (request, reply) => {
    // Tenant data shows here only for the demo tenants, only in demo mode;
    // real tenants see theirs through signed-in, embedded pages.
    const slug = request.query.tenant ?? DEMO_TENANTS[0]?.slug
    const demo = config.demo ? DEMO_TENANTS.find(t => t.slug === slug) : undefined
    const tenant = demo === undefined ? null : await findTenantBySlug(app.db, demo.slug)
    const overview = tenant === null ? null : await ledgerOverview(app.db, tenant, new Date())
    return await reply.view('home', {
      title: 'Settle · invoice-to-cash for MSPs',
      overview,
      tenants: config.demo ? DEMO_TENANTS.map(t => ({ ...t, current: t.slug === slug, psaTitle: t.psa === 'connectwise' ? 'ConnectWise' : 'Autotask' })) : [],
      refresh: overview?.syncing === true,
      database: isPglite(app.db) ? 'embedded PGlite' : 'PostgreSQL',
      demo: config.demo
    }, MAIN_LAYOUT)
  })
}
