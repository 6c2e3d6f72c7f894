import t from 'tap'
import { ESLint } from 'eslint'

// The house lines in eslint.config.js: a new file that crosses one is refused,
// and a file on the debt list that stops crossing must be taken off it.
const eslint = new ESLint({ cwd: process.cwd() })

async function problems (filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath })
  return (result?.messages ?? []).filter(m => m.ruleId?.startsWith('house/')).map(m => m.message)
}

t.test('a new route may not import db/ or adapters/', async t => {
  t.match(await problems('src/routes/new/index.ts', "import { findTenantBySlug } from '../../db/tenants.js'\nexport const x = findTenantBySlug\n"), [/may not import "..\/..\/db\/tenants.js"/])
  t.match(await problems('src/routes/new/index.ts', "export { createStripePayments } from '../../adapters/stripe/payments.js'\n"), [/may not import/])
  t.same(await problems('src/routes/new/index.ts', "import { chargeInvoice } from '../../services/charge.js'\nexport const x = chargeInvoice\n"), [], 'a service is fine')
})

t.test('a new service may not import adapters/ or sandbox/, not even lazily', async t => {
  t.match(await problems('src/services/new.ts', "export const load = async () => await import('../sandbox/stripe/index.js')\n"), [/may not import/])
  t.match(await problems('src/services/new.ts', "import type { ConnectWisePsa } from '../adapters/connectwise/psa.js'\nexport type X = ConnectWisePsa\n"), [/may not import/])
})

t.test('domain/ imports only domain/ and the pure node: modules listed', async t => {
  t.match(await problems('src/domain/new.ts', "import { AppError } from '../errors.js'\nexport const x = AppError\n"), [/domain\/ is pure/])
  t.match(await problems('src/domain/new.ts', "import { readFileSync } from 'node:fs'\nexport const x = readFileSync\n"), [/may not import "node:fs"/])
  t.same(await problems('src/domain/sub/new.ts', "import { createHash } from 'node:crypto'\nimport { add } from '../money.js'\nexport const x = [createHash, add]\n"), [], 'a subfolder reaching up inside domain/ is fine')
})

t.test('process.env is read in src/config.ts only', async t => {
  t.match(await problems('src/services/new.ts', 'export const key = process.env.SETTLE_KEY\n'), [/Read settings in src\/config.ts/])
  t.same(await problems('src/config.ts', 'export const env = process.env\n'), [])
})

t.test('a file on a debt list that no longer crosses the line fails until it is taken off', async t => {
  t.match(await problems('src/routes/health/index.ts', 'export const clean = 1\n'), [/no longer crosses this line: take it off the debt list/])
  t.match(await problems('src/services/posting.ts', 'export const clean = 1\n'), [/no longer crosses this line/])
  t.same(await problems('src/routes/health/index.ts', "import { pingDb } from '../../db/knex.js'\nexport const x = pingDb\n"), [], 'while it still crosses, it passes')
})
