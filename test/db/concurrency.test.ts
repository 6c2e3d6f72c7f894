import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createPostgresDatabase, onPostgres } from '../helpers/db.js'
import { countRows, invoiceEntry, makeCustomer, makeTenant } from '../helpers/fixtures.js'
import { createDb } from '../../src/db/knex.js'
import { migrateLatest } from '../../src/db/migrate.js'
import { postEntry } from '../../src/db/ledger.js'
import { enqueue } from '../../src/db/jobs.js'

// PGlite is one connection in one process: there is no concurrency to test.
// These run whenever TEST_DATABASE_URL points at a PostgreSQL server (always in CI).
t.test('concurrency on real PostgreSQL', { skip: onPostgres ? false : 'needs TEST_DATABASE_URL (real PostgreSQL); .ci/run sets it' }, async t => {
  const { url, drop } = await createPostgresDatabase()
  const db = createDb({ kind: 'postgres', url, poolMax: 50 })
  t.teardown(async () => { await db.destroy(); await drop() })
  await migrateLatest(db)
  const tenant = await makeTenant(db)
  const customer = await makeCustomer(db, tenant)

  await t.test('50 concurrent writers of one idempotency key produce exactly one entry', async t => {
    for (let round = 0; round < 3; round++) {
      const key = `race-invoice-${round}`
      const results = await Promise.all(Array.from({ length: 50 }, async () =>
        await postEntry(db, tenant.id, invoiceEntry(customer.id, 123_45, key), { effects: [{ queue: 'psa.mark-paid', payload: { key } }] })))
      t.equal(results.filter(r => r.created).length, 1, `round ${round}: one writer created it`)
      t.equal(new Set(results.map(r => r.entry.id)).size, 1, 'all 50 got the same entry back')
      t.equal(await db('journal_entries').where({ tenant_id: tenant.id, idempotency_key: key }).count('* as n').then(r => Number(r[0]?.n)), 1)
      t.equal(await db('jobs').where({ source_entry_id: results[0]?.entry.id }).count('* as n').then(r => Number(r[0]?.n)), 1, 'one outbox job')
    }
    t.equal(await countRows(db, 'postings'), 6)
  })

  await t.test('two worker processes never run the same job twice', async t => {
    await db.schema.createTable('job_runs', table => { table.bigInteger('job_id'); table.text('worker') })
    const total = 400
    await enqueue(db, tenant.id, Array.from({ length: total }, (_, n) => ({ queue: 'race', payload: { n } })))
    const script = fileURLToPath(new URL('../helpers/worker-process.ts', import.meta.url))
    const run = async (id: string): Promise<number> => await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', script, url, id], { stdio: ['ignore', 'ignore', 'inherit'] })
      child.on('error', reject)
      child.on('exit', code => { resolve(code ?? -1) })
    })
    t.same(await Promise.all([run('worker-a'), run('worker-b')]), [0, 0], 'both processes exit cleanly')
    const runs = await db('job_runs').select('job_id', 'worker') as Array<{ job_id: number, worker: string }>
    t.equal(runs.length, total, 'every job ran')
    t.equal(new Set(runs.map(r => String(r.job_id))).size, total, 'no job ran twice')
    const perWorker = new Set(runs.map(r => r.worker))
    t.equal(perWorker.size, 2, 'both workers took a share')
    t.equal(await db('jobs').where({ queue: 'race', state: 'done' }).count('* as n').then(r => Number(r[0]?.n)), total)
  })
})
