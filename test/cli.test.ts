import t from 'tap'
import { renderProgress, syncFraction } from '../src/cli/progress.js'
import type { SyncProgress } from '../src/services/sync.js'
import { runTenantCommand } from '../src/cli/commands.js'
import { testDb } from './helpers/db.js'
import { makeTenant, testKeyring } from './helpers/fixtures.js'

const progress = (over: Partial<SyncProgress>): SyncProgress => ({
  pages: 1, invoicesSeen: 1000, created: 900, changed: 100, voided: 0, unchanged: 0, linesFetched: 2500, calls: 12,
  phase: 'invoices', invoicesPerSecond: 1500, since: new Date('2026-01-01T00:00:00Z'), reachedAt: new Date('2026-07-02T12:00:00Z'), ...over
})

t.test('the sync progress bar shows how far through the change window the sync is', async t => {
  const now = new Date('2027-01-01T00:00:00Z')
  t.equal(Math.round((syncFraction(progress({}), now) ?? 0) * 100), 50)
  t.equal(syncFraction(progress({ since: null }), now), null, 'unknown before the first page')
  t.equal(syncFraction(progress({ reachedAt: new Date('2028-01-01T00:00:00Z') }), now), 1, 'never past the end')
  const line = renderProgress(progress({}), 0.5)
  t.match(line, /^\[█{14}░{14}\]  50%  1,000 invoices · 1,500\/s · 900 new · 100 changed · 12 calls$/)
  t.match(renderProgress(progress({ phase: 'open-recheck' }), null), /\[░{28}\]   …  .* re-checking open invoices$/)
})

t.test('tenants:surcharge sets, shows and refuses', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const deps = { db, keyring: testKeyring(), publicUrl: 'http://127.0.0.1:3000' }
  const printed: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  const run = async (...args: string[]): Promise<number> => {
    // Capture the command's output so it does not land in the TAP stream.
    process.stdout.write = ((chunk: string) => { printed.push(String(chunk)); return true }) as typeof process.stdout.write
    try { return await runTenantCommand('tenants:surcharge', ['--tenant', tenant.slug, ...args], deps) } finally { process.stdout.write = write }
  }
  const stored = async (): Promise<unknown[]> => {
    const row = await db('tenants').where({ id: tenant.id }).first('surcharge_rate_bp', 'surcharge_blocked_states')
    return [row.surcharge_rate_bp, row.surcharge_blocked_states]
  }

  t.equal(await run('--rate', '2.5', '--block', 'ct, ma'), 0)
  t.same(await stored(), [250, ['CT', 'MA']])
  t.match(printed.at(-1), /2\.5% on credit cards; none for clients billed in CT, MA/)
  t.equal(await run('--rate', '3'), 0, 'the states are kept when --block is left out')
  t.same(await stored(), [300, ['CT', 'MA']])
  await t.rejects(run('--rate', '3.5'), { code: 'VALIDATION_FAILED', message: /3%/ })
  await t.rejects(run('--rate', 'two'), { code: 'VALIDATION_FAILED', message: /--rate takes a percentage/ })
  await t.rejects(run('--block', 'CT,Mass'), { code: 'VALIDATION_FAILED', message: /"MASS"/ })
  t.same(await stored(), [300, ['CT', 'MA']], 'refused input changed nothing')
  t.equal(await run(), 0)
  t.match(printed.at(-1), /3% on credit cards/, 'no options: shows the settings')
  t.equal(await run('--rate', 'off', '--block', ''), 0)
  t.same(await stored(), [0, []])
  t.match(printed.at(-1), /: off\./)
})
