import t from 'tap'
import { existsSync } from 'node:fs'
import { chromium } from 'playwright-core'
import { testDb } from '../helpers/db.js'
import { testConfig, testKeyring } from '../helpers/fixtures.js'
import { buildApp } from '../../src/app.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

t.test('the home page in a real browser', { skip: existsSync(CHROMIUM) ? false : `needs Debian chromium at ${CHROMIUM} (.ci/run installs it)` }, async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig({ SETTLE_DEMO: 'true' }), { db, keyring: testKeyring() })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
  })
  t.teardown(async () => { await browser.close(); await app.close() })
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
  t.ok(await page.locator('table.bars tbody tr').count() >= 1, 'a bar per client who owes')
  t.equal(await page.locator('.badge.ok').innerText(), 'Trial balance: debits equal credits')
  // The stylesheet loaded under the CSP (an unstyled page would have a transparent header).
  t.equal(await page.locator('.site-header').evaluate(el => getComputedStyle(el).backgroundColor), 'rgb(255, 255, 255)')
  t.equal(await page.locator('.kpi').first().evaluate(el => getComputedStyle(el).borderRadius), '12px')
  // Keyboard users can skip the navigation.
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content')
  t.same(problems, [], 'no console errors or CSP violations')
})
