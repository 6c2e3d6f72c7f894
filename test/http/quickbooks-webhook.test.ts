import t from 'tap'
import { createHmac } from 'node:crypto'
import { testDb } from '../helpers/db.js'
import { countRows, makeTenant, testConfig, testKeyring } from '../helpers/fixtures.js'
import { buildApp } from '../../src/app.js'
import { connectQuickBooks } from '../../src/services/accounting-connections.js'
import { parseIntuitWebhook } from '../../src/adapters/quickbooks/webhook.js'

const VERIFIER = 'verifier-token-for-tests'
const sign = (body: string, token = VERIFIER): string => createHmac('sha256', token).update(body).digest('base64')
const tokens = { access_token: 'at', refresh_token: 'rt', expires_in: 3600, x_refresh_token_expires_in: 8_726_400 }

t.test('QuickBooks webhooks: signed payment changes queue a read for the tenant of that realm, once; bad signatures store nothing', async t => {
  const db = await testDb(t)
  const app = await buildApp(testConfig({ SETTLE_QBO_WEBHOOK_VERIFIER: VERIFIER }), { db, keyring: testKeyring() })
  t.teardown(async () => { await app.close() })
  const keyring = app.keyring
  const tenant = await makeTenant(db, 'Books MSP')
  const other = await makeTenant(db, 'Other Books MSP')
  await connectQuickBooks(db, keyring, { tenantId: tenant.id, realmId: '9130001', tokens })
  await connectQuickBooks(db, keyring, { tenantId: other.id, realmId: '9130002', tokens })
  const post = async (body: string, signature = sign(body), type = 'application/cloudevents-batch+json'): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'POST', url: '/webhooks/quickbooks', headers: { 'content-type': type, 'intuit-signature': signature }, payload: body })
  const reads = async (tenantId: string): Promise<number> => Number((await db('jobs').where({ tenant_id: tenantId, queue: 'qbo.pull-payments' }).count('* as n'))[0]?.n)

  const cloudEvents = JSON.stringify([
    { specversion: '1.0', id: 'evt-1', source: 'intuit.abc', type: 'qbo.payment.created.v1', time: '2026-12-03T10:00:00Z', intuitaccountid: '9130001', intuitentityid: '155', data: {} },
    { specversion: '1.0', id: 'evt-2', source: 'intuit.abc', type: 'qbo.invoice.updated.v1', time: '2026-12-03T10:00:00Z', intuitaccountid: '9130001', intuitentityid: '77', data: {} },
    { specversion: '1.0', id: 'evt-3', source: 'intuit.abc', type: 'qbo.payment.created.v1', time: '2026-12-03T10:00:01Z', intuitaccountid: '5550000', intuitentityid: '9', data: {} }
  ])
  const bad = await post(cloudEvents, sign(cloudEvents, 'someone else'))
  t.equal(bad.statusCode, 401, 'a signature under another token is refused')
  t.equal(bad.json().error.code, 'WEBHOOK_SIGNATURE_INVALID')
  t.equal((await post(cloudEvents, '')).statusCode, 401, 'no signature')
  t.equal((await post(cloudEvents.replace('155', '156'), sign(cloudEvents))).statusCode, 401, 'a body changed after signing')
  t.equal(await countRows(db, 'webhook_events'), 0, 'nothing stored for a refused delivery')

  const ok = await post(cloudEvents)
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { received: 3, queued: 1 }, 'only the payment change of a connected realm queues a read; the invoice change and the unknown realm are acknowledged')
  t.equal(await reads(tenant.id), 1)
  t.equal(await reads(other.id), 0, 'another tenant\'s books are not read')
  t.same((await post(cloudEvents)).json(), { received: 3, queued: 0 }, 'a redelivery queues nothing')
  t.equal(await reads(tenant.id), 1)

  const legacy = JSON.stringify({ eventNotifications: [{ realmId: '9130002', dataChangeEvent: { entities: [{ name: 'Payment', id: '42', operation: 'Create', lastUpdated: '2026-12-03T10:05:00.000Z' }, { name: 'Customer', id: '8', operation: 'Update', lastUpdated: '2026-12-03T10:05:00.000Z' }] } }] })
  t.same((await post(legacy, sign(legacy), 'application/json')).json(), { received: 2, queued: 1 }, 'the legacy eventNotifications shape works too')
  t.equal(await reads(other.id), 1)
  t.same((await post(legacy, sign(legacy), 'application/json')).json(), { received: 2, queued: 0 })

  const junk = '{"hello":"world"}'
  const refused = await post(junk, sign(junk), 'application/json')
  t.equal(refused.statusCode, 400)
  t.match(refused.json().error.message, /Not a QuickBooks notification/)
})

t.test('parseIntuitWebhook refuses what is not a notification', async t => {
  t.throws(() => parseIntuitWebhook(Buffer.from('not json')), /not JSON/)
  t.throws(() => parseIntuitWebhook(Buffer.from('[{"type":"qbo.payment.created.v1","id":"1"}]')), /not a QuickBooks CloudEvent/)
  t.same(parseIntuitWebhook(Buffer.from('[{"type":"qbo.payment.voided.v1","id":"e","intuitaccountid":"1","intuitentityid":2}]')), [{ eventId: 'e', realmId: '1', entity: 'payment', entityId: '2', operation: 'voided' }])
})
