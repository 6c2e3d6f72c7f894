import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { API_KEY_SCHEME } from '../routes/api/openapi.js'

/** Only the admin API is a public contract; pages, webhooks and stand-ins stay out of the document. */
const DOCUMENTED = /^\/api\/v1\//
export const OPENAPI_URL = '/api/v1/openapi.json'

/**
 * The admin API's OpenAPI 3.1 document, built from the route schemas, at
 * `GET /api/v1/openapi.json`, and Swagger UI on it at `/api/docs`. Both are
 * public: they describe what a key can do, never hold one. Registered before
 * the routes, since @fastify/swagger collects them as they are added.
 */
export default fp(async (app, { publicUrl }: { publicUrl: string }) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Settle admin API',
        version: '1',
        description: 'A tenant\'s back office and scripts: charge card, refunds, pay links, autopay approvals, exceptions, reconciliation and the tie-out. ' +
          'Every call needs a scoped API key (`settle api-keys:create`), sent as `Authorization: Bearer settle_sk_…`; every refusal is `{error:{code,message}}` with a code from the catalogue.',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' }
      },
      servers: [{ url: publicUrl }],
      components: {
        securitySchemes: { [API_KEY_SCHEME]: { type: 'http', scheme: 'bearer', bearerFormat: 'settle_sk_<key id>_<secret>', description: 'A Settle API key; each operation names the scope it needs.' } }
      }
    },
    transform: ({ schema, url }) => ({ schema: (DOCUMENTED.test(url) && url !== OPENAPI_URL ? schema : { ...schema, hide: true }) as typeof schema, url })
  })

  app.get(OPENAPI_URL, { schema: { hide: true } }, async () => app.swagger())

  // Swagger UI's own assets, served from node_modules: no CDN, so the app's CSP (scripts and styles from 'self') holds.
  // The base layout, without the top bar: its logo is an SVG with an inline <style> the CSP refuses, and its URL box would explore other documents.
  await app.register(swaggerUi, { routePrefix: '/api/docs', uiConfig: { layout: 'BaseLayout', deepLinking: true }, validatorUrl: false, theme: { title: 'Settle admin API' } })
}, { name: 'settle-openapi' })
