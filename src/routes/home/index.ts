import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config.js'
import { DEMO_TENANT } from '../../demo/seed.js'
import { findTenantBySlug } from '../../db/tenants.js'
import { ledgerOverview } from '../../services/overview.js'
import { isPglite } from '../../db/knex.js'

export default async function homeRoutes (app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  app.get('/', async (_request, reply) => {
    // Tenant data is only shown for the demo tenant, and only in demo mode;
    // real tenants see theirs through signed-in, embedded pages.
    const tenant = config.demo ? await findTenantBySlug(app.db, DEMO_TENANT.slug) : null
    const overview = tenant === null ? null : await ledgerOverview(app.db, tenant)
    return await reply.view('home', {
      title: 'Settle · invoice-to-cash for MSPs',
      overview,
      database: isPglite(app.db) ? 'embedded PGlite' : 'PostgreSQL',
      demo: config.demo
    })
  })
}
