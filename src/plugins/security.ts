import fp from 'fastify-plugin'
import helmet from 'helmet'

/**
 * Security headers for every response. Scripts and styles come only from
 * Settle itself; framing is refused except where a route allows its
 * tenant's PSA origins (the embedded pages).
 *
 * helmet's middleware is built once here. @fastify/helmet rebuilt it on every
 * request (re-parsing the CSP directives), which was a measurable part of a
 * pod request.
 */
export default fp(async app => {
  const applyHeaders = helmet({
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
  app.addHook('onRequest', (request, reply, done) => { applyHeaders(request.raw, reply.raw, (error?: unknown) => { done(error instanceof Error ? error : undefined) }) })
}, { name: 'settle-security' })
