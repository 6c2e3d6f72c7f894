import type { PsaCompany, PsaInvoice, PsaInvoiceLine, PsaPaymentInput, PsaPaymentResult, PsaPort } from '../../ports/psa.js'
import { subtract } from '../../domain/money.js'
import { UpstreamError } from '../http.js'
import { createConnectWiseClient, type ConnectWiseClient, type ConnectWiseClientOptions } from './client.js'
import { cond } from './conditions.js'
import { createLineFetcher, CW_LINE_BATCH } from './lines.js'
import { samePayment, toCwPayment, toPsaCompany, toPsaInvoice, type CwCompany, type CwInvoice, type CwInvoicePayment } from './mapper.js'

export interface ConnectWisePsaOptions extends ConnectWiseClientOptions {
  /** objectId sent with owner-level callbacks; default 1 [check per tenant]. */
  callbackObjectId?: number
}

export interface CallbackEntry {
  id: number
  url: string
  objectId: number | null
  type: string
  level: string
  description?: string
  inactiveFlag?: boolean | null
}

export interface ConnectWisePsa extends PsaPort {
  readonly system: 'connectwise'
  /** Creates or updates (never duplicates) the invoice callback for `url`. */
  registerInvoiceCallback: (input: { url: string, description: string }) => Promise<{ id: number, created: boolean, raw: unknown }>
  /** Deletes every callback pointing at `url`; returns how many went. */
  removeInvoiceCallback: (input: { url: string }) => Promise<{ removed: number }>
  readonly client: ConnectWiseClient
}

/**
 * Sort for incremental sync. ConnectWise filters on `lastUpdated` (the
 * `_info.lastUpdated` stamp) and accepts comma-separated orderBy terms;
 * the stand-in honours exactly this string.
 */
export const INVOICE_ORDER = 'lastUpdated asc, id asc'

function recordId (externalId: string): string {
  // Ids go into URL paths: only plain positive integers may.
  if (!/^[1-9]\d{0,17}$/.test(externalId)) throw new TypeError(`Not a ConnectWise record id: ${JSON.stringify(externalId)}`)
  return externalId
}

export function createConnectWisePsa (options: ConnectWisePsaOptions): ConnectWisePsa {
  const client = createConnectWiseClient(options)
  const lineFetcher = createLineFetcher(client, recordId, { sleep: options.sleep ?? (async ms => { await new Promise(resolve => setTimeout(resolve, ms)) }) })

  async function * listCompanies (): AsyncGenerator<PsaCompany[]> {
    for await (const page of client.pages<CwCompany>('/company/companies', { orderBy: 'id asc' })) {
      yield page.map(toPsaCompany)
    }
  }

  async function * listInvoicesChangedSince ({ since }: { since: Date | null }): AsyncGenerator<PsaInvoice[]> {
    const conditions = since === null ? undefined : cond('lastUpdated', '>=', since)
    for await (const page of client.pages<CwInvoice>('/finance/invoices', { conditions, orderBy: INVOICE_ORDER })) {
      yield page.map(invoice => toPsaInvoice(invoice))
    }
  }

  async function payments (invoiceId: string): Promise<CwInvoicePayment[]> {
    const all: CwInvoicePayment[] = []
    for await (const page of client.pages<CwInvoicePayment>(`/finance/invoices/${recordId(invoiceId)}/payments`, { orderBy: 'id asc' })) all.push(...page)
    return all
  }

  async function getInvoice ({ externalId }: { externalId: string }): Promise<PsaInvoice> {
    const { data } = await client.get<CwInvoice>(`/finance/invoices/${recordId(externalId)}`)
    const settled = typeof data?.balance === 'number' && data.balance === 0 && data.total !== 0
    // Only a settled invoice needs its payments (for paidOn); skip the call otherwise.
    return toPsaInvoice(data, settled ? await payments(externalId) : undefined)
  }

  async function reversePayment ({ invoiceExternalId, paymentExternalId }: { invoiceExternalId: string, paymentExternalId: string }): Promise<{ raw: unknown }> {
    try {
      await client.delete(`/finance/invoices/${recordId(invoiceExternalId)}/payments/${recordId(paymentExternalId)}`)
    } catch (error) {
      // Already deleted (a retried job): the outcome we want.
      if (!(error instanceof UpstreamError && error.status === 404)) throw error
    }
    return { raw: { deleted: paymentExternalId } }
  }

  async function getInvoicePdf ({ externalId }: { externalId: string }): Promise<{ contentType: string, body: Buffer }> {
    const response = await client.get<Buffer>(`/finance/invoices/${recordId(externalId)}/pdf`, {}, { responseType: 'arraybuffer', headers: { Accept: 'application/pdf' } })
    return { contentType: String(response.headers['content-type'] ?? 'application/pdf'), body: response.data }
  }

  async function getInvoiceLines ({ invoiceExternalIds, headers }: { invoiceExternalIds: readonly string[], headers?: readonly PsaInvoice[] }): Promise<Map<string, PsaInvoiceLine[]>> {
    return await lineFetcher.lines(invoiceExternalIds, headers ?? [])
  }

  /**
   * ConnectWise payments have no field for our reference, so "already
   * recorded" means a payment of the same cents on the same date. Two real
   * payments of equal amount on one day to one invoice would be taken as one.
   */
  async function recordPayment (input: PsaPaymentInput): Promise<PsaPaymentResult> {
    const id = recordId(input.invoiceExternalId)
    if (input.amount.amount <= 0) throw new TypeError('A ConnectWise payment must be positive')
    const existing = (await payments(id)).find(p => samePayment(p, input))
    if (existing !== undefined) return { externalId: String(existing.id), alreadyRecorded: true, raw: existing }
    const { data } = await client.post<CwInvoicePayment>(`/finance/invoices/${id}/payments`, toCwPayment(input))
    if (typeof data?.id !== 'number') throw new UpstreamError('connectwise', 200, 'malformed_response', 'payment created without an id', false, null, data)
    return { externalId: String(data.id), alreadyRecorded: false, raw: data }
  }

  /** ConnectWise closes an invoice when payments reach the total: pay what is left, if anything. */
  async function markPaid ({ invoiceExternalId, paidOn, reference }: { invoiceExternalId: string, paidOn: string, reference: string }): Promise<{ raw: unknown }> {
    const invoice = await getInvoice({ externalId: invoiceExternalId })
    if (invoice.balance === null || invoice.balance.amount <= 0 || invoice.voided) return { raw: invoice.raw }
    const result = await recordPayment({ invoiceExternalId, amount: invoice.balance, paidOn, reference, method: 'other' })
    return { raw: { invoice: invoice.raw, payment: result.raw, paid: subtract(invoice.total, invoice.balance) } }
  }

  async function callbacksFor (url: string): Promise<CallbackEntry[]> {
    const all: CallbackEntry[] = []
    for await (const page of client.pages<CallbackEntry>('/system/callbacks', { conditions: cond('url', '=', url), orderBy: 'id asc' })) all.push(...page)
    // Guard against a server that ignores conditions: we only ever touch exact matches.
    return all.filter(entry => entry.url === url)
  }

  async function registerInvoiceCallback ({ url, description }: { url: string, description: string }): Promise<{ id: number, created: boolean, raw: unknown }> {
    const body = { url, objectId: options.callbackObjectId ?? 1, type: 'invoice', level: 'owner', description: description.slice(0, 100), inactiveFlag: false }
    const [first, ...extra] = await callbacksFor(url)
    if (first === undefined) {
      const { data } = await client.post<CallbackEntry>('/system/callbacks', body)
      return { id: data.id, created: true, raw: data }
    }
    for (const duplicate of extra) await deleteCallback(duplicate.id)
    const { data } = await client.put<CallbackEntry>(`/system/callbacks/${first.id}`, { ...body, id: first.id })
    return { id: first.id, created: false, raw: data }
  }

  async function deleteCallback (id: number): Promise<void> {
    try { await client.delete(`/system/callbacks/${id}`) } catch (error) {
      // Already gone (e.g. a retried DELETE whose first attempt succeeded) is what we wanted.
      if (!(error instanceof UpstreamError && error.status === 404)) throw error
    }
  }

  async function removeInvoiceCallback ({ url }: { url: string }): Promise<{ removed: number }> {
    const entries = await callbacksFor(url)
    for (const entry of entries) await deleteCallback(entry.id)
    return { removed: entries.length }
  }

  return {
    system: 'connectwise',
    client,
    lineBatchSize: CW_LINE_BATCH,
    listCompanies,
    listInvoicesChangedSince,
    getInvoice,
    getInvoicePdf,
    reversePayment,
    getInvoiceLines,
    recordPayment,
    markPaid,
    registerInvoiceCallback,
    removeInvoiceCallback,
    callsMade: () => client.calls()
  }
}

