/**
 * Exponential backoff with ±20% jitter, so jobs that failed together (an
 * outage) do not all come back in the same second.
 */
export interface BackoffPolicy { baseMs: number, capMs: number }

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 5_000, capMs: 60 * 60_000 }

/** Delay before attempt `attempt + 1`, after `attempt` failures (1-based). */
export function backoffDelayMs (attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30)
  const raw = Math.min(policy.capMs, policy.baseMs * 2 ** exponent)
  return Math.round(raw * (0.8 + 0.4 * random()))
}
