import type { ConnectWiseStore } from '../connectwise/store.js'
import type { SeedCreditMemo, SeedCustomer, SeedInvoice, SeedPayment } from './store.js'

/**
 * The deliberate differences between the ConnectWise stand-in and the QuickBooks
 * seed derived from it, so a tie-out has something to find. Doc numbers are the
 * ConnectWise invoice numbers (id + 9000), as a PSA→QBO sync would write them.
 */
export interface TieOutDifferences {
  /** In ConnectWise, never synced to QBO. */
  missingInQbo: string
  /** Total in QBO is this many cents higher ("edited after sync"). */
  editedAfterSync: { docNumber: string, deltaCents: number }
  /** A payment a bookkeeper applied by hand in QBO (not in ConnectWise). */
  paidByHandInQbo: { docNumber: string, amountCents: number }
}

const isoDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10)

export function seedFromConnectWise (cw: ConnectWiseStore): { customers: SeedCustomer[], invoices: SeedInvoice[], creditMemos: SeedCreditMemo[], payments: SeedPayment[], differences: TieOutDifferences } {
  // Credit memos sync as QBO CreditMemos (below), not invoices; voided ones do not sync at all.
  const synced = cw.invoices.filter(i => i.type !== 'CreditMemo' && i.statusId !== 4)
  const open = synced.filter(i => cw.balanceCents(i) > 0)
  if (open.length < 3) throw new Error('the ConnectWise store needs at least three open invoices')
  const doc = (id: number): string => String(id + 9000)
  const missing = open[0]
  const edited = open[1]
  const byHand = open[2]
  if (missing === undefined || edited === undefined || byHand === undefined) throw new Error('unreachable')
  const handCents = Math.min(cw.balanceCents(byHand), 10_000)
  const differences: TieOutDifferences = {
    missingInQbo: doc(missing.id),
    editedAfterSync: { docNumber: doc(edited.id), deltaCents: 2_500 },
    paidByHandInQbo: { docNumber: doc(byHand.id), amountCents: handCents }
  }
  const customers = cw.companies.map(c => ({ displayName: c.name }))
  const invoices: SeedInvoice[] = []
  for (const i of synced) {
    if (i.id === missing.id) continue
    const delta = i.id === edited.id ? differences.editedAfterSync.deltaCents : 0
    invoices.push({
      docNumber: doc(i.id),
      customerName: cw.companyOf(i).name,
      total: cw.totalCents(i) + delta,
      balance: cw.balanceCents(i) + delta,
      txnDate: isoDate(i.dateMs),
      dueDate: isoDate(i.dueMs)
    })
  }
  // ConnectWise signs a credit memo negative; QBO keeps it positive with its RemainingCredit. They agree: no planted difference here.
  const creditMemos: SeedCreditMemo[] = cw.invoices.filter(i => i.type === 'CreditMemo' && i.statusId !== 4).map(i => ({
    docNumber: doc(i.id),
    customerName: cw.companyOf(i).name,
    total: Math.abs(cw.totalCents(i)),
    remaining: Math.abs(cw.balanceCents(i)),
    txnDate: isoDate(i.dateMs)
  }))
  const payments: SeedPayment[] = [{ docNumber: differences.paidByHandInQbo.docNumber, amount: handCents, txnDate: isoDate(cw.now.getTime()), paymentMethod: 'Check', paymentRefNum: '10452' }]
  return { customers, invoices, creditMemos, payments, differences }
}
