/**
 * The two PSA stand-ins in their own process, so the sync benchmarks' memory
 * figures are the syncing process alone. Arguments: invoices per stand-in,
 * then latency in ms added to every call (the stand-ins' own latency
 * switch). `GET /bench/stats` tells the most requests each stand-in had in
 * flight at once. Prints one JSON line with its origin.
 */
import Fastify from 'fastify'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, createConnectWiseStore } from '../src/sandbox/connectwise/index.js'
import autotaskSandbox, { AUTOTASK_SANDBOX_CREDENTIALS, createAutotaskStore } from '../src/sandbox/autotask/index.js'

const invoices = Number(process.argv[2] ?? 50_000)
const latencyMs = Number(process.argv[3] ?? 0)
const app = Fastify({ logger: false, bodyLimit: 10 * 1024 * 1024 })
const cw = createConnectWiseStore({ seed: 21, companies: 300, invoices })
const at = createAutotaskStore({ seed: 22, companies: 300, invoices })
cw.faults.latencyMs = latencyMs
at.faults.latencyMs = latencyMs
const inFlight = { cw: 0, at: 0 }
const maxInFlight = { cw: 0, at: 0 }
const requests = { cw: 0, at: 0 }
const which = (url: string): 'cw' | 'at' | null => url.startsWith('/cw/') ? 'cw' : url.startsWith('/at/') ? 'at' : null
app.addHook('onRequest', async request => {
  const s = which(request.url)
  if (s === null) return
  requests[s]++
  inFlight[s]++
  maxInFlight[s] = Math.max(maxInFlight[s], inFlight[s])
})
app.addHook('onResponse', async request => { const s = which(request.url); if (s !== null) inFlight[s]-- })
app.get('/bench/stats', async () => ({ maxInFlight, requests, atCallsThisHour: at.callsThisHour() }))
app.post('/bench/reset', async () => { maxInFlight.cw = 0; maxInFlight.at = 0; requests.cw = 0; requests.at = 0; return { ok: true } })
await app.register(connectwiseSandbox, { prefix: '/cw', store: cw, credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
await app.register(autotaskSandbox, { prefix: '/at', store: at, credentials: AUTOTASK_SANDBOX_CREDENTIALS })
const origin = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(JSON.stringify({ origin }) + '\n')
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
