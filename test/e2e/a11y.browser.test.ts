import t from 'tap'
import { mkdirSync } from 'node:fs'
import type { Frame, Page } from 'playwright-core'
import { setUpDemoCollection, startDemoApp } from '../helpers/demo-app.js'
import { browserSkip, launchBrowser } from '../helpers/browser.js'
import { seriousViolations, type AxeFinding } from '../helpers/axe.js'
import { signPayLink } from '../../src/security/pay-links.js'
import { signedLiveLinkUrl } from '../../src/services/embedded.js'

/** Screenshots of every page, both widths, for a person to look at (git-ignored). */
const SHOTS = process.env.SHOTS_DIR ?? '.tap/screenshots/a11y'

/** The frame the demo host loaded from `path`, once `ready` is in it. */
async function frameOf (page: Page, path: string, ready: string): Promise<Frame> {
  await page.waitForFunction(p => [...document.querySelectorAll('iframe')].some(f => (f as HTMLIFrameElement).src.includes(p)), path)
  const deadline = Date.now() + 15_000
  for (;;) {
    const frame = page.frames().find(f => f.url().includes(path))
    if (frame !== undefined && await frame.locator(ready).count() > 0) return frame
    if (Date.now() > deadline) throw new Error(`frame ${path} never showed ${ready}`)
    await page.waitForTimeout(100)
  }
}

t.test('every page a person uses: no serious or critical axe-core findings, at 1280 and 390 px, and nothing wider than the screen', { skip: browserSkip() }, async t => {
  mkdirSync(SHOTS, { recursive: true })
  const { app, db, base, tenants } = await startDemoApp(t)
  const brightline = tenants.find(x => x.slug === 'brightline')!
  const cobalt = tenants.find(x => x.slug === 'cobalt')!
  await setUpDemoCollection({ app, db, base }, brightline.id)

  const invoice = await db('invoices').where({ tenant_id: brightline.id }).first('id') as { id: string }
  const expired = signPayLink(app.keyring, { tenantId: brightline.id, invoiceId: invoice.id, expiresAt: new Date(Date.now() - 86_400_000) })
  const atInvoice = await db('invoices').where({ tenant_id: cobalt.id }).first('psa_invoice_id') as { psa_invoice_id: string }
  const liveLink = (await signedLiveLinkUrl(db, app.keyring, base, cobalt, 'invoice', atInvoice.psa_invoice_id)).replace(base, '')

  const browser = await launchBrowser(t)
  const found: Array<AxeFinding & { page: string }> = []
  const overflow: string[] = []
  for (const width of [1280, 390]) {
    const page = await browser.newPage({ viewport: { width, height: 900 } })
    const check = async (name: string, target: Page | Frame = page): Promise<void> => {
      for (const v of await seriousViolations(target)) found.push({ page: `${name} @${width}`, ...v })
      if (target === page) {
        const wide = await page.evaluate(() => document.documentElement.scrollWidth)
        if (wide > width) overflow.push(`${name} @${width}: ${wide} px wide`)
        await page.screenshot({ path: `${SHOTS}/${name}-${width}.png`, fullPage: true })
      }
    }
    const visit = async (name: string, path: string): Promise<void> => { await page.goto(`${base}${path}`); await check(name) }

    await visit('overview', '/')
    await visit('overview-autotask', '/?tenant=cobalt')
    await visit('status', '/status')
    await visit('not-found', '/no-such-page')
    await visit('pay-link-garbled', '/pay/not-a-token')
    await visit('pay-link-expired', `/pay/${expired}`)

    await page.goto(`${base}/`)
    const fresh = await page.locator('.pay-pages li:not(:has(.badge)) a').first().getAttribute('href')
    const onFile = await page.locator('.pay-pages li:has(.badge) a').first().getAttribute('href')
    await visit('pay-new-client', fresh ?? '/')
    if (onFile !== null) {
      await visit('pay-method-on-file', onFile)
      const pay = page.locator('form.pay-form button[type="submit"]', { hasText: /^Pay \$/ })
      if (await pay.count() > 0) {
        await pay.first().click()
        await page.locator('.notice').first().waitFor()
        await check('pay-result')
      }
    }

    await visit('demo-invoice', '/demo/cw/invoice')
    const pod = await frameOf(page, '/embedded/cw/invoice', '.emb-invoice')
    await check('invoice-pod', pod)
    // A label never runs into its value ("Due2026-11-28"): a visible gap between each figure's dt and dd.
    const gaps = await pod.locator('.emb-figures > div').evaluateAll(rows => rows.map(r => {
      const dt = r.querySelector('dt')!.getBoundingClientRect()
      const dd = r.querySelector('dd')!.getBoundingClientRect()
      return { label: r.querySelector('dt')!.textContent ?? '', gap: dd.top >= dt.bottom ? 99 : dd.left - dt.right }
    }))
    for (const g of gaps) if (g.gap < 4) overflow.push(`invoice pod @${width}: "${g.label}" runs into its value (${g.gap.toFixed(1)} px)`)
    await check('quickbooks-pod', await frameOf(page, '/embedded/cw/quickbooks', '.emb-qbo'))
    await page.locator('#charge-card-button').click()
    const dialog = page.frames().filter(f => f.url().includes('/embedded/cw/invoice')).at(-1)!
    await dialog.locator('#charge-form').waitFor({ timeout: 15_000 })
    await check('charge-dialog', dialog)
    await page.screenshot({ path: `${SHOTS}/charge-dialog-${width}.png` })
    await page.keyboard.press('Escape')

    await visit('demo-company', '/demo/cw/company')
    await check('company-tab', await frameOf(page, '/embedded/cw/company', '.emb-company'))

    await visit('livelink-sign-in', `/embedded/autotask/invoice?tenant=cobalt&id=${atInvoice.psa_invoice_id}`)
    await page.goto(`${base}${liveLink}`)
    await page.locator('.emb-invoice').waitFor({ timeout: 15_000 })
    await check('livelink-invoice')
    await page.close()
  }
  t.same(found, [], 'no serious or critical accessibility findings')
  t.same(overflow, [], 'no page scrolls sideways')
})
