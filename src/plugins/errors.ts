import fp from 'fastify-plugin'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaValidationError } from 'fastify'
import { AppError, errorBody, toAppError } from '../errors.js'
import { redactUrl } from '../logging.js'
import { MAIN_LAYOUT } from './view.js'

const PLACE: Record<string, string> = { body: 'Body field', querystring: 'Query parameter', params: 'URL part', headers: 'Header' }
const WHOLE: Record<string, string> = { body: 'The request body', querystring: 'The query string', params: 'The URL', headers: 'The headers' }
const TYPES: Record<string, string> = { integer: 'a whole number', number: 'a number', string: 'text', boolean: 'true or false', object: 'an object with named fields', array: 'a list', null: 'null' }

const fieldPath = (instancePath: string, extra?: string): string =>
  [...instancePath.split('/').slice(1).map(s => s.replace(/~1/g, '/').replace(/~0/g, '~')), ...(extra === undefined ? [] : [extra])]
    .reduce((path, part) => /^\d+$/.test(part) ? `${path}[${part}]` : path === '' ? part : `${path}.${part}`, '')

/**
 * A schema refusal in words: which field, and what it expects. A schema may
 * say what it expects in its `description` (ajv runs verbose, so the failing
 * schema comes with the error); otherwise the keyword's own rule is used.
 */
export function describeValidation (context: string, issue: FastifySchemaValidationError & { parentSchema?: { description?: unknown } }): string {
  const params = issue.params as Record<string, unknown>
  const named = (path: string): string => path === '' ? (WHOLE[context] ?? 'The request') : `${PLACE[context] ?? 'Field'} "${path}"`
  const at = fieldPath(issue.instancePath)
  switch (issue.keyword) {
    case 'additionalProperties': return `${named(fieldPath(issue.instancePath, String(params.additionalProperty)))} is not accepted here; remove it.`
    case 'required': return `${named(fieldPath(issue.instancePath, String(params.missingProperty)))} is required.`
    case 'type': {
      const types = String(params.type).split(',').map(type => TYPES[type] ?? type)
      return `${named(at)} must be ${types.join(' or ')}.`
    }
    case 'enum': return `${named(at)} must be one of: ${(params.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}.`
  }
  const description = issue.parentSchema?.description
  return typeof description === 'string' ? `${named(at)} must be ${description}.` : `${named(at)} ${issue.message ?? 'is not valid'}.`
}

const BY_STATUS: Record<number, () => AppError> = {
  400: () => new AppError('MALFORMED_REQUEST', 'This request could not be read; check its address and body.'),
  403: () => new AppError('FORBIDDEN', 'That address is not served here.'),
  404: () => new AppError('ROUTE_NOT_FOUND', 'Nothing at that address.'),
  408: () => new AppError('REQUEST_TIMEOUT', 'The request took too long to arrive; send it again.'),
  413: () => new AppError('PAYLOAD_TOO_LARGE', 'The request body is larger than this server accepts.'),
  414: () => new AppError('URL_TOO_LONG', 'A part of the address is longer than this server accepts; check the link.'),
  415: () => new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json.'),
  431: () => new AppError('HEADERS_TOO_LARGE', 'The request\'s headers (or its address) are larger than this server accepts.')
}

/** Maps Fastify's own errors (validation, body parsing, limits, the static files' refusals) into the catalogue. */
function classify (error: FastifyError): AppError {
  if (error instanceof AppError) return error
  const first = error.validation?.[0]
  if (first !== undefined) return new AppError('VALIDATION_FAILED', describeValidation(error.validationContext ?? 'body', first))
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return new AppError('PAYLOAD_TOO_LARGE', 'The request body is larger than this server accepts.')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json.')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY': return new AppError('MALFORMED_JSON', 'The body was declared JSON but was empty.')
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return new AppError('MALFORMED_JSON', 'The request body is not valid JSON.')
    case 'FST_ERR_BAD_URL': return new AppError('MALFORMED_REQUEST', 'The address has a malformed %-escape; check the link.')
  }
  if (typeof error.message === 'string' && /prototype property/.test(error.message)) return new AppError('MALFORMED_JSON', 'The request body may not contain "__proto__" or "constructor" keys.')
  // A 4xx from fastify or a plugin (e.g. @fastify/static's 403/400 for a traversal or a NUL) is the client's; anything else is ours.
  const status = error.statusCode ?? (error as { status?: unknown }).status
  if (typeof status === 'number' && status >= 400 && status < 500) return (BY_STATUS[status] ?? BY_STATUS[400]!)()
  return toAppError(error)
}

/** A person's browser asking for a page (errors answer it with a page); anyone else gets the catalogue's JSON. */
export const wantsHtml = (request: FastifyRequest): boolean =>
  request.method === 'GET' && (request.headers.accept ?? '').includes('text/html')

async function send (request: FastifyRequest, reply: FastifyReply, error: AppError): Promise<FastifyReply> {
  reply.status(error.status)
  if (wantsHtml(request) && typeof (reply as { view?: unknown }).view === 'function') {
    return await reply.view('error', { title: error.status === 404 ? 'Not found' : 'Something went wrong', status: error.status, error: errorBody(error).error }, MAIN_LAYOUT)
  }
  return await reply.send(errorBody(error))
}

async function handle (error: FastifyError, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const appError = classify(error)
  if (appError.status >= 500) request.log.error({ err: error }, 'request failed')
  else request.log.info({ code: appError.code }, appError.message)
  return await send(request, reply, appError)
}

/** Fastify's `frameworkErrors` option: the router's refusals (a malformed %-escape, a parameter past maxParamLength) in the catalogue. */
export const frameworkErrors = (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => { void handle(error, request, reply) }

/**
 * Fastify's `clientErrorHandler` option: what Node's HTTP parser refuses
 * before there is a request (headers or URL past the limit, garbage, a
 * timeout), answered in the catalogue format on the raw socket.
 */
export function clientErrorHandler (this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const appError = error.code === 'HPE_HEADER_OVERFLOW'
    ? BY_STATUS[431]!()
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? BY_STATUS[408]!() : BY_STATUS[400]!()
  this.log.debug({ code: error.code }, 'client error')
  if (socket.writable) {
    const body = JSON.stringify(errorBody(appError))
    socket.write(`HTTP/1.1 ${appError.status} ${STATUS_CODES[appError.status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy(error)
}

/**
 * Every error leaves as `{error:{code,message}}` (or a page for a browser),
 * never with a stack trace. Server faults are logged in full; client
 * mistakes at info level.
 */
export default fp(async app => {
  app.setErrorHandler(handle)
  app.setNotFoundHandler(async (request, reply) =>
    await send(request, reply, new AppError('ROUTE_NOT_FOUND', `Nothing at ${request.method} ${redactUrl(request.url.split('?')[0] ?? '').slice(0, 200)}.`)))
}, { name: 'settle-errors' })
