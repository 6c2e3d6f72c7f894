import t from 'tap'
import { Validator } from '@seriousme/openapi-schema-validator'
import { Ajv } from 'ajv'
import { testDb } from '../helpers/db.js'
import { makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { buildApp } from '../../src/app.js'
import { OPENAPI_URL } from '../../src/plugins/openapi.js'
import { API_SCOPES, createApiKey } from '../../src/security/api-keys.js'
import { isErrorCode } from '../../src/errors.js'

interface Operation { summary?: string, description?: string, security?: Array<Record<string, string[]>>, responses?: Record<string, { content?: Record<string, { schema?: unknown, examples?: unknown, example?: unknown }> }>, requestBody?: { content?: Record<string, { examples?: unknown, example?: unknown }> }, parameters?: Array<{ in: string, name: string, example?: unknown, examples?: unknown }> }
interface Document { openapi: string, paths: Record<string, Record<string, Operation>>, components: { securitySchemes: Record<string, { type: string, scheme?: string }> } }

/** `/api/v1/invoices/:invoiceId` as OpenAPI writes it. */
const openapiPath = (url: string): string => url.replace(/:(\w+)/g, '{$1}')

const firstExample = (content: { examples?: unknown, example?: unknown } | undefined): unknown => {
  if (content === undefined) return undefined
  if (content.example !== undefined) return content.example
  const examples = content.examples as Record<string, { value: unknown }> | undefined
  return examples === undefined ? undefined : Object.values(examples)[0]?.value
}

t.test('the admin API\'s OpenAPI document: valid 3.1, every /api/v1 route in it, described and secured', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  t.teardown(async () => { await app.close() })

  const res = await app.inject({ method: 'GET', url: OPENAPI_URL })
  t.equal(res.statusCode, 200, 'public: no key needed')
  const doc = res.json<Document>()
  const validator = new Validator()
  const result = await validator.validate(doc as unknown as Parameters<Validator['validate']>[0])
  t.same(result.errors ?? [], [], 'no validation errors')
  t.ok(result.valid, 'a valid OpenAPI document')
  t.equal(validator.version, '3.1')
  t.match(doc.components.securitySchemes.apiKey, { type: 'http', scheme: 'bearer' })

  const routes = app.routeTable.filter(r => r.url.startsWith('/api/v1/') && r.url !== OPENAPI_URL && r.method !== 'HEAD')
  t.ok(routes.length >= 20, `the admin API's routes are registered (${routes.length})`)
  for (const route of routes) {
    const op = doc.paths[openapiPath(route.url)]?.[route.method.toLowerCase()]
    const name = `${route.method} ${route.url}`
    if (op === undefined) { t.fail(`${name} is missing from the document`); continue }
    t.ok((op.summary ?? '').length > 10, `${name} has a summary`)
    const scope = op.security?.[0]?.apiKey?.[0]
    t.ok(scope !== undefined && (API_SCOPES as readonly string[]).includes(scope), `${name} needs a known scope (${scope})`)
    t.match(op.description, new RegExp(`\`${scope}\``), `${name} names its scope in the text`)
    // A 402 is a charge's own answer (the declined attempt), not a catalogue refusal.
    const errors = Object.entries(op.responses ?? {}).filter(([status]) => Number(status) >= 400 && Number(status) < 500 && status !== '402')
    t.ok(errors.length > 0, `${name} has error responses`)
    for (const [status, response] of errors) {
      const schema = response.content?.['application/json']?.schema as { properties?: { error?: { properties?: { code?: { enum?: string[] } } } } } | undefined
      const codes = schema?.properties?.error?.properties?.code?.enum ?? []
      t.ok(codes.length > 0 && codes.every(isErrorCode), `${name} ${status} lists catalogue codes`)
    }
    const success = Object.entries(op.responses ?? {}).filter(([status]) => Number(status) < 300)
    t.ok(success.length > 0 && success.every(([, r]) => r.content?.['application/json']?.schema !== undefined), `${name} has a success response schema`)
    t.ok(success.some(([, r]) => firstExample(r.content?.['application/json']) !== undefined), `${name} has a response example`)
    if (route.method !== 'GET' && route.method !== 'DELETE') t.ok(firstExample(op.requestBody?.content?.['application/json']) !== undefined, `${name} has a request example`)
  }

  const documented = Object.keys(doc.paths)
  t.same(documented.filter(p => !p.startsWith('/api/v1/')), [], 'nothing outside the admin API is documented')
  t.notOk(documented.includes(OPENAPI_URL), 'the document does not describe itself')
})

/**
 * The documented scope is the one the route checks: the example request,
 * sent with a key that has every scope but that one, passes validation and is
 * refused for that scope alone. So the examples fit the schemas too.
 */
t.test('each operation\'s example passes its schema and is refused without the documented scope', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Brightline Managed IT')
  const doc = (await app.inject({ method: 'GET', url: OPENAPI_URL })).json<Document>()
  const keys = new Map<string, string>()
  for (const scope of API_SCOPES) keys.set(scope, (await createApiKey(db, tenant.id, `all but ${scope.replace(':', ' ')}`, API_SCOPES.filter(s => s !== scope))).key)

  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const scope = op.security?.[0]?.apiKey?.[0] as string
      const url = path.replace(/\{(\w+)\}/g, (_, name: string) => String(firstExample(op.parameters?.find(p => p.in === 'path' && p.name === name)) ?? op.parameters?.find(p => p.in === 'path' && p.name === name)?.example ?? 'x'))
      const body = firstExample(op.requestBody?.content?.['application/json'])
      const res = await app.inject({ method: method.toUpperCase() as 'GET', url, headers: { authorization: `Bearer ${keys.get(scope)!}` }, ...(body !== undefined ? { payload: body as object } : {}) })
      t.equal(res.statusCode, 403, `${method.toUpperCase()} ${path}: ${res.body.slice(0, 200)}`)
      t.match(res.json(), { error: { code: 'FORBIDDEN', message: new RegExp(`"${scope}"`) } }, `${method.toUpperCase()} ${path} needs ${scope}`)
    }
  }
})

/**
 * The response schemas describe rather than filter (the admin API serialises
 * with JSON.stringify), so real answers are checked against them here: a
 * documented shape that stopped matching what the route returns fails.
 */
t.test('real answers match their documented response schemas', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig(), { db, keyring: testKeyring() })
  t.teardown(async () => { await app.close() })
  const tenant = await makeTenant(db, 'Brightline Managed IT')
  const doc = (await app.inject({ method: 'GET', url: OPENAPI_URL })).json<Document>()
  const key = (await createApiKey(db, tenant.id, 'everything', [...API_SCOPES])).key
  const spare = await createApiKey(db, tenant.id, 'spare', ['payments:read'])
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true })

  const calls: Array<[string, string, string]> = [
    ['get', '/api/v1/api-keys', '/api/v1/api-keys'],
    ['get', '/api/v1/autopay/approvals', '/api/v1/autopay/approvals'],
    ['get', '/api/v1/exceptions', '/api/v1/exceptions?status=all'],
    ['get', '/api/v1/reconciliation/exceptions', '/api/v1/reconciliation/exceptions'],
    ['get', '/api/v1/tieout', '/api/v1/tieout'],
    ['delete', '/api/v1/api-keys/{keyId}', `/api/v1/api-keys/${spare.id}`]
  ]
  for (const [method, path, url] of calls) {
    const res = await app.inject({ method: method.toUpperCase() as 'GET', url, headers: { authorization: `Bearer ${key}` } })
    const documented = doc.paths[path]?.[method]?.responses?.[String(res.statusCode)]?.content?.['application/json']?.schema
    t.ok(documented !== undefined, `${method.toUpperCase()} ${url} answered a documented status (${res.statusCode})`)
    if (documented === undefined) continue
    const check = ajv.compile(documented as object)
    t.ok(check(res.json()), `${method.toUpperCase()} ${url} matches its schema: ${JSON.stringify(check.errors ?? [])}`)
  }
  // Not vacuous: the key list holds both keys, so its item schema was exercised.
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/api-keys', headers: { authorization: `Bearer ${key}` } })).json().keys.length, 2)
})
