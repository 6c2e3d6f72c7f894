import type { FastifyInstance } from 'fastify'
import { isUuid } from '../../db/tenants.js'
import { listExceptions } from '../../db/reconciliation-exceptions.js'
import { audit } from '../../db/audit.js'
import { AppError } from '../../errors.js'
import { guardWithApiKeys } from '../../security/api-keys.js'
import type { AccountingFactory } from '../../ports/accounting.js'
import { OptionalBody, Strict } from '../schemas.js'
import { getTieoutRun, latestTieoutRun, runTieout } from '../../services/tieout.js'

/**
 * The tie-out on the admin API: the latest run (clean, or its differences
 * with their open exceptions) and "run now". Same scoped keys as the rest of
 * the admin API; running one needs the scope of the people who work the
 * exception queue it feeds.
 */
export default async function tieoutRoutes (app: FastifyInstance, { accountingFor }: { accountingFor: AccountingFactory }): Promise<void> {
  const { who } = guardWithApiKeys(app)
  const openDifferences = async (tenantId: string): Promise<unknown[]> =>
    (await listExceptions(app.db, tenantId, { kind: 'tieout_difference', status: 'open', limit: 500 }))
      .map(e => ({ id: e.id, summary: e.summary, likelyCause: e.likelyCause, suggestedRepair: e.suggestedRepair, amount: e.amount, customerId: e.customerId, invoiceId: e.invoiceId, details: e.details, createdAt: e.createdAt, updatedAt: e.updatedAt }))

  app.get('/api/v1/tieout', { schema: { querystring: Strict({}) } }, async request => {
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

  app.get<{ Params: { runId: string } }>('/api/v1/tieout/runs/:runId', async request => {
    const p = who(request, 'payments:read')
    if (!isUuid(request.params.runId)) throw new AppError('VALIDATION_FAILED', 'The run id must be a UUID.')
    return await getTieoutRun(app.db, p.tenantId, request.params.runId)
  })

  app.post('/api/v1/tieout/runs', { schema: { body: OptionalBody(Strict({})) } }, async (request, reply) => {
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
