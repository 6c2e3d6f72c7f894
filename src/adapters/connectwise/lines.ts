import type { PsaInvoice, PsaInvoiceLine } from '../../ports/psa.js'
import { backoffDelayMs } from '../../jobs/backoff.js'
import { UpstreamError } from '../http.js'
import type { ConnectWiseClient } from './client.js'
import { cond } from './conditions.js'
import { toPsaInvoice, toPsaInvoiceLines, type CwExpense, type CwInvoice, type CwInvoiceInfo, type CwProduct, type CwTime } from './mapper.js'

/** Invoice ids per `invoice/id in (…)` query: ~1,300 characters of URL, far inside what ConnectWise and Cloudflare accept [check the tenant's limit]. */
export const CW_LINE_BATCH = 100
/** Rounds of re-fetching, one invoice at a time, only the invoices whose call failed. */
const SINGLE_ROUNDS = 4

export interface LineFetcher {
  lines: (ids: readonly string[], headers: readonly PsaInvoice[]) => Promise<Map<string, PsaInvoiceLine[]>>
}

interface Options {
  sleep: (ms: number) => Promise<void>
}

const sumCents = (lines: readonly PsaInvoiceLine[]): number => lines.reduce((s, l) => s + l.amount.amount, 0)

/**
 * Line detail for many invoices. ConnectWise has no batch form of
 * `/finance/info/invoice/{id}`, but the line records themselves are lists
 * that filter on their invoice: `/procurement/products`, `/time/entries` and
 * `/expense/entries` with `conditions=invoice/id in (…)`, 100 invoices to a
 * call. The agreement line comes from the invoice header (`agreement`,
 * `agreementAmount`) and tax from `salesTax`, as `toPsaInvoiceLines` builds
 * them for the info endpoint. An invoice whose batched lines do not add up
 * to its total (adjustments, down payments, anything the lists do not
 * carry) is read from `/finance/info/invoice/{id}` instead, as is every
 * invoice when the tenant refuses the batched conditions (400): the lines are
 * never worse than the one-call-per-invoice way, only faster.
 */
export function createLineFetcher (client: ConnectWiseClient, recordId: (id: string) => string, options: Options): LineFetcher {
  let batched = true

  async function all<T> (path: string, ids: readonly string[]): Promise<T[]> {
    const rows: T[] = []
    for await (const page of client.pages<T>(path, { conditions: cond('invoice/id', 'in', ids.map(Number)), orderBy: 'id asc' })) rows.push(...page)
    return rows
  }

  async function headersFor (ids: readonly string[], given: readonly PsaInvoice[]): Promise<Map<string, CwInvoice>> {
    const out = new Map<string, CwInvoice>()
    for (const h of given) if (typeof (h.raw as CwInvoice | undefined)?.id === 'number') out.set(h.externalId, h.raw as CwInvoice)
    const missing = ids.filter(id => !out.has(id))
    for (let i = 0; i < missing.length; i += CW_LINE_BATCH) {
      const chunk = missing.slice(i, i + CW_LINE_BATCH).map(Number)
      for await (const page of client.pages<CwInvoice>('/finance/invoices', { conditions: cond('id', 'in', chunk), orderBy: 'id asc' })) {
        for (const wire of page) out.set(String(wire.id), wire)
      }
    }
    return out
  }

  /** One batch: three list calls side by side, grouped by invoice. */
  async function batch (ids: readonly string[], headers: ReadonlyMap<string, CwInvoice>): Promise<{ lines: Map<string, PsaInvoiceLine[]>, unreconciled: string[] }> {
    const [products, time, expenses] = await Promise.all([
      all<CwProduct & { invoice?: { id?: number } }>('/procurement/products', ids),
      all<CwTime & { invoice?: { id?: number } }>('/time/entries', ids),
      all<CwExpense & { invoice?: { id?: number } }>('/expense/entries', ids)
    ])
    const infos = new Map<string, CwInvoiceInfo>(ids.map(id => [id, { id: Number(id), products: [], timeEntries: [], expenses: [] }]))
    for (const p of products) infos.get(String(p.invoice?.id))?.products?.push(p)
    for (const te of time) infos.get(String(te.invoice?.id))?.timeEntries?.push(te)
    for (const e of expenses) infos.get(String(e.invoice?.id))?.expenses?.push(e)
    const lines = new Map<string, PsaInvoiceLine[]>()
    const unreconciled: string[] = []
    for (const [id, info] of infos) {
      const header = headers.get(id)
      if (header === undefined) { unreconciled.push(id); continue }
      const agreementAmount = typeof header.agreementAmount === 'number' ? header.agreementAmount : 0
      info.agreementBillingInfo = agreementAmount === 0 ? [] : [{ agreementName: header.agreement?.name, agreementType: header.agreement?.type, agreementAmount, agreementRecId: header.agreement?.id ?? undefined }]
      const built = toPsaInvoiceLines(info, header)
      // Only lines that add up to the invoice are taken; anything else is read the exact way.
      if (sumCents(built) === toPsaInvoice(header).total.amount && (agreementAmount === 0 || typeof header.agreement?.id === 'number')) lines.set(id, built)
      else unreconciled.push(id)
    }
    return { lines, unreconciled }
  }

  /** `/finance/info/invoice/{id}` per invoice; a failed call is retried alone, never the others. */
  async function oneByOne (ids: readonly string[]): Promise<Map<string, PsaInvoiceLine[]>> {
    const out = new Map<string, PsaInvoiceLine[]>()
    let pending = [...ids]
    for (let round = 1; pending.length > 0; round++) {
      const failed: string[] = []
      let lastError: unknown = null
      await Promise.all(pending.map(async id => {
        try {
          const { data } = await client.get<CwInvoiceInfo>(`/finance/info/invoice/${recordId(id)}`)
          out.set(id, toPsaInvoiceLines(data))
        } catch (error) {
          if (!(error instanceof UpstreamError && error.retryable)) throw error
          failed.push(id)
          lastError = error
        }
      }))
      if (failed.length > 0 && round >= SINGLE_ROUNDS) throw lastError
      if (failed.length > 0) await options.sleep((lastError as UpstreamError).retryAfterMs ?? backoffDelayMs(round, { baseMs: 500, capMs: 10_000 }))
      pending = failed
    }
    return out
  }

  return {
    async lines (ids, given) {
      const unique = [...new Set(ids)]
      unique.forEach(recordId)
      if (unique.length === 0) return new Map()
      const out = new Map<string, PsaInvoiceLine[]>()
      let single: string[] = unique
      if (batched) {
        try {
          const headers = await headersFor(unique, given)
          const chunks: string[][] = []
          for (let i = 0; i < unique.length; i += CW_LINE_BATCH) chunks.push(unique.slice(i, i + CW_LINE_BATCH))
          const results = await Promise.all(chunks.map(async chunk => await batch(chunk, headers)))
          single = results.flatMap(r => r.unreconciled)
          for (const r of results) for (const [id, l] of r.lines) out.set(id, l)
        } catch (error) {
          // A tenant that refuses `invoice/id in (…)` on these lists: the exact way from now on.
          if (!(error instanceof UpstreamError && error.status === 400)) throw error
          batched = false
          single = unique
        }
      }
      for (const [id, l] of await oneByOne(single)) out.set(id, l)
      return out
    }
  }
}
