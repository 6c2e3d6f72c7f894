import { createAutotaskPsa } from '../src/adapters/autotask/psa.js'
import { createConnectWisePsa } from '../src/adapters/connectwise/psa.js'
import { toPsaInvoiceLines, type CwInvoiceInfo } from '../src/adapters/connectwise/mapper.js'
import { createTokenBucket } from '../src/adapters/autotask/budget.js'
import { migrateLatest } from '../src/db/migrate.js'
import { createTenant } from '../src/db/tenants.js'
import type { PsaPort } from '../src/ports/psa.js'
import { AUTOTASK_SANDBOX_CREDENTIALS } from '../src/sandbox/autotask/index.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS } from '../src/sandbox/connectwise/index.js'
import { syncInvoices } from '../src/services/sync.js'
import { note, withScratchDatabase } from './lib.js'
import { readOnly, startStandIns } from './sync.js'

/**
 * An initial sync at a realistic 150 ms per call: N invoices (default
 * 20,000; `--invoices=N` or BENCH_INVOICES) from each stand-in in a child
 * process on loopback, the latency injected by the stand-ins themselves,
 * into a fresh PostgreSQL database. Baseline, same run: the same adapters
 * reading the same pages and lines without writing (the floor the wire
 * sets). Also measured: the old way for ConnectWise, one
 * /finance/info/invoice call per invoice at the same 10 in flight, on a
 * sample, scaled to N. Targets: ConnectWise ≤ 300 s with ≤ 10 requests in
 * flight; Autotask within 10,000 calls an hour (its budget is enforced, by
 * a token bucket here and by the stand-in's own hourly limit).
 */
const flag = process.argv.find(a => a.startsWith('--invoices='))
const N = Number(flag?.split('=')[1] ?? process.env.BENCH_INVOICES ?? 20_000)
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 150)
const SAMPLE = Math.min(N, 500)

interface Stats { maxInFlight: { cw: number, at: number }, requests: { cw: number, at: number }, atCallsThisHour: number }

export async function run (): Promise<Record<string, unknown>> {
  note(`sync-latency: ${N} invoices from each stand-in at ${LATENCY_MS} ms a call, into PostgreSQL`)
  const standIns = await startStandIns(N, LATENCY_MS)
  const stats = async (): Promise<Stats> => await (await fetch(`${standIns.origin}/bench/stats`)).json() as Stats
  const reset = async (): Promise<void> => { await fetch(`${standIns.origin}/bench/reset`, { method: 'POST' }) }
  try {
    const cw = (): ReturnType<typeof createConnectWisePsa> => createConnectWisePsa({ site: `${standIns.origin}/cw`, ...CONNECTWISE_SANDBOX_CREDENTIALS })
    const at = (): PsaPort => createAutotaskPsa({ ...AUTOTASK_SANDBOX_CREDENTIALS, zoneDiscoveryUrl: `${standIns.origin}/at/ATServicesRest/V1.0/zoneInformation`, budget: createTokenBucket({ capacityPerHour: 10_000 }) })
    const figures: Record<string, { seconds: number, calls: number, created: number, baselineSeconds: number, maxInFlight: number }> = {}
    for (const [name, make] of [['cw', cw], ['at', at]] as const) {
      let started = Date.now()
      await readOnly(make())
      const baselineSeconds = (Date.now() - started) / 1000
      await reset()
      const result = await withScratchDatabase(4, async db => {
        await migrateLatest(db)
        const tenant = await createTenant(db, { slug: `bench-${name}`, name: `Bench ${name}` })
        started = Date.now()
        const full = await syncInvoices({ db, tenantId: tenant.id, psa: make(), trigger: 'cli' })
        if (full.status !== 'ok') throw new Error(`${name} sync failed: ${full.error ?? ''}`)
        return { seconds: (Date.now() - started) / 1000, calls: full.calls, created: full.created }
      })
      const s = await stats()
      figures[name] = { ...result, baselineSeconds, maxInFlight: s.maxInFlight[name] }
      note(`${name}: ${result.created} invoices in ${result.seconds.toFixed(1)} s (${Math.round(result.created / result.seconds)}/s), ${result.calls} calls, at most ${s.maxInFlight[name]} in flight; read-only baseline ${baselineSeconds.toFixed(1)} s`)
    }
    // The old way, for scale: one info call per invoice, 10 in flight (the client's bound), on a sample.
    const old = cw()
    const ids = Array.from({ length: SAMPLE }, (_, i) => String(1001 + i))
    let next = 0
    const started = Date.now()
    await Promise.all(Array.from({ length: 10 }, async () => {
      for (let i = next++; i < ids.length; i = next++) toPsaInvoiceLines((await old.client.get<CwInvoiceInfo>(`/finance/info/invoice/${ids[i] ?? ''}`)).data)
    }))
    const perInvoiceSeconds = ((Date.now() - started) / 1000) * (N / SAMPLE)
    const c = figures.cw!
    const a = figures.at!
    note(`cw one call per invoice (sampled ${SAMPLE}): ${perInvoiceSeconds.toFixed(0)} s for ${N}; batched: ${c.seconds.toFixed(1)} s`)
    return {
      bench: 'sync-latency',
      invoices: N,
      latency_ms: LATENCY_MS,
      cw_baseline_seconds: Math.round(c.baselineSeconds * 10) / 10,
      cw_ratio: Math.round((c.baselineSeconds / c.seconds) * 100) / 100,
      cw_per_invoice_calls_seconds: Math.round(perInvoiceSeconds),
      at_baseline_seconds: Math.round(a.baselineSeconds * 10) / 10,
      at_ratio: Math.round((a.baselineSeconds / a.seconds) * 100) / 100,
      at_budget_share: Math.round((a.calls / 10_000) * 1000) / 1000,
      cw_seconds: Math.round(c.seconds * 10) / 10,
      at_seconds: Math.round(a.seconds * 10) / 10,
      cw_calls: c.calls,
      at_calls: a.calls,
      max_in_flight: Math.max(c.maxInFlight, a.maxInFlight)
    }
  } finally {
    standIns.stop()
  }
}
