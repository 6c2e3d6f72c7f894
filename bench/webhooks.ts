import autocannon from 'autocannon'
import { randomUUID } from 'node:crypto'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { migrateLatest } from '../src/db/migrate.js'
import { putSecret } from '../src/db/secrets.js'
import { createTenant } from '../src/db/tenants.js'
import { signStripePayload } from '../src/adapters/stripe/webhook.js'
import { Keyring } from '../src/security/keyring.js'
import { note, withScratchDatabase } from './lib.js'

/**
 * Stripe webhooks verified, stored and acknowledged per second, from 50
 * concurrent senders, each event unique and freshly signed. Baseline, same
 * run and pool: a bare route that stores the raw body with one INSERT (same
 * durability; no verification, dedupe or job).
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
const CONNECTIONS = 50
const SECRET = 'whsec_bench_settle'

async function load (url: string, body: () => { payload: string, headers: Record<string, string> }): Promise<{ perS: number, p99: number, errors: number }> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: SECONDS,
    method: 'POST',
    requests: [{ setupRequest: request => { const next = body(); return { ...request, body: next.payload, headers: { ...request.headers, ...next.headers } } } }]
  })
  return { perS: Math.round(result.requests.average), p99: result.latency.p99, errors: result.errors + result.non2xx }
}

export async function run (): Promise<Record<string, unknown>> {
  note(`webhooks: ${CONNECTIONS} senders × ${SECONDS} s, PostgreSQL`)
  return await withScratchDatabase(20, async db => {
    await migrateLatest(db)
    const keyring = new Keyring(Keyring.generateEntry('bench'))
    const tenant = await createTenant(db, { slug: 'bench-hooks', name: 'Bench MSP' })
    await putSecret(db, keyring, tenant.id, 'stripe.webhook_secret', SECRET)
    await db.schema.createTable('bench_raw', t => { t.bigIncrements('id'); t.text('body').notNullable() })
    const app = await buildApp(loadConfig({ NODE_ENV: 'production', LOG_LEVEL: 'silent', WORKER_ENABLED: 'false', SETTLE_DEMO: 'false' }), { db, keyring })
    app.register(async scope => {
      scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => { done(null, body) })
      scope.post('/baseline', async request => {
        await db('bench_raw').insert({ body: request.body as string })
        return { received: true }
      })
    })
    const base = await app.listen({ host: '127.0.0.1', port: 0 })
    try {
      const event = (): string => JSON.stringify({ id: `evt_${randomUUID().replaceAll('-', '')}`, object: 'event', type: 'payment_intent.succeeded', api_version: '2026-10-28.endive', created: 1, livemode: false, data: { object: { id: `pi_${randomUUID().slice(0, 12)}`, object: 'payment_intent' } } })
      const baseline = await load(`${base}/baseline`, () => ({ payload: event(), headers: { 'content-type': 'application/json' } }))
      const hooks = await load(`${base}/webhooks/stripe/${tenant.slug}`, () => {
        const payload = event()
        return { payload, headers: { 'content-type': 'application/json', 'stripe-signature': signStripePayload(payload, SECRET) } }
      })
      note(`baseline ${baseline.perS}/s p99 ${baseline.p99} ms (${baseline.errors} errors); webhooks ${hooks.perS}/s p99 ${hooks.p99} ms (${hooks.errors} errors)`)
      // One snapshot: requests still in flight when the load stops land atomically, event and job together.
      const { rows: [counts] } = await db.raw("select (select count(*) from webhook_events) as events, (select count(*) from jobs where queue = 'stripe.event') as jobs") as { rows: Array<{ events: number, jobs: number }> }
      if (hooks.errors > 0 || Number(counts?.events) !== Number(counts?.jobs)) throw new Error(`webhook run had ${hooks.errors} errors; ${String(counts?.events)} events vs ${String(counts?.jobs)} jobs`)
      return { bench: 'webhooks', events_per_s: hooks.perS, baseline_per_s: baseline.perS, ratio: Math.round((hooks.perS / baseline.perS) * 100) / 100, p99_ms: hooks.p99 }
    } finally {
      await app.close()
    }
  })
}
