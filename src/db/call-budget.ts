import type { Knex } from 'knex'
import { AppError } from '../errors.js'
import type { CallBudget, PsaSystem } from '../ports/psa.js'
import { requireTenantId } from './tenants.js'

export interface DbCallBudgetOptions {
  tenantId: string
  system: PsaSystem
  /** Calls allowed per hour (Autotask: 10,000 per database). */
  perHour: number
  /** Longest a caller waits for a token before giving up with RATE_BUDGET_EXHAUSTED. */
  maxWaitMs?: number
  sleep?: (ms: number) => Promise<void>
}

/**
 * A token bucket kept in one row, so every worker and process of a tenant
 * draws from the same hourly allowance. Refill and take happen in one
 * UPDATE, which row-locks the bucket: no two callers spend the same token.
 */
export function dbCallBudget (db: Knex, options: DbCallBudgetOptions): CallBudget & { used: () => Promise<number> } {
  requireTenantId(options.tenantId)
  const ratePerMs = options.perHour / 3_600_000
  const sleep = options.sleep ?? (async (ms: number) => { await new Promise(resolve => setTimeout(resolve, ms)) })
  const key = { tenant_id: options.tenantId, system: options.system }
  let ensured = false

  async function tryTake (calls: number): Promise<number> {
    if (!ensured) {
      await db('psa_call_budget').insert({ ...key, tokens: options.perHour }).onConflict(['tenant_id', 'system']).ignore()
      ensured = true
    }
    const result = await db.raw(`
      update psa_call_budget set
        tokens = least(?::float8, tokens + extract(epoch from (clock_timestamp() - refilled_at)) * 1000 * ?::float8) - ?::float8,
        refilled_at = clock_timestamp(),
        calls_total = calls_total + ?
      where tenant_id = ? and system = ?
        and least(?::float8, tokens + extract(epoch from (clock_timestamp() - refilled_at)) * 1000 * ?::float8) >= ?::float8
      returning tokens`, [options.perHour, ratePerMs, calls, calls, options.tenantId, options.system, options.perHour, ratePerMs, calls]) as { rows: unknown[] }
    if (result.rows.length === 1) return 0
    const [row] = await db('psa_call_budget').where(key).select('tokens') as Array<{ tokens: number }>
    return Math.ceil((calls - Number(row?.tokens ?? 0)) / ratePerMs)
  }

  return {
    async take (calls = 1) {
      let waited = 0
      for (;;) {
        const wait = await tryTake(calls)
        if (wait === 0) return
        if (waited + wait > (options.maxWaitMs ?? 60_000)) {
          throw new AppError('RATE_BUDGET_EXHAUSTED', `The ${options.system} hourly call budget (${options.perHour}/hour) is spent; the next call is possible in about ${Math.ceil(wait / 1000)} s.`)
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
