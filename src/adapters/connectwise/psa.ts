import type { PsaCompany, PsaInvoice, PsaInvoiceLine, PsaPaymentInput, PsaPaymentResult, PsaPort } from '../../ports/psa.js'
import { UpstreamError } from '../http.js'
import { createConnectWiseClient, type ConnectWiseClient, type ConnectWiseClientOptions } from './client.js'
import { cond } from './conditions.js'
import { createLineFetcher, CW_LINE_BATCH } from './lines.js'
import { samePayment, toCwPayment, toPsaCompany, toPsaInvoice, type CwCompany, type CwInvoice, type CwInvoicePayment } from './mapper.js'

export interface ConnectWisePsaOptions extends ConnectWiseClientOptions {
  /** objectId sent with owner-level callbacks; default 1 [check per tenant]. */
  callbackObjectId?: number
  /**
   * The member identifier of the API member our key belongs to: what
   * ConnectWise writes in a payment's `appliedBy` when we post it. Learned
   * from the first payment we post (and handed to `onApiMemberLearned` to
   * keep); until then no payment is taken for ours.
   */
  apiMember?: string
  onApiMemberLearned?: (member: string) => Promise<void>
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

  let apiMember = options.apiMember
  /** Settle's own payment: applied by our API member. A payment a person entered is never ours, whatever its amount. */
  const appliedByUs = (payment: CwInvoicePayment): boolean => apiMember !== undefined && payment.appliedBy === apiMember

  /** Takes back only a payment Settle posted: one a person entered (or one we cannot prove is ours) stays. */
  async function reversePayment ({ invoiceExternalId, paymentExternalId }: { invoiceExternalId: string, paymentExternalId: string }): Promise<{ raw: unknown }> {
    const invoiceId = recordId(invoiceExternalId)
    const payment = (await payments(invoiceId)).find(p => String(p.id) === recordId(paymentExternalId))
    if (payment === undefined) return { raw: { deleted: paymentExternalId, alreadyGone: true } }
    if (!appliedByUs(payment)) return { raw: { kept: paymentExternalId, appliedBy: payment.appliedBy ?? null, reason: 'not applied by Settle\'s API member' } }
    try {
      await client.delete(`/finance/invoices/${invoiceId}/payments/${recordId(paymentExternalId)}`)
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
   * ConnectWise payments have no field for our reference. What tells ours
   * apart is who applied it (`appliedBy`, our API member) and its id: a
   * repeat after a lost answer adopts a payment of the same cents and date
   * only when it is new since `paymentIdsBefore` and applied by us. A check
   * a person entered for the same amount on the same day is never ours.
   */
  async function recordPayment (input: PsaPaymentInput): Promise<PsaPaymentResult> {
    const id = recordId(input.invoiceExternalId)
    if (input.amount.amount <= 0) throw new TypeError('A ConnectWise payment must be positive')
    const existing = await payments(id)
    if (input.paymentIdsBefore === undefined) {
      await input.beforePost?.(existing.map(p => String(p.id)))
    } else {
      const before = new Set(input.paymentIdsBefore)
      const arrived = existing.filter(p => !before.has(String(p.id)) && samePayment(p, input))
      const ours = arrived.find(appliedByUs)
      if (ours !== undefined) return { externalId: String(ours.id), alreadyRecorded: true, raw: ours }
      // Without our API member we cannot tell our lost post from a person's entry; posting again could double it.
      if (apiMember === undefined && arrived.length > 0) {
        throw new UpstreamError('connectwise', null, 'payment_owner_unknown', `a payment of the same amount appeared on invoice ${id} since Settle's last try, and Settle cannot tell whether it posted it; check the invoice's payments in ConnectWise`, false, null, arrived)
      }
    }
    const { data } = await client.post<CwInvoicePayment>(`/finance/invoices/${id}/payments`, toCwPayment(input))
    if (typeof data?.id !== 'number') throw new UpstreamError('connectwise', 200, 'malformed_response', 'payment created without an id', false, null, data)
    if (typeof data.appliedBy === 'string' && data.appliedBy !== '' && data.appliedBy !== apiMember) {
      apiMember = data.appliedBy
      await options.onApiMemberLearned?.(data.appliedBy)
    }
    return { externalId: String(data.id), alreadyRecorded: false, raw: data }
  }

  /**
   * ConnectWise closes an invoice itself when payments reach the total, so
   * the payment Settle recorded is all it needs. Nothing is written here: a
   * "pay what is left" would tell the PSA of money Settle did not collect.
   */
  async function markPaid ({ invoiceExternalId }: { invoiceExternalId: string, paidOn: string, reference: string }): Promise<{ raw: unknown }> {
    const invoice = await getInvoice({ externalId: invoiceExternalId })
    return { raw: invoice.raw }
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

