import type { CallBudget } from '../../ports/psa.js'

/** Thrown by `take` when the next free call is further away than the caller will wait. */
export class RateBudgetExhausted extends Error {
  override readonly name = 'RateBudgetExhausted'
  readonly code = 'rate_budget_exhausted'
  /** Retryable later: wait at least this long. */
  readonly retryable = true
  constructor (readonly retryAfterMs: number, readonly capacityPerHour: number) {
    super(`call budget of ${capacityPerHour}/hour is spent; next call in ${Math.ceil(retryAfterMs / 1000)} s`)
  }
}

export interface TokenBucketOptions {
  /** Calls per hour (Autotask: 10,000 per database). */
  capacityPerHour?: number
  /** Tokens at the start; defaults to a full bucket. */
  initialTokens?: number
  /** Longest a `take` may sleep before it throws RateBudgetExhausted. */
  maxWaitMs?: number
  now?: () => number
  sleep?: (ms: number) => Promise<void>
}

export interface TokenBucket extends CallBudget {
  /** Whole calls available right now (for reports and tests). */
  available: () => number
}

/**
 * In-memory token bucket for tests and single-process use; refills
 * continuously at capacity/hour. A caller that must wait reserves its tokens
 * first (the balance may go negative), so concurrent callers queue fairly
 * instead of all waking to the same token.
 */
export function createTokenBucket (options: TokenBucketOptions = {}): TokenBucket {
  const capacity = options.capacityPerHour ?? 10_000
  if (!(capacity > 0)) throw new RangeError('capacityPerHour must be positive')
  const now = options.now ?? Date.now
  const sleep = options.sleep ?? (async (ms: number) => { await new Promise(resolve => setTimeout(resolve, ms)) })
  const maxWaitMs = options.maxWaitMs ?? 60_000
  let tokens = Math.min(capacity, options.initialTokens ?? capacity)
  let last = now()

  function refill (): void {
    const t = now()
    tokens = Math.min(capacity, tokens + Math.max(0, t - last) * capacity / 3_600_000)
    last = t
  }

  return {
    async take (calls = 1): Promise<void> {
      refill()
      if (tokens >= calls) { tokens -= calls; return }
      // Multiply before dividing so whole-token waits come out exact.
      const waitMs = Math.ceil((calls - tokens) * 3_600_000 / capacity)
      if (waitMs > maxWaitMs) throw new RateBudgetExhausted(waitMs, capacity)
      tokens -= calls
      await sleep(waitMs)
    },
    available (): number {
      refill()
      return Math.max(0, Math.floor(tokens))
    }
  }
}
