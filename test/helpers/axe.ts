import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Frame, Page } from 'playwright-core'

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

export interface AxeFinding { id: string, impact: string, help: string, targets: string[] }

/**
 * Runs axe-core in one document (a page or one of its frames) and returns the
 * serious and critical findings. The script goes in through the DevTools
 * protocol, which the pages' CSP does not govern, so the pages keep their
 * real CSP under test. Frames are checked one by one (`iframes: false`).
 */
export async function seriousViolations (target: Page | Frame): Promise<AxeFinding[]> {
  await target.evaluate(AXE_SOURCE)
  const results = await target.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: Array<{ id: string, impact: string | null, help: string, nodes: Array<{ target: unknown[] }> }> }> } }).axe
    const found = await axe.run(document, { iframes: false, resultTypes: ['violations'] })
    return found.violations.map(v => ({ id: v.id, impact: v.impact ?? 'unknown', help: v.help, targets: v.nodes.slice(0, 5).map(n => n.target.map(String).join(' ')) }))
  })
  return results.filter(v => v.impact === 'serious' || v.impact === 'critical')
}
