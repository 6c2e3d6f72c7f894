import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AppError } from '../errors.js'

/** What is stored for one secret; the key id lets old rows be re-encrypted after a rotation. */
export interface SealedSecret {
  keyId: string
  iv: Buffer
  tag: Buffer
  ciphertext: Buffer
}

/**
 * AES-256-GCM with a key ring: the first key seals, every key opens. The
 * associated data binds a ciphertext to its tenant and name, so a row copied
 * to another tenant or field does not decrypt.
 */
export class Keyring {
  readonly activeKeyId: string
  readonly #keys: Map<string, Buffer>
  readonly #derived = new Map<string, Buffer>()

  constructor (spec: string) {
    this.#keys = new Map()
    for (const entry of spec.split(',').map(s => s.trim()).filter(Boolean)) {
      const [id = '', b64 = ''] = entry.split(':')
      const key = Buffer.from(b64, 'base64')
      if (id === '' || key.length !== 32) throw new Error('Each encryption key must be keyId:base64 of 32 bytes.')
      this.#keys.set(id, key)
    }
    const first = this.#keys.keys().next()
    if (first.done === true) throw new Error('The key ring needs at least one key.')
    this.activeKeyId = first.value
  }

  seal (plaintext: string, associatedData: string): SealedSecret {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.#key(this.activeKeyId), iv)
    cipher.setAAD(Buffer.from(associatedData, 'utf8'))
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return { keyId: this.activeKeyId, iv, tag: cipher.getAuthTag(), ciphertext }
  }

  open (sealed: SealedSecret, associatedData: string): string {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key(sealed.keyId), sealed.iv)
      decipher.setAAD(Buffer.from(associatedData, 'utf8'))
      decipher.setAuthTag(sealed.tag)
      return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).toString('utf8')
    } catch (error) {
      if (error instanceof AppError) throw error
      throw new AppError('SECRET_UNREADABLE', 'A stored secret failed its integrity check; re-enter it in settings.', { cause: error })
    }
  }

  hasKey (id: string): boolean {
    return this.#keys.has(id)
  }

  /**
   * A key for one purpose (pay links, sessions, OAuth state), derived from
   * key `id` by HKDF, so a MAC for one purpose is useless for another and
   * the raw keys never leave the ring. Derived once: sessions are checked on
   * every embedded request.
   */
  derivedKey (id: string, purpose: string): Buffer {
    const cacheKey = `${id}\u0000${purpose}`
    let key = this.#derived.get(cacheKey)
    if (key === undefined) {
      key = Buffer.from(hkdfSync('sha256', this.#key(id), Buffer.from('settle'), Buffer.from(purpose), 32))
      this.#derived.set(cacheKey, key)
    }
    return key
  }

  #key (id: string): Buffer {
    const key = this.#keys.get(id)
    if (key === undefined) {
      throw new AppError('SECRET_UNREADABLE', `A stored secret was sealed with key "${id}", which is not in SETTLE_ENCRYPTION_KEYS; add it back as a decrypt-only key.`)
    }
    return key
  }

  /** A new random key entry for SETTLE_ENCRYPTION_KEYS. */
  static generateEntry (keyId = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`): string {
    return `${keyId}:${randomBytes(32).toString('base64')}`
  }

  /**
   * The embedded default has no operator to hand it a key, so it makes one on
   * first boot and keeps it beside the database (mode 0600). Never a constant.
   */
  static loadOrCreateLocal (dataDir: string): Keyring {
    const file = join(dataDir, 'encryption.key')
    if (!existsSync(file)) {
      mkdirSync(dataDir, { recursive: true })
      writeFileSync(file, Keyring.generateEntry('local') + '\n', { mode: 0o600, flag: 'wx' })
    }
    chmodSync(file, 0o600)
    return new Keyring(readFileSync(file, 'utf8').trim())
  }
}
