import t from 'tap'
import { mkdirSync } from 'node:fs'
import type { Frame, Page } from 'playwright-core'
import { setUpDemoCollection, startDemoApp } from '../helpers/demo-app.js'
import { browserSkip, launchBrowser } from '../helpers/browser.js'

const SHOTS = process.env.SHOTS_DIR ?? '.tap/screenshots'

/** The Settle frame the demo host loaded for `key` (invoice-pod, invoice-dialog), once its page is in. */
async function frame (page: Page, key: string, ready: string): Promise<Frame> {
  await page.waitForFunction(k => {
    const el = document.querySelector(`iframe[data-hosted="${k}"]`) as HTMLIFrameElement | null
    return el !== null && el.dataset.handshake === 'authenticated'
  }, key, { timeout: 15_000 })
  const handle = await page.locator(`iframe[data-hosted="${key}"]`).elementHandle()
  const found = await handle?.contentFrame()
  if (found == null) throw new Error(`no frame ${key}`)
  await found.locator(ready).waitFor({ timeout: 15_000 })
  return found
}

t.test('the Charge card dialog and the pod behind it follow the result; a decline leaves a way to try again; the pay link can be copied and emailed', { skip: browserSkip() }, async t => {
  mkdirSync(SHOTS, { recursive: true })
  const { app, db, base, tenants } = await startDemoApp(t)
  const brightline = tenants.find(x => x.slug === 'brightline')!
  await setUpDemoCollection({ app, db, base }, brightline.id)
  const browser = await launchBrowser(t)
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } })
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base })
  const page = await context.newPage()
  const problems: string[] = []
  page.on('pageerror', error => { problems.push(error.message) })

  // The default demo invoice is a card payer whose card pays.
  await page.goto(`${base}/demo/cw/invoice`)
  const pod = await frame(page, 'invoice-pod', '#charge-form')
  t.match(await pod.locator('.emb-head .badge').innerText(), /Open|Overdue/)
  await page.locator('#charge-card-button').click()
  const dialog = await frame(page, 'invoice-dialog', '#charge-form')
  await dialog.getByRole('button', { name: 'Review charge' }).click()
  await dialog.getByRole('button', { name: 'Confirm charge' }).click()
  await dialog.locator('#emb-status[data-result="succeeded"]').waitFor({ timeout: 20_000 })
  t.match(await dialog.locator('#emb-status').innerText(), /^Paid: \$[\d,]+\.\d\d charged\./, 'the dialog says what happened')
  t.match(await dialog.locator('.emb-head .badge').innerText(), /^Paid$/, 'its badge follows the result')
  t.match(await dialog.locator('.emb-figures').innerText(), /Balance\s+\$0\.00/, 'its balance is the new one')
  t.equal(await dialog.getByText('No payments yet.').count(), 0, 'and its history has the payment')
  t.match(await dialog.locator('.emb-table').innerText(), /Paid/)
  t.equal(await dialog.locator('#charge-form').count(), 0, 'no charge form for a paid invoice')
  await page.screenshot({ path: `${SHOTS}/charge-dialog-paid.png` })
  // The pod behind the dialog, without a reload.
  await pod.locator('.emb-head .badge', { hasText: /^Paid$/ }).waitFor({ timeout: 10_000 })
  t.equal(await pod.locator('#charge-form').count(), 0, 'the pod behind drops its charge form too')
  t.match(await pod.locator('.emb-figures').innerText(), /Balance\s+\$0\.00/)
  await page.keyboard.press('Escape')

  // A card that declines: the decline is said, and the form stays to try another method.
  const declining = await page.locator('#declining-invoice-link').getAttribute('href')
  t.ok(declining !== null, 'the demo keeps a declining card payer')
  await page.goto(`${base}${declining ?? ''}`)
  const declinedPod = await frame(page, 'invoice-pod', '#charge-form')
  await declinedPod.getByRole('button', { name: 'Review charge' }).click()
  await declinedPod.getByRole('button', { name: 'Confirm charge' }).click()
  await declinedPod.locator('#emb-status[data-result="failed"]').waitFor({ timeout: 20_000 })
  t.match(await declinedPod.locator('#emb-status').innerText(), /^Declined\./)
  t.ok(await declinedPod.locator('#charge-form').isVisible(), 'the charge form is there again')
  t.ok(await declinedPod.getByRole('button', { name: 'Review charge' }).isEnabled())
  t.match(await declinedPod.locator('.emb-table').innerText(), /Declined/, 'the decline is in the history')
  await page.screenshot({ path: `${SHOTS}/pod-declined.png`, fullPage: true })

  // The pay link: it wraps inside the pod, copies, and opens an email with it.
  await declinedPod.getByRole('button', { name: 'Create pay link' }).click()
  await declinedPod.locator('#pay-link-box').waitFor({ state: 'visible' })
  const url = await declinedPod.locator('#pay-link-url').inputValue()
  t.match(url, /\/pay\/[\w.-]+$/)
  t.match(await declinedPod.locator('#pay-link-validity').innerText(), /^Valid for 14 days, until [A-Z][a-z]{2} \d{1,2}, \d{4}\.$/, 'the validity PAY_LINK_DAYS sets')
  const box = await declinedPod.locator('#pay-link-url').evaluate(el => ({ scroll: el.scrollWidth, client: el.clientWidth }))
  t.ok(box.scroll <= box.client, 'the link wraps instead of running out of the pod')
  await declinedPod.getByRole('button', { name: 'Copy link' }).click()
  await declinedPod.getByText('Copied the pay link.').waitFor()
  t.equal(await declinedPod.evaluate(async () => await navigator.clipboard.readText()), url, 'on the clipboard')
  const mailto = await declinedPod.getByRole('link', { name: 'Email to client' }).getAttribute('href')
  t.match(decodeURIComponent(mailto ?? ''), new RegExp(`^mailto:\\?subject=Invoice .+&body=.*${url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 's'), 'an email with the link')
  await page.screenshot({ path: `${SHOTS}/pod-pay-link.png`, fullPage: true })
  t.same(problems, [], 'no script errors')
})
