import Fastify, { type FastifyInstance } from 'fastify'

interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

/** A throwaway server (a stand-in, a receiver) on a free port, closed with the test; returns its base URL. */
export async function serve (t: Teardown, register: (app: FastifyInstance) => Promise<void>): Promise<string> {
  const app = Fastify()
  await register(app)
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return base
}

/** Lets queued callbacks run: the stand-ins' "later" without real waiting. */
export const fast = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }
