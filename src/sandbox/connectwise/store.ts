/**
 * In-memory ConnectWise PSA tenant for the stand-in: deterministic MSP data
 * from a seeded PRNG. Invoices are kept compact (numbers, no wire objects,
 * lines regenerated from a per-invoice seed on demand) so 50,000 of them fit
 * in a few tens of MB; wire JSON is built per response.
 */
import { LOST_ANSWER_DEFAULTS, type LostAnswerFaults } from '../faults.js'
import { pick, prng } from '../random.js'
export type InvoiceType = 'Agreement' | 'Standard' | 'CreditMemo'

export interface SandboxCompany {
  id: number
  identifier: string
  name: string
  city: string
  state: string
  zip: string
  phone: string
  /** Managed-services agreement billed monthly. */
  agreementId: number
  agreementName: string
  agreementCents: number
  /** Sales tax on products, basis points. */
  taxBps: number
  lastUpdatedMs: number
}

export interface SandboxInvoice {
  id: number
  type: InvoiceType
  companyIndex: number
  dateMs: number
  dueMs: number
  statusId: number
  subtotalCents: number
  taxCents: number
  lastUpdatedMs: number
  lineSeed: number
  customerPO: string
}

export interface SandboxPayment {
  id: number
  invoiceId: number
  amountCents: number
  paymentDateMs: number
  type: string
  source: string
  /** The member identifier who applied it, as ConnectWise records it: a person at the screen, or the API member of the key used. */
  appliedBy: string
  lastUpdatedMs: number
}

export interface SandboxCallback {
  id: number
  description: string
  url: string
  objectId: number | null
  type: string
  level: string
  memberId: number | null
  payloadVersion: string
  inactiveFlag: boolean
  isSoapCallbackFlag: boolean
  isSelfSuppressedFlag: boolean
  connectWiseID: string
  lastUpdatedMs: number
}

/** A screen the Hosted API can place setups on (ConnectWiseHostedScreen). */
export interface SandboxHostedScreen { id: number, screenId: string, name: string }

/** A ConnectWiseHostedSetup record: a pod, tab or toolbar button. */
export interface SandboxHostedSetup {
  id: number
  screenId: number
  description: string
  url: string
  type: 'Tab' | 'Pod' | 'ToolbarButton'
  clientId: string
  origin: string
  podHeight: number | null
  toolbarButtonText: string
  toolbarButtonToolTip: string
  toolbarButtonDialogHeight: number | null
  toolbarButtonDialogWidth: number | null
  disabledFlag: boolean
  locationIds: number[]
  locationsEnabledFlag: boolean
  createdBy: string
  dateCreatedMs: number
  lastUpdatedMs: number
}

export interface Faults extends LostAnswerFaults {
  latencyMs: number
  /** Share of API requests answered 500, 0..1, spread evenly (deterministic). */
  errorRate: number
  /** The next N API requests get 429 with Retry-After: 1. */
  burst429: number
  /** Share of API requests answered 429 (Cloudflare's throttle), 0..1, drawn from a seeded sequence: bursts happen, as they do. */
  rate429: number
}

export interface ProductLine { id: number, identifier: string, description: string, quantity: number, priceE4: number, extCents: number, taxable: boolean }
export interface TimeLine { id: number, member: string, workType: string, notes: string, quarterHours: number, rateCents: number, extCents: number, startMs: number, ticketId: number }
export interface AgreementLine { recId: number, name: string, type: string, cents: number }
export interface InvoiceLines { agreements: AgreementLine[], products: ProductLine[], time: TimeLine[] }

export const STATUSES = {
  1: { id: 1, name: 'New', isClosed: false },
  2: { id: 2, name: 'Sent', isClosed: false },
  3: { id: 3, name: 'Closed', isClosed: true },
  4: { id: 4, name: 'Void', isClosed: true }
} as const
export type StatusId = keyof typeof STATUSES

/** The member who enters checks at the screen in the demo books (ConnectWise's appliedBy for a person). */
export const SANDBOX_ACCOUNTING_MEMBER = 'cwadmin'
/** The API member the sandbox key belongs to: what ConnectWise writes in appliedBy for a payment posted with that key. */
export const SANDBOX_API_MEMBER = 'SettleAPI'

const DAY = 86_400_000
const HOUR = 3_600_000


const between = (rand: () => number, min: number, max: number): number => min + Math.floor(rand() * (max - min + 1))

const NAME_A = ['Acme', 'Blue Ridge', 'Cedar', 'Summit', 'Harbor', 'Pioneer', 'Granite', 'Lakeside', 'Northwind', 'Redwood', 'Silver Creek', 'Oakmont', 'Riverbend', 'Keystone', 'Maple', 'Evergreen', 'Coastal', 'Prairie', 'Ironwood', 'Brightline']
const NAME_B = ['Dental', 'Law Group', 'Accounting', 'Family Medicine', 'Realty', 'Veterinary', 'Construction', 'Insurance', 'Logistics', 'Architects', 'Credit Union', 'Pediatrics', 'Engineering', 'Manufacturing', 'Chiropractic', 'Title Co']
const CITIES: ReadonlyArray<[string, string, string, number]> = [['Tampa', 'FL', '33602', 700], ['Austin', 'TX', '78701', 825], ['Denver', 'CO', '80202', 881], ['Portland', 'OR', '97204', 0], ['Raleigh', 'NC', '27601', 725], ['Columbus', 'OH', '43215', 750], ['Boise', 'ID', '83702', 600], ['Nashua', 'NH', '03060', 0]]
const PRODUCTS: ReadonlyArray<[string, string, number]> = [
  ['M365-BP', 'Microsoft 365 Business Premium', 220000],
  ['M365-BS', 'Microsoft 365 Business Standard', 125000],
  ['EDR-SEAT', 'Endpoint detection and response, per seat', 89950],
  ['BACKUP-TB', 'Cloud backup, per TB', 1249500],
  ['FW-SUB', 'Firewall security subscription', 4333333],
  ['DOMAIN', 'Domain renewal', 189900],
  ['LAPTOP-14', 'Business laptop 14"', 12999900],
  ['DOCK-USB-C', 'USB-C dock', 2299900]
]
const MEMBERS = ['jsmith', 'mgarcia', 'tnguyen', 'apatel', 'lchen']
const WORK = ['Remote Support', 'Onsite Support', 'Project Labor', 'After Hours']
const NOTES = ['Printer queue cleared', 'New user onboarding', 'VPN troubleshooting', 'Server patching', 'Email migration', 'Firewall rule change', 'Workstation rebuild', 'Backup restore test']
const TIERS: ReadonlyArray<[string, number]> = [['Managed Services - Bronze', 0], ['Managed Services - Silver', 1], ['Managed Services - Gold', 2]]

export interface StoreOptions { seed?: number, companies?: number, invoices?: number, now?: Date }

export interface ConnectWiseStore {
  readonly companyId: string
  readonly companyName: string
  readonly codebase: string
  readonly now: Date
  readonly companies: SandboxCompany[]
  /** Ascending by id. */
  readonly invoices: SandboxInvoice[]
  readonly callbacks: SandboxCallback[]
  faults: Faults
  invoice: (id: number) => SandboxInvoice | undefined
  company: (id: number) => SandboxCompany | undefined
  companyOf: (invoice: SandboxInvoice) => SandboxCompany
  linesOf: (invoice: SandboxInvoice) => InvoiceLines
  paymentsOf: (invoiceId: number) => readonly SandboxPayment[]
  totalCents: (invoice: SandboxInvoice) => number
  paidCents: (invoice: SandboxInvoice) => number
  balanceCents: (invoice: SandboxInvoice) => number
  /** Invoices sorted by (lastUpdated, id), cached until the next change. */
  byLastUpdated: () => readonly SandboxInvoice[]
  /** Records a change: lastUpdated moves past every other stamp (or to `at`). */
  touchInvoice: (id: number, changes?: { statusId?: StatusId, dueDate?: Date, customerPO?: string, at?: Date }) => SandboxInvoice
  /** Applies a payment; `appliedBy` defaults to the accounting person (a check entered at the screen). */
  addPayment: (invoiceId: number, payment: { amountCents: number, paymentDate: Date, type?: string, source?: string, appliedBy?: string }) => SandboxPayment
  /** Deletes a payment (the invoice reopens); false when there was none. */
  removePayment: (invoiceId: number, paymentId: number) => boolean
  addCallback: (entry: Omit<SandboxCallback, 'id' | 'lastUpdatedMs'>) => SandboxCallback
  /** Screens offered to the Hosted API; tests splice Invoice out to model tenants without invoice pods. */
  readonly hostedScreens: SandboxHostedScreen[]
  readonly hostedSetups: SandboxHostedSetup[]
  addHostedSetup: (entry: Omit<SandboxHostedSetup, 'id' | 'dateCreatedMs' | 'lastUpdatedMs' | 'createdBy'>) => SandboxHostedSetup
  /** What the fault switch says for the next API request. */
  nextFault: () => { latencyMs: number, status: 429 | 500 | null }
  /** The signing key the stand-in's callback key URL serves. */
  readonly callbackSigningKey: string
}

function uniqueName (used: Set<string>, name: string, city: string, index: number): string {
  const candidate = !used.has(name) ? name : !used.has(`${name} (${city})`) ? `${name} (${city})` : `${name} (${city} ${index})`
  used.add(candidate)
  return candidate
}

export function createConnectWiseStore (options: StoreOptions = {}): ConnectWiseStore {
  const seed = options.seed ?? 42
  const rand = prng(seed)
  const nowMs = Math.floor((options.now ?? new Date(Date.UTC(2026, 10, 15, 12))).getTime() / 1000) * 1000
  const companyCount = options.companies ?? 40
  const invoiceCount = options.invoices ?? 400

  const companies: SandboxCompany[] = []
  const usedIdentifiers = new Set<string>()
  const usedNames = new Set<string>()
  for (let i = 0; i < companyCount; i++) {
    const a = pick(rand, NAME_A)
    const b = pick(rand, NAME_B)
    let identifier = `${a}${b}`.replace(/[^A-Za-z0-9]/g, '').slice(0, 22)
    for (let n = 2; usedIdentifiers.has(identifier); n++) identifier = `${identifier.slice(0, 22)}${n}`
    usedIdentifiers.add(identifier)
    const [city, state, zip, taxBps] = pick(rand, CITIES)
    const [tierName, tier] = pick(rand, TIERS)
    const seats = between(rand, 5, 80)
    companies.push({
      id: 250 + i,
      identifier,
      // Two clients with one name are told apart by city, as an MSP would.
      name: uniqueName(usedNames, `${a} ${b}`, city, i),
      city,
      state,
      zip,
      phone: `555${String(between(rand, 1000000, 9999999))}`,
      agreementId: 100 + i,
      agreementName: tierName,
      agreementCents: seats * [6500, 9500, 14500][tier]!,
      taxBps,
      lastUpdatedMs: nowMs - between(rand, 30, 900) * DAY
    })
  }

  const linesCache = new Map<number, InvoiceLines>()
  function generateLines (inv: Pick<SandboxInvoice, 'id' | 'type' | 'companyIndex' | 'lineSeed' | 'dateMs'>): InvoiceLines {
    const r = prng(inv.lineSeed)
    const company = companies[inv.companyIndex]!
    const lines: InvoiceLines = { agreements: [], products: [], time: [] }
    let k = 0
    const product = (sign: 1 | -1): void => {
      const [identifier, description, priceE4] = pick(r, PRODUCTS)
      const quantity = between(r, 1, 25)
      // 4-decimal unit prices, extended price rounded half up to cents as ConnectWise prints it.
      const ext = Math.round((priceE4 * quantity) / 100)
      lines.products.push({ id: inv.id * 10 + k++, identifier, description, quantity, priceE4: sign * priceE4, extCents: sign * ext, taxable: identifier.startsWith('LAPTOP') || identifier.startsWith('DOCK') || r() < 0.3 })
    }
    if (inv.type === 'CreditMemo') {
      product(-1)
      return lines
    }
    if (inv.type === 'Agreement') {
      lines.agreements.push({ recId: company.agreementId, name: company.agreementName, type: 'Managed Services', cents: company.agreementCents })
      const extras = between(r, 0, 2)
      for (let i = 0; i < extras; i++) product(1)
      return lines
    }
    const entries = between(r, 1, 4)
    for (let i = 0; i < entries; i++) {
      const workType = pick(r, WORK)
      const rateCents = workType === 'After Hours' ? 22500 : workType === 'Onsite Support' ? 17500 : 15000
      const quarterHours = between(r, 1, 16)
      lines.time.push({ id: inv.id * 10 + k++, member: pick(r, MEMBERS), workType, notes: pick(r, NOTES), quarterHours, rateCents, extCents: quarterHours * rateCents / 4, startMs: inv.dateMs - between(r, 1, 25) * DAY + between(r, 8, 17) * HOUR, ticketId: 40000 + inv.id * 3 + i })
    }
    if (r() < 0.5) product(1)
    return lines
  }
  function linesOf (inv: SandboxInvoice): InvoiceLines {
    const hit = linesCache.get(inv.id)
    if (hit !== undefined) return hit
    const lines = generateLines(inv)
    // A small cache only: lines are cheap to regenerate and 50k invoices must stay compact.
    if (linesCache.size > 2000) linesCache.clear()
    linesCache.set(inv.id, lines)
    return lines
  }
  const sumLines = (l: InvoiceLines): { subtotal: number, taxable: number } => {
    let subtotal = 0
    let taxable = 0
    for (const a of l.agreements) subtotal += a.cents
    for (const p of l.products) { subtotal += p.extCents; if (p.taxable) taxable += p.extCents }
    for (const t of l.time) subtotal += t.extCents
    return { subtotal, taxable }
  }

  const invoices: SandboxInvoice[] = []
  const index = new Map<number, SandboxInvoice>()
  const payments = new Map<number, SandboxPayment[]>()
  let paymentId = 5000
  const creditMemoAt = Math.min(invoiceCount - 1, 13)
  const voidAt = Math.min(invoiceCount - 1, 7)
  for (let i = 0; i < invoiceCount; i++) {
    const id = 1001 + i
    const type: InvoiceType = i === creditMemoAt ? 'CreditMemo' : rand() < 0.55 ? 'Agreement' : 'Standard'
    const companyIndex = Math.floor(rand() * companies.length)
    // Ids rise with dates, as in a real tenant; the year before `now`.
    const dateMs = Math.floor((nowMs - 365 * DAY + Math.floor((i * 360) / Math.max(1, invoiceCount)) * DAY) / DAY) * DAY
    const lineSeed = (seed * 100_003 + id * 7919) >>> 0
    const lines = generateLines({ id, type, companyIndex, lineSeed, dateMs })
    const { subtotal, taxable } = sumLines(lines)
    const taxCents = Math.sign(taxable) * Math.round(Math.abs(taxable) * companies[companyIndex]!.taxBps / 10000)
    const invoice: SandboxInvoice = {
      id,
      type,
      companyIndex,
      dateMs,
      dueMs: dateMs + 30 * DAY,
      statusId: 2,
      subtotalCents: subtotal,
      taxCents,
      lastUpdatedMs: Math.min(nowMs - HOUR, dateMs + between(rand, 1, 48) * HOUR + between(rand, 0, 3599) * 1000),
      lineSeed,
      customerPO: rand() < 0.2 ? `PO-${between(rand, 10000, 99999)}` : ''
    }
    invoices.push(invoice)
    index.set(id, invoice)
    const total = subtotal + taxCents
    if (i === voidAt) { invoice.statusId = 4; continue }
    if (type === 'CreditMemo') continue
    const overdueFor = nowMs - invoice.dueMs
    const roll = rand()
    const paidShare = overdueFor > 10 * DAY ? (roll < 0.7 ? 1 : roll < 0.85 ? 0.5 : 0) : (roll < 0.2 ? 1 : roll < 0.3 ? 0.4 : 0)
    if (paidShare === 0) continue
    const paidAt = Math.min(nowMs - 2 * HOUR, invoice.dateMs + between(rand, 5, 40) * DAY + 14 * HOUR)
    const amountCents = paidShare === 1 ? total : Math.round(total * paidShare)
    payments.set(id, [{ id: paymentId++, invoiceId: id, amountCents, paymentDateMs: Math.floor(paidAt / DAY) * DAY, type: 'Payment', source: 'Check', appliedBy: SANDBOX_ACCOUNTING_MEMBER, lastUpdatedMs: paidAt }])
    invoice.lastUpdatedMs = Math.max(invoice.lastUpdatedMs, paidAt)
    if (paidShare === 1) invoice.statusId = 3
  }

  let sorted: SandboxInvoice[] | null = null
  const callbacks: SandboxCallback[] = []
  let callbackId = 1
  // Ids as a real tenant numbers them [check: ids vary per tenant; match by screenId/name, never by id].
  const hostedScreens: SandboxHostedScreen[] = [
    { id: 1, screenId: 'Ticket', name: 'Service Ticket' },
    { id: 2, screenId: 'Company', name: 'Company' },
    { id: 3, screenId: 'Contact', name: 'Contact' },
    { id: 4, screenId: 'SalesOrder', name: 'Sales Order' },
    { id: 5, screenId: 'Invoice', name: 'Invoice' }
  ]
  const hostedSetups: SandboxHostedSetup[] = []
  let hostedSetupId = 1
  let faultCounter = 0
  const throttleRand = prng(seed ^ 0x429)

  const totalCents = (inv: SandboxInvoice): number => inv.subtotalCents + inv.taxCents
  const paidCents = (inv: SandboxInvoice): number => (payments.get(inv.id) ?? []).reduce((s, p) => s + p.amountCents, 0)
  const maxStamp = (): number => invoices.reduce((m, inv) => Math.max(m, inv.lastUpdatedMs), nowMs)

  const store: ConnectWiseStore = {
    companyId: 'settledemo',
    companyName: 'Settle Demo MSP',
    codebase: 'v4_6_release/',
    now: new Date(nowMs),
    companies,
    invoices,
    callbacks,
    faults: { latencyMs: 0, errorRate: 0, burst429: 0, rate429: 0, ...LOST_ANSWER_DEFAULTS },
    callbackSigningKey: `sandbox-signing-key-${seed}`,
    invoice: id => index.get(id),
    company: id => companies.find(c => c.id === id),
    companyOf: inv => companies[inv.companyIndex]!,
    linesOf,
    paymentsOf: id => payments.get(id) ?? [],
    totalCents,
    paidCents,
    // A voided invoice is closed with nothing owed.
    balanceCents: inv => inv.statusId === 4 ? 0 : totalCents(inv) - paidCents(inv),
    byLastUpdated: () => {
      sorted ??= [...invoices].sort((a, b) => a.lastUpdatedMs - b.lastUpdatedMs || a.id - b.id)
      return sorted
    },
    touchInvoice (id, changes = {}) {
      const inv = index.get(id)
      if (inv === undefined) throw new Error(`no invoice ${id}`)
      if (changes.statusId !== undefined) inv.statusId = changes.statusId
      if (changes.dueDate !== undefined) inv.dueMs = changes.dueDate.getTime()
      if (changes.customerPO !== undefined) inv.customerPO = changes.customerPO
      inv.lastUpdatedMs = changes.at !== undefined ? changes.at.getTime() : maxStamp() + 1000
      sorted = null
      return inv
    },
    removePayment (invoiceId, id) {
      const inv = index.get(invoiceId)
      const list = payments.get(invoiceId) ?? []
      const at = list.findIndex(p => p.id === id)
      if (inv === undefined || at < 0) return false
      list.splice(at, 1)
      if (inv.statusId === 3) inv.statusId = 2
      inv.lastUpdatedMs = maxStamp() + 1000
      sorted = null
      return true
    },
    addPayment (invoiceId, payment) {
      const inv = index.get(invoiceId)
      if (inv === undefined) throw new Error(`no invoice ${invoiceId}`)
      const stamp = maxStamp() + 1000
      const record: SandboxPayment = { id: paymentId++, invoiceId, amountCents: payment.amountCents, paymentDateMs: payment.paymentDate.getTime(), type: payment.type ?? 'Payment', source: payment.source ?? 'API', appliedBy: payment.appliedBy ?? SANDBOX_ACCOUNTING_MEMBER, lastUpdatedMs: stamp }
      const list = payments.get(invoiceId) ?? []
      list.push(record)
      payments.set(invoiceId, list)
      if (totalCents(inv) - paidCents(inv) === 0) inv.statusId = 3
      inv.lastUpdatedMs = stamp
      sorted = null
      return record
    },
    hostedScreens,
    hostedSetups,
    addHostedSetup (entry) {
      const record: SandboxHostedSetup = { ...entry, id: hostedSetupId++, createdBy: 'SettleAPI', dateCreatedMs: Date.now(), lastUpdatedMs: Date.now() }
      hostedSetups.push(record)
      return record
    },
    addCallback (entry) {
      const record: SandboxCallback = { ...entry, id: callbackId++, lastUpdatedMs: maxStamp() }
      callbacks.push(record)
      return record
    },
    nextFault () {
      const f = store.faults
      if (f.burst429 > 0) { f.burst429--; return { latencyMs: f.latencyMs, status: 429 } }
      if (f.rate429 > 0 && throttleRand() < f.rate429) return { latencyMs: f.latencyMs, status: 429 }
      const n = faultCounter++
      // Evenly spaced errors: exactly round(rate × N) of every N requests, same sequence every run.
      const error = f.errorRate > 0 && Math.floor((n + 1) * f.errorRate) > Math.floor(n * f.errorRate)
      return { latencyMs: f.latencyMs, status: error ? 500 : null }
    }
  }
  return store
}
