import { createAutotaskStore } from '../src/sandbox/autotask/index.js'
import { createConnectWiseStore } from '../src/sandbox/connectwise/index.js'
import { prng } from '../src/sandbox/random.js'
import { median, note } from './lib.js'

/**
 * Building the PSA stand-ins' stores at benchmark size (50,000 invoices):
 * time and heap growth. Baseline, same run: 50,000 plain records of a dozen
 * numbers from the same PRNG, the floor for any store of that size.
 * Targets (moved here from the stand-in tests): ConnectWise < 5 s and
 * < 120 MB of heap, Autotask < 3 s.
 */
const N = Number(process.env.BENCH_INVOICES ?? 50_000)
const ROUNDS = 3

function measure (build: () => unknown): { ms: number, heapMb: number } {
  globalThis.gc?.()
  const before = process.memoryUsage().heapUsed
  const started = process.hrtime.bigint()
  const kept = build()
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  const heapMb = (process.memoryUsage().heapUsed - before) / 1e6
  if (kept === null) throw new Error('unreachable: keeps the store alive until measured')
  return { ms, heapMb }
}

function baseline (): unknown {
  const rand = prng(1)
  return Array.from({ length: N }, (_, i) => ({ id: i, a: rand(), b: rand(), c: rand(), d: rand(), e: rand(), f: rand(), g: rand(), h: rand(), j: rand(), k: rand(), l: rand() }))
}

export async function run (): Promise<Record<string, unknown>> {
  note(`standins: building ${N}-invoice stores, ${ROUNDS} rounds, median`)
  const rounds = { cw: [] as Array<{ ms: number, heapMb: number }>, at: [] as Array<{ ms: number, heapMb: number }>, base: [] as Array<{ ms: number, heapMb: number }> }
  for (let r = 0; r < ROUNDS; r++) {
    rounds.base.push(measure(baseline))
    rounds.cw.push(measure(() => createConnectWiseStore({ invoices: N })))
    rounds.at.push(measure(() => createAutotaskStore({ seed: 1, companies: 300, invoices: N })))
  }
  const ms = (xs: Array<{ ms: number }>): number => Math.round(median(xs.map(x => x.ms)))
  const mb = (xs: Array<{ heapMb: number }>): number => Math.round(median(xs.map(x => x.heapMb)) * 10) / 10
  const base = ms(rounds.base)
  return {
    bench: 'standins',
    cw_ms: ms(rounds.cw),
    cw_heap_mb: mb(rounds.cw),
    at_ms: ms(rounds.at),
    at_heap_mb: mb(rounds.at),
    baseline_ms: base,
    cw_ratio: Math.round((ms(rounds.cw) / Math.max(1, base)) * 10) / 10,
    at_ratio: Math.round((ms(rounds.at) / Math.max(1, base)) * 10) / 10
  }
}
