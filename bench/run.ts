import { report, note } from './lib.js'

/** `npm run bench` runs every benchmark; `npm run bench -- NAME` runs one. Each ends with one JSON line. */
const BENCHES: Record<string, () => Promise<{ run: () => Promise<Record<string, unknown>> }>> = {
  ledger: async () => await import('./ledger.js'),
  matching: async () => await import('./matching.js'),
  pods: async () => await import('./pods.js'),
  standins: async () => await import('./standins.js'),
  sync: async () => await import('./sync.js'),
  'sync-latency': async () => await import('./sync-latency.js'),
  webhooks: async () => await import('./webhooks.js')
}

// Words are benchmark names; `--name=value` flags are read by the benchmarks themselves.
const wanted = process.argv.slice(2).filter(arg => !arg.startsWith('--'))
const unknown = wanted.filter(name => !(name in BENCHES))
if (unknown.length > 0) {
  process.stderr.write(`Unknown benchmark ${unknown.join(', ')}; available: ${Object.keys(BENCHES).join(', ')}\n`)
  process.exit(64)
}
for (const name of wanted.length > 0 ? wanted : Object.keys(BENCHES)) {
  const bench = await BENCHES[name]!()
  const figures = await bench.run()
  note(`${name} done`)
  report(figures)
}
