import { UpstreamError } from '../../src/adapters/http.js'
import { money } from '../../src/domain/money.js'
import type { PsaCompany, PsaInvoice, PsaInvoiceLine, PsaPort } from '../../src/ports/psa.js'

/**
 * An in-memory PsaPort for the sync engine's tests: pages by change stamp
 * like the real adapters, counts calls, and can fail on a chosen page.
 */
export class FakePsa implements PsaPort {
  readonly system = 'connectwise' as const
  readonly invoices = new Map<string, PsaInvoice>()
  readonly companies = new Map<string, PsaCompany>()
  pageSize = 10
  /**
   * Throw a 503 when this page (1-based) of a listing is requested, and on
   * every page request after it (the sync resumes a broken listing from its
   * cursor): a PSA that goes down mid-sync and stays down until cleared.
   */
  get failOnPage (): number | null { return this.#failOnPage }
  set failOnPage (page: number | null) { this.#failOnPage = page; this.#down = false }
  #failOnPage: number | null = null
  #down = false
  lineCalls = 0
  #calls = 0
  #clock = Date.parse('2026-10-01T00:00:00Z')

  addCompany (id: string, name: string): void {
    this.companies.set(id, { externalId: id, name, identifier: null, raw: { id, name } })
  }

  /** Adds or changes an invoice; every change moves its stamp forward, as a PSA does. */
  put (id: string, fields: { company: string, total: number, balance?: number, voided?: boolean, number?: string, dueOn?: string }): PsaInvoice {
    this.#clock += 60_000
    const invoice: PsaInvoice = {
      externalId: id,
      number: fields.number ?? `INV-${id}`,
      companyExternalId: fields.company,
      companyName: null,
      kind: fields.total < 0 ? 'credit_memo' : 'standard',
      currency: 'USD',
      issuedOn: '2026-10-01',
      dueOn: fields.dueOn ?? '2026-10-31',
      total: money(fields.total, 'USD'),
      balance: money(fields.balance ?? fields.total, 'USD'),
      paidOn: fields.balance === 0 ? '2026-10-20' : null,
      voided: fields.voided ?? false,
      updatedAt: new Date(this.#clock),
      agreementName: null,
      poNumber: null,
      raw: { id }
    }
    this.invoices.set(id, invoice)
    return invoice
  }

  callsMade (): number { return this.#calls }

  async * listCompanies (): AsyncIterable<PsaCompany[]> {
    this.#calls++
    yield [...this.companies.values()]
  }

  async * listInvoicesChangedSince ({ since }: { since: Date | null }): AsyncIterable<PsaInvoice[]> {
    const rows = [...this.invoices.values()]
      .filter(i => since === null || i.updatedAt >= since)
      .sort((a, b) => a.updatedAt.getTime() - b.updatedAt.getTime() || a.externalId.localeCompare(b.externalId))
    let page = 0
    do {
      page++
      this.#calls++
      if (this.#failOnPage === page) this.#down = true
      if (this.#down) throw new UpstreamError('connectwise', 503, 'http_503', 'Service Unavailable', true)
      yield rows.slice((page - 1) * this.pageSize, page * this.pageSize)
    } while (page * this.pageSize < rows.length)
  }

  async getInvoice ({ externalId }: { externalId: string }): Promise<PsaInvoice> {
    this.#calls++
    const invoice = this.invoices.get(externalId)
    if (invoice === undefined) throw new UpstreamError('connectwise', 404, 'http_404', 'not found', false)
    return invoice
  }

  async getInvoiceLines ({ invoiceExternalIds }: { invoiceExternalIds: readonly string[] }): Promise<Map<string, PsaInvoiceLine[]>> {
    this.#calls += invoiceExternalIds.length
    this.lineCalls += invoiceExternalIds.length
    return new Map(invoiceExternalIds.map(id => {
      const invoice = this.invoices.get(id)
      const total = invoice?.total.amount ?? 0
      const agreement = Math.trunc(total * 0.75)
      return [id, [
        { externalId: `${id}-1`, kind: 'agreement', description: 'Managed services', quantity: '1', unitPrice: money(agreement, 'USD'), amount: money(agreement, 'USD'), raw: {} },
        { externalId: `${id}-2`, kind: 'time', description: 'After-hours work', quantity: '1.5', unitPrice: null, amount: money(total - agreement, 'USD'), raw: {} }
      ]]
    }))
  }

  async getInvoicePdf (): Promise<null> { return null }
  async reversePayment (): Promise<{ raw: null }> { return { raw: null } }
  async recordPayment (): Promise<never> { throw new Error('not used by the sync tests') }
  async markPaid (): Promise<never> { throw new Error('not used by the sync tests') }
}
