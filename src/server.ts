import closeWithGrace from 'close-with-grace'
import { loadConfigOrExit } from './config.js'
import { buildApp } from './app.js'
import { startupBanner } from './startup.js'

/** Starts Settle: config is checked first, and a bad value stops here with one line per problem. */
async function main (): Promise<void> {
  const config = loadConfigOrExit('Settle')
  const app = await buildApp(config)
  closeWithGrace({ delay: config.shutdownGraceMs }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'stopping after an unhandled error')
    else app.log.info({ signal }, 'stopping: finishing requests and jobs in flight')
    await app.close()
  })
  const address = await app.listen({ host: config.host, port: config.port })
  process.stdout.write(startupBanner(config, address))
}

main().catch((error: unknown) => {
  process.stderr.write(`Settle failed to start: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
