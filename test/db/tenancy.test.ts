import t from 'tap'
import { testDb } from '../helpers/db.js'
import { invoiceEntry, makeCustomer, makeTenant, testKeyring } from '../helpers/fixtures.js'
import * as ledger from '../../src/db/ledger.js'
import * as customers from '../../src/db/customers.js'
import * as secrets from '../../src/db/secrets.js'
import * as jobs from '../../src/db/jobs.js'
import { Accounts } from '../../src/domain/ledger.js'
import { money } from '../../src/domain/money.js'

/**
 * Tenant B tries every repository function on tenant A's rows. Each read
 * comes back empty or not-found, each write is refused, and A's data is
 * unchanged afterwards.
 */
t.test('one tenant cannot read or write another tenant\'s rows', async t => {
  const db = await testDb(t)
  const keyring = testKeyring()
  const a = await makeTenant(db, 'Alpha MSP')
  const b = await makeTenant(db, 'Bravo MSP')
  const aCustomer = await makeCustomer(db, a, 'Alpha Client')
  const aEntry = await ledger.postEntry(db, a.id, invoiceEntry(aCustomer.id, 99_00, 'alpha-inv-1'), { effects: [{ queue: 'psa.mark-paid', dedupeKey: 'alpha-job' }] })
  await secrets.putSecret(db, keyring, a.id, 'stripe.secret_key', 'sk_test_alpha')
  const [aJob] = await jobs.listJobs(db, a.id)
  if (aJob === undefined) throw new Error('fixture job missing')
  const snapshot = async (): Promise<string> => JSON.stringify([
    await ledger.trialBalance(db, a.id), await customers.listCustomers(db, a.id), await jobs.listJobs(db, a.id),
    await secrets.getSecret(db, keyring, a.id, 'stripe.secret_key')
  ])
  const before = await snapshot()
  const codeOf = async (p: Promise<unknown>): Promise<string> => {
    try { await p } catch (error) { return (error as { code?: string }).code ?? String(error) }
    return 'no error'
  }

  await t.test('ledger', async t => {
    t.equal(await codeOf(ledger.getEntry(db, b.id, aEntry.entry.id)), 'ENTRY_NOT_FOUND')
    t.equal(await ledger.findEntryByKey(db, b.id, 'alpha-inv-1'), null)
    t.same(await ledger.listEntries(db, b.id), [])
    t.same(await ledger.trialBalance(db, b.id), { accounts: [], totals: [] })
    t.same(await ledger.customerBalance(db, b.id, aCustomer.id), { total: [], accounts: [] })
    t.same(await ledger.accountBalance(db, b.id, Accounts.receivable(aCustomer.id).code, 'USD'), money(0, 'USD'))
    t.equal(await codeOf(ledger.reverseEntry(db, b.id, aEntry.entry.id, { idempotencyKey: 'steal', effectiveAt: new Date() })), 'ENTRY_NOT_FOUND')
    t.equal(await codeOf(ledger.postEntry(db, b.id, invoiceEntry(aCustomer.id, 1_00, 'b-posts-to-a-customer'))), 'CUSTOMER_NOT_FOUND', 'B cannot post to A\'s customer account')
    // The same idempotency key in another tenant is a different event.
    const bCustomer = await makeCustomer(db, b, 'Bravo Client')
    t.equal((await ledger.postEntry(db, b.id, invoiceEntry(bCustomer.id, 5_00, 'alpha-inv-1'))).created, true)
  })

  await t.test('customers', async t => {
    t.equal(await customers.findCustomer(db, b.id, aCustomer.id), null)
    t.equal(await codeOf(customers.getCustomer(db, b.id, aCustomer.id)), 'CUSTOMER_NOT_FOUND')
    t.notOk((await customers.listCustomers(db, b.id)).some(c => c.id === aCustomer.id))
    t.equal(await codeOf(customers.renameCustomer(db, b.id, aCustomer.id, 'hijacked')), 'CUSTOMER_NOT_FOUND')
    // Same PSA company id under B creates B's own customer, never touches A's.
    const bCopy = await customers.upsertCustomer(db, b.id, { name: 'Copy', psaSystem: aCustomer.psaSystem ?? '', psaCompanyId: aCustomer.psaCompanyId ?? '' })
    t.not(bCopy.id, aCustomer.id)
  })

  await t.test('secrets', async t => {
    t.equal(await secrets.getSecret(db, keyring, b.id, 'stripe.secret_key'), null)
    t.same(await secrets.listSecretNames(db, b.id), [])
    t.equal(await secrets.deleteSecret(db, b.id, 'stripe.secret_key'), false)
    await secrets.putSecret(db, keyring, b.id, 'stripe.secret_key', 'sk_test_bravo')
    t.equal(await secrets.getSecret(db, keyring, a.id, 'stripe.secret_key'), 'sk_test_alpha', 'B writing its own key leaves A\'s alone')
  })

  await t.test('jobs', async t => {
    t.equal(await jobs.getJob(db, b.id, aJob.id), null)
    t.same(await jobs.listJobs(db, b.id), [])
    t.same(await jobs.jobCounts(db, b.id), { pending: 0, running: 0, done: 0, dead: 0 })
    t.equal(await codeOf(jobs.retryDeadJob(db, b.id, aJob.id)), 'VALIDATION_FAILED')
    // The same dedupe key in B is B's own job.
    t.equal((await jobs.enqueue(db, b.id, [{ queue: 'psa.mark-paid', dedupeKey: 'alpha-job' }])).length, 1)
  })

  await t.test('a missing or malformed tenant is refused before any query', async t => {
    for (const bad of ['', 'not-a-uuid', undefined as unknown as string]) {
      t.equal(await codeOf(ledger.trialBalance(db, bad)), 'TENANT_REQUIRED')
      t.equal(await codeOf(customers.listCustomers(db, bad)), 'TENANT_REQUIRED')
      t.equal(await codeOf(secrets.getSecret(db, keyring, bad, 'stripe.secret_key')), 'TENANT_REQUIRED')
      t.equal(await codeOf(jobs.listJobs(db, bad)), 'TENANT_REQUIRED')
    }
  })

  t.equal(await snapshot(), before, 'tenant A is exactly as it was')
})
