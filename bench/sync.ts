import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createAutotaskPsa } from '../src/adapters/autotask/psa.js'
import { createConnectWisePsa } from '../src/adapters/connectwise/psa.js'
import { migrateLatest } from '../src/db/migrate.js'
import { createTenant } from '../src/db/tenants.js'
import type { PsaPort } from '../src/ports/psa.js'
import { AUTOTASK_SANDBOX_CREDENTIALS } from '../src/sandbox/autotask/index.js'
import { CONNECTWISE_SANDBOX_CREDENTIALS } from '../src/sandbox/connectwise/index.js'
import { syncInvoices } from '../src/services/sync.js'
import { note, withScratchDatabase } from './lib.js'

/**
 * Syncs N invoices with their lines from each stand-in (running in a child
 * process) into a fresh PostgreSQL database. Baseline, same run: reading the
 * same invoices and lines through the same adapters without writing
 * anything, so the ratio is what the engine and the ledger cost on top of
 * the wire.
 */
const N = Number(process.env.BENCH_INVOICES ?? 50_000)

/** The stand-ins in a child process, `invoices` each, `latencyMs` added to every call. */
export async function startStandIns (invoices = N, latencyMs = 0): Promise<{ origin: string, stop: () => void }> {
  const script = fileURLToPath(new URL('./standins-server.ts', import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', script, String(invoices), String(latencyMs)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const first = await new Promise<string>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', code => { reject(new Error(`stand-ins exited with ${String(code)}`)) })
    createInterface({ input: child.stdout }).once('line', resolve)
  })
  return { origin: (JSON.parse(first) as { origin: string }).origin, stop: () => { child.kill('SIGTERM') } }
}

/** Reads every invoice and its lines without touching a database. */
export async function readOnly (psa: PsaPort): Promise<number> {
  let n = 0
  for await (const page of psa.listInvoicesChangedSince({ since: null })) {
    await psa.getInvoiceLines({ invoiceExternalIds: page.map(i => i.externalId), headers: page })
    n += page.length
  }
  return n
}

export async function run (): Promise<Record<string, unknown>> {
  note(`sync: ${N} invoices from each stand-in (separate process) into PostgreSQL`)
  const standIns = await startStandIns()
  try {
    const cw = (): PsaPort => createConnectWisePsa({ site: `${standIns.origin}/cw`, ...CONNECTWISE_SANDBOX_CREDENTIALS })
    const at = (): PsaPort => createAutotaskPsa({ ...AUTOTASK_SANDBOX_CREDENTIALS, zoneDiscoveryUrl: `${standIns.origin}/at/ATServicesRest/V1.0/zoneInformation` })
    const figures: Record<string, { perS: number, baselinePerS: number, calls: number, created: number, lineCalls: number, idleCalls: number }> = {}
    for (const [name, make] of [['connectwise', cw], ['autotask', at]] as const) {
      let started = Date.now()
      const baselineRead = await readOnly(make())
      const baselinePerS = Math.round(baselineRead / ((Date.now() - started) / 1000))
      const result = await withScratchDatabase(4, async db => {
        await migrateLatest(db)
        const tenant = await createTenant(db, { slug: `bench-${name}`, name: `Bench ${name}` })
        const psa = make()
        started = Date.now()
        const full = await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'cli' })
        const seconds = (Date.now() - started) / 1000
        if (full.status !== 'ok') throw new Error(`${name} sync failed: ${full.error ?? ''}`)
        const idle = await syncInvoices({ db, tenantId: tenant.id, psa: make(), trigger: 'cli' })
        return { perS: Math.round(full.created / seconds), calls: full.calls, created: full.created, idleCalls: idle.calls }
      })
      // Calls that fetched lines: everything but the invoice pages, the company listing and discovery.
      const pages = Math.ceil(result.created / (name === 'connectwise' ? 1000 : 500))
      figures[name] = { ...result, baselinePerS, lineCalls: Math.max(0, result.calls - pages - 2) }
      note(`${name}: ${result.created} invoices at ${result.perS}/s (read-only baseline ${baselinePerS}/s), ${result.calls} calls, idle re-sync ${result.idleCalls} calls`)
    }
    const c = figures.connectwise!
    const a = figures.autotask!
    const perS = Math.round((c.created + a.created) / (c.created / c.perS + a.created / a.perS))
    const baseline = Math.round((c.created + a.created) / (c.created / c.baselinePerS + a.created / a.baselinePerS))
    return {
      bench: 'sync',
      invoices_per_s: perS,
      baseline_per_s: baseline,
      ratio: Math.round((perS / baseline) * 100) / 100,
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      cw_calls_per_invoice: Math.round((c.calls / c.created) * 1000) / 1000,
      at_line_calls_per_invoice: Math.round((a.lineCalls / a.created) * 10000) / 10000,
      idle_sync_calls: Math.max(c.idleCalls, a.idleCalls)
    }
  } finally {
    standIns.stop()
  }
}
