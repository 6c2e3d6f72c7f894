import t from 'tap'
import { onPostgres, testDb } from '../helpers/db.js'
import { makeCustomer, makeTenant } from '../helpers/fixtures.js'
import { invoiceModel, invoiceVersion } from '../../src/services/embedded.js'

/**
 * The pod cache rebuilds only when invoiceVersion changes, and any process
 * may have cached the pod: so every change to a row the pod shows, made by
 * anyone (here plain SQL, no Settle code), must change the version read
 * from the database, and nothing else may.
 */
t.test('the invoice pod version changes with every row the pod reads, and only with those', async t => {
  const db = await testDb(t)
  const tenant = await makeTenant(db, 'Version MSP')
  const customer = await makeCustomer(db, tenant, 'Acme Dental')
  const otherCustomer = await makeCustomer(db, tenant, 'Other Co')
  const addMethod = async (ref: string, customerId = customer.id): Promise<string> => {
    const [row] = await db('payment_methods').insert({ tenant_id: tenant.id, customer_id: customerId, processor_customer_ref: 'cus_1', processor_method_ref: ref, type: 'card', brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2030, is_default: true }).returning('id') as Array<{ id: string }>
    return row!.id
  }
  const card = await addMethod('pm_card')
  const otherCard = await addMethod('pm_other', otherCustomer.id)
  const addInvoice = async (psaId: string, customerId = customer.id): Promise<string> => {
    const [row] = await db('invoices').insert({
      tenant_id: tenant.id, customer_id: customerId, psa_system: 'connectwise', psa_invoice_id: psaId, number: `INV-${psaId}`, kind: 'standard', currency: 'USD',
      issued_on: '2026-11-01', due_on: '2026-12-01', total: 50_000, psa_balance: 50_000, status: 'open', psa_updated_at: new Date(), ledger_billed: 50_000
    }).returning('id') as Array<{ id: string }>
    return row!.id
  }
  const invoiceId = await addInvoice('601')
  const siblingId = await addInvoice('602')
  const elsewhereId = await addInvoice('603', otherCustomer.id)
  const addAttempt = async (invoiceOf: string, minute: number, status = 'failed', customerId = customer.id, methodId = card): Promise<string> => {
    const [row] = await db('payment_attempts').insert({
      tenant_id: tenant.id, invoice_id: invoiceOf, customer_id: customerId, payment_method_id: methodId, amount: 1_000 + minute, currency: 'USD', status, trigger: 'autopay', actor: 'system:autopay',
      failure_code: status === 'failed' ? 'card_declined' : null, decline_code: status === 'failed' ? 'insufficient_funds' : null, created_at: new Date(Date.UTC(2026, 10, 2, 0, minute))
    }).returning('id') as Array<{ id: string }>
    return row!.id
  }
  const first = await addAttempt(invoiceId, 1)
  const siblingAttempt = await addAttempt(siblingId, 2)
  const elsewhereAttempt = await addAttempt(elsewhereId, 3, 'failed', otherCustomer.id, otherCard)

  const version = async (psaId = '601'): Promise<string> => await invoiceVersion(db, tenant.id, 'connectwise', psaId)
  const model = async (): Promise<any> => await invoiceModel(db, tenant.id, 'connectwise', '601')
  // Runs a change; the version must differ afterwards (and, where given, the pod must show it).
  const changes = async (what: string, change: () => Promise<unknown>, shows?: (pod: any) => boolean): Promise<void> => {
    const before = await version()
    await change()
    t.not(await version(), before, `${what}: a new version`)
    if (shows !== undefined) t.ok(shows(await model()), `${what}: the pod shows it`)
    t.equal(await version(), await version(), `${what}: stable until the next change`)
  }
  const unchanged = async (what: string, change: () => Promise<unknown>, psaId = '601'): Promise<void> => {
    const before = await version(psaId)
    await change()
    t.equal(await version(psaId), before, `${what}: the same version`)
  }

  await t.test('attempts: added, status changed, any field changed, deleted; never moved', async () => {
    let added = ''
    await changes('an attempt added', async () => { added = await addAttempt(invoiceId, 10, 'processing') }, pod => pod.attempts[0].id === added && pod.status === 'processing')
    await changes('its status changed', async () => await db('payment_attempts').where({ id: added }).update({ status: 'succeeded' }), pod => pod.attempts[0].status === 'succeeded')
    await changes('its actor changed', async () => await db('payment_attempts').where({ id: added }).update({ actor: 'member:cw:kim' }), pod => pod.attempts[0].actor === 'kim (ConnectWise)')
    // What an attempt pays is fixed when it is written (its allocations): the database refuses a move.
    await t.rejects(db('payment_attempts').where({ id: added }).update({ invoice_id: siblingId }), { message: /what an attempt pays never changes/ })
    await changes('an attempt deleted', async () => await db('payment_attempts').where({ id: added }).delete(), pod => !pod.attempts.some((a: any) => a.id === added))
  })

  await t.test('retry jobs of the invoice\'s attempts: scheduled, claimed, rescheduled, cancelled', async () => {
    const retryAt = new Date('2026-12-05T15:00:00Z')
    await changes('a retry scheduled', async () => await db('jobs').insert({ tenant_id: tenant.id, queue: 'payments.retry', payload: { attemptId: first }, run_at: retryAt, dedupe_key: `retry:${first}`, state: 'pending' }),
      pod => pod.retries.length === 1 && pod.retries[0].getTime() === retryAt.getTime())
    const later = new Date('2026-12-07T15:00:00Z')
    await changes('the retry moved', async () => await db('jobs').where({ tenant_id: tenant.id, dedupe_key: `retry:${first}` }).update({ run_at: later }), pod => pod.retries[0].getTime() === later.getTime())
    await changes('the retry claimed by a worker', async () => await db('jobs').where({ tenant_id: tenant.id, dedupe_key: `retry:${first}` }).update({ state: 'running' }), pod => pod.retries.length === 0)
    await changes('the retry pending again', async () => await db('jobs').where({ tenant_id: tenant.id, dedupe_key: `retry:${first}` }).update({ state: 'pending' }), pod => pod.retries.length === 1)
    await changes('the retry cancelled', async () => await db('jobs').where({ tenant_id: tenant.id, dedupe_key: `retry:${first}` }).delete(), pod => pod.retries.length === 0)
  })

  await t.test('payment methods of the customer: added, changed, removed, deleted', async () => {
    let added = ''
    await changes('a method added', async () => { added = await addMethod('pm_new') }, pod => pod.methods.some((m: any) => m.id === added))
    await changes('a method changed', async () => await db('payment_methods').where({ id: added }).update({ last4: '0005' }), pod => pod.methods.some((m: any) => m.label.endsWith('0005')))
    await changes('a method removed', async () => await db('payment_methods').where({ id: added }).update({ status: 'detached' }), pod => !pod.methods.some((m: any) => m.id === added))
    await changes('a method deleted', async () => await db('payment_methods').where({ id: added }).delete())
    await changes('a method moved to this customer', async () => await db('payment_methods').where({ id: otherCard }).update({ customer_id: customer.id }), pod => pod.methods.some((m: any) => m.id === otherCard))
    await changes('and back', async () => await db('payment_methods').where({ id: otherCard }).update({ customer_id: otherCustomer.id }), pod => !pod.methods.some((m: any) => m.id === otherCard))
  })

  await t.test('the invoice, customer and tenant rows', async () => {
    await changes('the invoice edited', async () => await db('invoices').where({ id: invoiceId }).update({ number: 'INV-601-B' }), pod => pod.invoice.number === 'INV-601-B')
    await changes('the customer renamed', async () => await db('customers').where({ id: customer.id }).update({ name: 'Acme Dental LLC' }), pod => pod.invoice.customer === 'Acme Dental LLC')
    await changes('the tenant edited', async () => await db('tenants').where({ id: tenant.id }).update({ name: 'Version MSP Ltd' }))
  })

  await t.test('rows the pod does not read leave the version alone', async () => {
    await unchanged('another invoice\'s attempt changed', async () => await db('payment_attempts').where({ id: siblingAttempt }).update({ status: 'succeeded' }))
    await unchanged('another customer\'s attempt and method changed', async () => {
      await db('payment_attempts').where({ id: elsewhereAttempt }).update({ actor: 'someone' })
      await db('payment_methods').where({ id: otherCard }).update({ last4: '0009' })
    })
    await unchanged('a job of another queue, or one naming no attempt', async () => {
      await db('jobs').insert([
        { tenant_id: tenant.id, queue: 'payments.resolve', payload: {}, dedupe_key: `resolve:${first}`, state: 'pending' },
        { tenant_id: tenant.id, queue: 'payments.retry', payload: {}, dedupe_key: 'retry:not-an-attempt', state: 'pending' },
        { tenant_id: tenant.id, queue: 'payments.retry', payload: {}, dedupe_key: `retry:${siblingAttempt}`, state: 'pending' }
      ])
    })
    await unchanged('a change rolled back', async () => {
      await t.rejects(db.transaction(async trx => {
        await trx('payment_attempts').where({ id: first }).update({ status: 'succeeded' })
        await trx('jobs').insert({ tenant_id: tenant.id, queue: 'payments.retry', payload: {}, dedupe_key: `retry:${first}`, state: 'pending' })
        throw new Error('changed my mind')
      }), /changed my mind/)
    })
    await unchanged('a change rolled back to a savepoint, the rest committed', async () => {
      await db.transaction(async trx => {
        await trx('jobs').insert({ tenant_id: tenant.id, queue: 'payments.resolve', payload: {}, dedupe_key: 'resolve:elsewhere', state: 'pending' })
        await t.rejects(trx.transaction(async inner => {
          await inner('payment_attempts').where({ id: first }).update({ status: 'succeeded' })
          throw new Error('inner only')
        }), /inner only/)
      })
    })
    t.equal((await model()).attempts.find((a: any) => a.id === first).status, 'failed', 'nothing of those reached the pod')
  })

  await t.test('one transaction changing several invoices and customers bumps each of them once it commits', async () => {
    const before = { a: await version('601'), b: await version('602'), c: await version('603') }
    await db.transaction(async trx => {
      await trx('payment_attempts').where({ id: siblingAttempt }).update({ actor: 'batch' })
      await trx('payment_methods').where({ id: otherCard }).update({ last4: '0010' })
      await trx('payment_attempts').where({ id: first }).update({ actor: 'batch' })
    })
    t.not(await version('601'), before.a)
    t.not(await version('602'), before.b)
    t.not(await version('603'), before.c, 'the other customer\'s invoice, through its method')
  })

  if (onPostgres) {
    await t.test('PostgreSQL: uncommitted changes are not seen, and two transactions touching the same invoices in opposite orders both commit', async t => {
      const before = { a: await version('601'), b: await version('602') }
      const one = await db.transaction()
      const two = await db.transaction()
      try {
        // One touches 601 then 602, two touches 602 then 601.
        await one('payment_attempts').where({ id: first }).update({ actor: 'one' })
        await two('payment_attempts').where({ id: siblingAttempt }).update({ actor: 'two' })
        await addAttemptIn(one, siblingId)
        await addAttemptIn(two, invoiceId)
        t.equal(await version('601'), before.a, 'not before commit')
        // Version rows are locked only at commit, in sorted order: no deadlock between the two.
        await Promise.all([one.commit(), two.commit()])
      } finally {
        if (!one.isCompleted()) await one.rollback()
        if (!two.isCompleted()) await two.rollback()
      }
      t.not(await version('601'), before.a)
      t.not(await version('602'), before.b)
    })
  }

  async function addAttemptIn (trx: typeof db, invoiceOf: string): Promise<string> {
    const [row] = await trx('payment_attempts').insert({
      tenant_id: tenant.id, invoice_id: invoiceOf, customer_id: customer.id, payment_method_id: card, amount: 999, currency: 'USD', status: 'succeeded', trigger: 'autopay', actor: 'system:autopay'
    }).returning('id') as Array<{ id: string }>
    return row!.id
  }
})
