import t from 'tap'
import { testDb } from '../helpers/db.js'
import { makeTenant } from '../helpers/fixtures.js'
import { Keyring } from '../../src/security/keyring.js'
import { deleteSecret, getSecret, listSecretNames, putSecret, resealWithActiveKey } from '../../src/db/secrets.js'

t.test('tenant secrets are encrypted at rest', async t => {
  const db = await testDb(t)
  const oldKey = Keyring.generateEntry('2025')
  const keyring = new Keyring(oldKey)
  const a = await makeTenant(db)
  const b = await makeTenant(db)
  const secret = 'sk_live_51H' + 'x'.repeat(40)
  await putSecret(db, keyring, a.id, 'stripe.secret_key', secret)

  await t.test('the stored row holds no plaintext and names its key', async t => {
    const row = await db('tenant_secrets').where({ tenant_id: a.id }).first()
    t.equal(row.key_id, '2025')
    t.notOk(Buffer.from(row.ciphertext).toString('latin1').includes('sk_live'))
    t.equal(Buffer.from(row.iv).length, 12)
    t.equal(await getSecret(db, keyring, a.id, 'stripe.secret_key'), secret)
    t.same((await listSecretNames(db, a.id)).map(s => s.name), ['stripe.secret_key'])
  })

  await t.test('a ciphertext copied to another tenant does not open', async t => {
    const row = await db('tenant_secrets').where({ tenant_id: a.id }).first()
    await db('tenant_secrets').insert({ ...row, tenant_id: b.id })
    try {
      await getSecret(db, keyring, b.id, 'stripe.secret_key')
      t.fail('should not decrypt')
    } catch (error) {
      t.equal((error as { code: string }).code, 'SECRET_UNREADABLE')
    }
    await deleteSecret(db, b.id, 'stripe.secret_key')
  })

  await t.test('unknown names and missing keys are explained', async t => {
    try { await putSecret(db, keyring, a.id, 'nope' as 'stripe.secret_key', 'x'); t.fail('accepted') } catch (error) { t.equal((error as { code: string }).code, 'VALIDATION_FAILED') }
    const stranger = new Keyring(Keyring.generateEntry('other'))
    try { await getSecret(db, stranger, a.id, 'stripe.secret_key'); t.fail('opened') } catch (error) {
      t.match((error as Error).message, /key "2025", which is not in SETTLE_ENCRYPTION_KEYS/)
    }
  })

  await t.test('rotation: a new first key re-seals old rows; then the old key can go', async t => {
    const newKey = Keyring.generateEntry('2026')
    const rotated = new Keyring(`${newKey},${oldKey}`)
    t.equal(rotated.activeKeyId, '2026')
    t.equal(await getSecret(db, rotated, a.id, 'stripe.secret_key'), secret, 'old rows still open')
    await putSecret(db, keyring, b.id, 'quickbooks.refresh_token', 'rt-bravo')
    t.equal(await resealWithActiveKey(db, rotated, 1), 2, 'batches until done')
    const keys = await db('tenant_secrets').distinct('key_id')
    t.same(keys.map((k: { key_id: string }) => k.key_id), ['2026'])
    const newOnly = new Keyring(newKey)
    t.equal(await getSecret(db, newOnly, a.id, 'stripe.secret_key'), secret)
    t.equal(await getSecret(db, newOnly, b.id, 'quickbooks.refresh_token'), 'rt-bravo')
    t.equal(await resealWithActiveKey(db, rotated), 0, 'nothing left to re-seal')
  })
})

t.test('the key ring refuses malformed keys', async t => {
  t.throws(() => new Keyring('k1:short'))
  t.throws(() => new Keyring(''))
  t.match(Keyring.generateEntry('k9'), /^k9:[A-Za-z0-9+/]{43}=$/)
})
