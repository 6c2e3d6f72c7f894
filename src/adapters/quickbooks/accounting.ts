import { createHash } from 'node:crypto'
import type { Currency } from '../../domain/money.js'
import type { AccountingChanges, AccountingEntity, AccountingPort, AccountingWrite } from '../../ports/accounting.js'
import { QuickBooksError, faultOf, type QboClient } from './client.js'
import { depositBody, journalBody, paymentBody, amountOut, toAccount, toCreditMemo, toCustomer, toDeposit, toInvoice, toItem, toPayment, toPaymentMethod } from './mapper.js'

type Obj = Record<string, any>
const PAGE = 1000
/** QBO's query length limit is generous, but an IN list of ~100 keeps each statement small. */
const IN_CHUNK = 100
const quote = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`

export interface QuickBooksAccountingOptions {
  client: QboClient
  /** The company's home currency (amounts without CurrencyRef). */
  homeCurrency?: Currency
  /** Extra re-reads after a 5010 stale SyncToken. */
  staleRetries?: number
}

/** The AccountingPort over QuickBooks Online v3 for one company (realm). */
export function createQuickBooksAccounting (options: QuickBooksAccountingOptions): AccountingPort {
  const { client } = options
  const home = options.homeCurrency ?? 'USD'
  const rows = (res: Obj, entity: string): Obj[] => (res.QueryResponse?.[entity] ?? []) as Obj[]

  async function all (entity: string, where = ''): Promise<Obj[]> {
    const out: Obj[] = []
    for (let start = 1; ; start += PAGE) {
      const page = rows(await client.query(`select * from ${entity}${where} startposition ${start} maxresults ${PAGE}`), entity)
      out.push(...page)
      if (page.length < PAGE) return out
    }
  }
  async function * pages (entity: string, where: string): AsyncIterable<Obj[]> {
    for (let start = 1; ; start += PAGE) {
      const page = rows(await client.query(`select * from ${entity}${where} startposition ${start} maxresults ${PAGE}`), entity)
      if (page.length > 0) yield page
      if (page.length < PAGE) return
    }
  }
  async function byIn (entity: string, field: string, values: readonly string[]): Promise<Obj[]> {
    const out: Obj[] = []
    const unique = [...new Set(values)]
    for (let i = 0; i < unique.length; i += IN_CHUNK) {
      const chunk = unique.slice(i, i + IN_CHUNK)
      out.push(...await all(entity, ` where ${field} in (${chunk.map(quote).join(',')})`))
    }
    return out
  }
  const written = (res: Obj, entity: string): AccountingWrite => {
    const o = res[entity] as Obj
    return { id: String(o.Id), syncToken: String(o.SyncToken ?? '0'), replayed: false, raw: res }
  }
  async function readOrNull (entity: string, id: string): Promise<Obj | null> {
    try { return (await client.read(entity, id))[entity] as Obj } catch (e) {
      if (e instanceof QuickBooksError && (e.qboCode === '610' || e.status === 404)) return null
      throw e
    }
  }

  const bodyOf = (op: Parameters<AccountingPort['batch']>[0][number]): { entity: string, body: Obj } =>
    op.kind === 'payment' ? { entity: 'Payment', body: paymentBody(op.posting) } : op.kind === 'deposit' ? { entity: 'Deposit', body: depositBody(op.posting) } : { entity: 'JournalEntry', body: journalBody(op.posting) }

  return {
    system: 'quickbooks',
    realmId: client.realmId,
    async listAccounts () { return (await all('Account')).map(toAccount) },
    async listPaymentMethods () { return (await all('PaymentMethod')).map(toPaymentMethod) },
    async listItems () { return (await all('Item')).map(toItem) },
    async findCustomers (input) {
      const found = new Map<string, Obj>()
      for (const o of await byIn('Customer', 'Id', input.ids ?? [])) found.set(String(o.Id), o)
      // QBO text comparison is case-insensitive on DisplayName.
      for (const o of await byIn('Customer', 'DisplayName', input.names ?? [])) found.set(String(o.Id), o)
      return [...found.values()].map(o => toCustomer(o, home))
    },
    async * listCustomers () { for await (const page of pages('Customer', " where Active = true")) yield page.map(o => toCustomer(o, home)) },
    async findInvoices (input) {
      const found = new Map<string, Obj>()
      for (const o of await byIn('Invoice', 'Id', input.ids ?? [])) found.set(String(o.Id), o)
      for (const o of await byIn('Invoice', 'DocNumber', input.docNumbers ?? [])) found.set(String(o.Id), o)
      return [...found.values()].map(o => toInvoice(o, home))
    },
    async * listOpenInvoices () { for await (const page of pages('Invoice', " where Balance > '0'")) yield page.map(o => toInvoice(o, home)) },
    // Balance is the filterable field on CreditMemo (RemainingCredit is read-only and not documented as filterable).
    async * listOpenCreditMemos () { for await (const page of pages('CreditMemo', " where Balance > '0'")) yield page.map(o => toCreditMemo(o, home)) },
    async findCreditMemos (input) { return (await byIn('CreditMemo', 'DocNumber', input.docNumbers)).map(o => toCreditMemo(o, home)) },
    async getPayment ({ id }) { const o = await readOrNull('Payment', id); return o === null ? null : toPayment(o, home) },
    async getDeposit ({ id }) { const o = await readOrNull('Deposit', id); return o === null ? null : toDeposit(o, home) },
    async createPayment (p) { return written(await client.write('Payment', paymentBody(p), p.requestId), 'Payment') },
    async updatePayment (input) {
      // A stale SyncToken (5010) means someone changed it in between: re-read, rebuild, try again.
      for (let attempt = 0; ; attempt++) {
        const current = (await client.read('Payment', input.id)).Payment as Obj
        const body: Obj = {
          ...current,
          sparse: false,
          TotalAmt: amountOut(input.amount),
          Line: input.applications.map(a => ({ Amount: amountOut(a.amount), LinkedTxn: [{ TxnId: a.invoiceId, TxnType: 'Invoice' }] }))
        }
        delete body.UnappliedAmt
        delete body.MetaData
        if (input.note !== undefined) body.PrivateNote = input.note
        try {
          // Each attempt is a different request (new SyncToken): its own requestid, derived from the caller's.
          return written(await client.write('Payment', body, attempt === 0 ? input.requestId : `${input.requestId.slice(0, 46)}-r${attempt}`), 'Payment')
        } catch (e) {
          if (e instanceof QuickBooksError && e.kind === 'stale' && attempt < (options.staleRetries ?? 2)) continue
          throw e
        }
      }
    },
    async createDeposit (d) { return written(await client.write('Deposit', depositBody(d), d.requestId), 'Deposit') },
    async createJournalEntry (j) { return written(await client.write('JournalEntry', journalBody(j), j.requestId), 'JournalEntry') },
    async batch (ops) {
      if (ops.length > 30) throw new RangeError('QuickBooks batch takes at most 30 operations')
      if (ops.length === 0) return []
      const items = ops.map((op, i) => { const { entity, body } = bodyOf(op); return { bId: String(i), operation: 'create', [entity]: body } })
      // QuickBooks dedupes a batch by its own requestid only (items carry none): derived from every item's, in
      // order, so the same batch resent replays as one, and any other batch, however alike, is a new request.
      const res = await client.batch(items, `b-${createHash('sha256').update(ops.map(o => o.posting.requestId).join('|')).digest('base64url').slice(0, 43)}`)
      const answers = new Map<string, Obj>(((res.BatchItemResponse ?? []) as Obj[]).map(r => [String(r.bId), r]))
      return ops.map((op, i) => {
        const r = answers.get(String(i))
        const { entity } = bodyOf(op)
        if (r === undefined) return { ok: false as const, error: new QuickBooksError(null, 'missing', 'QuickBooks returned no answer for this batch item', '', 'other', res) }
        const fault = faultOf(200, r)
        if (fault !== null) return { ok: false as const, error: fault }
        return { ok: true as const, write: written(r, entity) }
      })
    },
    async changedSince ({ entities, since }) {
      const res = await client.cdc(entities, since)
      const out: AccountingChanges = { invoices: [], payments: [], deposits: [], deleted: [] }
      for (const block of (res.CDCResponse ?? []) as Obj[]) {
        for (const qr of (block.QueryResponse ?? []) as Obj[]) {
          for (const entity of ['Invoice', 'Payment', 'Deposit', 'Customer'] as AccountingEntity[]) {
            for (const o of (qr[entity] ?? []) as Obj[]) {
              if (o.status === 'Deleted' || o.status === 'Voided') { out.deleted.push({ entity, id: String(o.Id) }); continue }
              if (entity === 'Invoice') out.invoices.push(toInvoice(o, home))
              else if (entity === 'Payment') out.payments.push(toPayment(o, home))
              else if (entity === 'Deposit') out.deposits.push(toDeposit(o, home))
            }
          }
        }
      }
      return out
    },
    callsMade: () => client.calls()
  }
}
