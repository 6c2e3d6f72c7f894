import t from 'tap'
import { testDb } from '../helpers/db.js'
import { testConfig, testKeyring } from '../helpers/fixtures.js'
import { browserSkip, launchBrowser } from '../helpers/browser.js'
import { buildApp } from '../../src/app.js'

/** Swagger UI under the app's own CSP: its assets come from Settle, nothing from a CDN, nothing inline blocked. */
t.test('the admin API docs page in a real browser', { skip: browserSkip() }, async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const browser = await launchBrowser(t)
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const problems: string[] = []
  const foreign: string[] = []
  page.on('console', message => { if (message.type() === 'error') problems.push(message.text()) })
  page.on('pageerror', error => { problems.push(error.message) })
  page.on('request', request => { if (!request.url().startsWith(base) && !request.url().startsWith('data:')) foreign.push(request.url()) })
  await page.exposeFunction('reportViolation', (text: string) => { problems.push(text) })
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', e => { void (window as unknown as { reportViolation: (s: string) => void }).reportViolation(`CSP ${e.violatedDirective}: ${e.blockedURI}`) })
  })

  const response = await page.goto(`${base}/api/docs`)
  t.equal(response?.status(), 200)
  t.match(response?.headers()['content-security-policy'], /script-src 'self'/, 'the app\'s own CSP, not a looser one')
  await page.locator('.opblock-summary').first().waitFor({ timeout: 30_000 })
  t.match(await page.locator('.info .title').innerText(), /Settle admin API/)
  t.ok(await page.locator('.opblock-summary').count() >= 20, 'every operation is listed')
  t.ok(await page.getByText('Charge card: charge a saved payment method for an invoice').isVisible(), 'summaries are shown')
  // Opening an operation shows its scope and example.
  await page.locator('.opblock-summary', { hasText: '/api/v1/invoices/{invoiceId}/charges' }).click()
  await page.getByText('payments:charge', { exact: false }).first().waitFor()
  // The stylesheet applied: an unstyled page has no coloured method badges.
  t.not(await page.locator('.opblock-summary-method').first().evaluate(el => getComputedStyle(el).backgroundColor), 'rgba(0, 0, 0, 0)')
  if (process.env.SCREENSHOT !== undefined) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: false })
  t.same(problems, [], 'no console errors or CSP violations')
  t.same(foreign, [], 'no request leaves Settle')
})
