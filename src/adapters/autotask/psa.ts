import { AppError } from '../../errors.js'
import { toDecimalString, type Currency } from '../../domain/money.js'
import type { PsaCompany, PsaInvoice, PsaInvoiceLine, PsaPaymentInput, PsaPaymentResult, PsaPort } from '../../ports/psa.js'
import { UpstreamError } from '../http.js'
import { createAutotaskClient, MAX_RECORDS, type AutotaskClient, type AutotaskClientOptions } from './client.js'
import { autotaskDateTime, f, type AutotaskFilter } from './filter.js'
import { mapBillingItem, mapCompany, mapInvoice, type AtBillingItem, type AtCompany, type AtInvoice } from './mapper.js'

export interface AutotaskPsaOptions extends AutotaskClientOptions {
  /** The tenant's billing currency: Autotask invoices carry none. Default USD. */
  currency?: Currency
  /** Use an existing client (tests, or one client shared by several ports of a tenant). */
  client?: AutotaskClient
  /** CompanyNotes fields for payment notes; both are required picklist/reference values on a live tenant. [check] */
  paymentNote?: { actionType?: number, assignedResourceID?: number }
  now?: () => Date
}

export interface AutotaskPsa extends PsaPort {
  readonly system: 'autotask'
  readonly client: AutotaskClient
  /**
   * Invoices not yet paid and not voided, a page at a time. Autotask has no
   * modified stamp on invoices, so payments and voids made in Autotask are
   * found by re-reading this set: whatever left it has changed.
   */
  listOpenInvoices: () => AsyncIterable<PsaInvoice[]>
}

/** Ids per BillingItems `in` query: Autotask takes up to 500 values per condition. */
export const LINE_BATCH = 500
const NOTE_TAG = 'Settle payment'

export function createAutotaskPsa (options: AutotaskPsaOptions): AutotaskPsa {
  const client = options.client ?? createAutotaskClient(options)
  const currency: Currency = options.currency ?? 'USD'
  const now = options.now ?? (() => new Date())
  // Filled by listCompanies so invoice pages can show names (and billing states) without a call per company.
  const companyNames = new Map<number, string>()
  const companyStates = new Map<number, string | null>()

  const toInvoice = (raw: AtInvoice): PsaInvoice =>
    mapInvoice(raw, {
      currency,
      companyName: raw.companyID === null ? null : companyNames.get(raw.companyID) ?? null,
      billingState: raw.companyID === null ? null : companyStates.get(raw.companyID) ?? null
    })

  async function * invoicePages (filter: AutotaskFilter): AsyncGenerator<PsaInvoice[]> {
    for await (const page of client.query<AtInvoice>('Invoices', { filter, maxRecords: MAX_RECORDS })) {
      // Autotask pages in id order; within a page we hand them out by (updatedAt, id) as the port promises.
      yield page.map(toInvoice).sort(byStampThenId)
    }
  }

  async function fetchInvoice (externalId: string): Promise<AtInvoice> {
    const raw = await client.get<AtInvoice>('Invoices', numericId(externalId))
    if (raw === null) throw new UpstreamError('autotask', 404, 'not_found', `invoice ${externalId} does not exist`, false)
    return raw
  }

  return {
    system: 'autotask',
    client,
    lineBatchSize: LINE_BATCH,

    async * listCompanies (): AsyncGenerator<PsaCompany[]> {
      for await (const page of client.query<AtCompany>('Companies', { filter: f.all() })) {
        const companies = page.map(mapCompany)
        for (const c of page) companyNames.set(c.id, c.companyName)
        for (const c of companies) companyStates.set(Number(c.externalId), c.state ?? null)
        yield companies
      }
    },

    /**
     * Filter `createDateTime gte since` (inclusive, so resuming from the last
     * stamp seen re-reads the boundary instead of skipping it; re-reads are
     * upserts). Autotask returns id order, and ids are handed out as invoices
     * are created, so across pages the order follows createDateTime too: a
     * caller may save `max(updatedAt)` after each page and resume from it.
     */
    listInvoicesChangedSince ({ since }: { since: Date | null }): AsyncIterable<PsaInvoice[]> {
      return invoicePages(since === null ? f.all() : [f.gte('createDateTime', autotaskDateTime(since))])
    },

    listOpenInvoices (): AsyncIterable<PsaInvoice[]> {
      return invoicePages([f.notExist('paidDate'), f.eq('isVoided', false)])
    },

    async getInvoice ({ externalId }): Promise<PsaInvoice> {
      return toInvoice(await fetchInvoice(externalId))
    },

    /** Autotask has no payment to delete: clear the paidDate Settle set. A partial-payment note stays as history. */
    /**
     * Clears only a `paidDate` Settle set: without our `webServiceDate`
     * marker a person marked the invoice paid (a check), and that stays.
     */
    async reversePayment ({ invoiceExternalId, markedPaid }) {
      if (!markedPaid) return { raw: null }
      const invoice = await fetchInvoice(invoiceExternalId)
      if (invoice.paidDate === null || invoice.paidDate === undefined) return { raw: invoice }
      if (invoice.webServiceDate === null || invoice.webServiceDate === undefined) return { raw: { kept: invoice, reason: 'paidDate was set by a person, not by Settle' } }
      const raw = await client.update('Invoices', { id: numericId(invoiceExternalId), paidDate: null, webServiceDate: null })
      return { raw }
    },

    /** Autotask's REST API offers no invoice PDF (it is printed from the web UI) [check]. */
    async getInvoicePdf () {
      return null
    },

    async getInvoiceLines ({ invoiceExternalIds }): Promise<Map<string, PsaInvoiceLine[]>> {
      const ids = [...new Set(invoiceExternalIds.map(numericId))]
      const result = new Map<string, PsaInvoiceLine[]>(ids.map(id => [String(id), []]))
      const batches: number[][] = []
      for (let i = 0; i < ids.length; i += LINE_BATCH) batches.push(ids.slice(i, i + LINE_BATCH))
      // Batches run side by side; the client's semaphore keeps Autotask's thread limit.
      await Promise.all(batches.map(async batch => {
        for await (const page of client.query<AtBillingItem>('BillingItems', { filter: [f.in('invoiceID', batch)] })) {
          for (const item of page) {
            if (item.invoiceID === null || item.invoiceID === undefined) continue
            result.get(String(item.invoiceID))?.push(mapBillingItem(item, currency))
          }
        }
      }))
      for (const lines of result.values()) lines.sort((a, b) => Number(a.externalId) - Number(b.externalId))
      return result
    },

    /**
     * Autotask has no payment entity: a (partial) payment becomes a note on
     * the invoice's company whose title carries our reference. Looking the
     * reference up first makes a repeat a no-op.
     */
    async recordPayment (input: PsaPaymentInput): Promise<PsaPaymentResult> {
      const invoice = await fetchInvoice(input.invoiceExternalId)
      if (invoice.companyID === null) throw new UpstreamError('autotask', 200, 'malformed_response', `invoice ${input.invoiceExternalId} has no companyID`, false, null, invoice)
      const tag = `[${input.reference}]`
      for await (const page of client.query<{ id: number, name?: string | null }>('CompanyNotes', {
        filter: [f.eq('companyID', invoice.companyID), f.contains('name', tag)]
      })) {
        const found = page.find(note => typeof note.name === 'string' && note.name.includes(tag))
        if (found !== undefined) return { externalId: String(found.id), alreadyRecorded: true, raw: found }
      }
      const at = now()
      const number = invoice.invoiceNumber ?? String(invoice.id)
      const amount = `${toDecimalString(input.amount)} ${input.amount.currency}`
      const note: Record<string, unknown> = {
        companyID: invoice.companyID,
        // Autotask's CompanyNotes title field is `name`, the body `note` (anteris CompanyNoteEntity).
        name: `${NOTE_TAG} ${amount} on invoice ${number} ${tag}`.slice(0, 250),
        note: `Settle recorded a ${input.method} payment of ${amount} on ${input.paidOn} against invoice ${number} (Autotask id ${invoice.id}). Reference ${input.reference}.`,
        actionType: options.paymentNote?.actionType ?? 3,
        startDateTime: autotaskDateTime(at),
        endDateTime: autotaskDateTime(at),
        completedDateTime: autotaskDateTime(at)
      }
      if (options.paymentNote?.assignedResourceID !== undefined) note.assignedResourceID = options.paymentNote.assignedResourceID
      // Child-entity create path per the contract: /V1.0/Companies/{id}/Notes.
      const created = await client.create(`Companies/${invoice.companyID}/Notes`, note)
      return { externalId: String(created.itemId), alreadyRecorded: false, raw: { ...note, id: created.itemId } }
    },

    /**
     * Sets `paidDate` (date only) and `webServiceDate`, our marker that Settle
     * made the change. Already paid in Autotask → nothing written.
     */
    async markPaid ({ invoiceExternalId, paidOn }): Promise<{ raw: unknown }> {
      const invoice = await fetchInvoice(invoiceExternalId)
      if (invoice.paidDate !== null && invoice.paidDate !== undefined) return { raw: invoice }
      if (invoice.isVoided === true) throw new AppError('CONFLICT', `Autotask invoice ${invoiceExternalId} is voided and cannot be marked paid.`)
      if (!/^\d{4}-\d{2}-\d{2}$/.test(paidOn)) throw new AppError('VALIDATION_FAILED', `paidOn must be YYYY-MM-DD; got ${JSON.stringify(paidOn)}.`)
      const body = { id: invoice.id, paidDate: `${paidOn}T00:00:00Z`, webServiceDate: autotaskDateTime(now()) }
      const written = await client.update('Invoices', body)
      return { raw: { request: body, response: written } }
    },

    callsMade: () => client.callsMade()
  }
}

function byStampThenId (a: PsaInvoice, b: PsaInvoice): number {
  return a.updatedAt.getTime() - b.updatedAt.getTime() || Number(a.externalId) - Number(b.externalId)
}

function numericId (externalId: string): number {
  if (!/^\d{1,15}$/.test(externalId)) throw new AppError('VALIDATION_FAILED', `Autotask ids are whole numbers; got ${JSON.stringify(externalId)}.`)
  return Number(externalId)
}
