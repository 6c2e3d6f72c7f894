import t from 'tap'
import { startDemoApp } from '../helpers/demo-app.js'
import { customerBalance, trialBalance } from '../../src/db/ledger.js'
import { listCustomers } from '../../src/db/customers.js'
import { psaOpenBalances } from '../../src/db/invoices.js'
import { signConnectWiseBody } from '../../src/adapters/connectwise/webhook.js'
import pino from 'pino'
import { enqueue, listJobs } from '../../src/db/jobs.js'
import { syncInvoices, syncOneInvoice } from '../../src/services/sync.js'
import { Worker } from '../../src/jobs/worker.js'

t.test('the embedded default: stand-ins, real adapters, ledger', async t => {
  const { app, db, base, tenants, syncs } = await startDemoApp(t)
  const [brightline, cobalt] = tenants
  if (brightline === undefined || cobalt === undefined) throw new Error('demo tenants missing')

  await t.test('both demo tenants synced every stand-in invoice', async t => {
    for (const sync of syncs) {
      t.equal(sync.status, 'ok', sync.error ?? '')
      t.ok(sync.created >= 400, `${sync.created} invoices created`)
      t.ok(sync.linesFetched > sync.created, 'with their lines')
    }
    t.ok(syncs[0]!.calls <= syncs[0]!.created * 1.05 + 3, `ConnectWise: ${syncs[0]!.calls} calls for ${syncs[0]!.created} new invoices`)
    t.ok(syncs[1]!.calls / syncs[1]!.created <= 0.05, `Autotask: ${syncs[1]!.calls} calls for ${syncs[1]!.created} invoices (lines batched)`)
  })

  await t.test('each tenant\'s receivables tie out to its PSA, and tenants stay apart', async t => {
    for (const tenant of tenants) {
      const open = await psaOpenBalances(db, tenant.id)
      const customers = await listCustomers(db, tenant.id)
      let mismatches = 0
      for (const customer of customers) {
        const ledger = (await customerBalance(db, tenant.id, customer.id)).total[0]?.amount ?? 0
        if (ledger !== (open.get(customer.id) ?? 0)) mismatches++
      }
      t.equal(mismatches, 0, `${tenant.slug}: all ${customers.length} customers tie out`)
      t.same((await trialBalance(db, tenant.id)).totals.map(m => m.amount), [0])
    }
    const brightlineCustomers = new Set((await listCustomers(db, brightline.id)).map(c => c.id))
    t.notOk((await listCustomers(db, cobalt.id)).some(c => brightlineCustomers.has(c.id)))
  })

  await t.test('GET /sandbox.json lists each stand-in with its base URL and demo credentials', async t => {
    const res = await app.inject('/sandbox.json')
    t.equal(res.statusCode, 200)
    const { standIns } = res.json() as { standIns: Array<{ name: string, baseUrl: string, credentials: Record<string, string> }> }
    t.same(standIns.map(s => s.name), ['connectwise', 'stripe', 'autotask', 'quickbooks'])
    for (const s of standIns) {
      t.ok(s.baseUrl.startsWith(base), `${s.name} lives on this server`)
      t.ok(Object.keys(s.credentials).length >= 2, `${s.name} has demo credentials`)
    }
  })

  await t.test('the home page shows the synced ledger', async t => {
    const res = await app.inject({ url: '/?tenant=cobalt', headers: { accept: 'text/html' } })
    t.equal(res.statusCode, 200)
    for (const text of ['Cobalt IT Partners', 'Autotask PSA', 'In sync', 'Open receivables', 'Aging', 'Trial balance: debits equal credits']) t.ok(res.body.includes(text), `shows "${text}"`)
    t.match(res.body, /\$[\d,]+\.\d{2}/)
    t.equal((await app.inject('/?tenant=nope')).statusCode, 200, 'an unknown tenant shows no data, not an error')
    t.equal((await app.inject('/?tenant=../../etc')).statusCode, 400, 'a malformed tenant is refused')
  })

  await t.test('the invoice PDF comes from ConnectWise as bytes; Autotask offers none', async t => {
    const invoice = await db('invoices').where({ tenant_id: brightline.id }).first('psa_invoice_id', 'number')
    const pdf = await (await app.psaFor(db, brightline.id, 'connectwise')).getInvoicePdf({ externalId: invoice.psa_invoice_id })
    t.equal(pdf?.contentType.startsWith('application/pdf'), true)
    const text = pdf?.body.toString('latin1') ?? ''
    t.match(text, /^%PDF-1\.4\n/)
    t.match(text, /%%EOF\n$/)
    const xrefAt = Number(/startxref\n(\d+)/.exec(text)?.[1])
    t.equal(text.slice(xrefAt, xrefAt + 4), 'xref', 'the cross-reference offset is right, so readers can open it')
    t.ok(text.includes(`Invoice ${String(invoice.number)}`))
    t.equal(await (await app.psaFor(db, cobalt.id, 'autotask')).getInvoicePdf({ externalId: '1' }), null)
  })

  await t.test('paid is pushed back to each PSA through the outbox, once', async t => {
    const worker = new Worker({ db, handlers: app.jobHandlers, log: pino({ level: 'silent' }), concurrency: 2 })
    for (const [tenant, system] of [[brightline, 'connectwise'], [cobalt, 'autotask']] as const) {
      const invoice = await db('invoices').where({ tenant_id: tenant.id, status: 'open', voided: false }).where('total', '>', 0).orderBy('total').first()
      const push = { system, invoiceExternalId: invoice.psa_invoice_id, amount: Number(invoice.psa_balance), currency: invoice.currency, paidOn: '2026-11-25', reference: `pa_test_${system}`, method: 'card', settlesInvoice: true }
      // Two jobs for one payment (a retried enqueue, say): the PSA must see one.
      await enqueue(db, tenant.id, [{ queue: 'psa.push-payment', payload: push, dedupeKey: 'first' }, { queue: 'psa.push-payment', payload: push, dedupeKey: 'second' }])
      while (await worker.runOnce() > 0) { /* drain */ }
      const pushes = await db('psa_payment_pushes').where({ tenant_id: tenant.id, reference: push.reference })
      t.equal(pushes.length, 1, `${system}: one push recorded`)
      t.equal(pushes[0]?.marked_paid, true)
      const fresh = await (await app.psaFor(db, tenant.id, system)).getInvoice({ externalId: invoice.psa_invoice_id })
      t.equal(fresh.paidOn !== null || fresh.balance?.amount === 0, true, `${system}: the PSA shows the invoice paid`)
      if (system === 'connectwise') t.equal(fresh.balance?.amount, 0, 'no overpayment: the payment was posted once')
      const after = await syncInvoices({ db, tenantId: tenant.id, psa: await app.psaFor(db, tenant.id, system), trigger: 'test', recheckOpen: true })
      t.equal(after.status, 'ok', after.error ?? '')
      t.equal((await db('invoices').where({ tenant_id: tenant.id, psa_invoice_id: invoice.psa_invoice_id }).first()).status, 'paid')
    }
    const bad = await enqueue(db, brightline.id, [{ queue: 'psa.push-payment', payload: { system: 'connectwise', invoiceExternalId: '1', amount: -5, currency: 'USD', paidOn: 'yesterday', reference: 'x', method: 'card' } }])
    while (await worker.runOnce() > 0) { /* drain */ }
    const dead = await db('jobs').where({ id: bad[0]?.id }).first()
    t.equal(dead.state, 'dead', 'a malformed push is dead at once, not retried')
    t.match(dead.last_error, /paidOn/)
  })

  await t.test('ConnectWise callbacks: verified first, stored once, re-sync queued', async t => {
    const keyUrl = `${base}/sandbox/connectwise/callback-key/1`
    const signingKey = (await (await fetch(keyUrl)).json() as { signing_key: string }).signing_key
    const companyId = (await app.inject('/sandbox.json')).json().standIns[0].credentials.companyId as string
    const invoiceId = (await db('invoices').where({ tenant_id: brightline.id }).first('psa_invoice_id')).psa_invoice_id as string
    const body = JSON.stringify({ Action: 'updated', CompanyId: companyId, Entity: JSON.stringify({ id: Number(invoiceId) }), FromUrl: base, ID: Number(invoiceId), MemberId: 'admin1', Metadata: { key_url: keyUrl }, Type: 'invoice' })
    const post = async (payload: string, signature: string | undefined, tenant = 'brightline'): Promise<{ statusCode: number, json: () => { error?: { code: string }, duplicate?: boolean } }> =>
      await app.inject({ method: 'POST', url: `/webhooks/connectwise/${tenant}`, payload, headers: { 'content-type': 'application/json', ...(signature !== undefined ? { 'x-content-signature': signature } : {}) } })
    // ConnectWise's only: the Stripe stand-in delivers its own events in the background.
    const storedEvents = async (): Promise<number> => Number((await db('webhook_events').where({ source: 'connectwise' }).count('* as n'))[0]?.n)

    t.equal((await post(body, undefined)).statusCode, 401, 'missing signature')
    t.equal((await post(body, signConnectWiseBody(body, 'wrong-key'))).statusCode, 401, 'wrong key')
    t.equal((await post(body.replace('updated', 'deleted'), signConnectWiseBody(body, signingKey))).statusCode, 401, 'tampered body')
    const offsite = body.replace(keyUrl, 'https://evil.example.com/key')
    t.equal((await post(offsite, signConnectWiseBody(offsite, signingKey))).json().error?.code, 'WEBHOOK_SIGNATURE_INVALID', 'a key URL off ConnectWise is never fetched')
    const otherCompany = body.replace(`"CompanyId":"${companyId}"`, '"CompanyId":"someoneelse"')
    t.equal((await post(otherCompany, signConnectWiseBody(otherCompany, signingKey))).statusCode, 401, 'another company\'s callback')
    t.equal((await post(body, signConnectWiseBody(body, signingKey), 'cobalt')).statusCode, 409, 'a tenant without ConnectWise')
    t.equal(await storedEvents(), 0, 'nothing stored for any rejected delivery')

    const ok = await post(body, signConnectWiseBody(body, signingKey))
    t.equal(ok.statusCode, 200)
    t.equal(ok.json().duplicate, false)
    const again = await post(body, signConnectWiseBody(body, signingKey))
    t.equal(again.json().duplicate, true, 'a redelivery is a no-op')
    t.equal(await storedEvents(), 1)
    const jobs = await listJobs(db, brightline.id, { queue: 'psa.sync-invoice' })
    t.equal(jobs.length, 1, 'one re-sync queued')
    t.same(jobs[0]?.payload, { system: 'connectwise', invoiceId })
    t.equal(await syncOneInvoice(db, brightline.id, await app.psaFor(db, brightline.id, 'connectwise'), invoiceId), 'unchanged', 'the re-sync finds the invoice as synced')
  })
})
