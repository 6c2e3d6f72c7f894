import autocannon from 'autocannon'
import { readFileSync } from 'node:fs'
import type { Knex } from 'knex'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { migrateLatest } from '../src/db/migrate.js'
import { savePsaConnection } from '../src/db/psa.js'
import { createTenant } from '../src/db/tenants.js'
import { Keyring } from '../src/security/keyring.js'
import { issueSession, SESSION_HEADER } from '../src/security/embedded-sessions.js'
import { invoiceModel } from '../src/services/embedded.js'
import { note, withScratchDatabase } from './lib.js'

/**
 * The ConnectWise invoice pod (GET /embedded/cw/invoice/view: session
 * verified, invoice, customer, methods and 50 payment-history rows read,
 * rendered to HTML) from 50 concurrent frames. Baseline, same run and pool:
 * a JSON route running the same queries (invoiceModel) and returning the
 * same rows, with no session check and no template. Also measured, as the
 * floor this machine sets: a route that runs one trivial query (`select 1`),
 * so a p99 can be read against the least any database-backed page costs.
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const CONNECTIONS = 50
const HISTORY = 50

/** CPU seconds (user + system) a thread or process has used, from /proc (Linux): 0 where /proc is not there. */
function cpuSeconds (path: string): number {
  try {
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    const fields = readFileSync(path, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch { return 0 }
}

/**
 * CPU per request, load-independent where latency is not: the server's main
 * thread (not autocannon's worker, which process.cpuUsage would include) and
 * the PostgreSQL backends serving this database.
 */
async function cpuNow (db: Knex): Promise<{ node: number, pg: number }> {
  const rows = (await db.raw('select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()') as { rows: Array<{ pid: number }> }).rows
  return { node: cpuSeconds(`/proc/self/task/${process.pid}/stat`), pg: rows.reduce((sum, r) => sum + cpuSeconds(`/proc/${r.pid}/stat`), 0) }
}

async function load (db: Knex, url: string, headers: Record<string, string>): Promise<{ perS: number, p99: number, errors: number, nodeUs: number, pgUs: number }> {
  const before = await cpuNow(db)
  // The load generator gets its own thread: sharing the server's event loop would count its work as the server's latency.
  const result = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, method: 'GET', headers, workers: 1 })
  const after = await cpuNow(db)
  const perRequest = (seconds: number): number => Math.round(seconds * 1e6 / Math.max(1, result.requests.total))
  return { perS: Math.round(result.requests.average), p99: result.latency.p99, errors: result.errors + result.non2xx, nodeUs: perRequest(after.node - before.node), pgUs: perRequest(after.pg - before.pg) }
}

export async function run (): Promise<Record<string, unknown>> {
  note(`pods: ${CONNECTIONS} frames × ${SECONDS} s, invoice pod with ${HISTORY} payment rows, PostgreSQL`)
  return await withScratchDatabase(20, async db => {
    await migrateLatest(db)
    const keyring = new Keyring(Keyring.generateEntry('bench'))
    const tenant = await createTenant(db, { slug: 'bench-pods', name: 'Bench MSP' })
    await savePsaConnection(db, tenant.id, 'connectwise', { site: 'https://api-na.myconnectwise.net', companyId: 'bench', publicKey: 'pk', clientId: '00000000-0000-4000-8000-000000000000' })
    const [customer] = await db('customers').insert({ tenant_id: tenant.id, name: 'Acme Dental', psa_system: 'connectwise', psa_company_id: '77' }).returning('id') as Array<{ id: string }>
    const [method] = await db('payment_methods').insert({ tenant_id: tenant.id, customer_id: customer!.id, processor_customer_ref: 'cus_bench', processor_method_ref: 'pm_bench', type: 'card', brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2030, is_default: true }).returning('id') as Array<{ id: string }>
    const [invoice] = await db('invoices').insert({
      tenant_id: tenant.id, customer_id: customer!.id, psa_system: 'connectwise', psa_invoice_id: '4242', number: '10042', kind: 'standard', currency: 'USD',
      issued_on: '2026-11-01', due_on: '2026-12-01', total: 500_000, psa_balance: 500_000, status: 'open', psa_updated_at: new Date(), ledger_billed: 500_000
    }).returning('id') as Array<{ id: string }>
    // A long history: every other attempt declined, the rest small partial payments.
    await db('payment_attempts').insert(Array.from({ length: HISTORY }, (_, i) => ({
      tenant_id: tenant.id, invoice_id: invoice!.id, customer_id: customer!.id, payment_method_id: method!.id, amount: 1000 + i, currency: 'USD',
      status: i % 2 === 0 ? 'failed' : 'succeeded', trigger: 'charge_card', actor: 'member:cw:bench', failure_code: i % 2 === 0 ? 'card_declined' : null,
      decline_code: i % 2 === 0 ? 'insufficient_funds' : null, created_at: new Date(Date.UTC(2026, 10, 1, 0, i))
    })))
    const app = await buildApp(loadConfig({ NODE_ENV: 'production', LOG_LEVEL: 'silent', WORKER_ENABLED: 'false', SETTLE_DEMO: 'false' }), { db, keyring })
    app.get('/baseline', async () => await invoiceModel(db, tenant.id, 'connectwise', '4242'))
    app.get('/floor', async () => (await db.raw('select 1 as one') as { rows: unknown[] }).rows)
    const base = await app.listen({ host: '127.0.0.1', port: 0 })
    try {
      const session = issueSession(keyring, { tenantId: tenant.id, system: 'connectwise', member: 'cw:bench', permissions: ['view', 'charge'] }).token
      const check = await fetch(`${base}/embedded/cw/invoice/view?id=4242`, { headers: { [SESSION_HEADER]: session } })
      const html = await check.text()
      const rows = (html.match(/<tr>/g) ?? []).length
      if (!check.ok || rows < HISTORY) throw new Error(`the pod answered ${check.status} with ${rows} history rows, expected ${HISTORY}`)
      const baseline = await load(db, `${base}/baseline`, {})
      const pods = await load(db, `${base}/embedded/cw/invoice/view?id=4242`, { [SESSION_HEADER]: session })
      const floor = await load(db, `${base}/floor`, {})
      const cpu = (r: { nodeUs: number, pgUs: number }): string => `CPU/request node ${r.nodeUs} µs, PostgreSQL ${r.pgUs} µs`
      note(`baseline ${baseline.perS}/s p99 ${baseline.p99} ms (${baseline.errors} errors), ${cpu(baseline)}`)
      note(`pod ${pods.perS}/s p99 ${pods.p99} ms (${pods.errors} errors), ${cpu(pods)}`)
      note(`one-query floor ${floor.perS}/s p99 ${floor.p99} ms, ${cpu(floor)}`)
      if (pods.errors > 0 || baseline.errors > 0) throw new Error(`pod run had ${pods.errors} errors, baseline ${baseline.errors}`)
      return { bench: 'pods', requests_per_s: pods.perS, baseline_per_s: baseline.perS, ratio: Math.round((pods.perS / baseline.perS) * 100) / 100, p99_ms: pods.p99, node_us_per_request: pods.nodeUs, pg_us_per_request: pods.pgUs, floor_per_s: floor.perS, floor_p99_ms: floor.p99 }
    } finally {
      await app.close()
    }
  })
}
