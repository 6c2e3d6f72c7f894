import t from 'tap'
import { startDemoApp } from '../helpers/demo-app.js'
import { browserSkip, launchBrowser } from '../helpers/browser.js'


t.test('the home page in a real browser', { skip: browserSkip() }, async t => {
  const { base } = await startDemoApp(t)
  const browser = await launchBrowser(t)
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const problems: string[] = []
  page.on('console', message => { if (message.type() === 'error') problems.push(message.text()) })
  page.on('pageerror', error => { problems.push(error.message) })

  const response = await page.goto(`${base}/`)
  t.equal(response?.status(), 200)
  t.equal(await page.title(), 'Settle · invoice-to-cash for MSPs')
  t.match(await page.locator('h1').innerText(), /Invoices in your PSA/)
  t.equal(await page.locator('.loop li').count(), 5, 'the five steps of the loop')
  t.equal(await page.locator('.kpi').count(), 4)
  const receivables = await page.locator('.kpi dd').first().innerText()
  t.match(receivables, /^\$[\d,]+\.\d{2}$/, 'open receivables read as money')
  t.ok(await page.locator('table.bars tbody tr').count() >= 5, 'a bar per client who owes')
  t.equal(await page.locator('.aging-col').count(), 5, 'five aging buckets')
  t.equal(await page.locator('.sync-row .badge').first().innerText(), 'In sync')
  t.match(await page.locator('.sync-row p').first().innerText(), /400 invoices read, 400 new/)
  // The other demo tenant, one click away, on Autotask.
  await page.getByRole('link', { name: /Cobalt IT Partners/ }).click()
  await page.waitForURL(/tenant=cobalt/)
  t.equal(await page.locator('h2#ledger-heading').innerText(), 'Cobalt IT Partners')
  t.equal(await page.locator('.sync-row strong').first().innerText(), 'Autotask PSA')
  // The stylesheet loaded under the CSP (an unstyled page would have a transparent header).
  t.equal(await page.locator('.site-header').evaluate(el => getComputedStyle(el).backgroundColor), 'rgb(255, 255, 255)')
  t.equal(await page.locator('.kpi').first().evaluate(el => getComputedStyle(el).borderRadius), '12px')
  // Keyboard users can skip the navigation.
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content')
  // A half-screen laptop window: nothing may push the page sideways.
  await page.setViewportSize({ width: 760, height: 900 })
  t.equal(await page.evaluate(() => document.documentElement.scrollWidth), 760, 'no horizontal scrolling at 760 px')
  t.same(problems, [], 'no console errors or CSP violations')
})
