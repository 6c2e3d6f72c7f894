import type { FastifyInstance } from 'fastify'
import * as connectwiseSandbox from '../../sandbox/connectwise/index.js'
import { DEMO_TENANTS } from '../../demo/seed.js'
import { findTenantBySlug } from '../../db/tenants.js'
import { openBalance } from '../../db/invoices.js'
import { asCurrency, type Money } from '../../domain/money.js'
import { TEST_PAYMENT_METHODS } from '../../sandbox/stripe/testpms.js'

const LAYOUT = { layout: 'demo/layout.hbs' } as const

/** The member the demo host hands the frames from getMemberAuthentication; the ConnectWise stand-in verifies exactly this one. */
function demoMember (): { memberId: string, memberHash: string, memberContext: string, memberEmail: string } {
  // Read by name so this file builds whether or not the stand-in's member verification has landed.
  const member = (connectwiseSandbox as Record<string, unknown>).CONNECTWISE_SANDBOX_MEMBER as { memberId: string, memberHash: string, memberContext: string, memberEmail: string } | undefined
  return member ?? { memberId: 'demo.tech', memberHash: '', memberContext: '', memberEmail: 'demo.tech@brightline.example' }
}

/** The stand-in's test cards that decline every charge, by last 4: the demo's default card payer is one that pays. */
const DECLINING_CARDS = Object.values(TEST_PAYMENT_METHODS).flatMap(pm => pm.type === 'card' && pm.behaviour.kind === 'decline' ? [pm.card.last4] : [])

/** Which demo payer: a card that pays, a card that declines (to see a decline and try another way), or a bank account. */
export type DemoPayer = 'card' | 'declining_card' | 'ach'

interface DemoInvoice { psaId: string, number: string, customer: string, psaCompanyId: string | null, total: Money, balance: Money, dueOn: Date | null, status: string, method: 'card' | 'ach' | null }

/**
 * A ConnectWise invoice of the demo tenant whose client pays by `method`,
 * with money still owed and nothing in flight: what a newcomer can charge.
 * The latest due first, so auto-pay has not taken it yet.
 */
export async function pickDemoInvoice (app: FastifyInstance, tenantId: string, method: DemoPayer | null, psaId?: string): Promise<DemoInvoice | null> {
  const q = app.db('invoices as i').join('customers as c', function () { this.on('c.tenant_id', 'i.tenant_id').andOn('c.id', 'i.customer_id') })
    .where({ 'i.tenant_id': tenantId, 'i.psa_system': 'connectwise', 'i.voided': false })
    .select('i.psa_invoice_id', 'i.number', 'i.currency', 'i.ledger_billed', 'i.paid_via_settle', 'i.ledger_paid_elsewhere', 'i.due_on', 'i.status', 'c.name', 'c.psa_company_id',
      app.db.raw("(select m.type from payment_methods m where m.tenant_id = i.tenant_id and m.customer_id = i.customer_id and m.status = 'active' order by m.is_default desc limit 1) as method"))
  if (psaId !== undefined) {
    void q.where('i.psa_invoice_id', psaId)
  } else {
    void q.whereIn('i.status', ['open', 'partially_paid', 'overdue']).whereRaw('i.ledger_billed - i.paid_via_settle - i.ledger_paid_elsewhere > 0')
      .whereNotExists(s => {
        void s.select(app.db.raw('1')).from('payment_attempt_allocations as al').join('payment_attempts as a', function () { this.on('a.tenant_id', 'al.tenant_id').andOn('a.id', 'al.attempt_id') })
          .whereRaw('al.tenant_id = i.tenant_id and al.invoice_id = i.id').whereIn('a.status', ['created', 'processing', 'unknown', 'succeeded'])
      })
      .orderByRaw('i.due_on desc nulls last').orderBy('i.number')
    if (method !== null) {
      void q.whereExists(s => {
        void s.select(app.db.raw('1')).from('payment_methods as m').whereRaw("m.tenant_id = i.tenant_id and m.customer_id = i.customer_id and m.status = 'active' and m.is_default").where('m.type', method === 'ach' ? 'ach' : 'card')
        if (method === 'card') void s.whereNotIn('m.last4', DECLINING_CARDS)
        if (method === 'declining_card') void s.whereIn('m.last4', DECLINING_CARDS)
      })
    }
  }
  const row = await q.first() as { psa_invoice_id: string, number: string, currency: string, ledger_billed: number, paid_via_settle: number, ledger_paid_elsewhere: number, due_on: Date | string | null, status: string, name: string, psa_company_id: string | null, method: string | null } | undefined
  if (row === undefined) return null
  const currency = asCurrency(row.currency)
  return {
    psaId: row.psa_invoice_id,
    number: row.number,
    customer: row.name,
    psaCompanyId: row.psa_company_id,
    total: { amount: Number(row.ledger_billed), currency },
    balance: { amount: openBalance(row), currency },
    dueOn: row.due_on === null ? null : new Date(row.due_on),
    status: row.status,
    method: row.method === 'card' || row.method === 'ach' ? row.method : null
  }
}

/**
 * The demo host (embedded default only): ConnectWise-like invoice and
 * company screens that frame the real embedded pages and speak the Hosted
 * API postMessage protocol as the host (views/assets/demo-host.js), so a
 * newcomer sees Settle inside a PSA without owning one.
 */
export default async function demoHostRoutes (app: FastifyInstance): Promise<void> {
  const demo = DEMO_TENANTS.find(t => t.psa === 'connectwise')
  const idSchema = { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9]{1,18}$' } }, additionalProperties: false } as const

  const context = async (): Promise<{ tenantId: string, slug: string, name: string } | null> => {
    if (demo === undefined) return null
    const tenant = await findTenantBySlug(app.db, demo.slug)
    return tenant === null ? null : { tenantId: tenant.id, slug: tenant.slug, name: tenant.name }
  }
  const host = (origin: string): Record<string, string> => {
    const m = demoMember()
    return { memberId: m.memberId, memberHash: m.memberHash, memberContext: m.memberContext, memberEmail: m.memberEmail, companyId: connectwiseSandbox.CONNECTWISE_SANDBOX_CREDENTIALS.companyId, site: origin }
  }

  app.get('/demo', async (_request, reply) => await reply.redirect('/demo/cw/invoice'))

  app.get<{ Querystring: { id?: string } }>('/demo/cw/invoice', { schema: { querystring: idSchema } }, async (request, reply) => {
    const tenant = await context()
    const card = tenant === null ? null : await pickDemoInvoice(app, tenant.tenantId, 'card')
    const ach = tenant === null ? null : await pickDemoInvoice(app, tenant.tenantId, 'ach')
    const declining = tenant === null ? null : await pickDemoInvoice(app, tenant.tenantId, 'declining_card')
    const invoice = tenant === null ? null : request.query.id !== undefined ? await pickDemoInvoice(app, tenant.tenantId, null, request.query.id) : card ?? ach ?? await pickDemoInvoice(app, tenant.tenantId, null)
    const origin = `${request.protocol}://${request.host}`
    return await reply.view('demo/invoice', {
      title: invoice === null ? 'Invoice · demo PSA' : `Invoice ${invoice.number} · demo PSA`,
      tenant,
      invoice,
      card,
      ach,
      declining,
      daysOverdue: invoice?.dueOn == null ? 0 : Math.max(0, Math.floor((Date.now() - invoice.dueOn.getTime()) / 86_400_000)),
      host: host(origin),
      screen: 'invoice',
      isInvoice: true,
      recordId: invoice?.psaId ?? ''
    }, LAYOUT)
  })

  app.get<{ Querystring: { id?: string } }>('/demo/cw/company', { schema: { querystring: idSchema } }, async (request, reply) => {
    const tenant = await context()
    let company: { psaId: string, name: string, identifier: string | null } | null = null
    if (tenant !== null) {
      const q = app.db('customers').where({ tenant_id: tenant.tenantId, psa_system: 'connectwise' }).whereNotNull('psa_company_id')
      if (request.query.id !== undefined) void q.where('psa_company_id', request.query.id)
      else void q.whereExists(s => { void s.select(app.db.raw('1')).from('payment_methods as m').whereRaw("m.tenant_id = customers.tenant_id and m.customer_id = customers.id and m.status = 'active'") }).orderBy('name')
      const row = await q.first('psa_company_id', 'name') as { psa_company_id: string, name: string } | undefined
      if (row !== undefined) company = { psaId: row.psa_company_id, name: row.name, identifier: null }
    }
    const origin = `${request.protocol}://${request.host}`
    return await reply.view('demo/company', { title: company === null ? 'Company · demo PSA' : `${company.name} · demo PSA`, tenant, company, host: host(origin), screen: 'company', isCompany: true, recordId: company?.psaId ?? '' }, LAYOUT)
  })
}
