import type { SyncProgress } from '../services/sync.js'

const WIDTH = 28
const number = new Intl.NumberFormat('en-US')

/**
 * Share of the change window the committed pages have covered: pages are
 * ordered by change stamp, so this grows steadily without asking the PSA
 * for a count (which would cost a call).
 */
export function syncFraction (progress: SyncProgress, now: Date): number | null {
  const start = progress.since
  if (start === null || progress.reachedAt === null) return null
  const span = now.getTime() - start.getTime()
  if (span <= 0) return 1
  return Math.min(1, Math.max(0, (progress.reachedAt.getTime() - start.getTime()) / span))
}

export function renderProgress (progress: SyncProgress, fraction: number | null): string {
  const bar = fraction === null ? '░'.repeat(WIDTH) : '█'.repeat(Math.round(fraction * WIDTH)).padEnd(WIDTH, '░')
  const pct = fraction === null ? '  …' : `${String(Math.round(fraction * 100)).padStart(3)}%`
  const phase = progress.phase === 'open-recheck' ? ' · re-checking open invoices' : ''
  return `[${bar}] ${pct}  ${number.format(progress.invoicesSeen)} invoices · ${number.format(progress.invoicesPerSecond)}/s · ` +
    `${number.format(progress.created)} new · ${number.format(progress.changed)} changed · ${number.format(progress.calls)} calls${phase}`
}
