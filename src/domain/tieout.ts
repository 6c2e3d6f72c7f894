import { formatMoney, type Currency, type Money } from './money.js'

/**
 * The three-way tie-out, as pure comparison: what the PSA says is open,
 * what Settle's ledger says, what QuickBooks says; and for each payout what
 * Stripe paid, what Settle booked to the bank and what QuickBooks deposited.
 * Every difference comes back with its most likely cause and a repair a
 * finance lead can act on. Amounts are compared per currency, never summed
 * across currencies.
 */
export type TieoutCause =
  /** Open in the PSA/Settle, no QuickBooks invoice with that DocNumber. */
  | 'missing_in_qbo'
  /** The PSA and QuickBooks totals differ: one side was edited after the export. */
  | 'edited_after_sync'
  /** QuickBooks shows less open than Settle: a payment or credit applied by hand in QuickBooks. */
  | 'payment_applied_in_qbo'
  /** QuickBooks shows more open than Settle: a payment Settle or the PSA knows of never reached QuickBooks. */
  | 'payment_missing_in_qbo'
  | 'voided_in_psa'
  /** Open in QuickBooks, no PSA invoice with that number. */
  | 'not_in_psa'
  /** A credit memo has a different amount of credit left to apply in QuickBooks than in Settle: applied on one side only. */
  | 'credit_remaining_differs'
  | 'duplicate_in_qbo'
  | 'currency_mismatch'
  /** The QuickBooks twin is on a QuickBooks customer linked to another Settle customer. */
  | 'wrong_customer_in_qbo'
  /** Settle collected, the PSA still shows it open: the push-back has not landed. */
  | 'psa_not_updated'
  /** Settle's open balance and the PSA's differ otherwise: the mirror is behind. */
  | 'settle_psa_drift'
  /** A customer's receivable in the ledger is not the sum of its invoices' open balances. */
  | 'ledger_out_of_step'
  /** A QuickBooks customer's balance is not the sum of its open invoices (unapplied credit, A/R journal). */
  | 'qbo_customer_balance_differs'
  | 'missing_deposit'
  | 'deposit_deleted_in_qbo'
  | 'deposit_amount_differs'
  | 'bank_posting_missing'
  | 'bank_posting_differs'

export type TieoutSubject = 'invoice' | 'qbo_invoice' | 'qbo_credit_memo' | 'customer' | 'payout'

/** One of Settle's mirrored PSA invoices, in cents. */
export interface OurInvoiceView {
  invoiceId: string
  customerId: string
  customerName: string
  number: string
  currency: Currency
  voided: boolean
  psaTotal: number
  /** What the PSA says is open (as last synced). */
  psaBalance: number
  /** What Settle can still collect (`openBalance`). */
  settleOpen: number
  paidViaSettle: number
  /** A credit memo (kind credit_memo or a negative total): its QuickBooks twin is a CreditMemo, not an Invoice. Amounts stay signed (negative). */
  creditMemo?: boolean
  /** A push of Settle's payment to the PSA is queued, running, or done since the PSA mirror was last synced. */
  pushInFlight?: boolean
  /** Settle's posting of a payment on this invoice to QuickBooks is queued or running. */
  postingInFlight?: boolean
}

export interface QboInvoiceView {
  id: string
  docNumber: string | null
  /** QuickBooks customer id. */
  customerId: string
  customerName: string | null
  total: Money
  balance: Money
}

/** A QuickBooks CreditMemo, amounts as QuickBooks keeps them (positive); the comparison signs them negative. */
export interface QboCreditMemoView {
  id: string
  docNumber: string | null
  customerId: string
  customerName: string | null
  total: Money
  /** RemainingCredit: credit not yet applied to an invoice. */
  remainingCredit: Money
}

export interface QboCustomerView {
  id: string
  displayName: string
  balance: Money
  /** Settle's customer, through the stored link or the exact name; null when neither. */
  settleCustomerId: string | null
}

export interface OurCustomerView {
  customerId: string
  name: string
  /** `receivable:{customerId}` balances from the ledger, one per currency. */
  receivable: Money[]
}

export interface PayoutView {
  payoutId: string
  processorPayoutRef: string
  currency: Currency
  /** What Stripe says reached the bank (the payout's net). */
  net: number
  /** YYYY-MM-DD */
  arrivalDate: string
  /** Sum of the payout entry's postings to `bank:*`; null when Settle booked no entry. */
  bankPosting: number | null
  /** Settle's deposit posting to QuickBooks, if any. */
  posting: { status: string, externalId: string | null, lastError: string | null } | null
  /** The deposit as QuickBooks has it now; null when not posted or not found. */
  qboDeposit: { id: string, total: Money, txnDate: string } | null
}

export interface TieoutInput {
  invoices: readonly OurInvoiceView[]
  customers: readonly OurCustomerView[]
  /** QuickBooks' open invoices plus every invoice looked up by DocNumber for our open ones. */
  qboInvoices: readonly QboInvoiceView[]
  /** QuickBooks' open credit memos plus every one looked up by DocNumber for our open PSA credit memos. */
  qboCreditMemos?: readonly QboCreditMemoView[]
  qboCustomers: readonly QboCustomerView[]
  payouts: readonly PayoutView[]
  /** Prefix QuickBooks DocNumbers carry in front of the PSA number. */
  docNumberPrefix: string
  /** The tenant's today (YYYY-MM-DD): a deposit still queued for a payout that arrived today or yesterday is in flight, not missing. */
  today: string
}

export interface TieoutDifference {
  /** Stable across runs: subject and cause, never amounts, so a rerun refreshes instead of duplicating. */
  dedupeKey: string
  cause: TieoutCause
  subject: { type: TieoutSubject, id: string }
  customerId: string | null
  invoiceId: string | null
  payoutId: string | null
  /** Signed: the side named first in the summary minus the other. */
  difference: Money
  /** Each source's figure in cents, as compared. */
  figures: Partial<Record<'psa' | 'settle' | 'qbo' | 'stripe' | 'bank', number>>
  summary: string
  likelyCause: string
  suggestedRepair: string
}

export interface SourceTotals {
  /** Open A/R per source. */
  psa: number
  settle: number
  qbo: number
  /** Payouts compared: Stripe's net, Settle's bank postings, QuickBooks' deposits. */
  stripePayouts: number
  bankPostings: number
  qboDeposits: number
}

export interface CustomerLine {
  customerId: string | null
  name: string
  currency: Currency
  psa: number
  settle: number
  qbo: number
  differences: number
}

export interface TieoutResult {
  status: 'clean' | 'differences'
  differences: TieoutDifference[]
  totals: Partial<Record<Currency, SourceTotals>>
  lines: CustomerLine[]
}

const fmt = (amount: number, currency: Currency): string => formatMoney({ amount, currency })
const norm = (s: string): string => s.trim().toLowerCase()

/** The DocNumber QuickBooks should carry for a PSA invoice number. */
export function docNumberFor (number: string, prefix: string): string {
  return `${prefix}${number}`
}

/** A PSA credit memo: ConnectWise marks the kind, Autotask only has the negative total. */
export function isCreditMemo (i: { creditMemo?: boolean, psaTotal: number }): boolean {
  return i.creditMemo === true || i.psaTotal < 0
}

/**
 * Which of our invoices (or credit memos) must be looked up in QuickBooks by
 * DocNumber: those Settle or the PSA still shows open that the open listing
 * did not contain (paid or applied there, or missing). Paid-everywhere ones
 * need no call. Pass invoices with the open-invoice listing and credit memos
 * with the open-credit-memo listing.
 */
export function docNumbersToLookUp (invoices: readonly OurInvoiceView[], qboOpen: ReadonlyArray<{ docNumber: string | null }>, prefix: string): string[] {
  const listed = new Set(qboOpen.map(q => q.docNumber).filter((d): d is string => d !== null).map(norm))
  const wanted = new Set<string>()
  for (const i of invoices) {
    const open = i.voided ? 0 : i.psaBalance
    if ((open !== 0 || i.settleOpen !== 0) && !listed.has(norm(docNumberFor(i.number, prefix)))) wanted.add(docNumberFor(i.number, prefix))
  }
  return [...wanted].sort()
}

/** Customer mapping QuickBooks → Settle: the stored link first, then the exact display name (case-insensitive). */
export function mapQboCustomer (qbo: { id: string, displayName: string }, links: ReadonlyMap<string, string>, ourByName: ReadonlyMap<string, string>): string | null {
  return links.get(qbo.id) ?? ourByName.get(norm(qbo.displayName)) ?? null
}

export function compareTieout (input: TieoutInput): TieoutResult {
  const differences: TieoutDifference[] = []
  const totals: Partial<Record<Currency, SourceTotals>> = {}
  const total = (c: Currency): SourceTotals => (totals[c] ??= { psa: 0, settle: 0, qbo: 0, stripePayouts: 0, bankPostings: 0, qboDeposits: 0 })
  const lines = new Map<string, CustomerLine>()
  const names = new Map(input.customers.map(c => [c.customerId, c.name]))
  const line = (customerId: string | null, currency: Currency, name?: string): CustomerLine => {
    const key = `${customerId ?? '-'}:${currency}`
    let l = lines.get(key)
    if (l === undefined) {
      l = { customerId, name: name ?? (customerId === null ? 'Not linked to a Settle customer' : names.get(customerId) ?? customerId), currency, psa: 0, settle: 0, qbo: 0, differences: 0 }
      lines.set(key, l)
    }
    return l
  }
  const qboCustomerMap = new Map(input.qboCustomers.map(c => [c.id, c]))
  // Credit memos are compared as signed documents (QuickBooks' positive credit becomes a negative open amount),
  // in their own index: a credit memo's twin is a QBO CreditMemo, never an Invoice with the same number.
  const signedCreditMemos: QboInvoiceView[] = (input.qboCreditMemos ?? []).map(m => ({
    id: m.id, docNumber: m.docNumber, customerId: m.customerId, customerName: m.customerName,
    total: { amount: -m.total.amount, currency: m.total.currency }, balance: { amount: -m.remainingCredit.amount, currency: m.remainingCredit.currency }
  }))
  const index = (views: readonly QboInvoiceView[]): { byDoc: Map<string, QboInvoiceView[]>, seen: Set<string>, twinned: Set<string> } => {
    const byDoc = new Map<string, QboInvoiceView[]>()
    const seen = new Set<string>()
    for (const q of views) {
      if (seen.has(q.id)) continue
      seen.add(q.id)
      if (q.docNumber === null) continue
      const list = byDoc.get(norm(q.docNumber)) ?? []
      list.push(q)
      byDoc.set(norm(q.docNumber), list)
    }
    return { byDoc, seen, twinned: new Set<string>() }
  }
  const qboInvoiceIndex = index(input.qboInvoices)
  const qboCreditMemoIndex = index(signedCreditMemos)

  // Invoices: PSA vs Settle, then QuickBooks vs Settle (Settle is what posts payments to QuickBooks).
  for (const i of [...input.invoices].sort((a, b) => a.number.localeCompare(b.number) || a.invoiceId.localeCompare(b.invoiceId))) {
    const c = i.currency
    const psa = i.voided ? 0 : i.psaBalance
    const settle = i.settleOpen
    const doc = docNumberFor(i.number, input.docNumberPrefix)
    const credit = isCreditMemo(i)
    const pool = credit ? qboCreditMemoIndex : qboInvoiceIndex
    const twins = (pool.byDoc.get(norm(doc)) ?? []).sort((a, b) => a.id.localeCompare(b.id))
    for (const q of twins) pool.twinned.add(q.id)
    /** How the documents are named on each side. */
    const what = credit ? 'credit memo' : 'invoice'
    const qboWhat = credit ? 'QBO credit memo' : 'QBO invoice'
    const q = twins[0]
    const qbo = q === undefined || q.balance.currency !== c ? 0 : q.balance.amount
    total(c).psa += psa
    const l = line(i.customerId, c, i.customerName)
    l.psa += psa
    l.qbo += qbo
    const base = { customerId: i.customerId, invoiceId: i.invoiceId, payoutId: null, subject: { type: 'invoice' as const, id: i.invoiceId } }
    const add = (d: Omit<TieoutDifference, 'dedupeKey' | keyof typeof base>): void => {
      differences.push({ ...base, ...d, dedupeKey: `tieout:invoice:${i.invoiceId}:${d.cause}` })
      l.differences++
    }
    const who = `${i.customerName}'s ${what} ${i.number}`

    // Settle collected money the PSA does not show: the one cause of any gap it explains, QuickBooks' included.
    const paidInSettleOnly = psa > settle && psa - settle <= i.paidViaSettle
    if (psa !== settle) {
      const gap = psa - settle
      if (paidInSettleOnly) {
        if (i.pushInFlight !== true) add({
          cause: 'psa_not_updated',
          difference: { amount: gap, currency: c },
          figures: { psa, settle, qbo },
          summary: `The PSA shows ${who} with ${fmt(psa, c)} open; Settle shows ${fmt(settle, c)} after collecting ${fmt(i.paidViaSettle, c)}.`,
          likelyCause: `Paid in Settle, not recorded in the PSA: ${fmt(gap, c)} Settle collected is missing from the invoice in the PSA (the push-back is queued, retrying or failed).`,
          suggestedRepair: `Check the psa.push-payment jobs for invoice ${i.number}; they retry on their own. If one is dead, fix what its error names (PSA credentials, a closed period) and run it again, or record ${fmt(gap, c)} against invoice ${i.number} in the PSA by hand.`
        })
      } else {
        add({
          cause: 'settle_psa_drift',
          difference: { amount: gap, currency: c },
          figures: { psa, settle },
          summary: `The PSA shows ${who} with ${fmt(psa, c)} open; Settle shows ${fmt(settle, c)}.`,
          likelyCause: 'Settle\'s copy of the invoice is behind the PSA (a change since the last sync), or a payment was reversed on one side only.',
          suggestedRepair: `Run the PSA sync for this tenant and re-run the tie-out. If the difference stays, compare the payments on invoice ${i.number} in the PSA with Settle's payment history for it.`
        })
      }
    }

    if (twins.length > 1) {
      add({
        cause: 'duplicate_in_qbo',
        difference: { amount: twins.slice(1).reduce((s, t) => s + (t.balance.currency === c ? t.balance.amount : 0), 0), currency: c },
        figures: { qbo },
        summary: `QuickBooks has ${twins.length} ${what}s numbered ${doc} (ids ${twins.map(t => t.id).join(', ')}).`,
        likelyCause: `The ${what} was exported to QuickBooks twice, or entered by hand after the export.`,
        suggestedRepair: `Keep ${qboWhat} ${twins[0]?.id ?? ''} and void the others (${twins.slice(1).map(t => t.id).join(', ')}) in QuickBooks, after moving any ${credit ? 'application of their credit' : 'payment applied to them'}.`
      })
    }

    if (q === undefined) {
      if (psa !== 0 || settle !== 0) {
        const open = settle !== 0 ? settle : psa
        add({
          cause: 'missing_in_qbo',
          difference: { amount: open, currency: c },
          figures: { psa, settle, qbo: 0 },
          summary: `${who} (${fmt(open, c)} open) is not in QuickBooks.`,
          likelyCause: credit
            ? `The credit memo was never exported to QuickBooks as a credit memo (QuickBooks keeps credits as Credit Memos, not invoices), or it was entered there under another number (Settle looks for a credit memo with DocNumber "${doc}").`
            : `The invoice was never exported to QuickBooks, or it was entered there under another number (Settle looks for DocNumber "${doc}").`,
          suggestedRepair: credit
            ? `Create credit memo ${doc} for ${i.customerName} in QuickBooks (+ New → Credit memo) for ${fmt(-i.psaTotal, c)} (or export it again from the PSA), and apply it where the PSA applied it. If it exists under another number, change its DocNumber to "${doc}"${input.docNumberPrefix === '' ? ' or set a DocNumber prefix in Settle\'s QuickBooks settings' : ''}.`
            : `Create invoice ${doc} for ${i.customerName} in QuickBooks for ${fmt(i.psaTotal, c)} (or export it again from the PSA). If it exists under another number, change its DocNumber to "${doc}"${input.docNumberPrefix === '' ? ' or set a DocNumber prefix in Settle\'s QuickBooks settings' : ''}.`
        })
      }
      continue
    }
    if (q.total.currency !== c || q.balance.currency !== c) {
      add({
        cause: 'currency_mismatch',
        difference: { amount: psa, currency: c },
        figures: { psa, settle },
        summary: `${who} is in ${c} in the PSA but in ${q.total.currency} in QuickBooks (${qboWhat} ${q.id}).`,
        likelyCause: `The ${what} was entered in QuickBooks for a customer with another currency.`,
        suggestedRepair: `Void ${qboWhat} ${q.id} and create it again in ${c} for the ${c} customer; amounts in different currencies are never compared.`
      })
      continue
    }
    const owner = qboCustomerMap.get(q.customerId)
    if (owner?.settleCustomerId != null && owner.settleCustomerId !== i.customerId) {
      add({
        cause: 'wrong_customer_in_qbo',
        difference: { amount: qbo, currency: c },
        figures: { psa, settle, qbo },
        summary: `${who} is on ${owner.displayName} in QuickBooks (${qboWhat} ${q.id}), which is linked to ${names.get(owner.settleCustomerId) ?? 'another customer'} in Settle.`,
        likelyCause: `The ${what} was exported to the wrong QuickBooks customer, or the customer link in Settle is wrong.`,
        suggestedRepair: `If the ${what} is on the wrong customer, change its customer in QuickBooks to ${i.customerName}; if the link is wrong, relink ${owner.displayName} to the right Settle customer. Payments posted to it would otherwise land on the wrong customer's account.`
      })
    }
    if (i.voided) {
      if (qbo !== 0) {
        add({
          cause: 'voided_in_psa',
          difference: { amount: qbo, currency: c },
          figures: { psa: 0, settle, qbo },
          summary: `${who} is voided in the PSA but QuickBooks shows ${fmt(qbo, c)} open (${qboWhat} ${q.id}).`,
          likelyCause: `The ${what} was voided in the PSA after it was exported; voids do not reach QuickBooks on their own.`,
          suggestedRepair: `Void ${qboWhat} ${q.id} (DocNumber ${doc}) in QuickBooks, or un-void the ${what} in the PSA if the void was a mistake.`
        })
      }
      continue
    }
    if (q.total.amount !== i.psaTotal) {
      add({
        cause: 'edited_after_sync',
        difference: { amount: q.total.amount - i.psaTotal, currency: c },
        figures: { psa, settle, qbo },
        summary: `${who} totals ${fmt(i.psaTotal, c)} in the PSA but ${fmt(q.total.amount, c)} in QuickBooks (${qboWhat} ${q.id}).`,
        likelyCause: `The ${what} was edited in one system after it was exported to QuickBooks (a line added, removed or re-priced).`,
        suggestedRepair: `Billing is decided in the PSA: if ${fmt(i.psaTotal, c)} is right, edit ${qboWhat} ${q.id} to ${fmt(credit ? -i.psaTotal : i.psaTotal, c)}; if QuickBooks is right, correct ${what} ${i.number} in the PSA and let the next sync bring it in.`
      })
      continue
    }
    if (credit) {
      // Signed: -remaining credit. More credit left in QuickBooks than in Settle means it was applied in the PSA only, and the reverse.
      if (qbo !== settle) {
        const qboLeft = -qbo
        const settleLeft = -settle
        add({
          cause: 'credit_remaining_differs',
          difference: { amount: qbo - settle, currency: c },
          figures: { psa, settle, qbo },
          summary: `QuickBooks shows ${who} with ${fmt(qboLeft, c)} of credit left to apply; Settle shows ${fmt(settleLeft, c)} and the PSA ${fmt(-psa, c)}.`,
          likelyCause: qboLeft < settleLeft
            ? `${fmt(settleLeft - qboLeft, c)} of the credit was applied to an invoice in QuickBooks by hand and not in the PSA.`
            : `${fmt(qboLeft - settleLeft, c)} of the credit was applied to an invoice in the PSA and not in QuickBooks.`,
          suggestedRepair: qboLeft < settleLeft
            ? `Open ${qboWhat} ${q.id} (DocNumber ${doc}) and see which invoice it was applied to; apply the credit the same way in the PSA (Settle picks it up on the next sync), or unapply it in QuickBooks if it was a mistake.`
            : `In QuickBooks, apply ${qboWhat} ${q.id} to the invoice the PSA applied it to (Receive Payment for ${i.customerName}, tick the credit and the invoice), so both books show the same credit left.`
        })
      }
      continue
    }
    if (qbo < settle) {
      add({
        cause: 'payment_applied_in_qbo',
        difference: { amount: qbo - settle, currency: c },
        figures: { psa, settle, qbo },
        summary: `QuickBooks shows ${who} with ${fmt(qbo, c)} open; Settle shows ${fmt(settle, c)} and the PSA ${fmt(psa, c)}.`,
        likelyCause: `A payment or credit of ${fmt(settle - qbo, c)} was probably applied by hand in QuickBooks and never recorded in the PSA.`,
        suggestedRepair: `Open QBO invoice ${q.id} (DocNumber ${doc}) and check what was applied to it. If the client really paid, record the payment in the PSA (Settle picks it up on the next sync); if it was applied to the wrong invoice, unapply it in QuickBooks and apply it where it belongs.`
      })
    } else if (qbo > settle && i.postingInFlight !== true && !(paidInSettleOnly && qbo === psa)) {
      add({
        cause: 'payment_missing_in_qbo',
        difference: { amount: qbo - settle, currency: c },
        figures: { psa, settle, qbo },
        summary: `QuickBooks shows ${who} with ${fmt(qbo, c)} open; Settle shows ${fmt(settle, c)} and the PSA ${fmt(psa, c)}.`,
        likelyCause: `A payment of ${fmt(qbo - settle, c)} that Settle or the PSA recorded has not reached QuickBooks: its posting is queued or failed, or it was taken outside Settle and never entered in QuickBooks.`,
        suggestedRepair: `Look for a posting_failed exception on invoice ${i.number} and retry it, or press QuickBooks sync. If the client paid outside Settle (check, wire), enter that payment in QuickBooks against QBO invoice ${q.id}.`
      })
    }
  }

  // QuickBooks invoices and credit memos no PSA document explains.
  const qboOpenByCustomer = new Map<string, Map<Currency, number>>()
  for (const [pool, views, subject] of [[qboInvoiceIndex, input.qboInvoices, 'qbo_invoice'], [qboCreditMemoIndex, signedCreditMemos, 'qbo_credit_memo']] as const) {
    const credit = subject === 'qbo_credit_memo'
    for (const q of [...views].sort((a, b) => a.id.localeCompare(b.id))) {
      if (!pool.seen.delete(q.id)) continue // each id once
      if (q.balance.amount === 0) continue
      const perCurrency = qboOpenByCustomer.get(q.customerId) ?? new Map<Currency, number>()
      perCurrency.set(q.balance.currency, (perCurrency.get(q.balance.currency) ?? 0) + q.balance.amount)
      qboOpenByCustomer.set(q.customerId, perCurrency)
      total(q.balance.currency).qbo += q.balance.amount
      if (pool.twinned.has(q.id)) continue
      const c = q.balance.currency
      const qc = qboCustomerMap.get(q.customerId)
      const settleCustomerId = qc?.settleCustomerId ?? null
      const l = line(settleCustomerId, c)
      l.qbo += q.balance.amount
      l.differences++
      const what = credit ? 'credit memo' : 'invoice'
      const label = q.docNumber === null ? `QBO ${what} ${q.id} (no number)` : `${what} ${q.docNumber} (QBO id ${q.id})`
      const open = credit ? `${fmt(-q.balance.amount, c)} of credit left` : `${fmt(q.balance.amount, c)} open`
      differences.push({
        dedupeKey: `tieout:${subject}:${q.id}:not_in_psa`,
        cause: 'not_in_psa',
        subject: { type: subject, id: q.id },
        customerId: settleCustomerId,
        invoiceId: null,
        payoutId: null,
        difference: { amount: q.balance.amount, currency: c },
        figures: { psa: 0, settle: 0, qbo: q.balance.amount },
        summary: `QuickBooks has ${label} for ${q.customerName ?? qc?.displayName ?? 'an unknown customer'} with ${open}; the PSA has no ${what} with that number.`,
        likelyCause: `The ${what} was created in QuickBooks directly, or its DocNumber does not match the PSA ${what} number.`,
        suggestedRepair: credit
          ? `If the credit is owed, issue it as a credit memo in the PSA and void ${label} in QuickBooks; if it is a PSA credit memo under another number, change its DocNumber to the PSA number${input.docNumberPrefix === '' ? '' : ` with the prefix "${input.docNumberPrefix}"`}.`
          : `If the work should be billed, bill it in the PSA and void ${label} in QuickBooks; if it is a PSA invoice under another number, change its DocNumber to the PSA number${input.docNumberPrefix === '' ? '' : ` with the prefix "${input.docNumberPrefix}"`}.`
      })
    }
  }

  // Customers: the ledger against its invoices, and QuickBooks customers against their invoices.
  const settleOpenByCustomer = new Map<string, Map<Currency, number>>()
  for (const i of input.invoices) {
    const m = settleOpenByCustomer.get(i.customerId) ?? new Map<Currency, number>()
    m.set(i.currency, (m.get(i.currency) ?? 0) + i.settleOpen)
    settleOpenByCustomer.set(i.customerId, m)
  }
  for (const cu of [...input.customers].sort((a, b) => a.customerId.localeCompare(b.customerId))) {
    const invoiceSums = settleOpenByCustomer.get(cu.customerId) ?? new Map<Currency, number>()
    const currencies = new Set<Currency>([...invoiceSums.keys(), ...cu.receivable.map(r => r.currency)])
    for (const c of [...currencies].sort()) {
      const ledger = cu.receivable.find(r => r.currency === c)?.amount ?? 0
      const sumOpen = invoiceSums.get(c) ?? 0
      total(c).settle += ledger
      if (ledger === 0 && sumOpen === 0 && !lines.has(`${cu.customerId}:${c}`)) continue
      const l = line(cu.customerId, c, cu.name)
      l.settle += ledger
      if (ledger !== sumOpen) {
        l.differences++
        differences.push({
          dedupeKey: `tieout:customer:${cu.customerId}:${c}:ledger_out_of_step`,
          cause: 'ledger_out_of_step',
          subject: { type: 'customer', id: cu.customerId },
          customerId: cu.customerId,
          invoiceId: null,
          payoutId: null,
          difference: { amount: ledger - sumOpen, currency: c },
          figures: { settle: ledger },
          summary: `Settle's ledger shows ${cu.name} owing ${fmt(ledger, c)} but its invoices add up to ${fmt(sumOpen, c)} open.`,
          likelyCause: 'A ledger entry for this customer has no matching change on an invoice (or the reverse): an entry posted by hand or a half-applied correction.',
          suggestedRepair: `List the journal entries on receivable:${cu.customerId} and find the one no invoice accounts for; correct it with a reversing entry, never an edit. Tell Settle support if you cannot find it.`
        })
      }
    }
  }
  for (const qc of [...input.qboCustomers].sort((a, b) => a.id.localeCompare(b.id))) {
    const c = qc.balance.currency
    const invoiceSum = qboOpenByCustomer.get(qc.id)?.get(c) ?? 0
    if (qc.balance.amount === invoiceSum) continue
    const gap = qc.balance.amount - invoiceSum
    const l = line(qc.settleCustomerId, c, qc.settleCustomerId === null ? qc.displayName : undefined)
    l.differences++
    differences.push({
      dedupeKey: `tieout:customer:${qc.settleCustomerId ?? `qbo-${qc.id}`}:${c}:qbo_customer_balance_differs`,
      cause: 'qbo_customer_balance_differs',
      subject: { type: 'customer', id: qc.settleCustomerId ?? `qbo:${qc.id}` },
      customerId: qc.settleCustomerId,
      invoiceId: null,
      payoutId: null,
      difference: { amount: gap, currency: c },
      figures: { qbo: qc.balance.amount },
      summary: `QuickBooks shows ${qc.displayName} with a balance of ${fmt(qc.balance.amount, c)} but open invoices (less open credit memos) of ${fmt(invoiceSum, c)}.`,
      likelyCause: gap < 0
        ? `${fmt(-gap, c)} of credit sits unapplied on the customer in QuickBooks (an unapplied payment).`
        : `${fmt(gap, c)} of receivable in QuickBooks is not on any invoice (a journal entry or charge to A/R for this customer).`,
      suggestedRepair: gap < 0
        ? `In QuickBooks, apply the credit to the invoice it pays (Receive Payment → the customer's open invoices), or refund it; record the same in the PSA.`
        : `Find the A/R journal entry or charge for ${qc.displayName} in QuickBooks and either invoice it in the PSA or reverse it.`
    })
  }

  // Payouts: Stripe's net, Settle's bank posting, the QuickBooks deposit.
  for (const p of [...input.payouts].sort((a, b) => a.arrivalDate.localeCompare(b.arrivalDate) || a.payoutId.localeCompare(b.payoutId))) {
    const c = p.currency
    const t = total(c)
    t.stripePayouts += p.net
    t.bankPostings += p.bankPosting ?? 0
    t.qboDeposits += p.qboDeposit?.total.currency === c ? p.qboDeposit.total.amount : 0
    const what = `Payout ${p.processorPayoutRef} of ${fmt(p.net, c)} (arrived ${p.arrivalDate})`
    const add = (d: Omit<TieoutDifference, 'dedupeKey' | 'subject' | 'customerId' | 'invoiceId' | 'payoutId'>): void => {
      differences.push({ ...d, dedupeKey: `tieout:payout:${p.payoutId}:${d.cause}`, subject: { type: 'payout', id: p.payoutId }, customerId: null, invoiceId: null, payoutId: p.payoutId })
    }
    if (p.bankPosting === null) {
      add({
        cause: 'bank_posting_missing',
        difference: { amount: p.net, currency: c },
        figures: { stripe: p.net },
        summary: `${what} has no bank entry in Settle's ledger.`,
        likelyCause: 'Settle never processed the payout.paid event (a missed or failed webhook).',
        suggestedRepair: `In the Stripe dashboard, resend the payout.paid event for ${p.processorPayoutRef} to Settle's webhook (or check the stripe.event jobs for a dead one); Settle then books it and posts the deposit.`
      })
    } else if (p.bankPosting !== p.net) {
      add({
        cause: 'bank_posting_differs',
        difference: { amount: p.bankPosting - p.net, currency: c },
        figures: { stripe: p.net, bank: p.bankPosting },
        summary: `${what} is booked to the bank in Settle as ${fmt(p.bankPosting, c)}.`,
        likelyCause: 'The payout changed at Stripe after Settle booked it, or the entry was built from an incomplete list of the payout\'s transactions.',
        suggestedRepair: `Compare the payout's balance transactions in Stripe with Settle's payout items for ${p.processorPayoutRef}; post a correcting entry for ${fmt(p.net - p.bankPosting, c)} once the cause is known.`
      })
    }
    const posted = p.posting?.status === 'posted' && p.posting.externalId !== null
    if (!posted) {
      // The deposit is queued with the bank entry and posted right after: one not posted yet for a payout of today or yesterday is in flight.
      if ((p.posting === null || p.posting.status === 'pending') && p.bankPosting !== null && p.arrivalDate >= previousDay(input.today)) continue
      add({
        cause: 'missing_deposit',
        difference: { amount: p.net, currency: c },
        figures: { stripe: p.net, bank: p.bankPosting ?? 0, qbo: 0 },
        summary: `${what} has no deposit in QuickBooks.`,
        likelyCause: p.posting === null
          ? 'Settle never queued the deposit (the payout was not booked, or QuickBooks was not connected then).'
          : p.posting.status === 'failed'
            ? `Settle's deposit posting failed${p.posting.lastError === null ? '' : `: ${p.posting.lastError}`}.`
            : `Settle's deposit posting is still ${p.posting.status}.`,
        suggestedRepair: p.posting?.status === 'failed'
          ? 'Fix what the posting_failed exception for this payout names (an account setting, a reconnect), then retry it; the deposit must equal the bank line to the cent.'
          : `Press QuickBooks sync to post the deposit now; if someone already entered it in QuickBooks by hand, delete that one first so it is not counted twice.`
      })
      continue
    }
    if (p.qboDeposit === null) {
      add({
        cause: 'deposit_deleted_in_qbo',
        difference: { amount: p.net, currency: c },
        figures: { stripe: p.net, bank: p.bankPosting ?? 0, qbo: 0 },
        summary: `${what} was posted to QuickBooks as deposit ${p.posting?.externalId ?? ''}, which QuickBooks no longer has.`,
        likelyCause: 'Someone deleted or voided the deposit in QuickBooks (often while matching the bank feed by hand).',
        suggestedRepair: `If the bank feed was matched to a hand-made deposit, keep that one and dismiss this; otherwise ask Settle to post the deposit again (QuickBooks sync) and match the bank line to it.`
      })
      continue
    }
    const q = p.qboDeposit.total
    if (q.currency !== c || q.amount !== p.net) {
      add({
        cause: 'deposit_amount_differs',
        difference: { amount: q.currency === c ? q.amount - p.net : -p.net, currency: c },
        figures: { stripe: p.net, bank: p.bankPosting ?? 0, qbo: q.currency === c ? q.amount : 0 },
        summary: `${what} is deposit ${p.qboDeposit.id} in QuickBooks for ${formatMoney(q)}.`,
        likelyCause: 'The deposit was edited in QuickBooks after Settle posted it (a line removed, the fee line changed), so it no longer equals the bank line.',
        suggestedRepair: `Edit deposit ${p.qboDeposit.id} in QuickBooks back to ${fmt(p.net, c)}: its payments less the fee line must equal what reached the bank.`
      })
    }
  }

  const sortedLines = [...lines.values()].sort((a, b) => a.name.localeCompare(b.name) || a.currency.localeCompare(b.currency))
  return { status: differences.length === 0 ? 'clean' : 'differences', differences, totals, lines: sortedLines }
}

function previousDay (date: string): string {
  const d = new Date(`${date}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() - 1)
  return d.toISOString().slice(0, 10)
}
