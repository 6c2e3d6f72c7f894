/**
 * In-memory Autotask data for the stand-in: deterministic (seeded PRNG) MSP
 * companies, invoices and BillingItems. Kept compact for 50,000-invoice
 * benchmarks: an invoice is a few numbers, and its BillingItems are not
 * stored at all but regenerated from (seed, invoice id) when asked for, so
 * they always add up to the stored totals.
 */
import { LOST_ANSWER_DEFAULTS, type LostAnswerFaults } from '../faults.js'
import { pick, prng } from '../random.js'
export interface AutotaskStoreOptions {
  seed?: number
  companies?: number
  invoices?: number
  /** "Today" for the data (due dates, overdue, paid). */
  now?: Date
}

export interface AutotaskFaults extends LostAnswerFaults {
  /** Added to every request. */
  latencyMs: number
  /** Share of requests answered 500/503 (0..1), chosen by a seeded sequence, so runs repeat. */
  errorRate: number
  /** The next N requests answer 429 with Retry-After. */
  burst429: number
  /** Share of requests answered 429 with Retry-After (0..1), from the same seeded sequence as errorRate. */
  rate429: number
  retryAfterSeconds: number
}

interface StoredInvoice {
  id: number
  companyId: number
  /** Only set when written through PATCH; otherwise derived from the id. */
  number: string | null
  invoiceDay: number
  dueDay: number | null
  createdMs: number
  totalCents: number
  taxCents: number
  paidDay: number | null
  voidedMs: number | null
  webServiceMs: number | null
  credit: boolean
}

export interface StoredCompany { id: number, name: string, number: string, city: string, state: string, createdMs: number }

export interface StoredNote { id: number, companyID: number, name: string, note: string, actionType: number, assignedResourceID: number | null, createDateTime: string, startDateTime: string | null, endDateTime: string | null, completedDateTime: string | null }

export type WireRecord = Record<string, unknown>

export interface AutotaskStore {
  readonly seed: number
  readonly now: Date
  faults: AutotaskFaults
  /** Calls allowed per rolling clock hour before 429 (Autotask: 10,000). */
  hourlyLimit: number
  invoiceCount: () => number
  companies: () => WireRecord[]
  company: (id: number) => WireRecord | null
  /** Invoice ids in ascending order. */
  invoiceIds: () => readonly number[]
  invoice: (id: number) => WireRecord | null
  /** Lines of one invoice, ids ascending. */
  billingItems: (invoiceId: number) => WireRecord[]
  billingItem: (id: number) => WireRecord | null
  notes: () => readonly StoredNote[]
  addNote: (note: Omit<StoredNote, 'id' | 'createDateTime'>) => StoredNote
  /** Changes as the Autotask UI would make them (wire field names). */
  touchInvoice: (id: number, changes: Partial<{ paidDate: string | null, isVoided: boolean, invoiceNumber: string, webServiceDate: string | null, createDateTime: string }>) => WireRecord
  /** A new invoice (next id) created at `createDateTime` (default: now), returned in wire form. */
  addInvoice: (input?: { companyId?: number, createDateTime?: string }) => WireRecord
  /** Counts one call; returns seconds to wait when the hourly limit is spent. */
  countCall: (atMs?: number) => number | null
  callsThisHour: () => number
  /** Restarts the errorRate draws from another seed (the fault switch's `seed`). */
  reseedFaults: (seed: number) => void
  /** Deterministic draw for the errorRate fault. */
  nextFaultDraw: () => number
}

const DAY = 86_400_000
const COMPANY_BASE = 29_683_000
const INVOICE_BASE = 1_000
/** BillingItem id = invoice id × 10 + line index (≤ 9 lines), so a line finds its invoice without an index. */
const LINE_SLOTS = 10

const FIRST = ['Brightline', 'Cedar', 'Harbor', 'Summit', 'Lakeside', 'Northgate', 'Pioneer', 'Riverbend', 'Oakridge', 'Bluewater', 'Granite', 'Maple', 'Redwood', 'Silverline', 'Keystone', 'Evergreen']
const LAST = ['Dental', 'Law Group', 'Veterinary', 'Logistics', 'Accounting', 'Family Medicine', 'Realty', 'Architects', 'Insurance', 'Manufacturing', 'Credit Union', 'Schools']
const CITIES: Array<[string, string]> = [['Austin', 'TX'], ['Denver', 'CO'], ['Columbus', 'OH'], ['Raleigh', 'NC'], ['Boise', 'ID'], ['Tampa', 'FL'], ['Madison', 'WI'], ['Portland', 'OR']]
const SERVICES = [['Managed Services - Gold', 1250_00], ['Managed Services - Silver', 850_00], ['Backup & DR per server', 95_00], ['Microsoft 365 Business Premium', 22_00], ['Endpoint protection per device', 6_50], ['Managed firewall', 149_00]] as const
const PRODUCTS = [['Dell Latitude 5440 laptop', 1189_00], ['Ubiquiti U6 access point', 159_99], ['APC 1500VA UPS', 389_50], ['Samsung 27" monitor', 229_00], ['Cat6 patch cables (10 pack)', 24_95]] as const
const LABOUR = [['Remote support', 145_00], ['Onsite support', 165_00], ['Project engineering', 185_50], ['After-hours emergency', 225_00]] as const
const EXPENSES = [['Mileage', 67], ['Parking', 18_00], ['Travel meals', 42_35]] as const


const decimal = (cents: number): number => cents / 100
const isoDay = (day: number): string => `${new Date(day * DAY).toISOString().slice(0, 10)}T00:00:00Z`
const isoMs = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
const halfAway = (x: number): number => Math.sign(x) * Math.round(Math.abs(x))

interface LineSpec { type: number, subType: number, name: string, description: string, quantity: number, rateCents: number, extCents: number, taxCents: number, ref: Record<string, number> }

export function createAutotaskStore (options: AutotaskStoreOptions = {}): AutotaskStore {
  const seed = options.seed ?? 42
  const now = options.now ?? new Date('2026-11-20T12:00:00Z')
  const companyCount = options.companies ?? 40
  const invoiceCount = options.invoices ?? 400
  const rand = prng(seed)
  const today = Math.floor(now.getTime() / DAY)

  const companies: StoredCompany[] = []
  for (let i = 0; i < companyCount; i++) {
    const [city, state] = pick(rand, CITIES)
    companies.push({
      id: COMPANY_BASE + i,
      name: `${FIRST[i % FIRST.length] ?? 'Acme'} ${LAST[Math.floor(i / FIRST.length) % LAST.length] ?? 'Co'}${i >= FIRST.length * LAST.length ? ` ${i}` : ''}`,
      number: `C${String(1000 + i)}`,
      city,
      state,
      createdMs: now.getTime() - (900 + Math.floor(rand() * 900)) * DAY
    })
  }
  const companyById = new Map(companies.map(c => [c.id, c]))

  /** Lines from (seed, invoice id): the same every time, so they need no storage. */
  function lineSpecs (id: number, credit: boolean): LineSpec[] {
    const r = prng((seed * 2654435761) ^ id)
    if (credit) {
      const [name, price] = pick(r, PRODUCTS)
      return [{ type: 4, subType: 2, name: `Credit: returned ${name}`, description: 'RMA credit', quantity: -1, rateCents: price, extCents: -price, taxCents: 0, ref: { ticketChargeID: 700_000 + id } }]
    }
    const lines: LineSpec[] = []
    const seats = 5 + Math.floor(r() * 60)
    const [service, price] = pick(r, SERVICES)
    const perSeat = price < 200_00
    const qty = perSeat ? seats : 1
    lines.push({ type: 5, subType: 5, name: service, description: 'Monthly recurring service', quantity: qty, rateCents: price, extCents: qty * price, taxCents: 0, ref: { contractServiceID: 500_000 + (id % 997), contractID: 40_000 + (id % 97) } })
    if (r() < 0.55) {
      const [name, rate] = pick(r, LABOUR)
      const quarters = 1 + Math.floor(r() * 24)
      lines.push({ type: 1, subType: 1, name, description: `Ticket T2026.${String(id).padStart(5, '0')}`, quantity: quarters / 4, rateCents: rate, extCents: halfAway(quarters * rate / 4), taxCents: 0, ref: { timeEntryID: 800_000 + id, ticketID: 900_000 + id } })
    }
    if (r() < 0.3) {
      const [name, price] = pick(r, PRODUCTS)
      const count = 1 + Math.floor(r() * 4)
      const ext = count * price
      const taxed = r() < 0.4
      lines.push({ type: 4, subType: 2, name, description: 'Hardware', quantity: count, rateCents: price, extCents: ext, taxCents: taxed ? halfAway(ext * 825 / 10_000) : 0, ref: { ticketChargeID: 700_000 + id } })
    }
    if (r() < 0.1) {
      const [name, rate] = pick(r, EXPENSES)
      const qty = name === 'Mileage' ? 20 + Math.floor(r() * 120) : 1
      lines.push({ type: 2, subType: 3, name, description: 'Onsite visit expense', quantity: qty, rateCents: rate, extCents: qty * rate, taxCents: 0, ref: { expenseItemID: 600_000 + id } })
    }
    return lines
  }

  const invoices: StoredInvoice[] = []
  const invoiceIndex = new Map<number, number>()
  const spanDays = Math.max(60, Math.min(540, Math.ceil(invoiceCount / Math.max(1, companyCount)) * 30))
  const startMs = now.getTime() - spanDays * DAY
  const stepMs = Math.floor((spanDays - 2) * DAY / Math.max(1, invoiceCount))

  function makeInvoice (i: number, id: number, companyId: number, createdMs: number, credit: boolean): StoredInvoice {
    const specs = lineSpecs(id, credit)
    const net = specs.reduce((s, l) => s + l.extCents, 0)
    const tax = specs.reduce((s, l) => s + l.taxCents, 0)
    const invoiceDay = Math.floor(createdMs / DAY)
    const dueDay = i % 19 === 5 ? null : invoiceDay + 30
    const age = today - invoiceDay
    // Old invoices are mostly paid; the unpaid ones past due are the overdue set.
    const paid = !credit && (age > 45 ? rand() < 0.85 : age > 10 ? rand() < 0.4 : false)
    return { id, companyId, number: null, invoiceDay, dueDay, createdMs, totalCents: net + tax, taxCents: tax, paidDay: paid ? Math.min(today, invoiceDay + 5 + Math.floor(rand() * 30)) : null, voidedMs: null, webServiceMs: null, credit }
  }

  for (let i = 0; i < invoiceCount; i++) {
    const id = INVOICE_BASE + i
    // Strictly increasing with id, as Autotask hands out ids at creation.
    const createdMs = startMs + i * stepMs + Math.floor(rand() * Math.max(1, stepMs - 1000))
    const companyId = companies.length === 0 ? COMPANY_BASE : (companies[Math.floor(rand() * companies.length)]?.id ?? COMPANY_BASE)
    const inv = makeInvoice(i, id, companyId, Math.floor(createdMs / 1000) * 1000, i === 11)
    if (i === 7) { inv.voidedMs = inv.createdMs + 2 * DAY; inv.paidDay = null }
    invoiceIndex.set(id, invoices.length)
    invoices.push(inv)
  }
  let ids: number[] | null = null

  const notes: StoredNote[] = []
  let hourStart = 0
  let hourCalls = 0
  let faultRand = prng(seed ^ 0x5eed)

  function toWire (inv: StoredInvoice): WireRecord {
    return {
      id: inv.id,
      batchID: 100 + Math.floor((inv.invoiceDay % 3650) / 30),
      comments: null,
      companyID: inv.companyId,
      createDateTime: isoMs(inv.createdMs),
      creatorResourceID: 29682885,
      dueDate: inv.dueDay === null ? null : isoDay(inv.dueDay),
      fromDate: isoDay(inv.invoiceDay - 30),
      invoiceDateTime: isoDay(inv.invoiceDay),
      invoiceEditorTemplateID: 102,
      invoiceNumber: inv.number ?? `INV-${String(inv.id).padStart(6, '0')}`,
      invoiceTotal: decimal(inv.totalCents),
      isVoided: inv.voidedMs !== null,
      orderNumber: inv.id % 13 === 0 ? `PO-${inv.id % 10_000}` : null,
      paidDate: inv.paidDay === null ? null : isoDay(inv.paidDay),
      paymentTerm: inv.dueDay === null ? null : 3,
      taxGroup: inv.taxCents > 0 ? 2 : null,
      taxRegionName: inv.taxCents > 0 ? 'Texas - Austin' : null,
      toDate: isoDay(inv.invoiceDay - 1),
      totalTaxValue: decimal(inv.taxCents),
      voidedByResourceID: inv.voidedMs === null ? null : 29682885,
      voidedDate: inv.voidedMs === null ? null : isoMs(inv.voidedMs),
      webServiceDate: inv.webServiceMs === null ? null : isoMs(inv.webServiceMs),
      userDefinedFields: []
    }
  }

  function lineWire (inv: StoredInvoice, spec: LineSpec, index: number): WireRecord {
    return {
      id: inv.id * LINE_SLOTS + index,
      accountManagerWhenApprovedID: 29682885,
      billingCodeID: 29682800 + spec.type,
      billingItemType: spec.type,
      companyID: inv.companyId,
      configurationItemID: null,
      contractChargeID: null,
      contractID: spec.ref.contractID ?? null,
      contractServiceID: spec.ref.contractServiceID ?? null,
      description: spec.description,
      expenseItemID: spec.ref.expenseItemID ?? null,
      extendedPrice: decimal(spec.extCents),
      internalCurrencyExtendedPrice: decimal(spec.extCents),
      internalCurrencyRate: decimal(spec.rateCents),
      internalCurrencyTaxDollars: decimal(spec.taxCents),
      internalCurrencyTotalAmount: decimal(spec.extCents + spec.taxCents),
      invoiceID: inv.id,
      itemApproverID: 29682885,
      itemDate: isoDay(inv.invoiceDay - 3),
      itemName: spec.name,
      lineItemFullDescription: `${spec.name} - ${spec.description}`,
      lineItemGroupDescription: null,
      nonBillable: 0,
      ourCost: decimal(Math.round(spec.rateCents * 0.6)),
      postedDate: isoDay(inv.invoiceDay),
      postedOnTime: isoMs(inv.createdMs),
      projectChargeID: null,
      projectID: null,
      quantity: spec.quantity,
      rate: decimal(spec.rateCents),
      roleID: spec.type === 1 ? 29683461 : null,
      serviceID: spec.ref.contractServiceID === undefined ? null : 3000 + (spec.ref.contractServiceID % 6),
      subType: spec.subType,
      taxDollars: decimal(spec.taxCents),
      ticketChargeID: spec.ref.ticketChargeID ?? null,
      ticketID: spec.ref.ticketID ?? null,
      timeEntryID: spec.ref.timeEntryID ?? null,
      totalAmount: decimal(spec.extCents + spec.taxCents),
      webServiceDate: null,
      userDefinedFields: []
    }
  }

  const find = (id: number): StoredInvoice | undefined => {
    const index = invoiceIndex.get(id)
    return index === undefined ? undefined : invoices[index]
  }

  const companyWire = (c: StoredCompany): WireRecord => ({
    id: c.id,
    companyName: c.name,
    companyNumber: c.number,
    companyType: 1,
    isActive: true,
    phone: `(555) 01${String(c.id % 100).padStart(2, '0')}`,
    address1: `${100 + (c.id % 900)} Main St`,
    city: c.city,
    state: c.state,
    postalCode: String(10_000 + (c.id % 89_999)),
    // Read-only bill-to address; the stand-in bills every company at its own address.
    billingAddress1: `${100 + (c.id % 900)} Main St`,
    billToCity: c.city,
    billToState: c.state,
    billToZipCode: String(10_000 + (c.id % 89_999)),
    countryID: 237,
    currencyID: null,
    ownerResourceID: 29682885,
    parentCompanyID: null,
    createDate: isoMs(c.createdMs),
    lastActivityDate: isoMs(now.getTime() - (c.id % 20) * DAY),
    lastTrackedModifiedDateTime: isoMs(now.getTime() - (c.id % 40) * DAY),
    isTaxExempt: false,
    webAddress: null,
    userDefinedFields: []
  })

  const store: AutotaskStore = {
    seed,
    now,
    faults: { latencyMs: 0, errorRate: 0, burst429: 0, rate429: 0, retryAfterSeconds: 1, ...LOST_ANSWER_DEFAULTS },
    hourlyLimit: 10_000,
    invoiceCount: () => invoices.length,
    companies: () => companies.map(companyWire),
    company: id => { const c = companyById.get(id); return c === undefined ? null : companyWire(c) },
    invoiceIds: () => (ids ??= invoices.map(i => i.id)),
    invoice: id => { const inv = find(id); return inv === undefined ? null : toWire(inv) },
    billingItems: invoiceId => {
      const inv = find(invoiceId)
      return inv === undefined ? [] : lineSpecs(inv.id, inv.credit).map((spec, index) => lineWire(inv, spec, index))
    },
    billingItem: id => store.billingItems(Math.floor(id / LINE_SLOTS)).find(item => item.id === id) ?? null,
    notes: () => notes,
    addNote: note => {
      const stored: StoredNote = { ...note, id: 30_000_000 + notes.length + 1, createDateTime: isoMs(Date.now()) }
      notes.push(stored)
      return stored
    },
    touchInvoice: (id, changes) => {
      const inv = find(id)
      if (inv === undefined) throw new Error(`no invoice ${id}`)
      if (changes.paidDate !== undefined) inv.paidDay = changes.paidDate === null ? null : Math.floor(Date.parse(changes.paidDate.slice(0, 10)) / DAY)
      if (changes.isVoided !== undefined) inv.voidedMs = changes.isVoided ? Date.now() : null
      if (changes.invoiceNumber !== undefined) inv.number = changes.invoiceNumber
      if (changes.webServiceDate !== undefined) inv.webServiceMs = changes.webServiceDate === null ? null : Date.parse(changes.webServiceDate)
      if (changes.createDateTime !== undefined) inv.createdMs = Date.parse(changes.createDateTime)
      return toWire(inv)
    },
    addInvoice: input => {
      const last = invoices[invoices.length - 1]
      const id = (last?.id ?? INVOICE_BASE - 1) + 1
      const createdMs = input?.createDateTime === undefined ? Math.floor(Date.now() / 1000) * 1000 : Date.parse(input.createDateTime)
      const inv = makeInvoice(invoices.length, id, input?.companyId ?? companies[0]?.id ?? COMPANY_BASE, createdMs, false)
      inv.paidDay = null
      invoiceIndex.set(id, invoices.length)
      invoices.push(inv)
      ids = null
      return toWire(inv)
    },
    countCall: (atMs = Date.now()) => {
      const hour = Math.floor(atMs / 3_600_000) * 3_600_000
      if (hour !== hourStart) { hourStart = hour; hourCalls = 0 }
      hourCalls++
      if (hourCalls > store.hourlyLimit) return Math.max(1, Math.ceil((hourStart + 3_600_000 - atMs) / 1000))
      return null
    },
    callsThisHour: () => hourCalls,
    reseedFaults: s => { faultRand = prng(s ^ 0x5eed) },
    nextFaultDraw: () => faultRand()
  }
  return store
}
