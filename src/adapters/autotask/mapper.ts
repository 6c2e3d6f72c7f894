import { parseAmount, type Currency } from '../../domain/money.js'
import type { PsaCompany, PsaInvoice, PsaInvoiceLine, PsaLineKind } from '../../ports/psa.js'
import { UpstreamError } from '../http.js'

/** Wire shapes (contracts/autotask.json); only what Settle reads is typed, the rest rides in `raw`. */
export interface AtCompany {
  id: number
  companyName: string
  companyNumber?: string | null
  [field: string]: unknown
}

export interface AtInvoice {
  id: number
  companyID: number | null
  invoiceNumber: string | null
  invoiceDateTime: string
  createDateTime: string | null
  dueDate: string | null
  invoiceTotal: number | null
  totalTaxValue: number | null
  paidDate: string | null
  isVoided: boolean | null
  voidedDate?: string | null
  orderNumber?: string | null
  webServiceDate?: string | null
  [field: string]: unknown
}

export interface AtBillingItem {
  id: number
  invoiceID: number | null
  billingItemType: number
  subType: number
  itemName: string | null
  description: string | null
  quantity: number | null
  rate: number | null
  extendedPrice: number | null
  taxDollars?: number | null
  totalAmount?: number | null
  timeEntryID?: number | null
  expenseItemID?: number | null
  contractServiceID?: number | null
  contractServiceBundleID?: number | null
  serviceID?: number | null
  serviceBundleID?: number | null
  contractBlockID?: number | null
  ticketChargeID?: number | null
  projectChargeID?: number | null
  contractChargeID?: number | null
  [field: string]: unknown
}

/**
 * `billingItemType` picklist, system values as we understand them. [check]
 * against `GET BillingItems/entityInformation/fields` on a live tenant: the
 * mapper trusts the record's reference fields first, so a wrong code here only
 * matters for lines that carry none.
 */
export const BILLING_ITEM_TYPES: Readonly<Record<number, PsaLineKind>> = {
  1: 'time', // Labour
  2: 'expense',
  3: 'other', // Milestone
  4: 'product', // Charge (ticket/project/contract cost)
  5: 'agreement', // Recurring contract service
  6: 'agreement', // Contract block / retainer
  7: 'agreement', // Service bundle
  8: 'time' // Labour adjustment
}

const nonBlank = (value: unknown): string | null => typeof value === 'string' && value.trim() !== '' ? value.trim() : null

/** State: the bill-to address's (`billToState`, read-only, follows the company's bill-to choice), else the company's own. */
export function mapCompany (raw: AtCompany): PsaCompany {
  const number = typeof raw.companyNumber === 'string' && raw.companyNumber.trim() !== '' ? raw.companyNumber : null
  return { externalId: String(raw.id), name: raw.companyName, identifier: number, state: nonBlank(raw.billToState) ?? nonBlank(raw.state), raw }
}

export interface InvoiceContext {
  /** Autotask invoices carry no currency: the tenant's billing currency. */
  currency: Currency
  companyName?: string | null
  /** Autotask invoices carry no address: the company's state, when the adapter has already read the companies. */
  billingState?: string | null
}

/**
 * - total: `invoiceTotal` is the grand total, tax included; `totalTaxValue`
 *   is the tax inside it (the sum of BillingItems `taxDollars`). Negative
 *   totals are credit memos (Autotask has no invoice type field).
 * - updatedAt: Invoices carry no last-modified stamp (lastActivityDate is a
 *   Companies field); `createDateTime` is the only server-set change stamp,
 *   so it is the sync cursor. Payments and voids are caught by re-checking
 *   open invoices (`listOpenInvoices`).
 * - balance: null; Autotask does not track payments.
 */
export function mapInvoice (raw: AtInvoice, context: InvoiceContext): PsaInvoice {
  const total = parseAmount(raw.invoiceTotal ?? 0, context.currency, 'half-away-from-zero')
  return {
    externalId: String(raw.id),
    number: raw.invoiceNumber !== null && raw.invoiceNumber !== undefined && raw.invoiceNumber !== '' ? raw.invoiceNumber : String(raw.id),
    companyExternalId: raw.companyID === null || raw.companyID === undefined ? '' : String(raw.companyID),
    companyName: context.companyName ?? null,
    billingState: context.billingState ?? null,
    kind: total.amount < 0 ? 'credit_memo' : 'standard',
    currency: context.currency,
    issuedOn: dateOnly(raw.invoiceDateTime, 'invoiceDateTime'),
    dueOn: raw.dueDate === null || raw.dueDate === undefined ? null : dateOnly(raw.dueDate, 'dueDate'),
    total,
    balance: null,
    paidOn: raw.paidDate === null || raw.paidDate === undefined ? null : dateOnly(raw.paidDate, 'paidDate'),
    voided: raw.isVoided === true,
    updatedAt: changeStamp(raw),
    agreementName: null,
    poNumber: typeof raw.orderNumber === 'string' && raw.orderNumber !== '' ? raw.orderNumber : null,
    raw
  }
}

/** The cursor stamp: createDateTime, else the invoice date (older records may lack it). */
export function changeStamp (raw: Pick<AtInvoice, 'createDateTime' | 'invoiceDateTime'>): Date {
  return parseStamp(raw.createDateTime ?? raw.invoiceDateTime, 'createDateTime')
}

export function lineKind (raw: AtBillingItem): PsaLineKind {
  // Reference fields are named in the contract; the picklist codes are not.
  if (isId(raw.timeEntryID)) return 'time'
  if (isId(raw.expenseItemID)) return 'expense'
  if (isId(raw.contractServiceID) || isId(raw.contractServiceBundleID) || isId(raw.serviceID) || isId(raw.serviceBundleID) || isId(raw.contractBlockID)) return 'agreement'
  if (isId(raw.ticketChargeID) || isId(raw.projectChargeID) || isId(raw.contractChargeID)) return 'product'
  return BILLING_ITEM_TYPES[raw.billingItemType] ?? 'other'
}

/** `amount` is `extendedPrice` (quantity × rate, before tax); tax sits on the invoice's totalTaxValue. */
export function mapBillingItem (raw: AtBillingItem, currency: Currency): PsaInvoiceLine {
  const name = raw.itemName ?? ''
  const detail = raw.description ?? ''
  return {
    externalId: String(raw.id),
    kind: lineKind(raw),
    description: name !== '' && detail !== '' && detail !== name ? `${name}: ${detail}` : (name !== '' ? name : detail),
    quantity: raw.quantity === null || raw.quantity === undefined ? '1' : decimalString(raw.quantity),
    unitPrice: raw.rate === null || raw.rate === undefined ? null : parseAmount(raw.rate, currency, 'half-away-from-zero'),
    amount: parseAmount(raw.extendedPrice ?? 0, currency, 'half-away-from-zero'),
    raw
  }
}

function isId (value: unknown): boolean {
  return typeof value === 'number' && value > 0
}

function decimalString (value: number): string {
  const text = String(value)
  return /e/i.test(text) ? value.toFixed(10).replace(/0+$/, '').replace(/\.$/, '') : text
}

const DATE = /^(\d{4}-\d{2}-\d{2})/

/** Autotask dates are datetimes; the calendar date is the part before 'T'. */
export function dateOnly (value: string, field: string): string {
  const match = DATE.exec(value)
  if (match?.[1] === undefined) throw new UpstreamError('autotask', 200, 'malformed_response', `${field} is not a date: ${JSON.stringify(value)}`, false)
  return match[1]
}

/** Autotask REST datetimes are UTC; some come without a zone designator. */
export function parseStamp (value: string, field: string): Date {
  const text = /(?:[zZ]|[+-]\d{2}:?\d{2})$/.test(value) ? value : `${value}Z`
  const ms = Date.parse(text)
  if (Number.isNaN(ms)) throw new UpstreamError('autotask', 200, 'malformed_response', `${field} is not a datetime: ${JSON.stringify(value)}`, false)
  return new Date(ms)
}
