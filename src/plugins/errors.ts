import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { AppError, errorBody, toAppError } from '../errors.js'
import { MAIN_LAYOUT } from './view.js'

/** Maps Fastify's own errors (validation, body parsing, limits) into the catalogue. */
function classify (error: FastifyError): AppError {
  if (error.validation !== undefined) return new AppError('VALIDATION_FAILED', error.message)
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return new AppError('PAYLOAD_TOO_LARGE', 'The request body is larger than this server accepts.')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json.')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY': return new AppError('MALFORMED_JSON', 'The body was declared JSON but was empty.')
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return new AppError('MALFORMED_JSON', 'The request body is not valid JSON.')
  }
  return toAppError(error)
}

const wantsHtml = (request: FastifyRequest): boolean =>
  request.method === 'GET' && (request.headers.accept ?? '').includes('text/html')

async function send (request: FastifyRequest, reply: FastifyReply, error: AppError): Promise<FastifyReply> {
  reply.status(error.status)
  if (wantsHtml(request) && typeof (reply as { view?: unknown }).view === 'function') {
    return await reply.view('error', { title: error.status === 404 ? 'Not found' : 'Something went wrong', status: error.status, error: errorBody(error).error }, MAIN_LAYOUT)
  }
  return await reply.send(errorBody(error))
}

/**
 * Every error leaves as `{error:{code,message}}` (or a page for a browser),
 * never with a stack trace. Server faults are logged in full; client
 * mistakes at info level.
 */
export default fp(async app => {
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const appError = classify(error)
    if (appError.status >= 500) request.log.error({ err: error }, 'request failed')
    else request.log.info({ code: appError.code }, appError.message)
    return await send(request, reply, appError)
  })
  app.setNotFoundHandler(async (request, reply) =>
    await send(request, reply, new AppError('ROUTE_NOT_FOUND', `Nothing at ${request.method} ${request.url.split('?')[0] ?? ''}.`)))
}, { name: 'settle-errors' })
