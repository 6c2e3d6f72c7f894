/**
 * How one payment spreads over several invoices of one client, and how money
 * given back comes off them again. Pure, in cents.
 *
 * A statement payment goes to the invoice that has been due longest first,
 * each invoice filled before the next is touched, so a partial payment
 * leaves the newest invoices open (what a client and their accountant
 * expect). Money given back (refund, lost dispute) comes off in reverse: the
 * invoice paid last reopens first.
 */
export interface OpenInvoice {
  id: string
  number: string
  /** YYYY-MM-DD; an invoice without a due date counts as due when issued. */
  dueOn: string | null
  issuedOn: string | null
  /** Cents still owed; invoices with nothing open are passed over. */
  open: number
}

export interface Allocation {
  invoiceId: string
  amount: number
}

/** Oldest due first; ties by issue date, then number, so the order never depends on how rows came back. */
export function oldestDueFirst<T extends OpenInvoice> (invoices: readonly T[]): T[] {
  const key = (i: OpenInvoice): string => i.dueOn ?? i.issuedOn ?? '9999-12-31'
  return [...invoices].sort((a, b) =>
    key(a).localeCompare(key(b)) ||
    (a.issuedOn ?? '').localeCompare(b.issuedOn ?? '') ||
    a.number.localeCompare(b.number, 'en', { numeric: true }) ||
    a.id.localeCompare(b.id))
}

/**
 * Spreads `amount` over the invoices, oldest due first, never more than an
 * invoice has open. Returns null when the invoices together owe less than
 * the amount (the caller says so; Settle never takes more than is owed).
 */
export function allocateOldestFirst (invoices: readonly OpenInvoice[], amount: number): Allocation[] | null {
  if (!Number.isSafeInteger(amount) || amount <= 0) throw new RangeError('amount must be a positive whole number of cents')
  let left = amount
  const allocations: Allocation[] = []
  for (const invoice of oldestDueFirst(invoices.filter(i => i.open > 0))) {
    if (left === 0) break
    const take = Math.min(left, invoice.open)
    allocations.push({ invoiceId: invoice.id, amount: take })
    left -= take
  }
  return left === 0 ? allocations : null
}

/**
 * Which invoices a return of `amount` reopens, given the allocations in
 * their order of application and what earlier returns already took back:
 * newest allocation first. Amounts per invoice, only the non-zero ones.
 */
export function returnNewestFirst (allocations: readonly Allocation[], alreadyReturned: number, amount: number): Allocation[] {
  const total = allocations.reduce((s, a) => s + a.amount, 0)
  if (alreadyReturned < 0 || amount < 0 || alreadyReturned + amount > total) throw new RangeError(`cannot return ${amount} after ${alreadyReturned} of ${total}`)
  // Returned money is a window [alreadyReturned, alreadyReturned + amount) measured from the last allocation backwards.
  const returned: Allocation[] = []
  let from = total
  for (let i = allocations.length - 1; i >= 0; i--) {
    const a = allocations[i] as Allocation
    const start = from - a.amount
    const overlap = Math.min(from, total - alreadyReturned) - Math.max(start, total - alreadyReturned - amount)
    if (overlap > 0) returned.push({ invoiceId: a.invoiceId, amount: overlap })
    from = start
  }
  return returned
}
