import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import { buildApp } from '../../src/app.js'
import { demoCollectionSetup } from '../../src/demo/collection.js'
import type { Job } from '../../src/db/jobs.js'
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

/**
 * Runs the demo's collection set-up (stored cards, bank accounts, consents)
 * for one tenant now, as the worker would soon after boot, so a test need not
 * wait for the job. Failures are ignored as the job's retries would cover them.
 */
export async function setUpDemoCollection ({ app, db, base }: { app: FastifyInstance, db: Knex, base: string }, tenantId: string, options: { withAccounting?: boolean } = {}): Promise<void> {
  const job = { id: 0, tenantId, queue: 'demo.collection-setup', payload: {}, state: 'running', runAt: new Date(), attempts: 99, maxAttempts: 99, dedupeKey: 'x', lockedBy: null, lockedUntil: null, lastError: null, sourceEntryId: null, createdAt: new Date() } as unknown as Job
  const handler = demoCollectionSetup(() => base, options.withAccounting === true ? app.accountingFor : undefined)
  await handler(job, { db, log: app.log, signal: new AbortController().signal }).catch(() => {})
}
