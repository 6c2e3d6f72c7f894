import type { Knex } from 'knex'
import type { Db } from './knex.js'
import { inTransaction, pgError } from './knex.js'
import { requireTenantId } from './tenants.js'
import { jobInsertSql, jobsJson, type JobInput } from './jobs.js'
import { AppError, toAppError } from '../errors.js'
import { DomainError } from '../domain/errors.js'
import {
  type AccountKind, type AccountRef, type EntryInput, type PostedEntry,
  reversalPostings, validateEntry, type ValidEntry
} from '../domain/ledger.js'
import { asCurrency, type Currency, type Money } from '../domain/money.js'

/**
 * The ledger's only writer. Entries are validated in code, written in one
 * transaction with their postings and outbox jobs, and checked again by the
 * database (balance at commit, immutability, tenant-scoped references).
 */
export interface PostResult {
  entry: PostedEntry
  /** false when the idempotency key was seen before: nothing was written. */
  created: boolean
}

export interface PostOptions {
  /** Outside effects caused by this entry, enqueued in the same transaction (the outbox). */
  effects?: readonly JobInput[]
  /** Set by `reverseEntry`. */
  reversesEntryId?: string
}

interface EntryRow {
  id: number | string, tenant_id: string, idempotency_key: string, kind: string, memo: string | null,
  effective_at: Date, recorded_at: Date, reverses_entry_id: number | string | null, fingerprint: string
}
interface PostingRow { entry_id: number | string, account_code: string, amount: number, currency: string }

/**
 * Writes a batch of entries, their postings, any new accounts and their
 * outbox jobs in ONE statement (data-modifying CTEs): atomic on its own, one
 * round trip however many entries, and the balance triggers still run at
 * commit. Inside a caller's transaction it simply joins that transaction.
 * Entries whose key exists already are skipped by ON CONFLICT and returned
 * as replays.
 */
const WRITE_ENTRIES_SQL = (withEffects: boolean): string => `
  with new_accounts as (
    insert into ledger_accounts (tenant_id, code, kind, customer_id)
    select ?::uuid, a.code, a.kind, a.customer_id
    from unnest(?::text[], ?::text[], ?::uuid[]) with ordinality as a(code, kind, customer_id, n)
    order by a.n
    on conflict (tenant_id, code) do nothing
  ),
  new_entries as (
    insert into journal_entries (tenant_id, idempotency_key, kind, memo, effective_at, reverses_entry_id, fingerprint, source)
    select ?::uuid, e.key, e.kind, e.memo, e.effective_at, e.reverses, e.fingerprint, e.source
    from unnest(?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::bigint[], ?::text[], ?::jsonb[])
      with ordinality as e(key, kind, memo, effective_at, reverses, fingerprint, source, n)
    order by e.n
    on conflict (tenant_id, idempotency_key) do nothing
    returning *
  ),
  new_postings as (
    insert into postings (tenant_id, entry_id, account_code, amount, currency, effective_at)
    select ne.tenant_id, ne.id, p.code, p.amount, p.currency, ne.effective_at
    from unnest(?::text[], ?::text[], ?::bigint[], ?::text[]) with ordinality as p(entry_key, code, amount, currency, n)
    join new_entries ne on ne.idempotency_key = p.entry_key
    order by p.n
  )${withEffects ? `,
  new_jobs as (${jobInsertSql({ sourceEntryId: 'new_entries.id', from: 'new_entries', where: "j.job->>'entry_key' = new_entries.idempotency_key" })})` : ''}
  select * from new_entries`

export interface BatchEntry {
  input: EntryInput
  options?: PostOptions
}

/**
 * Posts many entries at once (a sync page): same rules as `postEntry`, in
 * one statement. Results come back in input order.
 */
export async function postEntries (db: Db, tenantId: string, batch: readonly BatchEntry[]): Promise<PostResult[]> {
  requireTenantId(tenantId)
  if (batch.length === 0) return []
  // One entry is one statement: it writes all or nothing on its own. A batch
  // needs a transaction so a reused key found after the write undoes it all.
  if (batch.length > 1 && db.isTransaction !== true) return await inTransaction(db, async trx => await postEntries(trx, tenantId, batch))
  const entries = batch.map(b => ({ entry: validateEntry(b.input), options: b.options ?? {} })) // throws before anything is written
  const byKey = new Map<string, ValidEntry>()
  for (const { entry } of entries) {
    const seen = byKey.get(entry.idempotencyKey)
    if (seen !== undefined && seen.fingerprint !== entry.fingerprint) {
      throw new AppError('IDEMPOTENCY_KEY_REUSED', `Idempotency key "${entry.idempotencyKey}" appears twice in one batch for different entries.`)
    }
    byKey.set(entry.idempotencyKey, entry)
  }
  const unique = [...byKey.values()]
  const firstOptions = new Map<string, PostOptions>()
  for (const { entry, options } of entries) if (!firstOptions.has(entry.idempotencyKey)) firstOptions.set(entry.idempotencyKey, options)
  // Sorted by code, so concurrent writers take account locks in the same order.
  const accounts = [...new Map(unique.flatMap(e => e.accounts).map(a => [a.code, a])).values()].sort((a, b) => (a.code < b.code ? -1 : 1))
  const postings = unique.flatMap(e => e.postings.map(p => ({ key: e.idempotencyKey, p })))
  const effects = unique.flatMap(e => (firstOptions.get(e.idempotencyKey)?.effects ?? []).map(job => ({ ...job, entryKey: e.idempotencyKey })))
  const list = <T>(values: T[]): Knex.RawBinding => values as unknown as Knex.RawBinding
  const bindings: Knex.RawBinding[] = [
    tenantId, list(accounts.map(a => a.code)), list(accounts.map(a => a.kind)), list(accounts.map(a => a.customerId ?? null)),
    tenantId,
    list(unique.map(e => e.idempotencyKey)), list(unique.map(e => e.kind)), list(unique.map(e => e.memo ?? null)),
    list(unique.map(e => e.effectiveAt.toISOString())), list(unique.map(e => firstOptions.get(e.idempotencyKey)?.reversesEntryId ?? null)),
    list(unique.map(e => e.fingerprint)), list(unique.map(e => (e.source === undefined ? null : JSON.stringify(e.source)))),
    list(postings.map(x => x.key)), list(postings.map(x => x.p.account.code)), list(postings.map(x => x.p.amount.amount)), list(postings.map(x => x.p.amount.currency)),
    ...(effects.length > 0 ? [tenantId, jobsJson(effects)] : [])
  ]
  let rows: EntryRow[]
  try {
    // Named, so each pg connection parses and plans this statement once.
    const result = await db.raw(WRITE_ENTRIES_SQL(effects.length > 0), bindings)
      .options({ name: effects.length > 0 ? 'settle_post_entries_with_effects_v2' : 'settle_post_entries_v2' }) as { rows: EntryRow[] }
    rows = result.rows
  } catch (error) {
    throw mapLedgerError(error)
  }
  const created = new Map(rows.map(r => [r.idempotency_key, r]))
  // Replays (or concurrent writers of the same events that won): return the originals, refusing reused keys.
  const replayKeys = unique.filter(e => !created.has(e.idempotencyKey)).map(e => e.idempotencyKey)
  const originals = new Map<string, PostedEntry>()
  if (replayKeys.length > 0) {
    const found = await db<EntryRow>('journal_entries').where({ tenant_id: tenantId }).whereIn('idempotency_key', replayKeys)
    for (const row of found) {
      if (row.fingerprint !== byKey.get(row.idempotency_key)?.fingerprint) {
        throw new AppError('IDEMPOTENCY_KEY_REUSED',
          `Idempotency key "${row.idempotency_key}" was already used for a different entry; use a new key for a new event.`)
      }
    }
    for (const entry of await loadEntries(db, tenantId, found)) originals.set(entry.idempotencyKey, entry)
  }
  return entries.map(({ entry }) => {
    const row = created.get(entry.idempotencyKey)
    if (row !== undefined) {
      return { entry: toEntry(row, entry.postings.map(p => ({ account_code: p.account.code, amount: p.amount.amount, currency: p.amount.currency }))), created: true }
    }
    const original = originals.get(entry.idempotencyKey)
    if (original === undefined) throw new AppError('INTERNAL', 'Idempotent insert found neither a new nor an existing entry.')
    return { entry: original, created: false }
  })
}

export async function postEntry (db: Db, tenantId: string, input: EntryInput, options: PostOptions = {}): Promise<PostResult> {
  const [result] = await postEntries(db, tenantId, [{ input, options }])
  return result as PostResult
}

function mapLedgerError (error: unknown): Error {
  if (error instanceof AppError || error instanceof DomainError) return error
  const e = pgError(error)
  if (e.code === '23503' && (e.constraint ?? '').includes('customer_id')) {
    return new AppError('CUSTOMER_NOT_FOUND', 'A posting names a customer account for a customer this tenant does not have.', { cause: error })
  }
  if (e.code === '23505' && e.constraint === 'journal_entries_single_reversal') {
    return new AppError('ALREADY_REVERSED', 'That entry has already been reversed.', { cause: error })
  }
  if (e.code === '23514' && e.constraint === 'journal_entries_balanced') {
    return new AppError('UNBALANCED_ENTRY', 'The database refused an entry whose postings do not balance.', { cause: error })
  }
  if (e.code === '55000') return new AppError('LEDGER_IMMUTABLE', 'Ledger entries cannot be changed; post a reversing entry instead.', { cause: error })
  return toAppError(error)
}

function toEntry (row: EntryRow, postings: ReadonlyArray<{ account_code: string, amount: number, currency: string }>): PostedEntry {
  return {
    id: String(row.id),
    tenantId: row.tenant_id,
    idempotencyKey: row.idempotency_key,
    kind: row.kind,
    memo: row.memo,
    effectiveAt: row.effective_at,
    recordedAt: row.recorded_at,
    reversesEntryId: row.reverses_entry_id === null ? null : String(row.reverses_entry_id),
    postings: postings.map(p => ({ accountCode: p.account_code, amount: { amount: Number(p.amount), currency: asCurrency(p.currency) } }))
  }
}

async function loadEntries (db: Db, tenantId: string, rows: EntryRow[]): Promise<PostedEntry[]> {
  if (rows.length === 0) return []
  const postings = await db('postings')
    .where('tenant_id', tenantId).whereIn('entry_id', rows.map(r => r.id)).orderBy('id') as PostingRow[]
  return rows.map(row => toEntry(row, postings.filter(p => String(p.entry_id) === String(row.id))))
}

export async function getEntry (db: Db, tenantId: string, entryId: string): Promise<PostedEntry> {
  requireTenantId(tenantId)
  const rows = /^\d{1,18}$/.test(entryId) ? await db<EntryRow>('journal_entries').where({ tenant_id: tenantId, id: entryId }) : []
  const [entry] = await loadEntries(db, tenantId, rows)
  if (entry === undefined) throw new AppError('ENTRY_NOT_FOUND', `No journal entry ${entryId} for this tenant.`)
  return entry
}

export async function findEntryByKey (db: Db, tenantId: string, idempotencyKey: string): Promise<PostedEntry | null> {
  requireTenantId(tenantId)
  const rows = await db<EntryRow>('journal_entries').where({ tenant_id: tenantId, idempotency_key: idempotencyKey })
  const [entry] = await loadEntries(db, tenantId, rows)
  return entry ?? null
}

export async function listEntries (db: Db, tenantId: string, options: { limit?: number, kind?: string } = {}): Promise<PostedEntry[]> {
  requireTenantId(tenantId)
  const query = db<EntryRow>('journal_entries').where({ tenant_id: tenantId })
  if (options.kind !== undefined) query.andWhere({ kind: options.kind })
  const rows = await query.orderBy([{ column: 'effective_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(Math.min(options.limit ?? 50, 500))
  return await loadEntries(db, tenantId, rows)
}

/**
 * Undoes an entry with its mirror image. The database allows one reversal per
 * entry; replaying the same reversal key returns the first reversal.
 */
export async function reverseEntry (db: Db, tenantId: string, entryId: string,
  input: { idempotencyKey: string, effectiveAt: Date, memo?: string, effects?: readonly JobInput[] }): Promise<PostResult> {
  return await inTransaction(db, async trx => {
    const original = await getEntry(trx, tenantId, entryId)
    const accountRows = await trx('ledger_accounts').where({ tenant_id: tenantId })
      .whereIn('code', original.postings.map(p => p.accountCode)) as Array<{ code: string, kind: AccountKind, customer_id: string | null }>
    const accounts = new Map<string, AccountRef>(accountRows.map(a => [a.code, { code: a.code, kind: a.kind, ...(a.customer_id !== null ? { customerId: a.customer_id } : {}) }]))
    const replay = await findEntryByKey(trx, tenantId, input.idempotencyKey)
    if (replay === null && await trx('journal_entries').where({ tenant_id: tenantId, reverses_entry_id: original.id }).first('id') !== undefined) {
      throw new AppError('ALREADY_REVERSED', `Entry ${entryId} has already been reversed.`)
    }
    return await postEntry(trx, tenantId, {
      idempotencyKey: input.idempotencyKey,
      kind: `${original.kind.split('.')[0] ?? 'entry'}.reversed`,
      effectiveAt: input.effectiveAt,
      memo: input.memo ?? `Reversal of entry ${original.id}`,
      postings: reversalPostings(original, accounts),
      source: { reverses: original.id }
    }, { reversesEntryId: original.id, ...(input.effects !== undefined ? { effects: input.effects } : {}) })
  })
}

export interface AccountBalance {
  code: string
  kind: AccountKind
  customerId: string | null
  balance: Money
}

interface BalanceRow { code: string, kind: AccountKind, customer_id: string | null, currency: string, total: number | string }

const toBalance = (r: BalanceRow): AccountBalance => ({
  code: r.code,
  kind: r.kind,
  customerId: r.customer_id,
  balance: { amount: Number(r.total), currency: asCurrency(r.currency) }
})

/** Signed (debit-positive) balances per account and currency, optionally as of a moment. */
async function balances (db: Db, tenantId: string, filter: { code?: string, customerId?: string, asOf?: Date }): Promise<AccountBalance[]> {
  requireTenantId(tenantId)
  const query = db('postings as p')
    .join('ledger_accounts as a', function () { this.on('a.tenant_id', 'p.tenant_id').andOn('a.code', 'p.account_code') })
    .where('p.tenant_id', tenantId)
    .select('a.code', 'a.kind', 'a.customer_id', 'p.currency')
    .sum({ total: 'p.amount' })
    .groupBy('a.code', 'a.kind', 'a.customer_id', 'p.currency')
    .orderBy(['a.code', 'p.currency'])
  if (filter.code !== undefined) query.andWhere('p.account_code', filter.code)
  if (filter.customerId !== undefined) query.andWhere('a.customer_id', filter.customerId)
  if (filter.asOf !== undefined) query.andWhere('p.effective_at', '<=', filter.asOf)
  const rows = await query as BalanceRow[]
  return rows.map(toBalance)
}

export async function accountBalance (db: Db, tenantId: string, code: string, currency: Currency, options: { asOf?: Date } = {}): Promise<Money> {
  const rows = await balances(db, tenantId, { code, ...options })
  return { amount: rows.find(r => r.balance.currency === currency)?.balance.amount ?? 0, currency }
}

/**
 * What a customer owes (receivable) net of what we owe them (credit), per
 * currency, with the accounts it came from.
 */
export async function customerBalance (db: Db, tenantId: string, customerId: string, options: { asOf?: Date } = {}): Promise<{ total: Money[], accounts: AccountBalance[] }> {
  const accounts = await balances(db, tenantId, { customerId, ...options })
  return { total: totalsByCurrency(accounts), accounts }
}

export async function trialBalance (db: Db, tenantId: string, options: { asOf?: Date } = {}): Promise<{ accounts: AccountBalance[], totals: Money[] }> {
  const accounts = await balances(db, tenantId, options)
  return { accounts, totals: totalsByCurrency(accounts) }
}

function totalsByCurrency (accounts: readonly AccountBalance[]): Money[] {
  const totals = new Map<Currency, number>()
  for (const a of accounts) totals.set(a.balance.currency, (totals.get(a.balance.currency) ?? 0) + a.balance.amount)
  return [...totals].sort(([a], [b]) => a.localeCompare(b)).map(([currency, amount]) => ({ currency, amount }))
}
