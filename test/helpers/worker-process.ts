/**
 * A worker in its own process, for the two-process test: runs every job of
 * queue `race` by recording (job, worker) in `job_runs`, and exits once no
 * job is left to do.
 */
import pino from 'pino'
import { createDb } from '../../src/db/knex.js'
import { Worker } from '../../src/jobs/worker.js'

const [url, workerId] = process.argv.slice(2)
if (url === undefined || workerId === undefined) throw new Error('usage: worker-process <database-url> <worker-id>')
const db = createDb({ kind: 'postgres', url, poolMax: 6 })
const worker = new Worker({
  db,
  workerId,
  log: pino({ level: 'silent' }),
  concurrency: 4,
  handlers: {
    race: async job => {
      // Hold the job a moment so both workers are busy at the same time.
      await new Promise(resolve => setTimeout(resolve, Math.floor(Math.random() * 5)))
      await db('job_runs').insert({ job_id: job.id, worker: workerId })
    }
  }
})
// A bug must fail the test, not hang CI.
setTimeout(() => { process.stderr.write(`${workerId}: gave up after 60 s\n`); process.exit(2) }, 60_000).unref()
let idle = 0
while (idle < 3) {
  const ran = await worker.runOnce()
  const [left] = await db('jobs').where({ queue: 'race' }).whereIn('state', ['pending', 'running']).count('* as n') as Array<{ n: number }>
  idle = ran === 0 && Number(left?.n) === 0 ? idle + 1 : 0
}
await db.destroy()
