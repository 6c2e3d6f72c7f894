import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import { buildApp } from '../../src/app.js'
import { DEMO_TENANTS } from '../../src/demo/seed.js'
import { findTenantBySlug, type Tenant } from '../../src/db/tenants.js'
import { syncInvoices, type SyncResult } from '../../src/services/sync.js'
import { testDb } from './db.js'
import { testConfig, testKeyring } from './fixtures.js'

interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

/**
 * The embedded default as `npm start` runs it (stand-ins mounted, demo
 * tenants connected), listening on a free port, with each demo tenant synced
 * once through the real adapters.
 */
export async function startDemoApp (t: Teardown): Promise<{ app: FastifyInstance, db: Knex, base: string, tenants: Tenant[], syncs: SyncResult[] }> {
  const db = await testDb(t)
  const app = await buildApp(testConfig({ SETTLE_DEMO: 'true' }), { db, keyring: testKeyring() })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const tenants: Tenant[] = []
  const syncs: SyncResult[] = []
  for (const demo of DEMO_TENANTS) {
    const tenant = await findTenantBySlug(db, demo.slug)
    if (tenant === null) throw new Error(`demo tenant ${demo.slug} missing`)
    tenants.push(tenant)
    syncs.push(await syncInvoices({ db, tenantId: tenant.id, psa: await app.psaFor(db, tenant.id, demo.psa), trigger: 'test' }))
  }
  return { app, db, base, tenants, syncs }
}
