import t from 'tap'
import { testKeyring } from '../helpers/fixtures.js'
import { issueSession, SESSION_TTL_MS, verifySession } from '../../src/security/embedded-sessions.js'

t.test('a session token verified once is still refused once it expires, and never for another key ring', async t => {
  const keyring = testKeyring()
  const issuedAt = new Date('2026-12-03T10:00:00Z')
  const { token } = issueSession(keyring, { tenantId: '00000000-0000-4000-8000-000000000001', system: 'connectwise', member: 'cw:jo', permissions: ['view', 'charge'] }, issuedAt)
  const first = verifySession(keyring, token, new Date(issuedAt.getTime() + 1000))
  t.same(first.permissions, ['view', 'charge'])
  t.equal(verifySession(keyring, token, new Date(issuedAt.getTime() + 2000)), first, 'the second check reuses the first')
  t.throws(() => { (first.permissions as string[]).push('sync') }, 'the shared session cannot be changed')
  t.throws(() => verifySession(keyring, token, new Date(issuedAt.getTime() + SESSION_TTL_MS + 1)), { code: 'UNAUTHENTICATED' }, 'expired, though verified before')
  t.throws(() => verifySession(testKeyring(), token, new Date(issuedAt.getTime() + 1000)), { code: 'UNAUTHENTICATED' }, 'another key ring does not know the key')
  const [payload, keyId, mac] = token.split('.')
  const forged = `${Buffer.from(Buffer.from(payload!, 'base64url').toString().replace('"charge"', '"sync"')).toString('base64url')}.${keyId!}.${mac!}`
  t.throws(() => verifySession(keyring, forged, new Date(issuedAt.getTime() + 1000)), { code: 'UNAUTHENTICATED' }, 'a changed payload fails its MAC')
})
