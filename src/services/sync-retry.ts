/** How a sync run keeps going through a PSA's bad day: retry what failed, give up only when nothing moves. */

/** Retries, in one run, of a step that keeps failing with nothing committed in between. */
export const RETRY_ROUNDS = 6
/** A longer wait (an hourly budget spent) ends the run instead: its lease would lapse, and the job retries later. */
export const MAX_RETRY_WAIT_MS = 60_000

export const realSleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export interface RunContext {
  sleep: (ms: number) => Promise<void>
  /** Units committed so far: a retry that follows progress starts its count again. */
  commits: number
}

/** 429s, 5xx, timeouts and a spent call budget: trying again later can help. */
export function retryable (error: unknown): error is { retryAfterMs?: number | null } {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === true
}

/** The far end's Retry-After (or a spent budget's wait); otherwise at once, since the adapter backed off between its own attempts already. */
export function retryWaitMs (error: { retryAfterMs?: number | null }): number {
  return error.retryAfterMs ?? 0
}

/**
 * Runs `step` again after a retryable failure, as long as something was
 * committed since the last failure or fewer than RETRY_ROUNDS failures came
 * in a row; the step itself resumes from what is committed.
 */
export async function retryingWhileProgressing (run: RunContext, step: () => Promise<void>): Promise<void> {
  let failures = 0
  let commitsAtFailure = run.commits
  for (;;) {
    try { return await step() } catch (error) {
      if (!retryable(error)) throw error
      if (run.commits !== commitsAtFailure) failures = 0
      commitsAtFailure = run.commits
      if (++failures > RETRY_ROUNDS || retryWaitMs(error) > MAX_RETRY_WAIT_MS) throw error
      await run.sleep(retryWaitMs(error))
    }
  }
}
