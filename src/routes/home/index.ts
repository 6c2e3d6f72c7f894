import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config.js'
import { DEMO_TENANTS } from '../../demo/seed.js'
import { findTenantBySlug } from '../../db/tenants.js'
import { ledgerOverview, reconciliationOverview } from '../../services/overview.js'
import { isPglite } from '../../db/knex.js'
import { MAIN_LAYOUT } from '../../plugins/view.js'
import { openBalance } from '../../db/invoices.js'
import { asCurrency, type Money } from '../../domain/money.js'
import { signPayLink } from '../../security/pay-links.js'

async function demoPayPages (app: FastifyInstance, tenantId: string, payLinkDays: number): Promise<Array<{ client: string, invoice: string, open: Money, url: string, hasMethod: boolean }>> {
  const rows = await app.db('invoices as i').join('customers as c', function () { this.on('c.tenant_id', 'i.tenant_id').andOn('c.id', 'i.customer_id') })
    .where({ 'i.tenant_id': tenantId, 'i.voided': false }).whereIn('i.status', ['open', 'partially_paid', 'overdue'])
    .select('i.id', 'i.number', 'i.currency', 'i.ledger_billed', 'i.paid_via_settle', 'i.ledger_paid_elsewhere', 'c.name',
      app.db.raw("exists (select 1 from payment_methods m where m.tenant_id = i.tenant_id and m.customer_id = i.customer_id and m.status = 'active') as has_method"))
    .orderBy('c.name').orderByRaw('i.ledger_billed - i.paid_via_settle - i.ledger_paid_elsewhere desc').limit(400) as Array<{ id: string, number: string, currency: string, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number, name: string, has_method: boolean }>
  const expiresAt = new Date(Date.now() + payLinkDays * 86_400_000)
  // Each client's largest open invoice (large ones can be paid in installments); some clients have a method on file, most add one on the page.
  const perClient = new Map<string, typeof rows[number]>()
  for (const r of rows) if (openBalance(r) > 0 && !perClient.has(r.name)) perClient.set(r.name, r)
  return [...perClient.values()].slice(0, 6).map(r => ({
    client: r.name,
    invoice: r.number,
    open: { amount: openBalance(r), currency: asCurrency(r.currency) },
    url: `/pay/${signPayLink(app.keyring, { tenantId, invoiceId: r.id, expiresAt })}`,
    hasMethod: r.has_method
  }))
}

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
    const reconciliation = tenant === null ? null : await reconciliationOverview(app.db, tenant.id)
    // The demo hands out clients' pay links so a newcomer can play the client; real links go out by mail.
    const payPages = tenant === null ? [] : await demoPayPages(app, tenant.id, config.payLinkDays)
    return await reply.view('home', {
      title: 'Settle · invoice-to-cash for MSPs',
      overview,
      reconciliation,
      payPages,
      tenants: config.demo ? DEMO_TENANTS.map(t => ({ ...t, current: t.slug === slug, psaTitle: t.psa === 'connectwise' ? 'ConnectWise' : 'Autotask' })) : [],
      refresh: overview?.syncing === true,
      database: isPglite(app.db) ? 'embedded PGlite' : 'PostgreSQL',
      demo: config.demo,
      payLinkDays: config.payLinkDays
    }, MAIN_LAYOUT)
  })
}
