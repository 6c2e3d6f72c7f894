import Fastify, { type FastifyInstance } from 'fastify'
import formbody from '@fastify/formbody'
import type { Knex } from 'knex'
import type { Config } from './config.js'
import { loggerOptions, requestLogger } from './logging.js'
import dbPlugin from './plugins/db.js'
import errorsPlugin, { clientErrorHandler, frameworkErrors } from './plugins/errors.js'
import inputPlugin, { AJV_OPTIONS } from './plugins/input.js'
import securityPlugin from './plugins/security.js'
import viewPlugin from './plugins/view.js'
import workerPlugin from './plugins/worker.js'
import rateLimitsPlugin from './plugins/rate-limits.js'
import openapiPlugin from './plugins/openapi.js'
import healthRoutes from './routes/health/index.js'
import homeRoutes from './routes/home/index.js'
import { seedDemo } from './demo/seed.js'
import type { Keyring } from './security/keyring.js'
import connectwiseWebhook from './routes/webhooks/connectwise.js'
import quickbooksWebhook from './routes/webhooks/quickbooks.js'
import { QUICKBOOKS_SANDBOX_WEBHOOK_VERIFIER } from './sandbox/quickbooks/index.js'
import sandboxRoutes from './routes/sandbox/index.js'
import demoHostRoutes from './routes/demo/index.js'
import { createPsaFactory } from './services/psa-connections.js'
import { syncJobHandlers, type PsaFactory } from './jobs/sync-jobs.js'
import { paymentJobHandlers, type PaymentsFactory } from './jobs/payment-jobs.js'
import { createPaymentsFactory } from './services/processor.js'
import stripeWebhook from './routes/webhooks/stripe.js'
import brandRoutes from './routes/brand/index.js'
import apiRoutes from './routes/api/index.js'
import tieoutRoutes from './routes/api/tieout.js'
import reconciliationRoutes from './routes/api/reconciliation.js'
import { startTieoutScheduler, tieoutJobHandlers } from './jobs/tieout-jobs.js'
import { quickBooksPaymentJobHandlers, startQuickBooksPaymentScheduler } from './jobs/quickbooks-payment-jobs.js'
import { postingJobHandlers } from './jobs/posting-jobs.js'
import type { AccountingFactory } from './ports/accounting.js'
import { createAccountingFactory, qboApp, qboEndpoints } from './services/accounting-connections.js'
import quickbooksConnectRoutes from './routes/connect/quickbooks.js'
import payRoutes from './routes/pay/index.js'
import embeddedRoutes from './routes/embedded/index.js'
import { noticeJobHandlers } from './jobs/notice-jobs.js'
import { installmentJobHandlers } from './jobs/installment-jobs.js'
import { createLogMailer } from './adapters/mail/log-mailer.js'
import type { Mailer } from './ports/mailer.js'
import { demoCollectionSetup } from './demo/collection.js'
import { STRIPE_SANDBOX_API_KEY, STRIPE_SANDBOX_PUBLISHABLE_KEY } from './sandbox/stripe/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The adapter for a tenant's PSA connection. */
    psaFor: PsaFactory
    /** The payments adapter on a tenant's Stripe key. */
    paymentsFor: PaymentsFactory
    /** The QuickBooks port for a tenant's connection; null when not connected. */
    accountingFor: AccountingFactory
  }
}

/** The origin this server answers on once listening (the sandbox stand-ins live there). */
export function listeningOrigin (app: FastifyInstance): string | null {
  const address = app.server.address()
  if (address === null || typeof address === 'string') return null
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host}:${address.port}`
}

export interface AppDependencies {
  /** A database the caller owns (tests, benchmarks). */
  db?: Knex
  keyring?: Keyring
  /** Stand-ins for the processor and the mailer (tests). */
  paymentsFor?: PaymentsFactory
  mailer?: Mailer
}

/** Builds the whole server from its plugins; `server.ts` only starts and stops it. */
export async function buildApp (config: Config, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const production = config.nodeEnv === 'production'
  const app = Fastify({
    logger: loggerOptions(config.logLevel, production),
    childLoggerFactory: requestLogger,
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    return503OnClosing: true,
    requestTimeout: 30_000,
    // The embedded default migrates and seeds the demo while plugins load: on a busy machine that outlasts the 10 s default.
    pluginTimeout: 120_000,
    // Signed pay-link tokens are ~200 characters; the default limit is 100.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 512 },
    ajv: AJV_OPTIONS,
    // Refusals before a route is found (router, Node's HTTP parser) in the catalogue format too.
    frameworkErrors,
    clientErrorHandler
  })
  await app.register(errorsPlugin)
  await app.register(inputPlugin)
  await app.register(securityPlugin)
  await app.register(formbody)
  await app.register(dbPlugin, { config, ...deps })
  await app.register(viewPlugin, { production })
  // Before any route: it marks the sign-in, session and pay routes as they are added.
  await app.register(rateLimitsPlugin)
  // Before any route too: the OpenAPI document is collected as routes are added.
  await app.register(openapiPlugin, { publicUrl: config.publicUrl })
  app.decorate('psaFor', createPsaFactory({ keyring: app.keyring, sandboxOrigin: () => (config.demo ? listeningOrigin(app) : null), autotaskZoneUrl: config.autotaskZoneUrl }))
  app.decorate('paymentsFor', deps.paymentsFor ?? createPaymentsFactory({
    keyring: app.keyring,
    apiBase: config.stripeApiBase,
    ...(config.demo ? { sandbox: { origin: () => listeningOrigin(app), apiKey: STRIPE_SANDBOX_API_KEY, publishableKey: STRIPE_SANDBOX_PUBLISHABLE_KEY } } : {})
  }))
  const qbo = qboEndpoints(config)
  app.decorate('accountingFor', createAccountingFactory({ db: app.db, keyring: app.keyring, sandboxOrigin: () => (config.demo ? listeningOrigin(app) : null), endpoints: qbo, intuitApp: qboApp(config) }))
  // Null for a tenant whose books are not connected.
  const accountingFor = app.accountingFor
  app.decorate('jobHandlers', {
    ...syncJobHandlers(app.psaFor),
    ...paymentJobHandlers(app.paymentsFor),
    ...installmentJobHandlers(app.paymentsFor),
    ...tieoutJobHandlers(accountingFor),
    ...quickBooksPaymentJobHandlers(accountingFor),
    ...postingJobHandlers(accountingFor),
    ...noticeJobHandlers({ keyring: app.keyring, publicUrl: config.publicUrl, payLinkDays: config.payLinkDays, mailer: deps.mailer ?? createLogMailer(app.log.child({ component: 'mailer' })) }),
    ...(config.demo ? { 'demo.collection-setup': demoCollectionSetup(() => listeningOrigin(app), app.accountingFor) } : {})
  })
  await app.register(workerPlugin, { config })
  if (config.workerEnabled) {
    let stopTieouts = (): void => {}
    let stopQboPayments = (): void => {}
    app.addHook('onListen', async () => {
      stopTieouts = startTieoutScheduler(app.db, app.log.child({ component: 'tieout-scheduler' }))
      stopQboPayments = startQuickBooksPaymentScheduler(app.db, app.log.child({ component: 'qbo-payments-scheduler' }))
    })
    app.addHook('preClose', async () => { stopTieouts(); stopQboPayments() })
  }
  if (config.demo) {
    // The stand-ins answer in the real wire formats, so the demo runs the real adapters.
    await app.register(sandboxRoutes, { origin: () => listeningOrigin(app) })
    // A PSA-like host page that frames the embedded pages the way ConnectWise does.
    await app.register(demoHostRoutes)
    const tenants = await seedDemo(app.db, app.keyring)
    app.log.info({ tenants: tenants.map(t => t.slug) }, 'demo tenants ready')
  }
  await app.register(healthRoutes, { config })
  await app.register(homeRoutes, { config })
  await app.register(stripeWebhook)
  await app.register(payRoutes, { publicUrl: config.publicUrl, payLinkDays: config.payLinkDays })
  await app.register(brandRoutes)
  await app.register(quickbooksConnectRoutes, { publicUrl: config.publicUrl, sandboxOrigin: () => (config.demo ? listeningOrigin(app) : null), endpoints: qbo, intuitApp: qboApp(config) })
  await app.register(apiRoutes, { publicUrl: config.publicUrl, payLinkDays: config.payLinkDays })
  await app.register(embeddedRoutes, { publicUrl: config.publicUrl, payLinkDays: config.payLinkDays, sandboxOrigin: () => (config.demo ? listeningOrigin(app) : null), intuitApp: qboApp(config) })
  await app.register(tieoutRoutes, { accountingFor })
  await app.register(reconciliationRoutes, { accountingFor })
  await app.register(quickbooksWebhook, { verifierToken: () => config.quickbooksWebhookVerifier ?? (config.demo ? QUICKBOOKS_SANDBOX_WEBHOOK_VERIFIER : null) })
  await app.register(connectwiseWebhook, { keyOrigins: () => { const origin = config.demo ? listeningOrigin(app) : null; return origin === null ? [] : [origin] } })
  return app
}
