import t from 'tap'
import { mkdirSync } from 'node:fs'
import type { Page } from 'playwright-core'
import { startDemoApp } from '../helpers/demo-app.js'
import { browserSkip, launchBrowser } from '../helpers/browser.js'

/** Screenshots are kept as test artefacts (git-ignored with the rest of .tap/). */
const SHOTS = '.tap/screenshots'

t.test('a client adds a card and a bank account on the pay page, in a real browser', { skip: browserSkip() }, async t => {
  mkdirSync(SHOTS, { recursive: true })
  const { base } = await startDemoApp(t)
  const browser = await launchBrowser(t)
  const page = await browser.newPage({ viewport: { width: 900, height: 1000 } })
  const problems: string[] = []
  page.on('pageerror', error => { problems.push(error.message) })
  // A decline is a 402 from the processor: the browser logs it, the page handles it.
  page.on('console', message => { if (message.type() === 'error' && !/favicon|\/v1\/setup_intents\//.test(message.location().url)) problems.push(message.text()) })

  /** The home page's pay links for clients with no method on file yet. */
  const payLinks = async (): Promise<string[]> => {
    await page.goto(`${base}/`)
    return await page.locator('.pay-pages li:not(:has(.badge)) a').evaluateAll(links => links.map(a => (a as HTMLAnchorElement).href))
  }
  const fill = async (p: Page, fields: Record<string, string>): Promise<void> => { for (const [selector, value] of Object.entries(fields)) await p.fill(selector, value) }

  const links = await payLinks()
  t.ok(links.length >= 2, 'the demo offers clients\' pay pages')

  // A card that asks for 3D Secure at setup, then pays.
  await page.goto(links[0] as string)
  t.match(await page.locator('h1').innerText(), /^\$[\d,]+\.\d{2} due/)
  t.equal(await page.locator('.pay-logo').getAttribute('alt'), 'Brightline Managed IT', 'the MSP\'s logo, not Settle\'s')
  t.equal(await page.locator('.button').first().evaluate(el => getComputedStyle(el).backgroundColor), 'rgb(29, 78, 216)', 'in the MSP\'s accent colour')
  await page.screenshot({ path: `${SHOTS}/pay-page.png`, fullPage: true })
  await fill(page, { '[data-field="number"]': '4000 0025 0000 3155', '[data-field="exp"]': '12/30', '[data-field="cvc"]': '123', 'input[name="name"]': 'Dana Whitfield' })
  await page.check('input[name="autopay"]')
  await page.getByRole('button', { name: 'Continue' }).click()
  await page.locator('[data-challenge]').waitFor({ state: 'visible' })
  await page.screenshot({ path: `${SHOTS}/pay-3ds.png`, fullPage: true })
  await page.getByRole('button', { name: 'Confirm it\'s me' }).click()
  await page.locator('.notice').waitFor()
  t.match(await page.locator('.notice').innerText(), /your payment of \$[\d,]+\.\d\d went through/)
  t.equal(await page.locator('h1').innerText(), 'Paid in full')
  t.match(await page.locator('.on-file').innerText(), /Visa ending 3155, expires 12\/2030/)
  t.match(await page.locator('.autopay-on').innerText(), /Auto-pay is on since/)
  await page.screenshot({ path: `${SHOTS}/pay-paid.png`, fullPage: true })

  // A declined card: the page says so and nothing is saved.
  await page.goto(links[1] as string)
  await fill(page, { '[data-field="number"]': '4000000000000002', '[data-field="exp"]': '12/30', '[data-field="cvc"]': '123', 'input[name="name"]': 'Pat Summit' })
  await page.getByRole('button', { name: 'Continue' }).click()
  await page.locator('[data-error]').waitFor({ state: 'visible' })
  t.match(await page.locator('[data-error]').innerText(), /Your card was declined/)
  t.equal(await page.locator('.on-file').count(), 0, 'nothing on file')

  // The same client pays by bank account instead: processing, never "paid" yet.
  await page.check('input[value="us_bank_account"]')
  t.ok(await page.locator('.mandate[data-kind="us_bank_account"]').isVisible(), 'the debit authorisation is shown for a bank account')
  await fill(page, { '[data-field="routing"]': '110000000', '[data-field="account"]': '000123456789' })
  await page.getByRole('button', { name: 'Continue' }).click()
  await page.locator('.notice').waitFor()
  t.match(await page.locator('.notice').innerText(), /Your payment of \$[\d,]+\.\d\d is processing/)
  t.match(await page.locator('.on-file').innerText(), /STRIPE TEST BANK ending 6789/)
  t.match(await page.locator('.on-file').innerText(), /Debit authorised/)
  await page.screenshot({ path: `${SHOTS}/pay-ach-processing.png`, fullPage: true })
  t.same(problems, [], 'no script errors')
})
