import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

/** Debian's chromium; never a downloaded build. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Why a browser test cannot run here, or false when it can (`.ci/run` installs chromium). */
export const browserSkip = (): string | false => existsSync(CHROMIUM) ? false : `needs Debian chromium at ${CHROMIUM} (.ci/run installs it)`

export async function launchBrowser (t: Teardown): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
  })
  t.teardown(async () => { await browser.close() })
  return browser
}
