import type { Config } from './config.js'
import { describeTarget } from './db/knex.js'
import { databaseTarget } from './plugins/db.js'

/** What `npm start` prints once listening: where to go, and where the data really is (the demo's PGlite is in memory). */
export function startupBanner (config: Config, address: string): string {
  const demo = config.demo ? `  Demo tenants: Brightline Managed IT (ConnectWise), Cobalt IT Partners (Autotask)\n` : ''
  const data = describeTarget(databaseTarget(config))
  const fresh = config.demo && config.databaseUrl === null ? '; every start begins fresh' : ''
  return `\n  Settle is running: open ${address}/\n${demo}  Database: ${data}${fresh}\n\n`
}
