import t from 'tap'
import { renderProgress, syncFraction } from '../src/cli/progress.js'
import type { SyncProgress } from '../src/services/sync.js'

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
