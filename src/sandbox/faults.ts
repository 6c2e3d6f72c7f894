import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { prng } from './random.js'

/**
 * Losing the answer of a write the service performed: the change is made,
 * then the caller sees a gateway's 502 or a dropped connection. It is the
 * failure that double-posts when a client retries without an idempotency key.
 */
export interface LostAnswerFaults {
  /** Share (0 to 1) of performed writes whose answer is lost, drawn from the seeded generator. */
  lostAnswerRate: number
  /** The next N performed writes lose their answer, whatever the rate. */
  burstLostAnswers: number
  /** `bad_gateway`: the change is made and a 502 comes back; `drop`: the socket is destroyed unanswered. */
  lostAnswerMode: 'bad_gateway' | 'drop'
}

export const LOST_ANSWER_DEFAULTS: LostAnswerFaults = { lostAnswerRate: 0, burstLostAnswers: 0, lostAnswerMode: 'bad_gateway' }

type Setting = number | boolean | string

export interface FaultSwitchOptions<F extends LostAnswerFaults> {
  /** The stand-in's live fault object (its own keys plus the lost-answer ones); the control route edits it in place. */
  faults: F
  seed: number
  /** Called with the new seed, so the stand-in can restart its own fault draws too. */
  onReseed?: (seed: number) => void
  /** Whether a request changes something (reads, including POSTed queries, never lose an answer). */
  isWrite: (request: FastifyRequest) => boolean
  /** The 502 body and content type in the form the service's gateway sends. */
  badGateway: { contentType: string, body: string }
  /** An error body in the service's own format, for a refused control request. */
  refusal: (message: string) => unknown
}

export const SANDBOX_FAULTS_PATH = '/_sandbox/faults'

const KEYS_WITH_CHOICES: Record<string, readonly string[]> = { lostAnswerMode: ['bad_gateway', 'drop'] }

/**
 * A stand-in's fault switch, shared by all four: loses the answers of
 * performed writes (onSend, after the handler changed the store), and makes
 * every setting controllable over HTTP at `/_sandbox/faults` under the
 * stand-in's prefix (GET to read, PUT a JSON object of settings and
 * optionally `seed`), so a chaos harness in another process can drive it.
 */
export function installFaultSwitch<F extends LostAnswerFaults> (app: FastifyInstance, options: FaultSwitchOptions<F>): { errorDraw: () => number } {
  const faults = options.faults
  const settings = faults as unknown as Record<string, Setting>
  let seed = options.seed
  let rand = prng(seed)
  // A second sequence for a stand-in's own error rate, so lost answers and errors do not shift each other.
  let errorRand = prng(seed ^ 0x5eed)
  const loses = (): boolean => {
    if (faults.burstLostAnswers > 0) { faults.burstLostAnswers--; return true }
    return faults.lostAnswerRate > 0 && rand() < faults.lostAnswerRate
  }

  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode >= 300 || isControl(request) || !options.isWrite(request) || !loses()) return payload
    if (faults.lostAnswerMode === 'drop') {
      // The change is made; the client only sees the connection close.
      request.raw.socket?.destroy()
      return payload
    }
    reply.code(502).header('content-type', options.badGateway.contentType)
    return options.badGateway.body
  })

  const current = (): Record<string, Setting> => ({ ...settings, seed })
  app.get(SANDBOX_FAULTS_PATH, async () => current())
  app.put(SANDBOX_FAULTS_PATH, async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return await reply.code(400).send(options.refusal('Send a JSON object of fault settings.'))
    const changes = body as Record<string, unknown>
    for (const [key, value] of Object.entries(changes)) {
      const problem = key === 'seed' ? (Number.isInteger(value) ? null : 'seed must be a whole number') : settingProblem(settings, key, value)
      if (problem !== null) return await reply.code(400).send(options.refusal(problem))
    }
    for (const [key, value] of Object.entries(changes)) if (key !== 'seed') settings[key] = value as Setting
    if (changes.seed !== undefined) {
      seed = changes.seed as number
      rand = prng(seed)
      errorRand = prng(seed ^ 0x5eed)
      options.onReseed?.(seed)
    }
    return current()
  })
  return { errorDraw: () => errorRand() }
}

function isControl (request: FastifyRequest): boolean {
  return (request.routeOptions.url ?? '').endsWith(SANDBOX_FAULTS_PATH)
}

function settingProblem (faults: Record<string, Setting>, key: string, value: unknown): string | null {
  if (!Object.prototype.hasOwnProperty.call(faults, key)) return `unknown fault setting ${key}; known: ${[...Object.keys(faults), 'seed'].join(', ')}`
  const was = faults[key]
  const choices = KEYS_WITH_CHOICES[key]
  if (choices !== undefined) return typeof value === 'string' && choices.includes(value) ? null : `${key} must be one of ${choices.join(', ')}`
  if (typeof was === 'boolean') return typeof value === 'boolean' ? null : `${key} must be true or false`
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return `${key} must be a number of 0 or more`
  if (/rate$/i.test(key) && value > 1) return `${key} is a share of requests, from 0 to 1`
  if (!/rate$/i.test(key) && !Number.isInteger(value)) return `${key} must be a whole number`
  return null
}

/** Writes as most REST services mean them: anything but GET/HEAD, except queries sent by POST. */
export function isRestWrite (request: FastifyRequest): boolean {
  if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') return false
  return !/\/query(\/next)?(\?|$)/i.test(request.url)
}
