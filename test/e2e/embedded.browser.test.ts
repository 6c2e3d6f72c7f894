import t from 'tap'
import { mkdirSync } from 'node:fs'
import type { FrameLocator, Page } from 'playwright-core'
import { setUpDemoCollection, startDemoApp } from '../helpers/demo-app.js'
import { browserSkip, launchBrowser } from '../helpers/browser.js'

const SHOTS = '.tap/screenshots'

/** Waits until the demo host says the frame finished the Hosted API handshake and answered onLoad. */
async function handshake (page: Page, key: string): Promise<FrameLocator> {
  const iframe = page.locator(`iframe[data-hosted="${key}"]`)
  await page.waitForFunction(k => {
    const el = document.querySelector(`iframe[data-hosted="${k}"]`) as HTMLIFrameElement | null
    return el !== null && el.dataset.handshake === 'authenticated' && el.dataset.hostEvent === 'onLoad:success'
  }, key, { timeout: 15_000 })
  await iframe.waitFor()
  return page.frameLocator(`iframe[data-hosted="${key}"]`)
}

/** Error texts the frame shows (the embedded pages mark them .emb-error). */
async function errorsIn (frame: FrameLocator): Promise<string[]> {
  return await frame.locator('.emb-error').allInnerTexts()
}

t.test('inside the demo PSA: the handshake, Charge card by card and by ACH, the company tab', { skip: browserSkip() }, async t => {
  mkdirSync(SHOTS, { recursive: true })
  const { app, db, base, tenants } = await startDemoApp(t)
  const brightline = tenants.find(x => x.slug === 'brightline')!
  await setUpDemoCollection({ app, db, base }, brightline.id)

  const browser = await launchBrowser(t)
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } })
  const problems: string[] = []
  page.on('pageerror', error => { problems.push(error.message) })

  // Card payer: the pod loads after the handshake.
  await page.goto(`${base}/demo`)
  t.match(page.url(), /\/demo\/cw\/invoice$/)
  const pod = await handshake(page, 'invoice-pod')
  await pod.locator('.emb-invoice').waitFor({ timeout: 15_000 })
  t.same(await errorsIn(pod), [], 'the invoice pod shows no error')
  const number = await page.locator('#psa-invoice-number').innerText()
  t.match(await pod.locator('#inv-title').innerText(), new RegExp(`Invoice ${number}`), 'the pod shows the host\'s invoice')
  t.match(await page.locator('#host-log').innerText(), /getmemberauthentication/)
  await page.screenshot({ path: `${SHOTS}/psa-invoice-pod.png`, fullPage: true })

  // A session that ended (a laptop slept past its renewal): the pod proves the member again through the host, without a reload.
  let refused = false
  await page.route('**/embedded/cw/invoice/quote', async route => {
    if (refused) { await route.continue(); return }
    refused = true
    await route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ error: { code: 'UNAUTHENTICATED', message: 'Your session inside the PSA has ended.' } }) })
  })
  const handshakes = async (): Promise<number> => ((await page.locator('#host-log').innerText()).match(/getmemberauthentication/gi) ?? []).length
  const before = await handshakes()
  await pod.getByRole('button', { name: 'Review charge' }).click()
  await pod.locator('#emb-status', { hasText: 'Signed in again' }).waitFor({ timeout: 15_000 })
  t.ok(await handshakes() > before, 'the pod asked the host for the member again')
  await pod.getByRole('button', { name: 'Review charge' }).click()
  await pod.locator('#charge-confirm').waitFor({ state: 'visible' })
  t.same(await errorsIn(pod), [], 'and carries on with the new session')
  await pod.getByRole('button', { name: 'Cancel' }).click()
  await page.unroute('**/embedded/cw/invoice/quote')

  // The toolbar button opens the dialog; charge the balance with the stored card.
  await page.locator('#charge-card-button').click()
  const dialog = await handshake(page, 'invoice-dialog')
  await dialog.locator('#charge-form').waitFor({ timeout: 15_000 })
  t.same(await errorsIn(dialog), [], 'the charge dialog shows no error')
  await dialog.getByRole('button', { name: 'Review charge' }).click()
  await dialog.locator('#charge-confirm').waitFor({ state: 'visible' })
  t.match(await dialog.locator('#charge-confirm-text').innerText(), /\$[\d,]+\.\d{2}/, 'the confirm step says what will be charged')
  await page.screenshot({ path: `${SHOTS}/psa-charge-confirm.png` })
  await dialog.getByRole('button', { name: 'Confirm charge' }).click()
  await dialog.locator('#emb-status[data-result="succeeded"]').waitFor({ timeout: 20_000 })
  t.match(await dialog.locator('#emb-status').innerText(), /Paid/)
  await page.screenshot({ path: `${SHOTS}/psa-charge-paid.png` })
  // Reopening the same record (as ConnectWise does after a save or refreshScreen): the pod shows it paid.
  const recordId = await page.locator('body').getAttribute('data-record-id')
  await page.goto(`${base}/demo/cw/invoice?id=${recordId ?? ''}`)
  const refreshed = await handshake(page, 'invoice-pod')
  await refreshed.locator('.emb-invoice').waitFor()
  t.match(await refreshed.locator('.emb-head .badge').innerText(), /paid/i)

  // ACH payer: processing, never paid yet.
  await page.goto(`${base}/demo/cw/invoice`)
  const achHref = await page.locator('#ach-invoice-link').getAttribute('href')
  t.ok(achHref !== null, 'the demo offers an ACH payer')
  await page.goto(`${base}${achHref ?? ''}`)
  const achPod = await handshake(page, 'invoice-pod')
  await achPod.locator('#charge-form').waitFor({ timeout: 15_000 })
  await achPod.getByRole('button', { name: 'Review charge' }).click()
  await achPod.getByRole('button', { name: 'Confirm charge' }).click()
  await achPod.locator('#emb-status[data-result="processing"]').waitFor({ timeout: 20_000 })
  t.match(await achPod.locator('#emb-status').innerText(), /Processing/)
  await page.screenshot({ path: `${SHOTS}/psa-ach-processing.png`, fullPage: true })

  // The QuickBooks sync pod slot answers the handshake too.
  await handshake(page, 'quickbooks-pod')

  // Company screen: the payment status tab.
  await page.goto(`${base}/demo/cw/company`)
  const tab = await handshake(page, 'company-tab')
  await tab.locator('body').waitFor()
  await page.waitForTimeout(1000)
  t.same(await errorsIn(tab), [], 'the company tab shows no error')
  await page.screenshot({ path: `${SHOTS}/psa-company-tab.png`, fullPage: true })

  // Charge statement: every open invoice ticked, reviewed line by line, confirmed, paid without a reload.
  const ticks = tab.locator('input[name="invoiceIds"]')
  t.ok(await ticks.count() >= 1, 'a tick box per open invoice')
  await tab.getByRole('button', { name: 'Review charge' }).click()
  await tab.locator('#charge-confirm-lines li').first().waitFor({ timeout: 10_000 })
  t.match(await tab.locator('#charge-confirm-text').innerText(), /in one payment over .*oldest due first/)
  t.equal(await tab.locator('#charge-confirm-lines li').count(), await ticks.count(), 'where each cent goes, invoice by invoice')
  await page.screenshot({ path: `${SHOTS}/psa-company-statement-confirm.png`, fullPage: true })
  await tab.getByRole('button', { name: 'Confirm charge' }).click()
  // Once paid the tab renders again: the result in its status line, the balances current.
  await tab.locator('#emb-status', { hasText: /^(Paid|Processing): / }).waitFor({ timeout: 15_000 })
  t.match(await tab.locator('#emb-status').innerText(), /^(Paid|Processing): \$[\d,]+\.\d\d (charged|submitted)/)
  await tab.getByText('Nothing open.').waitFor({ timeout: 5_000 })
  t.equal(await tab.locator('input[name="invoiceIds"]').count(), 0, 'nothing left to tick')
  t.same(await errorsIn(tab), [], 'no error after charging')
  await page.screenshot({ path: `${SHOTS}/psa-company-statement-paid.png`, fullPage: true })

  t.same(problems, [], 'no script errors on the host page')
})
