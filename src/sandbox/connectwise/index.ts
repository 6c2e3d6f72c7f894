import { installFaultSwitch, isRestWrite } from '../faults.js'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ConditionSyntaxError, evaluate, fieldsOf, getPath, parseConditions, wirePaths, type Node } from './conditions.js'
import { SANDBOX_API_MEMBER, STATUSES, type ConnectWiseStore, type ProductLine, type SandboxCallback, type SandboxCompany, type SandboxHostedSetup, type SandboxInvoice, type SandboxPayment, type TimeLine } from './store.js'
import { simplePdf } from '../pdf.js'

export { createConnectWiseStore, SANDBOX_ACCOUNTING_MEMBER, SANDBOX_API_MEMBER } from './store.js'
export type { ConnectWiseStore, Faults, StoreOptions } from './store.js'

export interface ConnectWiseCredentials { companyId: string, publicKey: string, privateKey: string, clientId: string }

/** Demo credentials the embedded default uses; not secrets (the stand-in holds no real data). */
export const CONNECTWISE_SANDBOX_CREDENTIALS: ConnectWiseCredentials = {
  companyId: 'settledemo',
  publicKey: 'sandboxPublicKey',
  privateKey: 'sandboxPrivateKey',
  clientId: '00000000-0000-4000-8000-0000000c0de5'
}

export const CONNECTWISE_SANDBOX_PREFIX = '/sandbox/connectwise'

/**
 * The demo member the demo host page sends from getMemberAuthentication. The
 * stand-in accepts member cookie auth (companyName, memberHash, MemberID,
 * MemberContext + clientId) for this member and hash only; not a secret.
 */
export const CONNECTWISE_SANDBOX_MEMBER = {
  memberId: 'demo.tech',
  memberHash: 'c2V0dGxlLWRlbW8tbWVtYmVyLWhhc2g',
  memberContext: 'demo-context-1',
  memberEmail: 'demo.tech@brightline.example'
} as const

/** `site` for the adapter from a listening server's address, e.g. http://127.0.0.1:3000/sandbox/connectwise. */
export function connectwiseSandboxSite (address: string | { port: number, address?: string }, prefix = CONNECTWISE_SANDBOX_PREFIX): string {
  const origin = typeof address === 'string' ? address.replace(/\/+$/, '') : `http://${address.address !== undefined && address.address !== '::' && address.address !== '0.0.0.0' ? address.address : '127.0.0.1'}:${address.port}`
  return `${origin}${prefix}`
}

export interface ConnectWiseSandboxOptions {
  store: ConnectWiseStore
  credentials?: ConnectWiseCredentials
  prefix?: string
}

const API = '/v4_6_release/apis/3.0'
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
const dec = (cents: number): number => cents / 100
const dec4 = (e4: number): number => e4 / 10000
const USD = { id: 7, symbol: '$', currencyCode: 'USD', decimalSeparator: '.', numberOfDecimals: 2, thousandsSeparator: ',', negativeParenthesesFlag: false, displaySymbolFlag: true, currencyIdentifier: 'USD', displayIdFlag: false, rightAlign: false, name: 'US Dollars', _info: { currency_href: `${API}/finance/currencies/7` } }

function cwError (reply: FastifyReply, status: number, code: string, message: string, errors?: Array<Record<string, string>>): FastifyReply {
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(errors === undefined ? { code, message } : { code, message, errors })
}

export function companyRef (c: SandboxCompany): Record<string, unknown> {
  return { id: c.id, identifier: c.identifier, name: c.name, _info: { company_href: `${API}/company/companies/${c.id}` } }
}

export function companyWire (c: SandboxCompany): Record<string, unknown> {
  return {
    id: c.id,
    identifier: c.identifier,
    name: c.name,
    status: { id: 1, name: 'Active', _info: {} },
    addressLine1: '100 Main Street',
    city: c.city,
    state: c.state,
    zip: c.zip,
    country: { id: 1, name: 'United States', _info: {} },
    phoneNumber: c.phone,
    faxNumber: '',
    website: `www.${c.identifier.toLowerCase()}.example`,
    territory: { id: 1, name: 'Main', _info: {} },
    accountNumber: `A${c.id}`,
    dateAcquired: iso(c.lastUpdatedMs - 400 * 86_400_000),
    annualRevenue: null,
    leadFlag: false,
    unsubscribeFlag: false,
    billingTerms: { id: 1, name: 'Net 30', _info: {} },
    deletedFlag: false,
    mobileGuid: null,
    currency: USD,
    isVendorFlag: false,
    types: [{ id: 1, name: 'Client', _info: {} }],
    site: { id: c.id * 10, name: 'Main', _info: {} },
    _info: { lastUpdated: iso(c.lastUpdatedMs), updatedBy: 'cwadmin', dateEntered: iso(c.lastUpdatedMs - 400 * 86_400_000), enteredBy: 'cwadmin' },
    customFields: []
  }
}

function invoiceWire (store: ConnectWiseStore, inv: SandboxInvoice): Record<string, unknown> {
  const c = store.companyOf(inv)
  const lines = store.linesOf(inv)
  const status = STATUSES[inv.statusId as keyof typeof STATUSES]
  let products = 0
  let services = 0
  let agreement = 0
  for (const p of lines.products) products += p.extCents
  for (const t of lines.time) services += t.extCents
  for (const a of lines.agreements) agreement += a.cents
  return {
    id: inv.id,
    invoiceNumber: String(inv.id + 9000),
    type: inv.type,
    status: { id: status.id, name: status.name, isClosed: status.isClosed, _info: {} },
    company: companyRef(c),
    billToCompany: companyRef(c),
    shipToCompany: companyRef(c),
    accountNumber: `A${c.id}`,
    applyToType: 'All',
    applyToId: null,
    attention: 'Accounts Payable',
    billingSite: { id: c.id * 10, name: 'Main', _info: {} },
    billingSiteAddressLine1: '100 Main Street',
    billingSiteCity: c.city,
    billingSiteState: c.state,
    billingSiteZip: c.zip,
    billingSiteCountry: 'United States',
    billingTerms: { id: 1, name: 'Net 30', _info: {} },
    reference: '',
    customerPO: inv.customerPO,
    templateSetupId: 1,
    emailTemplateId: null,
    addToBatchEmailList: false,
    date: iso(inv.dateMs),
    restrictDownpaymentFlag: false,
    locationId: 2,
    location: { id: 2, name: 'Tampa Office', _info: {} },
    departmentId: 10,
    department: { id: 10, identifier: 'Services', name: 'Services', _info: {} },
    territoryId: 1,
    territory: { id: 1, name: 'Main', _info: {} },
    topComment: '',
    bottomComment: 'Thank you for your business.',
    taxableFlag: inv.taxCents !== 0,
    taxCode: { id: 11, name: c.state, _info: {} },
    internalNotes: '',
    downpaymentPreviouslyTaxedFlag: false,
    serviceTotal: dec(services),
    overrideDownPaymentAmountFlag: false,
    currency: USD,
    dueDate: iso(inv.dueMs),
    expenseTotal: 0,
    productTotal: dec(products),
    previousProgressApplied: 0,
    serviceAdjustmentAmount: 0,
    agreementAmount: dec(agreement),
    downpaymentApplied: 0,
    subtotal: dec(inv.subtotalCents),
    total: dec(store.totalCents(inv)),
    remainingDownpayment: 0,
    salesTax: dec(inv.taxCents),
    adjustmentReason: '',
    adjustedBy: '',
    closedBy: status.isClosed ? 'cwadmin' : '',
    payments: dec(store.paidCents(inv)),
    credits: 0,
    balance: dec(store.balanceCents(inv)),
    specialInvoiceFlag: false,
    ...(lines.agreements[0] !== undefined ? { agreement: { id: lines.agreements[0].recId, name: lines.agreements[0].name, type: lines.agreements[0].type, chargeFirmFlag: false, _info: {} } } : {}),
    _info: { lastUpdated: iso(inv.lastUpdatedMs), updatedBy: 'cwadmin', dateEntered: iso(inv.dateMs), enteredBy: 'cwadmin', payments_href: `${API}/finance/invoices/${inv.id}/payments` },
    customFields: []
  }
}

function invoiceRef (inv: SandboxInvoice): Record<string, unknown> {
  return { id: inv.id, identifier: String(inv.id + 9000), billingType: inv.type, applyToType: 'All', invoiceDate: iso(inv.dateMs), chargeFirmFlag: false, _info: { invoice_href: `${API}/finance/invoices/${inv.id}` } }
}

/** A ProductItem as /finance/info/invoice and /procurement/products both carry it. */
function productWire (inv: SandboxInvoice, c: SandboxCompany, p: ProductLine, i: number): Record<string, unknown> {
  return {
    id: p.id,
    catalogItem: { id: 300 + i, identifier: p.identifier, _info: {} },
    description: p.description,
    sequenceNumber: i + 1,
    quantity: p.quantity,
    unitOfMeasure: { id: 1, name: 'Each', _info: {} },
    price: dec4(p.priceE4),
    cost: dec4(Math.round(p.priceE4 * 0.7)),
    extPrice: dec(p.extCents),
    extCost: dec(Math.round(p.extCents * 0.7)),
    discount: 0,
    margin: dec(p.extCents - Math.round(p.extCents * 0.7)),
    agreementAmount: 0,
    priceMethod: 'FlatRateForRange',
    billableOption: 'Billable',
    locationId: 2,
    businessUnitId: 10,
    taxableFlag: p.taxable,
    dropshipFlag: false,
    specialOrderFlag: false,
    phaseProductFlag: false,
    cancelledFlag: false,
    quantityCancelled: 0,
    customerDescription: p.description,
    productSuppliedFlag: false,
    invoice: invoiceRef(inv),
    company: companyRef(c),
    _info: {},
    customFields: []
  }
}

/** A TimeEntry as /finance/info/invoice and /time/entries both carry it. */
function timeEntryWire (inv: SandboxInvoice, c: SandboxCompany, t: TimeLine): Record<string, unknown> {
  return {
    id: t.id,
    company: companyRef(c),
    companyType: 'Client',
    chargeToId: t.ticketId,
    chargeToType: 'ServiceTicket',
    member: { id: 1 + t.member.length, identifier: t.member, name: t.member, dailyCapacity: 8, _info: {} },
    locationId: 2,
    businessUnitId: 10,
    workType: { id: 1 + t.workType.length, name: t.workType, utilizationFlag: true, _info: {} },
    workRole: { id: 3, name: 'Engineer', _info: {} },
    timeStart: iso(t.startMs),
    timeEnd: iso(t.startMs + t.quarterHours * 900_000),
    hoursDeduct: 0,
    actualHours: t.quarterHours / 4,
    billableOption: 'Billable',
    notes: t.notes,
    hoursBilled: t.quarterHours / 4,
    invoiceHours: t.quarterHours / 4,
    hourlyRate: dec(t.rateCents),
    extendedInvoiceAmount: dec(t.extCents),
    invoice: invoiceRef(inv),
    ticket: { id: t.ticketId, summary: t.notes, _info: {} },
    status: 'Billed',
    invoiceFlag: true,
    _info: { lastUpdated: iso(t.startMs), updatedBy: t.member },
    customFields: []
  }
}

function invoiceInfoWire (store: ConnectWiseStore, inv: SandboxInvoice): Record<string, unknown> {
  const c = store.companyOf(inv)
  const lines = store.linesOf(inv)
  return {
    id: inv.id,
    invoice: invoiceWire(store, inv),
    products: lines.products.map((p, i) => productWire(inv, c, p, i)),
    bundledComponentsInfo: [],
    expenses: [],
    timeEntries: lines.time.map(t => timeEntryWire(inv, c, t)),
    agreementBillingInfo: lines.agreements.map(a => ({ agreementName: a.name, agreementType: a.type, agreementAmount: dec(a.cents), agreementRecId: a.recId, parentRecId: 0 })),
    _info: {}
  }
}

function paymentWire (store: ConnectWiseStore, p: SandboxPayment): Record<string, unknown> {
  const inv = store.invoice(p.invoiceId)!
  return {
    id: p.id,
    type: p.type,
    source: p.source,
    invoice: invoiceRef(inv),
    amount: dec(p.amountCents),
    balance: dec(store.balanceCents(inv)),
    invoiceBalance: dec(store.balanceCents(inv)),
    invoiceTotal: dec(store.totalCents(inv)),
    paymentDate: iso(p.paymentDateMs),
    appliedBy: p.appliedBy,
    _info: { lastUpdated: iso(p.lastUpdatedMs), updatedBy: p.appliedBy },
    paymentSyncStatus: 'NotSynced',
    paymentAccount: '',
    aRPaymentAccount: ''
  }
}

function callbackWire (c: SandboxCallback): Record<string, unknown> {
  const { lastUpdatedMs, ...rest } = c
  return { ...rest, _info: { lastUpdated: iso(lastUpdatedMs), updatedBy: 'SettleAPI' } }
}

const CALLBACK_TEMPLATE = callbackWire({ id: 0, description: '', url: '', objectId: null, type: '', level: '', memberId: null, payloadVersion: '', inactiveFlag: false, isSoapCallbackFlag: false, isSelfSuppressedFlag: false, connectWiseID: '', lastUpdatedMs: 0 })

/** An ExpenseEntry's fields (contract model), for the expense list's field checks. */
const EXPENSE_TEMPLATE: Record<string, unknown> = {
  id: 0, expenseReport: { id: 0, name: '' }, company: { id: 0, identifier: '', name: '' }, chargeToId: 0, chargeToType: '', type: { id: 0, name: '' }, member: { id: 0, identifier: '', name: '' },
  paymentMethod: { id: 0, name: '' }, classification: { id: 0, name: '' }, amount: 0, billableOption: '', date: '', locationId: 0, businessUnitId: 0, notes: '', agreement: { id: 0, name: '' },
  invoiceAmount: 0, mobileGuid: '', taxes: [], invoice: { id: 0, identifier: '' }, currency: { id: 0, name: '' }, status: '', billAmount: 0, agreementAmount: 0,
  odometerStart: 0, odometerEnd: 0, ticket: { id: 0, summary: '' }, project: { id: 0, name: '' }, phase: { id: 0, name: '' }, _info: { lastUpdated: '' }, customFields: []
}

/** ConnectWise refuses a field its model does not have (it never answers an empty page for it); null when all are known. */
function unknownFieldRefusal (reply: FastifyReply, filter: Node | null, order: ReadonlyArray<{ field: string }>, sample: Record<string, unknown> | undefined): FastifyReply | null {
  if (sample === undefined) return null
  const known = wirePaths(sample)
  const badCondition = filter === null ? undefined : fieldsOf(filter).find(f => !known.has(f))
  if (badCondition !== undefined) return cwError(reply, 400, 'InvalidObject', `conditions: ${badCondition} is not a valid field`, [{ code: 'InvalidField', message: `Unknown field ${badCondition}`, resource: 'conditions', field: 'conditions' }])
  const badOrder = order.find(t => !known.has(t.field))
  if (badOrder !== undefined) return cwError(reply, 400, 'InvalidObject', `orderBy: ${badOrder.field} is not a valid field`, [{ code: 'InvalidField', message: `Unknown field ${badOrder.field}`, resource: 'orderBy', field: 'orderBy' }])
  return null
}

function hostedSetupWire (h: SandboxHostedSetup): Record<string, unknown> {
  const { lastUpdatedMs, dateCreatedMs, ...rest } = h
  return { ...rest, dateCreated: iso(dateCreatedMs), _info: { lastUpdated: iso(lastUpdatedMs), updatedBy: 'SettleAPI' } }
}

const HOSTED_TYPES = ['Tab', 'Pod', 'ToolbarButton'] as const
type HostedFields = Omit<SandboxHostedSetup, 'id' | 'dateCreatedMs' | 'lastUpdatedMs' | 'createdBy'>

/** Validates a ConnectWiseHostedSetup body against the contract's required fields and lengths; the first problem wins. */
function hostedSetupFields (store: ConnectWiseStore, raw: unknown): HostedFields | { field: string, message: string } {
  const b = (raw ?? {}) as Record<string, unknown>
  const str = (k: string): string => typeof b[k] === 'string' ? b[k] as string : ''
  const num = (k: string): number | null => typeof b[k] === 'number' ? b[k] as number : null
  if (typeof b.screenId !== 'number') return { field: 'screenId', message: 'screenId is required' }
  if (!store.hostedScreens.some(s => s.id === b.screenId)) return { field: 'screenId', message: `screenId ${String(b.screenId)} is not a hosted screen` }
  if (str('description') === '') return { field: 'description', message: 'description is required' }
  if (str('description').length > 50) return { field: 'description', message: 'description may not exceed 50 characters' }
  if (str('url') === '') return { field: 'url', message: 'url is required' }
  if (str('url').length > 1024) return { field: 'url', message: 'url may not exceed 1024 characters' }
  if (!HOSTED_TYPES.includes(b.type as never)) return { field: 'type', message: 'type must be Tab, Pod or ToolbarButton' }
  if (b.type === 'ToolbarButton' && str('toolbarButtonText') === '') return { field: 'toolbarButtonText', message: 'toolbarButtonText is required for toolbar buttons' }
  if (str('toolbarButtonText').length > 50) return { field: 'toolbarButtonText', message: 'toolbarButtonText may not exceed 50 characters' }
  if (str('origin').length > 100) return { field: 'origin', message: 'origin may not exceed 100 characters' }
  return {
    screenId: b.screenId,
    description: str('description'),
    url: str('url'),
    type: b.type as HostedFields['type'],
    clientId: str('clientId'),
    origin: str('origin'),
    podHeight: num('podHeight'),
    toolbarButtonText: str('toolbarButtonText'),
    toolbarButtonToolTip: str('toolbarButtonToolTip'),
    toolbarButtonDialogHeight: num('toolbarButtonDialogHeight'),
    toolbarButtonDialogWidth: num('toolbarButtonDialogWidth'),
    disabledFlag: b.disabledFlag === true,
    locationIds: Array.isArray(b.locationIds) ? b.locationIds.filter((x): x is number => typeof x === 'number') : [],
    locationsEnabledFlag: b.locationsEnabledFlag === true
  }
}

/** The invoice ids a `conditions` string pins down (`invoice/id = 5`, `invoice/id in (…)`, possibly and-ed with more), or null for any invoice. */
function invoiceIdsNamed (conditions: string | undefined): number[] | null {
  if (conditions === undefined || conditions.trim() === '') return null
  let node: Node
  try { node = parseConditions(conditions) } catch { return null }
  const find = (n: Node): number[] | null => {
    if (n.kind === 'and') return find(n.left) ?? find(n.right)
    if (n.kind !== 'cmp' || n.field !== 'invoice/id') return null
    const values = n.op === 'in' && Array.isArray(n.value) ? n.value : n.op === '=' ? [n.value] : null
    return values === null ? null : values.filter((v): v is number => typeof v === 'number')
  }
  return find(node)
}

interface ListQuery { conditions?: string, orderBy?: string, page?: string, pageSize?: string, pageId?: string }

/** Sort keys the stand-in understands: `field asc|desc` terms, comma-separated. */
function parseOrderBy (orderBy: string | undefined): Array<{ field: string, desc: boolean }> | null {
  if (orderBy === undefined || orderBy.trim() === '') return [{ field: 'id', desc: false }]
  const terms: Array<{ field: string, desc: boolean }> = []
  for (const term of orderBy.split(',')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_/]*)(?:\s+(asc|desc))?\s*$/i.exec(term)
    if (match === null) return null
    terms.push({ field: match[1]!, desc: (match[2] ?? 'asc').toLowerCase() === 'desc' })
  }
  if (!terms.some(t => t.field === 'id')) terms.push({ field: 'id', desc: false })
  return terms
}

export default async function connectwiseSandbox (app: FastifyInstance, options: ConnectWiseSandboxOptions): Promise<void> {
  const { store } = options
  const credentials = options.credentials ?? CONNECTWISE_SANDBOX_CREDENTIALS
  const expectedAuth = `Basic ${Buffer.from(`${credentials.companyId}+${credentials.publicKey}:${credentials.privateKey}`).toString('base64')}`

  app.get('/login/companyinfo/:companyId', async (request, reply) => {
    const { companyId } = request.params as { companyId: string }
    if (companyId.toLowerCase() !== credentials.companyId.toLowerCase()) return await cwError(reply, 404, 'NotFound', `Company ${companyId} not found`)
    return { CompanyName: store.companyName, Codebase: store.codebase, VersionCode: 'v2025.1', VersionNumber: 'v4.6.92000', CompanyID: credentials.companyId, IsCloud: true, SiteUrl: request.headers.host ?? '127.0.0.1' }
  })

  installFaultSwitch(app, {
    faults: store.faults,
    seed: 1,
    isWrite: isRestWrite,
    // ConnectWise Cloud sits behind Cloudflare, whose gateway errors are HTML pages.
    badGateway: { contentType: 'text/html', body: '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>' },
    refusal: message => ({ code: 'InvalidObject', message })
  })

  // The key URL named in callback deliveries (Metadata.key_url).
  app.get('/callback-key/:keyId', async () => ({ signing_key: store.callbackSigningKey }))

  await app.register(async api => {
    api.addHook('onRequest', async (request, reply) => {
      const fault = store.nextFault()
      if (fault.latencyMs > 0) await new Promise(resolve => setTimeout(resolve, fault.latencyMs))
      // Cloudflare answers before ConnectWise sees the request, so 429 comes before auth.
      if (fault.status === 429) return await cwError(reply.header('retry-after', '1'), 429, 'TooManyRequests', 'Rate limit exceeded; retry after 1 second.')
      if (fault.status === 500) return await cwError(reply, 500, 'UnexpectedServerError', 'An unexpected server error has occurred.')
      if (request.headers.authorization === undefined && typeof request.headers.cookie === 'string') {
        // Hosted API member auth: only GET /system/info, only the demo member with its hash.
        const cookies = Object.fromEntries(request.headers.cookie.split(';').map(c => c.trim().split('=').map(decodeURIComponent) as [string, string]))
        const m = CONNECTWISE_SANDBOX_MEMBER
        const ok = request.method === 'GET' && request.url.split('?')[0]!.endsWith('/system/info') && cookies.companyName?.toLowerCase() === credentials.companyId.toLowerCase() &&
          cookies.MemberID === m.memberId && cookies.memberHash === m.memberHash && cookies.MemberContext === m.memberContext && request.headers.clientid === credentials.clientId
        if (ok) return
        return await cwError(reply, 401, 'Unauthorized', 'The member session is not valid.')
      }
      if (request.headers.authorization !== expectedAuth) return await cwError(reply, 401, 'Unauthorized', 'The credentials are not valid for this company.')
      // The real service's answer to a missing clientId is not documented; we refuse it the same way as bad auth.
      if (request.headers.clientid !== credentials.clientId) return await cwError(reply, 401, 'Unauthorized', 'A valid clientId header is required; register one at developer.connectwise.com.')
    })

    /** `template`: one record's wire form, whose field paths are the ones conditions and orderBy may name. */
    function list<T> (request: FastifyRequest, reply: FastifyReply, items: readonly T[], get: (item: T, field: string) => unknown, wire: (item: T) => unknown, idOf: (item: T) => number, presorted?: string, template?: Record<string, unknown>): unknown {
      const q = request.query as ListQuery
      let filter: Node | null = null
      try { filter = q.conditions === undefined || q.conditions.trim() === '' ? null : parseConditions(q.conditions) } catch (error) {
        if (error instanceof ConditionSyntaxError) return cwError(reply, 400, 'InvalidObject', error.message, [{ code: 'InvalidConditions', message: error.message, resource: 'conditions', field: 'conditions' }])
        throw error
      }
      const order = parseOrderBy(q.orderBy)
      if (order === null) return cwError(reply, 400, 'InvalidObject', `orderBy ${q.orderBy ?? ''} is not valid`)
      // ConnectWise refuses a field the model does not have; it never answers an empty page for it.
      const sample = template ?? (items[0] === undefined ? undefined : wire(items[0]) as Record<string, unknown>)
      const refused = unknownFieldRefusal(reply, filter, order, sample)
      if (refused !== null) return refused
      const pageSize = q.pageSize === undefined ? 25 : Number(q.pageSize)
      if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) return cwError(reply, 400, 'InvalidObject', 'pageSize must be between 1 and 1000')
      const orderKey = order.map(t => `${t.field} ${t.desc ? 'desc' : 'asc'}`).join(', ')
      let rows: readonly T[] = items
      if (presorted !== orderKey) {
        const keyed = (item: T, field: string): number | string => {
          const v = get(item, field)
          return v instanceof Date ? v.getTime() : typeof v === 'number' || typeof v === 'string' ? v : ''
        }
        rows = [...items].sort((a, b) => {
          for (const t of order) {
            const x = keyed(a, t.field)
            const y = keyed(b, t.field)
            if (x < y) return t.desc ? 1 : -1
            if (x > y) return t.desc ? -1 : 1
          }
          return 0
        })
      }
      const matches = (item: T): boolean => filter === null || evaluate(filter, field => get(item, field) as never)
      const forwardOnly = String(request.headers['pagination-type'] ?? '').toLowerCase() === 'forward-only'
      const page: T[] = []
      const base = `${request.protocol}://${request.headers.host ?? '127.0.0.1'}${request.url.split('?')[0] ?? ''}`
      const keep = (extra: Record<string, string>): string => {
        const params = new URLSearchParams()
        for (const [k, v] of Object.entries(q)) if (typeof v === 'string' && k !== 'page' && k !== 'pageId') params.set(k, v)
        for (const [k, v] of Object.entries(extra)) params.set(k, v)
        return `${base}?${params.toString().replace(/\+/g, '%20')}`
      }
      if (forwardOnly) {
        // Keyset cursor: pageId is the id of the last row sent; resume just after it in this order.
        let start = 0
        if (q.pageId !== undefined) {
          const after = Number(q.pageId)
          const at = rows.findIndex(r => idOf(r) === after)
          if (at < 0) return cwError(reply, 400, 'InvalidObject', `pageId ${q.pageId} is not valid`)
          start = at + 1
        }
        let i = start
        for (; i < rows.length && page.length < pageSize; i++) if (matches(rows[i] as T)) page.push(rows[i] as T)
        let more = false
        for (let j = i; j < rows.length; j++) if (matches(rows[j] as T)) { more = true; break }
        const last = page[page.length - 1]
        if (more && last !== undefined) reply.header('link', `<${keep({ pageId: String(idOf(last)) })}>; rel="next"`)
      } else {
        const pageNumber = q.page === undefined ? 1 : Number(q.page)
        if (!Number.isInteger(pageNumber) || pageNumber < 1) return cwError(reply, 400, 'InvalidObject', 'page must be 1 or more')
        const all = rows.filter(matches)
        page.push(...all.slice((pageNumber - 1) * pageSize, pageNumber * pageSize))
        const lastPage = Math.max(1, Math.ceil(all.length / pageSize))
        const links: string[] = []
        if (pageNumber < lastPage) links.push(`<${keep({ page: String(pageNumber + 1) })}>; rel="next"`, `<${keep({ page: String(lastPage) })}>; rel="last"`)
        if (pageNumber > 1) links.push(`<${keep({ page: '1' })}>; rel="first"`, `<${keep({ page: String(pageNumber - 1) })}>; rel="prev"`)
        if (links.length > 0) reply.header('link', links.join(', '))
      }
      return page.map(wire)
    }

    const invoiceField = (inv: SandboxInvoice, field: string): unknown => {
      switch (field) {
        case 'id': return inv.id
        case 'lastUpdated': return new Date(inv.lastUpdatedMs)
        case 'type': return inv.type
        case 'company/id': return store.companyOf(inv).id
        case 'status/id': return inv.statusId
        case 'invoiceNumber': return String(inv.id + 9000)
        case 'date': return new Date(inv.dateMs)
        case 'dueDate': return new Date(inv.dueMs)
        case 'balance': return store.balanceCents(inv) / 100
        default: return getPath(invoiceWire(store, inv), field)
      }
    }
    const lookup = (reply: FastifyReply, raw: string): SandboxInvoice | null => {
      const inv = /^\d+$/.test(raw) ? store.invoice(Number(raw)) : undefined
      if (inv === undefined) { void cwError(reply, 404, 'NotFound', `Invoice recId ${raw} not found`); return null }
      return inv
    }

    api.get('/company/companies', async (request, reply) =>
      list(request, reply, store.companies, (c, f) => getPath(companyWire(c), f), companyWire, c => c.id, 'id asc'))

    api.get('/company/companies/:id', async (request, reply) => {
      const c = store.company(Number((request.params as { id: string }).id))
      return c === undefined ? await cwError(reply, 404, 'NotFound', 'Company not found') : companyWire(c)
    })

    api.get('/finance/invoices', async (request, reply) => {
      const byUpdate = store.byLastUpdated()
      const orderBy = (request.query as ListQuery).orderBy
      const wantsUpdate = parseOrderBy(orderBy)?.map(t => `${t.field} ${t.desc ? 'desc' : 'asc'}`).join(', ') === 'lastUpdated asc, id asc'
      return list(request, reply, wantsUpdate ? byUpdate : store.invoices, invoiceField, inv => invoiceWire(store, inv), inv => inv.id, wantsUpdate ? 'lastUpdated asc, id asc' : 'id asc')
    })

    api.get('/finance/invoices/count', async (request, reply) => {
      const q = request.query as ListQuery
      let filter: Node | null = null
      try { filter = q.conditions === undefined || q.conditions.trim() === '' ? null : parseConditions(q.conditions) } catch (error) {
        if (error instanceof ConditionSyntaxError) return cwError(reply, 400, 'InvalidObject', error.message, [{ code: 'InvalidConditions', message: error.message, resource: 'conditions', field: 'conditions' }])
        throw error
      }
      const first = store.invoices[0]
      const refused = unknownFieldRefusal(reply, filter, [], first === undefined ? undefined : invoiceWire(store, first))
      if (refused !== null) return refused
      return { count: store.invoices.filter(inv => filter === null || evaluate(filter, f => invoiceField(inv, f) as never)).length }
    })

    api.get('/finance/invoices/:id', async (request, reply) => {
      const inv = lookup(reply, (request.params as { id: string }).id)
      return inv === null ? reply : invoiceWire(store, inv)
    })

    api.get('/finance/invoices/:id/pdf', async (request, reply) => {
      const inv = lookup(reply, (request.params as { id: string }).id)
      if (inv === null) return reply
      const wire = invoiceWire(store, inv) as { invoiceNumber: string, company?: { name?: string }, total: number, balance: number, dueDate?: string }
      return await reply.type('application/pdf').send(simplePdf([
        `Invoice ${wire.invoiceNumber}`, `Bill to: ${wire.company?.name ?? ''}`, `Total: ${wire.total.toFixed(2)}`,
        `Balance due: ${wire.balance.toFixed(2)}`, `Due: ${(wire.dueDate ?? '').slice(0, 10)}`
      ]))
    })

    api.get('/finance/info/invoice/:id', async (request, reply) => {
      const inv = lookup(reply, (request.params as { id: string }).id)
      return inv === null ? reply : invoiceInfoWire(store, inv)
    })

    // Line records by invoice (`conditions=invoice/id in (…)`): only the named invoices' lines are built, so 50,000 invoices stay cheap.
    const linesOfNamed = <T>(request: FastifyRequest, each: (inv: SandboxInvoice) => T[]): T[] => {
      const named = invoiceIdsNamed((request.query as ListQuery).conditions)
      const invoices = named === null ? store.invoices : named.flatMap(id => { const inv = store.invoice(id); return inv === undefined ? [] : [inv] })
      return invoices.flatMap(each)
    }
    // One record of each kind, so a condition on a field the model lacks is refused even when nothing matches.
    const anyInvoice = store.invoices[0]
    const productTemplate = anyInvoice === undefined ? undefined : productWire(anyInvoice, store.companyOf(anyInvoice), { id: 0, identifier: '', description: '', quantity: 1, priceE4: 0, extCents: 0, taxable: false }, 0)
    const timeTemplate = anyInvoice === undefined ? undefined : timeEntryWire(anyInvoice, store.companyOf(anyInvoice), { id: 0, member: '', workType: '', notes: '', quarterHours: 0, rateCents: 0, extCents: 0, startMs: 0, ticketId: 0 })
    api.get('/procurement/products', async (request, reply) => {
      const rows = linesOfNamed(request, inv => store.linesOf(inv).products.map((p, i) => productWire(inv, store.companyOf(inv), p, i)))
      return list(request, reply, rows, (r, f) => getPath(r, f), r => r, r => r.id as number, undefined, productTemplate)
    })
    api.get('/time/entries', async (request, reply) => {
      const rows = linesOfNamed(request, inv => store.linesOf(inv).time.map(te => timeEntryWire(inv, store.companyOf(inv), te)))
      return list(request, reply, rows, (r, f) => getPath(r, f), r => r, r => r.id as number, undefined, timeTemplate)
    })
    // The store bills no expenses; the endpoint still answers (and refuses unknown fields) as ConnectWise does.
    api.get('/expense/entries', async (request, reply) => list<Record<string, unknown>>(request, reply, [], (r, f) => getPath(r, f), r => r, r => r.id as number, undefined, EXPENSE_TEMPLATE))

    api.get('/finance/invoices/:id/payments', async (request, reply) => {
      const inv = lookup(reply, (request.params as { id: string }).id)
      if (inv === null) return reply
      const template = paymentWire(store, { id: 0, invoiceId: inv.id, amountCents: 0, paymentDateMs: 0, type: 'P', source: '', appliedBy: '', lastUpdatedMs: 0 })
      return list(request, reply, store.paymentsOf(inv.id), (p, f) => getPath(paymentWire(store, p), f), p => paymentWire(store, p), p => p.id, 'id asc', template)
    })

    api.delete('/finance/invoices/:id/payments/:paymentId', async (request, reply) => {
      const { id, paymentId } = request.params as { id: string, paymentId: string }
      const inv = lookup(reply, id)
      if (inv === null) return reply
      if (!store.removePayment(inv.id, Number(paymentId))) return await reply.status(404).send({ code: 'NotFound', message: `Payment ${paymentId} was not found.`, errors: null })
      return await reply.status(204).send()
    })

    api.post('/finance/invoices/:id/payments', async (request, reply) => {
      const inv = lookup(reply, (request.params as { id: string }).id)
      if (inv === null) return reply
      const body = (request.body ?? {}) as { amount?: unknown, paymentDate?: unknown, type?: unknown, source?: unknown, invoice?: { id?: unknown } }
      const invalid = (field: string, message: string): FastifyReply => cwError(reply, 400, 'InvalidObject', 'invoicePayment object is invalid', [{ code: 'InvalidField', message, resource: 'invoicePayment', field }])
      if (typeof body.amount !== 'number' || !Number.isFinite(body.amount) || body.amount <= 0) return await invalid('amount', 'amount must be a positive number')
      const cents = Math.round(body.amount * 100)
      if (Math.abs(cents - body.amount * 100) > 1e-6) return await invalid('amount', 'amount has more than two decimals')
      const date = typeof body.paymentDate === 'string' ? new Date(body.paymentDate) : new Date(Number.NaN)
      if (Number.isNaN(date.getTime())) return await invalid('paymentDate', 'paymentDate is required')
      if (body.invoice?.id !== undefined && body.invoice.id !== inv.id) return await invalid('invoice', 'invoice id does not match the URL')
      if (inv.statusId === 4 || inv.type === 'CreditMemo') return await invalid('invoice', 'payments cannot be applied to this invoice')
      if (cents > store.balanceCents(inv)) return await invalid('amount', 'amount exceeds the invoice balance')
      // Posted with the API key: ConnectWise records the key's API member as who applied it.
      const payment = store.addPayment(inv.id, { amountCents: cents, paymentDate: date, appliedBy: SANDBOX_API_MEMBER, ...(typeof body.type === 'string' ? { type: body.type } : {}), ...(typeof body.source === 'string' ? { source: body.source } : {}) })
      return await reply.code(201).send(paymentWire(store, payment))
    })

    api.get('/system/callbacks', async (request, reply) =>
      list(request, reply, store.callbacks, (c, f) => getPath(callbackWire(c), f), callbackWire, c => c.id, 'id asc', CALLBACK_TEMPLATE))

    const callbackBody = (reply: FastifyReply, raw: unknown): Omit<SandboxCallback, 'id' | 'lastUpdatedMs'> | null => {
      const b = (raw ?? {}) as Record<string, unknown>
      const missing = ['url', 'type', 'level'].find(k => typeof b[k] !== 'string' || b[k] === '')
      if (missing !== undefined || (b.objectId !== null && typeof b.objectId !== 'number')) {
        void cwError(reply, 400, 'InvalidObject', 'callbackEntry object is invalid', [{ code: 'MissingRequiredField', message: `${missing ?? 'objectId'} is required`, resource: 'callbackEntry', field: missing ?? 'objectId' }])
        return null
      }
      return {
        description: typeof b.description === 'string' ? b.description.slice(0, 100) : '',
        url: b.url as string,
        objectId: b.objectId as number | null,
        type: b.type as string,
        level: b.level as string,
        memberId: null,
        payloadVersion: '2025.1',
        inactiveFlag: b.inactiveFlag === true,
        isSoapCallbackFlag: false,
        isSelfSuppressedFlag: false,
        connectWiseID: ''
      }
    }

    api.post('/system/callbacks', async (request, reply) => {
      const body = callbackBody(reply, request.body)
      if (body === null) return reply
      return await reply.code(201).send(callbackWire(store.addCallback(body)))
    })

    api.put('/system/callbacks/:id', async (request, reply) => {
      const id = Number((request.params as { id: string }).id)
      const existing = store.callbacks.find(c => c.id === id)
      if (existing === undefined) return await cwError(reply, 404, 'NotFound', `Callback recId ${id} not found`)
      const body = callbackBody(reply, request.body)
      if (body === null) return reply
      Object.assign(existing, body)
      return callbackWire(existing)
    })

    api.delete('/system/callbacks/:id', async (request, reply) => {
      const id = Number((request.params as { id: string }).id)
      const at = store.callbacks.findIndex(c => c.id === id)
      if (at < 0) return await cwError(reply, 404, 'NotFound', `Callback recId ${id} not found`)
      store.callbacks.splice(at, 1)
      return await reply.code(204).send()
    })

    // The contract spells this path with capitals; ConnectWise matches paths case-insensitively [check], so answer both.
    for (const path of ['/system/connectWiseHostedScreens', '/system/connectwisehostedscreens']) {
      api.get(path, async (request, reply) =>
        list(request, reply, store.hostedScreens, (h, f) => getPath(h as unknown as Record<string, unknown>, f), h => ({ ...h, _info: {} }), h => h.id, 'id asc'))
    }

    api.get('/system/connectwisehostedsetups', async (request, reply) =>
      list(request, reply, store.hostedSetups, (h, f) => getPath(hostedSetupWire(h), f), hostedSetupWire, h => h.id, 'id asc'))

    const hostedInvalid = (reply: FastifyReply, problem: { field: string, message: string }): FastifyReply =>
      cwError(reply, 400, 'InvalidObject', 'connectWiseHostedSetup object is invalid', [{ code: problem.field === 'screenId' || problem.message.endsWith('required') ? 'MissingRequiredField' : 'InvalidField', message: problem.message, resource: 'connectWiseHostedSetup', field: problem.field }])
    const hostedLookup = (reply: FastifyReply, raw: string): SandboxHostedSetup | null => {
      const found = store.hostedSetups.find(h => String(h.id) === raw)
      if (found === undefined) { void cwError(reply, 404, 'NotFound', `ConnectWiseHostedSetup recId ${raw} not found`); return null }
      return found
    }

    api.get('/system/connectwisehostedsetups/:id', async (request, reply) => {
      const found = hostedLookup(reply, (request.params as { id: string }).id)
      return found === null ? reply : hostedSetupWire(found)
    })

    api.post('/system/connectwisehostedsetups', async (request, reply) => {
      const fields = hostedSetupFields(store, request.body)
      if ('field' in fields) return await hostedInvalid(reply, fields)
      return await reply.code(201).send(hostedSetupWire(store.addHostedSetup(fields)))
    })

    api.put('/system/connectwisehostedsetups/:id', async (request, reply) => {
      const found = hostedLookup(reply, (request.params as { id: string }).id)
      if (found === null) return reply
      const fields = hostedSetupFields(store, request.body)
      if ('field' in fields) return await hostedInvalid(reply, fields)
      Object.assign(found, fields, { lastUpdatedMs: Date.now() })
      return hostedSetupWire(found)
    })

    // JSON-Patch-like `[{op:"replace", path:"podHeight", value}]`; only replace, as the adapter uses.
    api.patch('/system/connectwisehostedsetups/:id', async (request, reply) => {
      const found = hostedLookup(reply, (request.params as { id: string }).id)
      if (found === null) return reply
      const ops = request.body
      if (!Array.isArray(ops)) return await cwError(reply, 400, 'InvalidObject', 'The request body must be an array of patch operations')
      const next: Record<string, unknown> = { ...hostedSetupWire(found) }
      for (const op of ops as Array<{ op?: unknown, path?: unknown, value?: unknown }>) {
        const field = typeof op.path === 'string' ? op.path.replace(/^\//, '') : ''
        if (op.op !== 'replace' || field === '' || field === 'id' || !(field in next)) return await cwError(reply, 400, 'InvalidObject', `Patch operation on ${field === '' ? 'an unnamed path' : field} is not supported`)
        next[field] = op.value
      }
      const fields = hostedSetupFields(store, next)
      if ('field' in fields) return await hostedInvalid(reply, fields)
      Object.assign(found, fields, { lastUpdatedMs: Date.now() })
      return hostedSetupWire(found)
    })

    api.delete('/system/connectwisehostedsetups/:id', async (request, reply) => {
      const found = hostedLookup(reply, (request.params as { id: string }).id)
      if (found === null) return reply
      store.hostedSetups.splice(store.hostedSetups.indexOf(found), 1)
      return await reply.code(204).send()
    })

    api.get('/system/info', async () => ({ version: 'v2025.1.92000', isCloud: true, serverTimeZone: 'Eastern Standard Time', licenseBits: [{ name: 'Finance', activeFlag: true }], cloudRegion: 'NA', maxWorkFlowRecordsAllowed: 10000 }))
  }, { prefix: API })
}

export { invoiceWire, invoiceInfoWire, paymentWire }
