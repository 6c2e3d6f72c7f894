import { createHash } from 'node:crypto'
import { AppError } from '../errors.js'
import { parseAmount, type Currency } from './money.js'

/**
 * Bank statements in: CSV (header detected) and OFX/QFX (SGML 1.x and XML 2.x).
 * Only credits become outside payments. A bad file fails as a whole with the
 * line numbers of every problem, so nothing is stored from half a file.
 */
export interface StatementLine {
  /** The bank's id (OFX FITID) or a hash of date+amount+memo+sequence: re-uploads dedupe on it. */
  sourceRef: string
  receivedOn: string
  amount: number
  currency: Currency
  payer: string | null
  memo: string | null
  checkNumber: string | null
  line: number
}

export interface ParsedStatement { format: 'csv' | 'ofx', lines: StatementLine[], debitsSkipped: number }

function fail (problems: string[]): never {
  throw new AppError('VALIDATION_FAILED', `The statement could not be read: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? `; and ${problems.length - 10} more` : ''}.`)
}

function hashRef (date: string, amount: number, memo: string, sequence: number): string {
  return 'h:' + createHash('sha256').update(`${date}|${amount}|${memo}|${sequence}`).digest('hex').slice(0, 32)
}

/** "12/03/2026", "2026-12-03", "20261203[120000…]" → "2026-12-03"; null when not a real date. */
export function parseStatementDate (text: string): string | null {
  const s = text.trim()
  let y: number, m: number, d: number
  let match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s) ?? /^(\d{4})(\d{2})(\d{2})(?:\d{0,6}(?:\.\d+)?(?:\[.*\])?)?$/.exec(s)
  if (match !== null) { y = Number(match[1]); m = Number(match[2]); d = Number(match[3]) } else {
    match = /^(\d{1,2})\/(\d{1,2})\/(\d{2}|\d{4})$/.exec(s)
    if (match === null) return null
    m = Number(match[1]); d = Number(match[2]); y = Number(match[3]); if (y < 100) y += 2000
  }
  const date = new Date(Date.UTC(y, m - 1, d))
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) return null
  return date.toISOString().slice(0, 10)
}

/** "$1,234.50", "(12.00)", "-12", "1 234.50" → signed cents, exactly; null if not an amount. */
export function parseStatementAmount (text: string, currency: Currency): number | null {
  let s = text.trim().replace(/[$,\s]/g, '')
  let negative = false
  if (/^\(.*\)$/.test(s)) { negative = true; s = s.slice(1, -1) }
  if (s.endsWith('-')) { negative = true; s = s.slice(0, -1) }
  if (s === '') return null
  try {
    const cents = parseAmount(s, currency).amount
    return negative ? -cents : cents
  } catch { return null }
}

/** RFC 4180 fields: quotes, doubled quotes, commas inside quotes. */
function csvRows (text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++ } else if (c === '"') quoted = false
      else field += c
    } else if (c === '"') quoted = true
    else if (c === ',') { row.push(field); field = '' } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++
      row.push(field); rows.push(row); row = []; field = ''
    } else field += c
  }
  if (field !== '' || row.length > 0) { row.push(field); rows.push(row) }
  return rows
}

const COLUMNS: Record<string, RegExp> = {
  date: /^(posted |transaction |posting )?date$/,
  amount: /^amount$/,
  credit: /^(credit|deposit|deposits|credit amount)$/,
  debit: /^(debit|withdrawal|withdrawals|debit amount)$/,
  description: /^(description|details|transaction description)$/,
  memo: /^(memo|reference|notes)$/,
  check: /^(check|check number|check no|cheque number|check #)$/,
  payee: /^(payee|name|payer)$/
}

export function parseBankCsv (text: string, currency: Currency): ParsedStatement {
  const rows = csvRows(text.replace(/^\uFEFF/, ''))
  // The header is the first row (within the first 10) that names a date and an amount column.
  let headerAt = -1
  let cols: Record<string, number> = {}
  for (let r = 0; r < Math.min(rows.length, 10) && headerAt < 0; r++) {
    const names = rows[r]!.map(h => h.trim().toLowerCase())
    const found: Record<string, number> = {}
    names.forEach((n, i) => { for (const [key, re] of Object.entries(COLUMNS)) if (found[key] === undefined && re.test(n)) found[key] = i })
    if (found.date !== undefined && (found.amount !== undefined || found.credit !== undefined)) { headerAt = r; cols = found }
  }
  if (headerAt < 0) fail(['no header row with a Date column and an Amount (or Credit/Debit) column in the first 10 lines'])
  const problems: string[] = []
  const lines: StatementLine[] = []
  let debitsSkipped = 0
  const seen = new Map<string, number>()
  for (let r = headerAt + 1; r < rows.length; r++) {
    const row = rows[r]!
    const lineNo = r + 1
    if (row.every(f => f.trim() === '')) continue
    const get = (key: string): string => (cols[key] === undefined ? '' : (row[cols[key]!] ?? '').trim())
    const date = parseStatementDate(get('date'))
    if (date === null) { problems.push(`line ${lineNo}: date "${get('date')}" is not a date (MM/DD/YYYY or YYYY-MM-DD)`); continue }
    let amount: number | null
    if (cols.amount !== undefined) amount = parseStatementAmount(get('amount'), currency)
    else {
      const credit = get('credit')
      const debit = get('debit')
      amount = credit !== '' ? parseStatementAmount(credit, currency) : debit !== '' ? (v => v === null ? null : -Math.abs(v))(parseStatementAmount(debit, currency)) : null
    }
    if (amount === null) { problems.push(`line ${lineNo}: amount is not a number of ${currency} with at most 2 decimals`); continue }
    if (amount <= 0) { debitsSkipped++; continue }
    const memo = [get('description'), get('memo')].filter(s => s !== '').join(' ') || null
    const key = `${date}|${amount}|${memo ?? ''}`
    const sequence = (seen.get(key) ?? 0) + 1
    seen.set(key, sequence)
    lines.push({ sourceRef: hashRef(date, amount, memo ?? '', sequence), receivedOn: date, amount, currency, payer: get('payee') || null, memo, checkNumber: get('check') || null, line: lineNo })
  }
  if (problems.length > 0) fail(problems)
  return { format: 'csv', lines, debitsSkipped }
}

/** OFX 1.x (SGML, unclosed leaf tags) and 2.x (XML): read each STMTTRN's leaf values. */
export function parseOfx (text: string, fallbackCurrency: Currency): ParsedStatement {
  if (!/<OFX>/i.test(text)) fail(['no <OFX> element: not an OFX/QFX file'])
  const currencyMatch = /<CURDEF>\s*([A-Z]{3})/i.exec(text)
  const currency = (currencyMatch?.[1]?.toUpperCase() ?? fallbackCurrency) as Currency
  const lineOf = (offset: number): number => text.slice(0, offset).split('\n').length
  const problems: string[] = []
  const lines: StatementLine[] = []
  let debitsSkipped = 0
  const re = /<STMTTRN>([\s\S]*?)(?:<\/STMTTRN>|(?=<STMTTRN>)|(?=<\/BANKTRANLIST>))/gi
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const body = m[1]!
    // The line where this transaction starts.
    const lineNo = lineOf(m.index)
    const field = (tag: string): string | null => {
      const f = new RegExp(`<${tag}>([^<\\r\\n]*)`, 'i').exec(body)
      return f === null ? null : f[1]!.trim()
    }
    const posted = field('DTPOSTED')
    const date = posted === null ? null : parseStatementDate(posted)
    const amountText = field('TRNAMT')
    const amount = amountText === null ? null : parseStatementAmount(amountText, currency)
    const fitid = field('FITID')
    if (date === null) { problems.push(`line ${lineNo}: transaction without a valid DTPOSTED`); continue }
    if (amount === null) { problems.push(`line ${lineNo}: TRNAMT "${amountText ?? ''}" is not an amount`); continue }
    if (fitid === null || fitid === '') { problems.push(`line ${lineNo}: transaction without FITID`); continue }
    const type = (field('TRNTYPE') ?? '').toUpperCase()
    if (amount <= 0 || ['DEBIT', 'FEE', 'SRVCHG', 'PAYMENT', 'ATM', 'POS'].includes(type)) { debitsSkipped++; continue }
    lines.push({ sourceRef: fitid, receivedOn: date, amount, currency, payer: field('NAME'), memo: field('MEMO'), checkNumber: field('CHECKNUM'), line: lineNo })
  }
  if (problems.length > 0) fail(problems)
  if (lines.length === 0 && debitsSkipped === 0) fail(['no <STMTTRN> transactions found'])
  return { format: 'ofx', lines, debitsSkipped }
}

/** Picks the parser from the content, not the file name. */
export function parseBankStatement (text: string, currency: Currency): ParsedStatement {
  return /<OFX>|OFXHEADER/i.test(text) ? parseOfx(text, currency) : parseBankCsv(text, currency)
}
