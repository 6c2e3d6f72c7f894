import fp from 'fastify-plugin'
import helmet from '@fastify/helmet'

/**
 * Security headers for every response. Scripts and styles come only from
 * Settle itself; framing is refused until the embedded-pages issue allows each
 * tenant's PSA origins per route.
 */
export default fp(async app => {
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'self'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"]
      }
    },
    crossOriginEmbedderPolicy: false,
    strictTransportSecurity: { maxAge: 15552000, includeSubDomains: true }
  })
}, { name: 'settle-security' })
