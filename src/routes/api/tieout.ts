import type { FastifyInstance } from 'fastify'
import { isUuid } from '../../db/tenants.js'
import { listExceptions } from '../../db/reconciliation-exceptions.js'
import { audit } from '../../db/audit.js'
import { AppError } from '../../errors.js'
import { guardWithApiKeys } from '../../security/api-keys.js'
import type { AccountingFactory } from '../../ports/accounting.js'
import { OptionalBody, Strict } from '../schemas.js'
import { getTieoutRun, latestTieoutRun, runTieout } from '../../services/tieout.js'
import { Type } from '@sinclair/typebox'
import { example, operation, serialiseUnfiltered } from './openapi.js'

const RunSchema = Type.Object({ id: Type.String(), trigger: Type.String(), status: Type.String(), startedAt: Type.String({ format: 'date-time' }), finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]), totals: Type.Object({}, { description: 'per currency: each source\'s totals' }), differencesCount: Type.Integer(), error: Type.Union([Type.String(), Type.Null()]) }, { description: 'one tie-out run' })
const exampleRun = { id: '7a3e9c10-2d4b-4f8e-b6a1-5c9d0e2f7b84', trigger: 'manual', status: 'clean', startedAt: '2026-12-08T05:00:00.000Z', finishedAt: '2026-12-08T05:00:04.000Z', totals: {}, differencesCount: 0, error: null }

/**
 * The tie-out on the admin API: the latest run (clean, or its differences
 * with their open exceptions) and "run now". Same scoped keys as the rest of
 * the admin API; running one needs the scope of the people who work the
 * exception queue it feeds.
 */
export default async function tieoutRoutes (app: FastifyInstance, { accountingFor }: { accountingFor: AccountingFactory }): Promise<void> {
  const { who } = guardWithApiKeys(app)
  serialiseUnfiltered(app)
  const openDifferences = async (tenantId: string): Promise<unknown[]> =>
    (await listExceptions(app.db, tenantId, { kind: 'tieout_difference', status: 'open', limit: 500 }))
      .map(e => ({ id: e.id, summary: e.summary, likelyCause: e.likelyCause, suggestedRepair: e.suggestedRepair, amount: e.amount, customerId: e.customerId, invoiceId: e.invoiceId, details: e.details, createdAt: e.createdAt, updatedAt: e.updatedAt }))

  app.get('/api/v1/tieout', {
    schema: {
      ...operation({
        tag: 'Tie-out', scope: 'payments:read', summary: 'The latest tie-out: Settle against QuickBooks',
        description: 'The last run\'s state (`never_run`, `clean`, `differences`, …), its per-customer lines, the open differences with their likely cause and repair, and a run in progress if there is one.',
        errors: [],
        responses: { 200: example(Type.Object({ run: Type.Union([RunSchema, Type.Null()]), state: Type.String(), lines: Type.Array(Type.Object({})), differences: Type.Array(Type.Object({})), running: Type.Union([Type.Object({ id: Type.String() }), Type.Null()]) }), { run: exampleRun, state: 'clean', lines: [], differences: [], running: null }) }
      }),
      querystring: Strict({})
    }
  }, async request => {
    const p = who(request, 'payments:read')
    const latest = await latestTieoutRun(app.db, p.tenantId)
    const running = await app.db('tieout_runs').where({ tenant_id: p.tenantId, status: 'running' }).first('id', 'started_at')
    return {
      run: latest?.run ?? null,
      // Said in words so a clean run is shown as such, not as an empty list.
      state: latest === null ? 'never_run' : latest.run.status,
      lines: latest?.lines ?? [],
      differences: await openDifferences(p.tenantId),
      running: running ?? null
    }
  })

  app.get<{ Params: { runId: string } }>('/api/v1/tieout/runs/:runId', {
    schema: {
      ...operation({
        tag: 'Tie-out', scope: 'payments:read', summary: 'One tie-out run', description: 'A past run and its per-customer lines.',
        errors: ['TIEOUT_NOT_FOUND'], responses: { 200: example(Type.Object({ run: RunSchema, lines: Type.Array(Type.Object({})) }), { run: exampleRun, lines: [] }) }
      }),
      params: Type.Object({ runId: Type.String({ description: 'a UUID', examples: [exampleRun.id] }) })
    }
  }, async request => {
    const p = who(request, 'payments:read')
    if (!isUuid(request.params.runId)) throw new AppError('VALIDATION_FAILED', 'The run id must be a UUID.')
    return await getTieoutRun(app.db, p.tenantId, request.params.runId)
  })

  app.post('/api/v1/tieout/runs', {
    schema: {
      ...operation({
        tag: 'Tie-out', scope: 'exceptions:resolve', summary: 'Run the tie-out now', hasBody: true,
        description: 'Compares Settle\'s ledger with QuickBooks now rather than at the nightly run; each difference opens (or clears) an exception in the reconciliation queue.',
        errors: ['ACCOUNTING_NOT_CONNECTED', 'ACCOUNTING_RECONNECT_REQUIRED', 'TIEOUT_IN_PROGRESS', 'UPSTREAM_FAILED', 'RATE_BUDGET_EXHAUSTED'],
        responses: { 201: example(Type.Object({ run: RunSchema, state: Type.String(), lines: Type.Array(Type.Object({})), differences: Type.Array(Type.Object({})), exceptionsOpen: Type.Unknown(), exceptionsCleared: Type.Unknown() }), { run: exampleRun, state: 'clean', lines: [], differences: [], exceptionsOpen: 0, exceptionsCleared: 0 }) }
      }),
      body: example(OptionalBody(Strict({})), {})
    }
  }, async (request, reply) => {
    const p = who(request, 'exceptions:resolve')
    const accounting = await accountingFor(p.tenantId)
    const outcome = await runTieout(app.db, p.tenantId, accounting, { trigger: 'manual' })
    await audit(app.db, p.tenantId, `api:${p.name}`, 'tieout.run_now', outcome.run.id, { status: outcome.run.status })
    return await reply.status(201).send({
      run: outcome.run,
      state: outcome.run.status,
      lines: outcome.lines,
      differences: outcome.differences.map(d => ({ cause: d.cause, summary: d.summary, likelyCause: d.likelyCause, suggestedRepair: d.suggestedRepair, difference: d.difference, figures: d.figures, subject: d.subject })),
      exceptionsOpen: outcome.exceptionsRaised,
      exceptionsCleared: outcome.exceptionsCleared
    })
  })
}
