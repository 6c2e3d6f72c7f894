import type { Knex } from 'knex'
import { AppError } from '../errors.js'
import type { CallBudget, PsaSystem } from '../ports/psa.js'
import { requireTenantId } from './tenants.js'

/** Outside systems whose rate limit is kept in psa_call_budget (the name predates QuickBooks). */
export type BudgetSystem = PsaSystem | 'quickbooks'

interface BudgetCommon {
  tenantId: string
  system: BudgetSystem
  /** Longest a caller waits for a token before giving up with RATE_BUDGET_EXHAUSTED. */
  maxWaitMs?: number
  sleep?: (ms: number) => Promise<void>
  /**
   * Tests only: epoch ms to refill by instead of the database clock. Every
   * process must refill by the same clock, so production never sets it.
   */
  now?: () => number
}

/** An hourly allowance that may all be spent at once (Autotask: 10,000 calls/hour per database). */
export interface HourlyBudgetOptions extends BudgetCommon { perHour: number, capacity?: never, refillPerMinute?: never }
/** A burst of `capacity` calls, refilled at `refillPerMinute` (QuickBooks: 10 at once, under 500/min). */
export interface BurstBudgetOptions extends BudgetCommon { capacity: number, refillPerMinute: number, perHour?: never }
export type DbCallBudgetOptions = HourlyBudgetOptions | BurstBudgetOptions

/**
 * A token bucket kept in one row, so every worker and process of a tenant
 * draws from the same allowance. Refill and take happen in one UPDATE,
 * which row-locks the bucket: no two callers spend the same token.
 */
export function dbCallBudget (db: Knex, options: DbCallBudgetOptions): CallBudget & { used: () => Promise<number> } {
  requireTenantId(options.tenantId)
  const hourly = options.perHour !== undefined
  const capacity = hourly ? options.perHour : options.capacity
  const ratePerMs = hourly ? options.perHour / 3_600_000 : options.refillPerMinute / 60_000
  if (!(capacity > 0) || !(ratePerMs > 0)) throw new Error('dbCallBudget needs a positive capacity and refill rate')
  const limit = hourly ? `hourly call budget (${capacity}/hour)` : `call budget (${options.refillPerMinute}/minute, bursts of ${capacity})`
  const sleep = options.sleep ?? (async (ms: number) => { await new Promise(resolve => setTimeout(resolve, ms)) })
  const key = { tenant_id: options.tenantId, system: options.system }
  // null: the database's clock_timestamp(), the one clock all processes share.
  const at = (): Date | null => options.now === undefined ? null : new Date(options.now())
  let ensured = false

  /** null when the calls were taken, else the ms until enough tokens are back. */
  async function tryTake (calls: number): Promise<number | null> {
    if (!ensured) {
      await db('psa_call_budget').insert({ ...key, tokens: capacity, ...(options.now !== undefined ? { refilled_at: at() } : {}) })
        .onConflict(['tenant_id', 'system']).ignore()
      ensured = true
    }
    const now = at()
    const refilled = 'least(?::float8, tokens + extract(epoch from (coalesce(?::timestamptz, clock_timestamp()) - refilled_at)) * 1000 * ?::float8)'
    const result = await db.raw(`
      update psa_call_budget set
        tokens = ${refilled} - ?::float8,
        refilled_at = coalesce(?::timestamptz, clock_timestamp()),
        calls_total = calls_total + ?
      where tenant_id = ? and system = ? and ${refilled} >= ?::float8
      returning tokens`, [capacity, now, ratePerMs, calls, now, calls, options.tenantId, options.system, capacity, now, ratePerMs, calls]) as { rows: unknown[] }
    if (result.rows.length === 1) return null
    // What the bucket holds now, refill included, so the wait is not overstated.
    const { rows: [row] } = await db.raw(`select ${refilled} as tokens from psa_call_budget where tenant_id = ? and system = ?`,
      [capacity, now, ratePerMs, options.tenantId, options.system]) as { rows: Array<{ tokens: number }> }
    // At least 1 ms: another caller may have refilled in between, and a zero wait must not pass as a take.
    return Math.max(1, Math.ceil((calls - Number(row?.tokens ?? 0)) / ratePerMs))
  }

  return {
    async take (calls = 1) {
      // More than the bucket holds would wait out maxWaitMs for nothing.
      if (calls > capacity) throw new Error(`${calls} calls at once exceed the ${options.system} ${limit}`)
      let waited = 0
      for (;;) {
        const wait = await tryTake(calls)
        if (wait === null) return
        if (waited + wait > (options.maxWaitMs ?? 60_000)) {
          throw new AppError('RATE_BUDGET_EXHAUSTED', `The ${options.system} ${limit} is spent; the next call is possible in about ${Math.ceil(wait / 1000)} s.`)
        }
        await sleep(wait)
        waited += wait
      }
    },
    async used () {
      const [row] = await db('psa_call_budget').where(key).select('calls_total') as Array<{ calls_total: number }>
      return Number(row?.calls_total ?? 0)
    }
  }
}
