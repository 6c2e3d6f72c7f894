import type { Knex } from 'knex'
import { randomUUID } from 'node:crypto'
import { updateBillingStates, upsertCustomer } from '../db/customers.js'
import { invoicesByPsaIds, replaceInvoiceLines, upsertInvoices, type Invoice, type InvoiceUpsert } from '../db/invoices.js'
import { postEntries } from '../db/ledger.js'
import {
  advanceCursor, claimSync, finishSyncRun, releaseSync, startSyncRun, type SyncRunCounts
} from '../db/psa.js'
import { AppError } from '../errors.js'
import { planInvoiceSync, type InvoiceSyncPlan } from '../domain/invoice-sync.js'
import { usStateCode } from '../domain/surcharge.js'
import type { PsaInvoice, PsaInvoiceLine, PsaPort } from '../ports/psa.js'
import { MAX_RETRY_WAIT_MS, realSleep, RETRY_ROUNDS, retryable, retryingWhileProgressing, retryWaitMs, type RunContext } from './sync-retry.js'

export interface SyncProgress extends SyncRunCounts {
  phase: 'invoices' | 'open-recheck'
  /** Rows a second over the run so far. */
  invoicesPerSecond: number
  /** Change window being read, and how far the committed pages have reached into it (progress bars). */
  since: Date | null
  reachedAt: Date | null
}

export interface SyncOptions {
  db: Knex
  tenantId: string
  psa: PsaPort
  trigger: 'schedule' | 'cli' | 'webhook' | 'manual' | 'test'
  /** Ignore the cursor and read everything again (idempotent: unchanged invoices post nothing). */
  full?: boolean
  /** Also re-read every invoice still open in the PSA (Autotask changes paidDate without a webhook). */
  recheckOpen?: boolean
  onProgress?: (progress: SyncProgress) => void
  leaseMs?: number
  /** Stop between pages (shutdown); the cursor keeps what was committed. */
  signal?: AbortSignal
  /** Waits between retries of what failed (tests pass a fast one). */
  sleep?: (ms: number) => Promise<void>
}

export interface SyncResult extends SyncRunCounts {
  runId: number
  status: 'ok' | 'failed'
  error: string | null
}

/** PSAs that can list still-open invoices (Autotask). */
interface OpenInvoiceLister { listOpenInvoices: () => AsyncIterable<PsaInvoice[]> }
const listsOpenInvoices = (psa: PsaPort): psa is PsaPort & OpenInvoiceLister => typeof (psa as Partial<OpenInvoiceLister>).listOpenInvoices === 'function'

/**
 * Mirrors PSA invoices into Settle and the ledger. Pages stream through in
 * constant memory; each page commits its mirror rows, lines, ledger entries
 * and the cursor in one transaction, so a crash resumes after the last
 * committed page and a page that fails leaves nothing half-written.
 * Re-running is harmless: every ledger entry is keyed by the PSA's change.
 */
export async function syncInvoices (options: SyncOptions): Promise<SyncResult> {
  const { db, tenantId, psa } = options
  const holder = `sync:${randomUUID()}`
  const leaseMs = options.leaseMs ?? 5 * 60_000
  const state = await claimSync(db, tenantId, psa.system, holder, leaseMs)
  if (state === null) throw new AppError('SYNC_IN_PROGRESS', `A ${psa.system} sync is already running for this tenant.`)
  const runId = await startSyncRun(db, tenantId, psa.system, options.trigger)
  const counts: SyncRunCounts = { pages: 0, invoicesSeen: 0, created: 0, changed: 0, voided: 0, unchanged: 0, linesFetched: 0, calls: 0 }
  const callsBefore = psa.callsMade()
  const started = Date.now()
  const customers = await knownCustomers(db, tenantId, psa.system)
  const since = options.full === true ? null : state.cursor.at
  // Where the change window starts: the cursor, or on a first sync the oldest change seen.
  let windowStart: Date | null = since
  let reachedAt: Date | null = null
  const report = (phase: SyncProgress['phase']): void => {
    counts.calls = psa.callsMade() - callsBefore
    options.onProgress?.({ ...counts, phase, since: windowStart, reachedAt, invoicesPerSecond: Math.round(counts.invoicesSeen / Math.max(0.001, (Date.now() - started) / 1000)) })
  }
  const run: RunContext = { sleep: options.sleep ?? realSleep, commits: 0 }
  const aborted = (): boolean => options.signal?.aborted === true
  // How far this run has committed: a listing that breaks off resumes here, in this run (inclusive, so the boundary re-reads as a no-op).
  let committed: Date | null = since
  try {
    await retryingWhileProgressing(run, async () => {
      for await (const page of psa.listInvoicesChangedSince({ since: committed })) {
        if (aborted()) break
        windowStart ??= page[0]?.updatedAt ?? null
        await applyPage(db, tenantId, psa, page, customers, counts, run, { holder, leaseMs }, at => { committed = at; reachedAt = at })
        report('invoices')
      }
    })
    const recheck = options.recheckOpen === true && listsOpenInvoices(psa)
    if (recheck) {
      // Autotask stamps nothing when an invoice is paid or voided: such an
      // invoice just drops out of the open set, so re-read whatever left it.
      const stillOpen = new Set<string>()
      await retryingWhileProgressing(run, async () => {
        for await (const page of psa.listOpenInvoices()) {
          if (aborted()) break
          for (const invoice of page) stillOpen.add(invoice.externalId)
          await applyPage(db, tenantId, psa, page, customers, counts, run)
          report('open-recheck')
        }
      })
      const openInMirror = await db('invoices').where({ tenant_id: tenantId, psa_system: psa.system, voided: false })
        .whereIn('status', ['open', 'partially_paid', 'disputed', 'in_collections']).pluck('psa_invoice_id') as string[]
      const left = openInMirror.filter(id => !stillOpen.has(id))
      let next = 0
      await retryingWhileProgressing(run, async () => {
        for (; next < left.length && !aborted(); next += 50) {
          const page = await Promise.all(left.slice(next, next + 50).map(async externalId => await psa.getInvoice({ externalId })))
          await applyPage(db, tenantId, psa, page, customers, counts, run)
          report('open-recheck')
        }
      })
    }
    counts.calls = psa.callsMade() - callsBefore
    await finishSyncRun(db, runId, counts, { status: 'ok' })
    await releaseSync(db, tenantId, psa.system, holder, { status: 'ok', openRechecked: recheck })
    return { ...counts, runId, status: 'ok', error: null }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    counts.calls = psa.callsMade() - callsBefore
    await finishSyncRun(db, runId, counts, { status: 'failed', error: message })
    await releaseSync(db, tenantId, psa.system, holder, { status: 'failed', error: message })
    return { ...counts, runId, status: 'failed', error: message }
  }
}

/** Re-reads one invoice (a webhook said it changed) and applies it like a one-row page. */
export async function syncOneInvoice (db: Knex, tenantId: string, psa: PsaPort, externalId: string): Promise<'created' | 'changed' | 'voided' | 'unchanged'> {
  const invoice = await psa.getInvoice({ externalId })
  const counts: SyncRunCounts = { pages: 0, invoicesSeen: 0, created: 0, changed: 0, voided: 0, unchanged: 0, linesFetched: 0, calls: 0 }
  await applyPage(db, tenantId, psa, [invoice], await knownCustomers(db, tenantId, psa.system), counts, { sleep: realSleep, commits: 0 })
  return counts.created > 0 ? 'created' : counts.voided > 0 ? 'voided' : counts.changed > 0 ? 'changed' : 'unchanged'
}

async function knownCustomers (db: Knex, tenantId: string, system: string): Promise<Map<string, string>> {
  const rows = await db('customers').where({ tenant_id: tenantId, psa_system: system }).select('id', 'psa_company_id') as Array<{ id: string, psa_company_id: string }>
  return new Map(rows.map(r => [r.psa_company_id, r.id]))
}

/**
 * Creates customers for companies seen for the first time; names come from
 * the invoice or, failing that, the company list. Billing states (the card
 * surcharge needs them) come from the same data, the invoice's bill-to or a
 * company list read anyway, never from an extra call.
 */
async function ensureCustomers (db: Knex, tenantId: string, psa: PsaPort, page: readonly PsaInvoice[], customers: Map<string, string>): Promise<void> {
  // Pages run oldest change first, so a company's latest invoice in the page has the last word.
  const states = new Map<string, string>()
  for (const invoice of page) if (typeof invoice.billingState === 'string') states.set(invoice.companyExternalId, invoice.billingState)
  const missing = page.filter(i => !customers.has(i.companyExternalId))
  const names = new Map(missing.filter(i => i.companyName !== null).map(i => [i.companyExternalId, i.companyName as string]))
  if (missing.some(i => !names.has(i.companyExternalId))) {
    for await (const companies of psa.listCompanies()) {
      for (const c of companies) {
        names.set(c.externalId, c.name)
        if (typeof c.state === 'string' && !states.has(c.externalId)) states.set(c.externalId, c.state)
      }
    }
  }
  for (const invoice of missing) {
    if (customers.has(invoice.companyExternalId)) continue
    const state = states.get(invoice.companyExternalId)
    const customer = await upsertCustomer(db, tenantId, {
      name: names.get(invoice.companyExternalId) ?? `${psa.system} company ${invoice.companyExternalId}`,
      currency: invoice.currency,
      psaSystem: psa.system,
      psaCompanyId: invoice.companyExternalId,
      ...(state === undefined ? {} : { billingState: usStateCode(state) })
    })
    customers.set(invoice.companyExternalId, customer.id)
  }
  // Known clients move too; only what changed is written.
  const known = new Map<string, string | null>()
  for (const [companyId, state] of states) {
    const customerId = customers.get(companyId)
    if (customerId !== undefined) known.set(customerId, usStateCode(state))
  }
  await updateBillingStates(db, tenantId, known)
}

const dateOnly = (day: string): Date => new Date(`${day}T12:00:00Z`)

/** Invoices per transaction when the PSA does not say how many invoices' lines one call fetches. */
export const DEFAULT_SYNC_UNIT = 100
/** One unit's lines; a failure repeats this unit's calls only, never the page's. */
async function fetchUnitLines (psa: PsaPort, unit: readonly PagePlan[], run: RunContext): Promise<Map<string, PsaInvoiceLine[]>> {
  const wanted = unit.filter(p => p.needsLines && !p.invoice.voided).map(p => p.invoice)
  if (wanted.length === 0) return new Map()
  for (let round = 1; ; round++) {
    try {
      return await psa.getInvoiceLines({ invoiceExternalIds: wanted.map(i => i.externalId), headers: wanted })
    } catch (error) {
      if (!retryable(error) || round > RETRY_ROUNDS || retryWaitMs(error) > MAX_RETRY_WAIT_MS) throw error
      await run.sleep(retryWaitMs(error))
    }
  }
}

interface PagePlan {
  invoice: PsaInvoice
  booked: Invoice | undefined
  customerId: string
  psaBalance: number
  plan: InvoiceSyncPlan
  headerChanged: boolean
  needsLines: boolean
}

const byStampThenId = (a: PagePlan, b: PagePlan): number =>
  a.invoice.updatedAt.getTime() - b.invoice.updatedAt.getTime() || compareIds(a.invoice.externalId, b.invoice.externalId)
const compareIds = (a: string, b: string): number => /^\d+$/.test(a) && /^\d+$/.test(b) ? Number(a) - Number(b) : a < b ? -1 : a > b ? 1 : 0

/**
 * Applies one page in units (the PSA's line batch): every unit's lines are
 * fetched at once (the adapter bounds requests in flight), then each unit
 * commits its mirror rows, lines, ledger entries and, on a listing, the
 * cursor, in order. A crash or a unit that keeps failing loses at most that
 * unit: the cursor never passes an invoice that is not committed.
 */
async function applyPage (
  db: Knex, tenantId: string, psa: PsaPort, page: readonly PsaInvoice[], customers: Map<string, string>, counts: SyncRunCounts,
  run: RunContext, cursor?: { holder: string, leaseMs: number }, onCommitted?: (at: Date) => void
): Promise<void> {
  counts.pages++
  counts.invoicesSeen += page.length
  await ensureCustomers(db, tenantId, psa, page, customers)
  // A page may repeat an invoice (it changed while we paged): the latest wins.
  const latest = new Map<string, PsaInvoice>()
  for (const invoice of page) {
    const seen = latest.get(invoice.externalId)
    if (seen === undefined || seen.updatedAt <= invoice.updatedAt) latest.set(invoice.externalId, invoice)
  }
  const existing = await invoicesByPsaIds(db, tenantId, psa.system, [...latest.keys()])
  const plans: PagePlan[] = [...latest.values()].map(invoice => {
    const booked: Invoice | undefined = existing.get(invoice.externalId)
    const customerId = customers.get(invoice.companyExternalId) as string
    const psaBalance = invoice.balance?.amount ?? (invoice.voided || invoice.paidOn !== null ? 0 : invoice.total.amount)
    const plan = planInvoiceSync(booked === undefined ? null : booked, {
      system: psa.system,
      externalId: invoice.externalId,
      number: invoice.number,
      customerId,
      currency: invoice.currency,
      total: invoice.total.amount,
      psaBalance,
      voided: invoice.voided,
      psaUpdatedAt: invoice.updatedAt,
      issuedAt: dateOnly(invoice.issuedOn)
    })
    const headerChanged = booked === undefined || booked.psaUpdatedAt.getTime() !== invoice.updatedAt.getTime()
    const needsLines = booked === undefined || booked.total.amount !== invoice.total.amount || (booked.lineCount === 0 && invoice.total.amount !== 0)
    return { invoice, booked, customerId, psaBalance, plan, headerChanged, needsLines }
  })
  // In cursor order, so committing a unit may move the cursor to its last invoice.
  const toWrite = plans.filter(p => p.headerChanged || !p.plan.unchanged).sort(byStampThenId)
  const size = Math.max(1, psa.lineBatchSize ?? DEFAULT_SYNC_UNIT)
  const units: PagePlan[][] = []
  for (let i = 0; i < toWrite.length; i += size) units.push(toWrite.slice(i, i + size))
  // A page with nothing to write still moves the cursor.
  if (units.length === 0) units.push([])
  // Network before each transaction: a slow PSA never holds database locks.
  const lineFetches = units.map(unit => fetchUnitLines(psa, unit, run))
  // Awaited in order below; until then a failure must not surface as unhandled.
  for (const fetch of lineFetches) fetch.catch(() => {})
  const pageLast = page[page.length - 1]

  for (const [k, unit] of units.entries()) {
    const lines = await (lineFetches[k] as Promise<Map<string, PsaInvoiceLine[]>>)
    const through = k === units.length - 1 ? pageLast : unit[unit.length - 1]?.invoice
    await db.transaction(async trx => {
      const rows: InvoiceUpsert[] = unit.map(({ invoice, customerId, psaBalance, plan }) => ({
        customerId,
        psaSystem: psa.system,
        psaInvoiceId: invoice.externalId,
        number: invoice.number,
        kind: invoice.kind,
        currency: invoice.currency,
        issuedOn: invoice.issuedOn,
        dueOn: invoice.dueOn,
        total: invoice.total.amount,
        psaBalance,
        paidOn: invoice.paidOn,
        voided: invoice.voided,
        status: plan.status,
        agreementName: invoice.agreementName,
        poNumber: invoice.poNumber,
        psaUpdatedAt: invoice.updatedAt,
        ledgerBilled: plan.ledgerBilled,
        ledgerPaidElsewhere: plan.ledgerPaidElsewhere,
        raw: invoice.raw
      }))
      const ids = rows.length > 0 ? await upsertInvoices(trx, tenantId, rows) : new Map<string, string>()
      const linesByInvoiceId = new Map([...lines].flatMap(([psaId, l]) => {
        const id = ids.get(psaId)
        return id === undefined ? [] : [[id, l] as const]
      }))
      counts.linesFetched += await replaceInvoiceLines(trx, tenantId, linesByInvoiceId)
      // One statement for the unit's entries: per-entry round trips were the sync's bottleneck.
      await postEntries(trx, tenantId, unit.flatMap(({ plan }) => plan.entries.map(input => ({ input }))))
      if (cursor !== undefined && through !== undefined) await advanceCursor(trx, tenantId, psa.system, cursor.holder, { at: through.updatedAt, id: through.externalId }, cursor.leaseMs)
    })
    run.commits++
    if (through !== undefined) onCommitted?.(through.updatedAt)
    for (const p of unit) {
      if (p.booked === undefined) counts.created++
      else if (p.invoice.voided && !p.booked.voided) counts.voided++
      else counts.changed++
    }
  }
  counts.unchanged += plans.length - toWrite.length
}
