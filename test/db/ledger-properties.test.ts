import t from 'tap'
import fc from 'fast-check'
import { testDb } from '../helpers/db.js'
import { countRows, makeCustomer, makeTenant } from '../helpers/fixtures.js'
import { customerBalance, postEntry, trialBalance } from '../../src/db/ledger.js'
import { Accounts, type AccountRef, type EntryInput } from '../../src/domain/ledger.js'
import { money, type Currency } from '../../src/domain/money.js'

/**
 * Property tests against a real database: whatever mix of entries arrives,
 * the ledger's invariants hold.
 */
t.test('ledger invariants', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db)
  const customers = [await makeCustomer(db, tenant, 'A'), await makeCustomer(db, tenant, 'B'), await makeCustomer(db, tenant, 'C')]
  const accountPool: AccountRef[] = [
    ...customers.flatMap(c => [Accounts.receivable(c.id), Accounts.customerCredit(c.id)]),
    Accounts.billed(), Accounts.processorPending('stripe'), Accounts.processorFees(), Accounts.bank('operating'), Accounts.writeOff()
  ]
  let seq = 0

  // A balanced entry: random debits, and credits that allocate the same total per currency.
  const balancedEntry = fc.record({
    currency: fc.constantFrom<Currency>('USD', 'CAD'),
    debits: fc.array(fc.tuple(fc.nat({ max: accountPool.length - 1 }), fc.integer({ min: 1, max: 5_000_000 })), { minLength: 1, maxLength: 3 }),
    creditAccounts: fc.array(fc.nat({ max: accountPool.length - 1 }), { minLength: 1, maxLength: 3 }),
    day: fc.integer({ min: 1, max: 28 })
  }).map(({ currency, debits, creditAccounts, day }): EntryInput => {
    const total = debits.reduce((s, [, cents]) => s + cents, 0)
    const share = Math.floor(total / creditAccounts.length)
    const credits = creditAccounts.map((acc, i) => [acc, i === 0 ? total - share * (creditAccounts.length - 1) : share] as const).filter(([, c]) => c > 0)
    return {
      idempotencyKey: `prop-${seq++}`,
      kind: 'test.property',
      effectiveAt: new Date(Date.UTC(2026, 9, day)),
      postings: [
        ...debits.map(([acc, cents]) => ({ account: accountPool[acc] as AccountRef, amount: money(cents, currency) })),
        ...credits.map(([acc, cents]) => ({ account: accountPool[acc] as AccountRef, amount: money(-cents, currency) }))
      ]
    }
  })

  await t.test('any sequence of balanced entries keeps the trial balance at zero, and replays change nothing', async t => {
    await fc.assert(fc.asyncProperty(fc.array(balancedEntry, { minLength: 1, maxLength: 6 }), async entries => {
      for (const entry of entries) await postEntry(db, tenant.id, entry)
      const rowsBefore = await countRows(db, 'postings')
      const trialBefore = await trialBalance(db, tenant.id)
      for (const entry of entries) {
        const replay = await postEntry(db, tenant.id, entry)
        if (replay.created) return false
      }
      const trialAfter = await trialBalance(db, tenant.id)
      return trialAfter.totals.every(m => m.amount === 0) &&
        rowsBefore === await countRows(db, 'postings') &&
        JSON.stringify(trialAfter) === JSON.stringify(trialBefore)
    }), { numRuns: 25 })
    t.pass('trial balance stayed at zero')
  })

  await t.test('an unbalanced entry is always rejected and leaves no rows', async t => {
    await fc.assert(fc.asyncProperty(balancedEntry, fc.integer({ min: -1000, max: 1000 }).filter(n => n !== 0), async (entry, skew) => {
      const [first, ...rest] = entry.postings
      if (first === undefined) return false
      const skewed = first.amount.amount + skew === 0 ? skew * 2 : skew
      const broken = { ...entry, postings: [{ ...first, amount: money(first.amount.amount + skewed, first.amount.currency) }, ...rest] }
      const before = await Promise.all(['journal_entries', 'postings', 'ledger_accounts'].map(async x => await countRows(db, x)))
      let code = 'accepted'
      try { await postEntry(db, tenant.id, broken) } catch (error) { code = (error as { code: string }).code }
      const after = await Promise.all(['journal_entries', 'postings', 'ledger_accounts'].map(async x => await countRows(db, x)))
      return code === 'UNBALANCED_ENTRY' && JSON.stringify(before) === JSON.stringify(after)
    }), { numRuns: 40 })
    t.pass('every unbalanced entry was refused')
  })

  await t.test('a customer receivable equals invoices billed less payments received', async t => {
    const fresh = await makeTenant(db, 'Receivables MSP')
    const client = await makeCustomer(db, fresh, 'Delta')
    await fc.assert(fc.asyncProperty(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 0, max: 100 })), { minLength: 1, maxLength: 8 }),
      async invoices => {
        let expected = (await customerBalance(db, fresh.id, client.id)).total[0]?.amount ?? 0
        for (const [cents, paidPct] of invoices) {
          const n = seq++
          await postEntry(db, fresh.id, { idempotencyKey: `r-inv-${n}`, kind: 'invoice.billed', effectiveAt: new Date(), postings: [{ account: Accounts.receivable(client.id), amount: money(cents, 'USD') }, { account: Accounts.billed(), amount: money(-cents, 'USD') }] })
          const paid = Math.floor(cents * paidPct / 100)
          if (paid > 0) await postEntry(db, fresh.id, { idempotencyKey: `r-pay-${n}`, kind: 'payment.succeeded', effectiveAt: new Date(), postings: [{ account: Accounts.processorPending('stripe'), amount: money(paid, 'USD') }, { account: Accounts.receivable(client.id), amount: money(-paid, 'USD') }] })
          expected += cents - paid
        }
        return (await customerBalance(db, fresh.id, client.id)).total[0]?.amount === expected
      }), { numRuns: 15 })
    t.pass('receivable tracked open balances')
  })
})
