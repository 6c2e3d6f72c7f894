import t from 'tap'
import { testDb } from '../helpers/db.js'
import { countRows, invoiceEntry, makeCustomer, makeTenant, paymentEntry } from '../helpers/fixtures.js'
import {
  accountBalance, customerBalance, findEntryByKey, getEntry, listEntries, postEntries, postEntry, reverseEntry, trialBalance
} from '../../src/db/ledger.js'
import { Accounts } from '../../src/domain/ledger.js'
import { money } from '../../src/domain/money.js'

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  try { await p } catch (error) { return (error as { code?: string }).code ?? String(error) }
  return 'no error'
}

t.test('ledger repository', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const acme = await makeCustomer(db, tenant, 'Acme Dental')

  await t.test('posting writes one entry with its postings and accounts', async t => {
    const result = await postEntry(db, tenant.id, invoiceEntry(acme.id, 50000, 'inv-1001'))
    t.equal(result.created, true)
    t.equal(result.entry.postings.length, 2)
    t.same(await accountBalance(db, tenant.id, Accounts.receivable(acme.id).code, 'USD'), money(50000, 'USD'))
    t.same(await accountBalance(db, tenant.id, 'billed', 'USD'), money(-50000, 'USD'))
  })

  await t.test('a replay returns the original and writes nothing', async t => {
    const before = await Promise.all(['journal_entries', 'postings', 'ledger_accounts', 'jobs'].map(async table => await countRows(db, table)))
    const replay = await postEntry(db, tenant.id, invoiceEntry(acme.id, 50000, 'inv-1001'), { effects: [{ queue: 'psa.mark-paid' }] })
    t.equal(replay.created, false)
    t.equal(replay.entry.id, (await findEntryByKey(db, tenant.id, 'inv-1001'))?.id)
    const after = await Promise.all(['journal_entries', 'postings', 'ledger_accounts', 'jobs'].map(async table => await countRows(db, table)))
    t.same(after, before, 'no new rows anywhere, including the outbox')
  })

  await t.test('the same key for a different event is refused', async t => {
    t.equal(await codeOf(postEntry(db, tenant.id, invoiceEntry(acme.id, 50001, 'inv-1001'))), 'IDEMPOTENCY_KEY_REUSED')
  })

  await t.test('bad input is refused and writes nothing', async t => {
    const before = await countRows(db, 'journal_entries')
    const unbalanced = { ...invoiceEntry(acme.id, 100, 'bad-1'), postings: [{ account: Accounts.receivable(acme.id), amount: money(100, 'USD') }, { account: Accounts.billed(), amount: money(-90, 'USD') }] }
    t.equal(await codeOf(postEntry(db, tenant.id, unbalanced)), 'UNBALANCED_ENTRY')
    const mixed = { ...invoiceEntry(acme.id, 100, 'bad-2'), postings: [{ account: Accounts.receivable(acme.id), amount: money(100, 'USD') }, { account: Accounts.billed(), amount: money(-100, 'CAD') }] }
    t.equal(await codeOf(postEntry(db, tenant.id, mixed)), 'UNBALANCED_ENTRY')
    t.equal(await codeOf(postEntry(db, tenant.id, { ...invoiceEntry(acme.id, 100, 'bad-3'), postings: [{ account: Accounts.receivable(acme.id), amount: { amount: 1.5, currency: 'USD' } }, { account: Accounts.billed(), amount: { amount: -1.5, currency: 'USD' } }] })), 'INVALID_AMOUNT')
    t.equal(await codeOf(postEntry(db, tenant.id, { ...invoiceEntry(acme.id, 100, 'bad-4'), postings: [{ account: Accounts.receivable(acme.id), amount: { amount: 100, currency: 'ZZZ' as 'USD' } }, { account: Accounts.billed(), amount: { amount: -100, currency: 'ZZZ' as 'USD' } }] })), 'UNKNOWN_CURRENCY')
    t.equal(await codeOf(postEntry(db, '', invoiceEntry(acme.id, 100, 'bad-5'))), 'TENANT_REQUIRED')
    t.equal(await codeOf(postEntry(db, tenant.id, invoiceEntry('00000000-0000-4000-8000-000000000000', 100, 'bad-6'))), 'CUSTOMER_NOT_FOUND')
    t.equal(await countRows(db, 'journal_entries'), before)
    t.equal(await findEntryByKey(db, tenant.id, 'bad-6'), null)
  })

  await t.test('the database itself refuses unbalanced or lone postings', async t => {
    const tryRaw = async (amounts: number[]): Promise<string> => await codeOf(db.transaction(async trx => {
      const [entry] = await trx('journal_entries').insert({ tenant_id: tenant.id, idempotency_key: `raw-${amounts.join('_')}`, kind: 'test.raw', effective_at: new Date(), fingerprint: 'x' }).returning('id')
      await trx('postings').insert(amounts.map((amount, i) => ({ tenant_id: tenant.id, entry_id: entry.id, account_code: i === 0 ? 'billed' : Accounts.receivable(acme.id).code, amount, currency: 'USD', effective_at: new Date() })))
    }))
    t.equal(await tryRaw([100, -99]), '23514', 'sum must be zero at commit')
    t.equal(await tryRaw([100]), '23514', 'an entry needs two postings')
    t.equal(await codeOf(db.transaction(async trx => {
      await trx('journal_entries').insert({ tenant_id: tenant.id, idempotency_key: 'raw-empty', kind: 'test.raw', effective_at: new Date(), fingerprint: 'x' })
    })), '23514', 'an entry with no postings')
    // Adding a posting to an existing, committed entry unbalances it: refused.
    const existing = await findEntryByKey(db, tenant.id, 'inv-1001')
    t.equal(await codeOf(db('postings').insert({ tenant_id: tenant.id, entry_id: existing?.id, account_code: 'billed', amount: 5, currency: 'USD', effective_at: new Date() })), '23514')
  })

  await t.test('entries and postings are never updated, deleted or truncated', async t => {
    t.equal(await codeOf(db('journal_entries').where({ tenant_id: tenant.id }).update({ memo: 'edited' })), '55000')
    t.equal(await codeOf(db('postings').where({ tenant_id: tenant.id }).update({ amount: 1 })), '55000')
    t.equal(await codeOf(db('postings').where({ tenant_id: tenant.id }).delete()), '55000')
    t.equal(await codeOf(db('journal_entries').where({ tenant_id: tenant.id }).delete()), '55000')
    t.equal(await codeOf(db.raw('truncate postings cascade')), '55000')
    t.same(await accountBalance(db, tenant.id, 'billed', 'USD'), money(-50000, 'USD'))
  })

  await t.test('outbox jobs commit with their entry, or not at all', async t => {
    const paid = await postEntry(db, tenant.id, paymentEntry(acme.id, 50000, 1480, 'pay-1'), {
      effects: [{ queue: 'psa.mark-paid', payload: { invoice: '1001' } }, { queue: 'qbo.post-payment', payload: { invoice: '1001' } }]
    })
    const jobs = await db('jobs').where({ source_entry_id: paid.entry.id }).orderBy('queue')
    t.same(jobs.map((j: { queue: string }) => j.queue), ['psa.mark-paid', 'qbo.post-payment'])
    const jobsBefore = await countRows(db, 'jobs')
    const bad = { ...paymentEntry(acme.id, 100, 3, 'pay-bad'), postings: paymentEntry(acme.id, 100, 3, 'x').postings.slice(0, 3) }
    t.equal(await codeOf(postEntry(db, tenant.id, bad, { effects: [{ queue: 'psa.mark-paid' }] })), 'UNBALANCED_ENTRY')
    // Inside a caller's transaction that later fails, the entry and its jobs vanish together.
    await codeOf(db.transaction(async trx => {
      await postEntry(trx, tenant.id, invoiceEntry(acme.id, 700, 'inv-rolled-back'), { effects: [{ queue: 'email.send' }] })
      throw new Error('caller failed after posting')
    }))
    t.equal(await findEntryByKey(db, tenant.id, 'inv-rolled-back'), null)
    t.equal(await countRows(db, 'jobs'), jobsBefore)
  })

  await t.test('a reversal mirrors the entry, once', async t => {
    const inv = await postEntry(db, tenant.id, invoiceEntry(acme.id, 12345, 'inv-1002'))
    const reversal = await reverseEntry(db, tenant.id, inv.entry.id, { idempotencyKey: 'void-1002', effectiveAt: new Date('2026-11-15T00:00:00Z') })
    t.equal(reversal.created, true)
    t.equal(reversal.entry.reversesEntryId, inv.entry.id)
    t.equal(reversal.entry.kind, 'invoice.reversed')
    t.same(reversal.entry.postings.map(p => p.amount.amount).sort(), [-12345, 12345])
    const replay = await reverseEntry(db, tenant.id, inv.entry.id, { idempotencyKey: 'void-1002', effectiveAt: new Date('2026-11-15T00:00:00Z') })
    t.equal(replay.created, false, 'replaying the reversal is a no-op')
    t.equal(await codeOf(reverseEntry(db, tenant.id, inv.entry.id, { idempotencyKey: 'void-1002-again', effectiveAt: new Date() })), 'ALREADY_REVERSED')
    t.equal(await codeOf(getEntry(db, tenant.id, '999999')), 'ENTRY_NOT_FOUND')
  })

  await t.test('a batch posts many entries in one statement, replays included', async t => {
    const before = await countRows(db, 'journal_entries')
    const results = await postEntries(db, tenant.id, [
      { input: invoiceEntry(acme.id, 100, 'batch-1'), options: { effects: [{ queue: 'email.send', payload: { invoice: 'batch-1' } }] } },
      { input: invoiceEntry(acme.id, 200, 'inv-1001') }, // posted earlier: a replay (different amount would be refused)
      { input: invoiceEntry(acme.id, 300, 'batch-3'), options: { effects: [{ queue: 'email.send', payload: { invoice: 'batch-3' } }] } },
      { input: invoiceEntry(acme.id, 100, 'batch-1') } // the same event twice in one batch
    ]).catch(async (error: { code: string }) => error.code)
    t.equal(results, 'IDEMPOTENCY_KEY_REUSED', 'inv-1001 replayed with a different amount is refused')
    t.equal(await countRows(db, 'journal_entries'), before, 'and the whole batch wrote nothing')
    const ok = await postEntries(db, tenant.id, [
      { input: invoiceEntry(acme.id, 100, 'batch-1'), options: { effects: [{ queue: 'email.send', payload: { invoice: 'batch-1' } }] } },
      { input: invoiceEntry(acme.id, 50000, 'inv-1001') },
      { input: invoiceEntry(acme.id, 300, 'batch-3'), options: { effects: [{ queue: 'email.send', payload: { invoice: 'batch-3' } }] } },
      { input: invoiceEntry(acme.id, 100, 'batch-1') }
    ])
    t.same(ok.map(r => r.created), [true, false, true, true], 'in input order; a repeat inside the batch shares the first')
    t.equal(ok[0]?.entry.id, ok[3]?.entry.id)
    t.equal(await countRows(db, 'journal_entries'), before + 2)
    const jobs = await db('jobs').whereIn('source_entry_id', [ok[0]?.entry.id ?? '', ok[2]?.entry.id ?? '']).select('source_entry_id', 'payload')
    t.same(jobs.map((j: { source_entry_id: number, payload: { invoice: string } }) => [String(j.source_entry_id), j.payload.invoice]).sort(),
      [[ok[0]?.entry.id, 'batch-1'], [ok[2]?.entry.id, 'batch-3']].sort(), 'each job belongs to its own entry')
    t.same(await postEntries(db, tenant.id, []), [])
    await t.rejects(postEntries(db, tenant.id, [{ input: invoiceEntry(acme.id, 1, 'dup-x') }, { input: invoiceEntry(acme.id, 2, 'dup-x') }]), { code: 'IDEMPOTENCY_KEY_REUSED' })
  })

  await t.test('balances as of a date, per customer and in total', async t => {
    const beta = await makeCustomer(db, tenant, 'Beta Logistics')
    await postEntry(db, tenant.id, invoiceEntry(beta.id, 20000, 'inv-b1', new Date('2026-10-01T00:00:00Z')))
    await postEntry(db, tenant.id, paymentEntry(beta.id, 5000, 175, 'pay-b1', new Date('2026-10-20T00:00:00Z')))
    await postEntry(db, tenant.id, {
      idempotencyKey: 'overpay-b1', kind: 'payment.overpaid', effectiveAt: new Date('2026-10-21T00:00:00Z'),
      postings: [{ account: Accounts.processorPending('stripe'), amount: money(300, 'USD') }, { account: Accounts.customerCredit(beta.id), amount: money(-300, 'USD') }]
    })
    t.same((await customerBalance(db, tenant.id, beta.id, { asOf: new Date('2026-10-15T00:00:00Z') })).total, [money(20000, 'USD')])
    const now = await customerBalance(db, tenant.id, beta.id)
    t.same(now.total, [money(14700, 'USD')], 'receivable 15000 less 300 credit')
    t.same(now.accounts.map(a => a.code).sort(), [Accounts.customerCredit(beta.id).code, Accounts.receivable(beta.id).code].sort())
    t.same((await customerBalance(db, tenant.id, beta.id, { asOf: new Date('2026-09-30T00:00:00Z') })).total, [])
    const trial = await trialBalance(db, tenant.id)
    t.same(trial.totals, [money(0, 'USD')], 'the trial balance nets to zero')
    t.ok((await listEntries(db, tenant.id, { limit: 3 })).length === 3)
  })
})
