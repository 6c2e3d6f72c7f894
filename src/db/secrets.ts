import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'
import type { Keyring } from '../security/keyring.js'

/** Per-tenant credentials Settle holds: PSA keys, Stripe keys, QuickBooks tokens. */
export const SECRET_NAMES = [
  'connectwise.private_key', 'autotask.secret', 'stripe.secret_key', 'stripe.webhook_secret', 'stripe.publishable_key',
  'quickbooks.access_token', 'quickbooks.refresh_token', 'autotask.livelink_key'
] as const
export type SecretName = typeof SECRET_NAMES[number]

interface SecretRow { tenant_id: string, name: string, key_id: string, iv: Buffer, tag: Buffer, ciphertext: Buffer }

// Binds the ciphertext to its place: a row copied elsewhere will not open.
const aad = (tenantId: string, name: string): string => `settle:secret:${tenantId}:${name}`

function checkName (name: string): SecretName {
  if (!(SECRET_NAMES as readonly string[]).includes(name)) {
    throw new AppError('VALIDATION_FAILED', `Unknown secret "${name}"; expected one of ${SECRET_NAMES.join(', ')}.`)
  }
  return name as SecretName
}

export async function putSecret (db: Db, keyring: Keyring, tenantId: string, name: SecretName, value: string): Promise<void> {
  requireTenantId(tenantId)
  checkName(name)
  const sealed = keyring.seal(value, aad(tenantId, name))
  await db('tenant_secrets')
    .insert({ tenant_id: tenantId, name, key_id: sealed.keyId, iv: sealed.iv, tag: sealed.tag, ciphertext: sealed.ciphertext, updated_at: db.fn.now() })
    .onConflict(['tenant_id', 'name']).merge()
}

export async function getSecret (db: Db, keyring: Keyring, tenantId: string, name: SecretName): Promise<string | null> {
  requireTenantId(tenantId)
  checkName(name)
  const row = await db<SecretRow>('tenant_secrets').where({ tenant_id: tenantId, name }).first()
  if (row === undefined) return null
  return keyring.open({ keyId: row.key_id, iv: row.iv, tag: row.tag, ciphertext: row.ciphertext }, aad(tenantId, name))
}

export async function deleteSecret (db: Db, tenantId: string, name: SecretName): Promise<boolean> {
  requireTenantId(tenantId)
  checkName(name)
  const deleted = await db('tenant_secrets').where({ tenant_id: tenantId, name }).delete().returning('name')
  return deleted.length > 0
}

/** Names (never values) of the secrets a tenant has, for settings pages. */
export async function listSecretNames (db: Db, tenantId: string): Promise<Array<{ name: string, keyId: string, updatedAt: Date }>> {
  const rows = await db('tenant_secrets').where({ tenant_id: requireTenantId(tenantId) }).select('name', 'key_id', 'updated_at').orderBy('name')
  return rows.map((r: { name: string, key_id: string, updated_at: Date }) => ({ name: r.name, keyId: r.key_id, updatedAt: r.updated_at }))
}

/**
 * After a new key is put first in SETTLE_ENCRYPTION_KEYS, re-seals every
 * secret still under an older key. Each row is re-read under lock so a
 * concurrent update is not overwritten. Returns how many were re-sealed.
 */
export async function resealWithActiveKey (db: Db, keyring: Keyring, batchSize = 100): Promise<number> {
  let total = 0
  for (;;) {
    const count = await db.transaction(async trx => {
      const rows = await trx<SecretRow>('tenant_secrets')
        .whereNot({ key_id: keyring.activeKeyId }).limit(batchSize).forUpdate().skipLocked()
      for (const row of rows) {
        const plain = keyring.open({ keyId: row.key_id, iv: row.iv, tag: row.tag, ciphertext: row.ciphertext }, aad(row.tenant_id, row.name))
        const sealed = keyring.seal(plain, aad(row.tenant_id, row.name))
        await trx('tenant_secrets').where({ tenant_id: row.tenant_id, name: row.name })
          .update({ key_id: sealed.keyId, iv: sealed.iv, tag: sealed.tag, ciphertext: sealed.ciphertext, updated_at: trx.fn.now() })
      }
      return rows.length
    })
    total += count
    if (count < batchSize) return total
  }
}
