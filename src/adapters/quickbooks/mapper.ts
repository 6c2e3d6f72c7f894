import { parseAmount, toDecimalString, type Currency, type Money } from '../../domain/money.js'
import type {
  AccountingAccount, AccountingCreditMemo, AccountingCustomer, AccountingDeposit, AccountingDepositLine, AccountingInvoice, AccountingItem,
  AccountingPayment, AccountingPaymentMethod, DepositPosting, JournalPosting, PaymentPosting
} from '../../ports/accounting.js'

type Obj = Record<string, any>

/** QBO sends amounts as JSON numbers (250.5); read them as decimal text so cents stay exact. */
export function cents (value: unknown, currency: Currency | string): Money {
  return parseAmount(String(value ?? 0), currency)
}
const cur = (o: Obj, fallback: Currency): Currency => (o?.CurrencyRef?.value ?? fallback) as Currency
const refId = (r: Obj | undefined): string | null => (r?.value === undefined || r.value === null) ? null : String(r.value)
const day = (s: unknown): string => String(s ?? '').slice(0, 10)
const updated = (o: Obj): Date => new Date(o?.MetaData?.LastUpdatedTime ?? 0)
/** Money → the decimal QBO wants (a JSON number built from exact text). */
export const amountOut = (m: Money): number => Number(toDecimalString(m))

export function toAccount (o: Obj): AccountingAccount {
  return { id: String(o.Id), name: String(o.Name), type: String(o.AccountType ?? ''), subType: o.AccountSubType ?? null, active: o.Active !== false, currency: o.CurrencyRef?.value ?? null }
}
export function toPaymentMethod (o: Obj): AccountingPaymentMethod {
  return { id: String(o.Id), name: String(o.Name), type: String(o.Type ?? ''), active: o.Active !== false }
}
export function toItem (o: Obj): AccountingItem {
  return { id: String(o.Id), name: String(o.Name), type: String(o.Type ?? ''), active: o.Active !== false }
}
export function toCustomer (o: Obj, home: Currency): AccountingCustomer {
  return { id: String(o.Id), displayName: String(o.DisplayName ?? ''), companyName: o.CompanyName ?? null, balance: cents(o.Balance, cur(o, home)), active: o.Active !== false, raw: o }
}
export function toInvoice (o: Obj, home: Currency): AccountingInvoice {
  const c = cur(o, home)
  return {
    id: String(o.Id), docNumber: o.DocNumber ?? null, customerId: String(o.CustomerRef?.value ?? ''), customerName: o.CustomerRef?.name ?? null,
    total: cents(o.TotalAmt, c), balance: cents(o.Balance, c), txnDate: day(o.TxnDate), dueDate: o.DueDate === undefined ? null : day(o.DueDate),
    syncToken: String(o.SyncToken ?? '0'), updatedAt: updated(o), raw: o
  }
}
/** RemainingCredit is the credit still to apply; Balance carries the same figure where RemainingCredit is absent. */
export function toCreditMemo (o: Obj, home: Currency): AccountingCreditMemo {
  const c = cur(o, home)
  return {
    id: String(o.Id), docNumber: o.DocNumber ?? null, customerId: String(o.CustomerRef?.value ?? ''), customerName: o.CustomerRef?.name ?? null,
    total: cents(o.TotalAmt, c), remainingCredit: cents(o.RemainingCredit ?? o.Balance, c), txnDate: day(o.TxnDate),
    syncToken: String(o.SyncToken ?? '0'), updatedAt: updated(o), raw: o
  }
}
export function toPayment (o: Obj, home: Currency): AccountingPayment {
  const c = cur(o, home)
  const applications: AccountingPayment['applications'] = []
  for (const line of (o.Line ?? []) as Obj[]) {
    for (const link of (line.LinkedTxn ?? []) as Obj[]) {
      if (link.TxnType === 'Invoice') applications.push({ invoiceId: String(link.TxnId), amount: cents(line.Amount, c) })
    }
  }
  return {
    id: String(o.Id), customerId: String(o.CustomerRef?.value ?? ''), total: cents(o.TotalAmt, c), unapplied: cents(o.UnappliedAmt, c),
    txnDate: day(o.TxnDate), reference: o.PaymentRefNum ?? null, note: o.PrivateNote ?? null, applications,
    depositToAccountId: refId(o.DepositToAccountRef), syncToken: String(o.SyncToken ?? '0'), updatedAt: updated(o), raw: o
  }
}
export function toDeposit (o: Obj, home: Currency): AccountingDeposit {
  const c = cur(o, home)
  const lines: AccountingDepositLine[] = ((o.Line ?? []) as Obj[]).map(line => {
    const out: AccountingDepositLine = { amount: cents(line.Amount, c) }
    const link = ((line.LinkedTxn ?? []) as Obj[]).find(l => l.TxnType === 'Payment')
    if (link !== undefined) out.paymentId = String(link.TxnId)
    const d = line.DepositLineDetail as Obj | undefined
    if (d?.AccountRef !== undefined) out.accountId = String(d.AccountRef.value)
    if (d?.Entity?.value !== undefined) out.customerId = String(d.Entity.value)
    if (line.Description !== undefined) out.description = String(line.Description)
    return out
  })
  return { id: String(o.Id), bankAccountId: String(o.DepositToAccountRef?.value ?? ''), txnDate: day(o.TxnDate), total: cents(o.TotalAmt, c), lines, note: o.PrivateNote ?? null, syncToken: String(o.SyncToken ?? '0'), raw: o }
}

export function paymentBody (p: PaymentPosting): Obj {
  const body: Obj = {
    CustomerRef: { value: p.customerId }, TotalAmt: amountOut(p.amount), TxnDate: p.txnDate, CurrencyRef: { value: p.amount.currency },
    DepositToAccountRef: { value: p.depositToAccountId }, PrivateNote: p.note.slice(0, 4000),
    Line: p.applications.map(a => ({ Amount: amountOut(a.amount), LinkedTxn: [{ TxnId: a.invoiceId, TxnType: 'Invoice' }] }))
  }
  if (p.paymentMethodId !== null) body.PaymentMethodRef = { value: p.paymentMethodId }
  if (p.reference !== null) body.PaymentRefNum = p.reference.slice(0, 21)
  return body
}
export function depositBody (d: DepositPosting): Obj {
  return {
    DepositToAccountRef: { value: d.bankAccountId }, TxnDate: d.txnDate, CurrencyRef: { value: d.currency }, PrivateNote: d.note.slice(0, 4000),
    Line: d.lines.map(l => {
      const line: Obj = { Amount: amountOut(l.amount) }
      if (l.description !== undefined) line.Description = l.description
      // A line that only links a payment carries no detail, so no DetailType (DetailType names the detail object present).
      if (l.paymentId !== undefined) line.LinkedTxn = [{ TxnId: l.paymentId, TxnType: 'Payment', TxnLineId: '0' }]
      else {
        const detail: Obj = { AccountRef: { value: l.accountId } }
        if (l.customerId !== undefined) detail.Entity = { value: l.customerId, type: 'Customer' }
        line.DetailType = 'DepositLineDetail'
        line.DepositLineDetail = detail
      }
      return line
    })
  }
}
/** Journal lines are unsigned in QBO: the sign becomes PostingType. */
export function journalBody (j: JournalPosting): Obj {
  return {
    TxnDate: j.txnDate, CurrencyRef: { value: j.currency }, PrivateNote: j.note.slice(0, 4000),
    Line: j.lines.map(l => {
      const detail: Obj = { PostingType: l.amount.amount >= 0 ? 'Debit' : 'Credit', AccountRef: { value: l.accountId } }
      if (l.customerId !== undefined) detail.Entity = { EntityRef: { value: l.customerId }, Type: 'Customer' }
      const line: Obj = { Amount: amountOut({ amount: Math.abs(l.amount.amount), currency: l.amount.currency }), DetailType: 'JournalEntryLineDetail', JournalEntryLineDetail: detail }
      if (l.description !== undefined) line.Description = l.description
      return line
    })
  }
}
