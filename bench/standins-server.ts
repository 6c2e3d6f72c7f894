/**
 * The two PSA stand-ins in their own process, so the sync benchmark's memory
 * figure is the syncing process alone. Prints one JSON line with its origin.
 */
import Fastify from 'fastify'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, createConnectWiseStore } from '../src/sandbox/connectwise/index.js'
import autotaskSandbox, { AUTOTASK_SANDBOX_CREDENTIALS, createAutotaskStore } from '../src/sandbox/autotask/index.js'

const invoices = Number(process.argv[2] ?? 50_000)
const app = Fastify({ logger: false, bodyLimit: 10 * 1024 * 1024 })
await app.register(connectwiseSandbox, { prefix: '/cw', store: createConnectWiseStore({ seed: 21, companies: 300, invoices }), credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
await app.register(autotaskSandbox, { prefix: '/at', store: createAutotaskStore({ seed: 22, companies: 300, invoices }), credentials: AUTOTASK_SANDBOX_CREDENTIALS })
const origin = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(JSON.stringify({ origin }) + '\n')
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
