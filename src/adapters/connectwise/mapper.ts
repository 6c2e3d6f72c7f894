import { isCurrency, negate, parseAmount, toDecimalString, type Currency, type Money } from '../../domain/money.js'
import type { PsaCompany, PsaInvoice, PsaInvoiceKind, PsaInvoiceLine, PsaLineKind, PsaPaymentInput } from '../../ports/psa.js'
import { UpstreamError } from '../http.js'

/* Wire shapes: only the fields Settle reads (the contract has many more; `raw` keeps them all). */
interface Ref { id?: number | null, identifier?: string, name?: string, type?: string }
export interface CwCompany { id: number, identifier?: string, name?: string, state?: string, _info?: Record<string, string> }
export interface CwInvoice {
  id: number
  invoiceNumber?: string
  type?: string | null
  status?: Ref & { isClosed?: boolean | null }
  company?: Ref
  billingSiteState?: string
  date?: string
  dueDate?: string
  currency?: { currencyCode?: string }
  subtotal?: number | null
  salesTax?: number | null
  total?: number | null
  payments?: number | null
  credits?: number | null
  balance?: number | null
  agreement?: Ref
  /** What the invoice bills for its agreement(s); the batched line fetch makes the agreement line from it. */
  agreementAmount?: number | null
  customerPO?: string
  _info?: Record<string, string>
}
export interface CwInvoicePayment {
  id: number
  type?: string
  amount?: number | null
  paymentDate?: string
  invoice?: Ref
  /** The member identifier who applied the payment: a person, or the API member of the key that posted it. */
  appliedBy?: string
}
export interface CwProduct { id: number, description?: string, customerDescription?: string, catalogItem?: Ref, quantity?: number | null, price?: number | null, extPrice?: number | null }
export interface CwTime { id: number, notes?: string, workType?: Ref, member?: Ref, actualHours?: number | null, hoursBilled?: number | null, invoiceHours?: number | null, hourlyRate?: number | null, extendedInvoiceAmount?: number | null, timeStart?: string }
export interface CwExpense { id: number, notes?: string, type?: Ref, amount?: number | null, billAmount?: number | null, invoiceAmount?: number | null }
interface CwAgreementBilling { agreementName?: string, agreementType?: string, agreementAmount?: number, agreementRecId?: number }
export interface CwInvoiceInfo {
  id: number
  invoice?: CwInvoice
  products?: CwProduct[]
  expenses?: CwExpense[]
  timeEntries?: CwTime[]
  agreementBillingInfo?: CwAgreementBilling[]
}

const KINDS: Record<string, PsaInvoiceKind> = {
  Agreement: 'agreement',
  CreditMemo: 'credit_memo',
  DownPayment: 'down_payment',
  Miscellaneous: 'miscellaneous',
  Progress: 'progress',
  Standard: 'standard'
}

function malformed (message: string, body: unknown): UpstreamError {
  return new UpstreamError('connectwise', null, 'malformed_response', message, false, null, body)
}

/** Every PSA amount goes through here: ConnectWise emits up to 4 decimals, we keep cents. */
function amount (value: unknown, currency: Currency, what: string, raw: unknown): Money {
  try { return parseAmount(value ?? 0, currency, 'half-away-from-zero') } catch {
    throw malformed(`${what} is not an amount: ${JSON.stringify(value)}`, raw)
  }
}

/** ISO datetime → its UTC calendar date. ConnectWise stores invoice dates at midnight UTC ("2026-11-01T00:00:00Z"). */
export function dateOnly (value: unknown, what: string, raw: unknown): string {
  if (typeof value !== 'string') throw malformed(`${what} is missing`, raw)
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return value
  const at = new Date(value)
  if (Number.isNaN(at.getTime())) throw malformed(`${what} is not a date: ${JSON.stringify(value)}`, raw)
  return at.toISOString().slice(0, 10)
}

function currencyOf (invoice: CwInvoice): Currency {
  const code = invoice.currency?.currencyCode
  if (code === undefined || code === '') return 'USD'
  if (!isCurrency(code)) throw malformed(`unsupported currency ${JSON.stringify(code)}`, invoice)
  return code
}

const nonBlank = (text: string | undefined): string | null => typeof text === 'string' && text.trim() !== '' ? text.trim() : null

export function toPsaCompany (wire: CwCompany): PsaCompany {
  if (typeof wire?.id !== 'number') throw malformed('company without an id', wire)
  return {
    externalId: String(wire.id),
    name: wire.name ?? wire.identifier ?? String(wire.id),
    identifier: wire.identifier ?? null,
    state: nonBlank(wire.state),
    raw: wire
  }
}

/**
 * Credit memos: ConnectWise reports them with negative amounts; should a
 * tenant's version send them positive, we flip the sign so a credit is
 * always negative in Settle (the port's rule).
 */
function creditSign (invoice: CwInvoice): 1 | -1 {
  return invoice.type === 'CreditMemo' && typeof invoice.total === 'number' && invoice.total > 0 ? -1 : 1
}

export function isVoided (invoice: CwInvoice): boolean {
  // The contract has no void flag; tenants mark voids with a billing status named "Void"/"Voided".
  return /void/i.test(invoice.status?.name ?? '')
}

/**
 * `paidOn`: only for a settled invoice (balance 0, total not 0, not voided).
 * With the invoice's payments we use the latest payment date; without them
 * (bulk listing, which would cost a call per invoice) the date of
 * `_info.lastUpdated`, since posting the last payment is what closed it.
 */
export function toPsaInvoice (wire: CwInvoice, payments?: readonly CwInvoicePayment[]): PsaInvoice {
  if (typeof wire?.id !== 'number') throw malformed('invoice without an id', wire)
  const kind = KINDS[wire.type ?? '']
  if (kind === undefined) throw malformed(`unknown invoice type ${JSON.stringify(wire.type)}`, wire)
  const companyId = wire.company?.id
  if (typeof companyId !== 'number') throw malformed(`invoice ${wire.id} has no company`, wire)
  const lastUpdated = wire._info?.lastUpdated
  const updatedAt = new Date(lastUpdated ?? '')
  if (Number.isNaN(updatedAt.getTime())) throw malformed(`invoice ${wire.id} has no _info.lastUpdated`, wire)
  const currency = currencyOf(wire)
  const sign = creditSign(wire)
  const total = amount(wire.total, currency, 'total', wire)
  const balance = wire.balance === null || wire.balance === undefined ? null : amount(wire.balance, currency, 'balance', wire)
  const voided = isVoided(wire)

  let paidOn: string | null = null
  if (!voided && balance !== null && balance.amount === 0 && total.amount !== 0) {
    const dates = (payments ?? []).map(p => p.paymentDate).filter((d): d is string => typeof d === 'string').map(d => dateOnly(d, 'paymentDate', wire)).sort()
    paidOn = dates.length > 0 ? dates[dates.length - 1] ?? null : updatedAt.toISOString().slice(0, 10)
  }

  return {
    externalId: String(wire.id),
    number: wire.invoiceNumber ?? String(wire.id),
    companyExternalId: String(companyId),
    companyName: wire.company?.name ?? null,
    billingState: nonBlank(wire.billingSiteState),
    kind,
    currency,
    issuedOn: dateOnly(wire.date, 'date', wire),
    dueOn: wire.dueDate === undefined || wire.dueDate === null ? null : dateOnly(wire.dueDate, 'dueDate', wire),
    total: sign === -1 ? negate(total) : total,
    balance: balance === null ? null : sign === -1 ? negate(balance) : balance,
    paidOn,
    voided,
    updatedAt,
    agreementName: wire.agreement?.name ?? null,
    poNumber: wire.customerPO !== undefined && wire.customerPO !== '' ? wire.customerPO : null,
    raw: wire
  }
}

/** Exact decimal product of two JSON numbers as a decimal string (hours × rate) without floats. */
function multiplyDecimals (a: number, b: number): string {
  const split = (n: number): [bigint, number] => {
    const text = decimalText(n)
    const [whole = '0', fraction = ''] = text.replace('-', '').split('.')
    const value = BigInt(whole + fraction)
    return [text.startsWith('-') ? -value : value, fraction.length]
  }
  const [x, xs] = split(a)
  const [y, ys] = split(b)
  const product = x * y
  const scale = xs + ys
  const negative = product < 0n
  const digits = (negative ? -product : product).toString().padStart(scale + 1, '0')
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`
  return negative ? `-${text}` : text
}

/** The shortest decimal text of a JSON number (the same reading parseAmount uses). */
function decimalText (n: number): string {
  const text = String(n)
  return /e/i.test(text) ? n.toFixed(12).replace(/\.?0+$/, '') : text
}

function line (externalId: string, kind: PsaLineKind, description: string, quantity: unknown, unitPrice: Money | null, amt: Money, raw: unknown): PsaInvoiceLine {
  return { externalId, kind, description, quantity: quantity === null || quantity === undefined ? '1' : String(quantity), unitPrice, amount: amt, raw }
}

/**
 * InvoiceInfo → lines: agreement billing, products, time, expenses, and one
 * synthetic "Sales tax" line (kind other) so the lines add up to the total.
 */
export function toPsaInvoiceLines (info: CwInvoiceInfo, header?: CwInvoice): PsaInvoiceLine[] {
  const invoice = info.invoice ?? header
  if (invoice === undefined) throw malformed(`invoice info ${info.id} carries no invoice`, info)
  const currency = currencyOf(invoice)
  const flip = creditSign(invoice) === -1
  const signed = (m: Money): Money => flip ? negate(m) : m
  const lines: PsaInvoiceLine[] = []

  ;(info.agreementBillingInfo ?? []).forEach((a, index) => {
    const amt = signed(amount(a.agreementAmount, currency, 'agreementAmount', a))
    lines.push(line(`agreement-${a.agreementRecId ?? index}`, 'agreement', a.agreementName ?? 'Agreement', 1, amt, amt, a))
  })
  for (const p of info.products ?? []) {
    const unit = p.price === null || p.price === undefined ? null : signed(amount(p.price, currency, 'price', p))
    lines.push(line(`product-${p.id}`, 'product', p.customerDescription ?? p.description ?? p.catalogItem?.identifier ?? 'Product', p.quantity, unit, signed(amount(p.extPrice, currency, 'extPrice', p)), p))
  }
  for (const te of info.timeEntries ?? []) {
    const hours = te.invoiceHours ?? te.hoursBilled ?? te.actualHours ?? 0
    const rate = te.hourlyRate ?? 0
    // extendedInvoiceAmount is what was billed; without it, hours × rate computed exactly.
    const billed = te.extendedInvoiceAmount ?? multiplyDecimals(hours, rate)
    const description = [te.workType?.name, te.notes].filter(Boolean).join(': ') || 'Time'
    lines.push(line(`time-${te.id}`, 'time', description, hours, signed(amount(rate, currency, 'hourlyRate', te)), signed(amount(billed, currency, 'extendedInvoiceAmount', te)), te))
  }
  for (const e of info.expenses ?? []) {
    const billed = e.invoiceAmount ?? e.billAmount ?? e.amount
    const amt = signed(amount(billed, currency, 'expense amount', e))
    lines.push(line(`expense-${e.id}`, 'expense', e.notes ?? e.type?.name ?? 'Expense', 1, amt, amt, e))
  }
  if (typeof invoice.salesTax === 'number' && invoice.salesTax !== 0) {
    const tax = signed(amount(invoice.salesTax, currency, 'salesTax', invoice))
    lines.push(line(`tax-${invoice.id}`, 'other', 'Sales tax', 1, tax, tax, { salesTax: invoice.salesTax }))
  }
  return lines
}

/** Payment types we send; ConnectWise's `type` is free text on the wire [check the tenant's list]. */
export const PAYMENT_TYPE = 'Payment'

/** Domain payment → POST /finance/invoices/{id}/payments body. */
export function toCwPayment (input: PsaPaymentInput): Record<string, unknown> {
  return {
    type: PAYMENT_TYPE,
    // JSON number from the exact decimal string: two decimals are exact in a double's shortest form.
    amount: Number(toDecimalString(input.amount)),
    paymentDate: `${input.paidOn}T00:00:00Z`,
    invoice: { id: Number(input.invoiceExternalId) }
  }
}

/** Whether an existing payment is the one `input` describes (same cents, same UTC date). */
export function samePayment (existing: CwInvoicePayment, input: PsaPaymentInput): boolean {
  if (typeof existing.amount !== 'number' || typeof existing.paymentDate !== 'string') return false
  let cents: number
  try { cents = parseAmount(existing.amount, input.amount.currency, 'half-away-from-zero').amount } catch { return false }
  return cents === input.amount.amount && existing.paymentDate.slice(0, 10) === input.paidOn
}
