import closeWithGrace from 'close-with-grace'
import Fastify from 'fastify'
import { loadConfigOrExit } from '../config.js'
import { loggerOptions } from '../logging.js'
import { mountStandIns, standInsListing } from './standins.js'

/**
 * `npm run sandbox`: the four stand-ins (ConnectWise, Autotask, Stripe,
 * QuickBooks) on a server of their own, seeded as the embedded default
 * seeds them, so several Settle processes (staging, multi-process tests, a
 * chaos harness) can share one set through STRIPE_API_BASE,
 * QUICKBOOKS_API_BASE, QUICKBOOKS_OAUTH_BASE, AUTOTASK_ZONE_URL and a
 * ConnectWise connection's site.
 */
async function main (): Promise<void> {
  const config = loadConfigOrExit('The stand-ins')
  const app = Fastify({ logger: loggerOptions(config.logLevel, config.nodeEnv === 'production'), bodyLimit: config.bodyLimitBytes, routerOptions: { ignoreTrailingSlash: true } })
  await mountStandIns(app)
  let origin: string | null = null
  app.get('/sandbox.json', async request => standInsListing(origin ?? `${request.protocol}://${request.host}`, null))
  closeWithGrace({ delay: config.shutdownGraceMs }, async ({ err }) => {
    if (err !== undefined) app.log.error({ err }, 'stopping after an unhandled error')
    await app.close()
  })
  origin = (await app.listen({ host: config.sandboxHost, port: config.sandboxPort })).replace('://[::1]', '://127.0.0.1')
  process.stdout.write(`Stand-ins listening at ${origin} (GET ${origin}/sandbox.json lists them)\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`The stand-ins failed to start: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
