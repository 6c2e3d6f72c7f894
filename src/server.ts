import closeWithGrace from 'close-with-grace'
import { ConfigProblems, loadConfig, loadDotEnv } from './config.js'
import { buildApp } from './app.js'
import { startupBanner } from './startup.js'

/** Starts Settle: config is checked first, and a bad value stops here with one line per problem. */
async function main (): Promise<void> {
  loadDotEnv()
  let config
  try {
    config = loadConfig()
  } catch (error) {
    if (error instanceof ConfigProblems) {
      process.stderr.write(`Settle cannot start; fix these settings:\n${error.problems.map(p => `  ${p.message}`).join('\n')}\n`)
      process.exit(78) // EX_CONFIG
    }
    throw error
  }
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
