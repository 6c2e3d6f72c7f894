import t from 'tap'
import nock from 'nock'
import { readFileSync } from 'node:fs'
import { createSigningKeyFetcher, parseCallback, signConnectWiseBody, verifyConnectWiseSignature } from '../../../src/adapters/connectwise/webhook.js'

nock.disableNetConnect()
nock.enableNetConnect('127.0.0.1')

const rawBody = readFileSync(new URL('../../fixtures/connectwise/callback-delivery.json', import.meta.url))
const signingKey = 'c2lnbmluZy1rZXktZnJvbS1jb25uZWN0d2lzZQ=='

t.test('signature: valid, tampered, wrong key, missing', async t => {
  const signature = signConnectWiseBody(rawBody, signingKey)
  t.ok(verifyConnectWiseSignature({ rawBody, signature, signingKey }), 'valid')
  const tampered = Buffer.from(rawBody.toString().replace('"updated"', '"deleted"'))
  t.notOk(verifyConnectWiseSignature({ rawBody: tampered, signature, signingKey }), 'tampered body')
  t.notOk(verifyConnectWiseSignature({ rawBody, signature, signingKey: 'another-key' }), 'wrong key')
  t.notOk(verifyConnectWiseSignature({ rawBody, signature: undefined, signingKey }), 'missing header')
  t.notOk(verifyConnectWiseSignature({ rawBody, signature: signature.slice(0, -2), signingKey }), 'truncated signature')
})

t.test('signature follows the documented recipe: HMAC key is the SHA-256 digest of the signing key', async t => {
  const { createHash, createHmac } = await import('node:crypto')
  const expected = createHmac('sha256', createHash('sha256').update(signingKey).digest()).update(rawBody).digest('base64')
  t.ok(verifyConnectWiseSignature({ rawBody, signature: expected, signingKey }))
  const naive = createHmac('sha256', signingKey).update(rawBody).digest('base64')
  t.notOk(verifyConnectWiseSignature({ rawBody, signature: naive, signingKey }), 'the raw key is not the HMAC key')
})

t.test('parseCallback reads the delivery and parses Entity', async t => {
  const callback = parseCallback(rawBody)
  t.equal(callback.action, 'updated')
  t.equal(callback.companyId, 'settledemo')
  t.equal(callback.entityId, 1001)
  t.equal(callback.type, 'invoice')
  t.match(callback.entity, { id: 1001, type: 'Standard' })
  t.match(callback.keyUrl, /^https:\/\/api-na\.myconnectwise\.net\//)
  t.throws(() => parseCallback(Buffer.from('not json')), { code: 'invalid_callback' })
  t.throws(() => parseCallback(Buffer.from('{"Action":"added","CompanyId":"x","ID":5}')), { code: 'invalid_callback', message: /key_url/ })
  t.throws(() => parseCallback(Buffer.from('{"Action":"added","CompanyId":"x","ID":"abc","Metadata":{"key_url":"https://a.myconnectwise.net/k"}}')), { code: 'invalid_callback' })
  const noEntity = parseCallback(Buffer.from('{"Action":"deleted","CompanyId":"x","ID":9,"Entity":"","Metadata":{"key_url":"https://a.myconnectwise.net/k"}}'))
  t.equal(noEntity.entity, null)
})

t.test('key fetcher: only ConnectWise hosts, cached per URL with a TTL', async t => {
  let clock = 0
  const fetcher = createSigningKeyFetcher({ extraAllowedOrigins: ['http://127.0.0.1:4010'], ttlMs: 1000, now: () => clock })
  t.ok(fetcher.isAllowed('https://api-na.myconnectwise.net/v4_6_release/apis/3.0/system/callbackkey/abc'))
  t.ok(fetcher.isAllowed('https://api-staging.connectwisedev.com/k'))
  t.ok(fetcher.isAllowed('http://127.0.0.1:4010/sandbox/connectwise/callback-key/1'))
  t.notOk(fetcher.isAllowed('https://api-na.myconnectwise.net.evil.example/k'), 'suffix trick')
  t.notOk(fetcher.isAllowed('https://evilmyconnectwise.net/k'), 'no dot boundary')
  t.notOk(fetcher.isAllowed('http://api-na.myconnectwise.net/k'), 'plain http')
  t.notOk(fetcher.isAllowed('https://user:pw@api-na.myconnectwise.net/k'), 'userinfo')
  t.notOk(fetcher.isAllowed('http://127.0.0.1:9999/k'), 'other local port')
  t.notOk(fetcher.isAllowed('http://169.254.169.254/latest/meta-data'), 'metadata service')
  await t.rejects(fetcher.getSigningKey('https://attacker.example/key'), { code: 'key_url_not_allowed' })
  t.equal(fetcher.calls(), 0, 'nothing fetched from a refused host')

  const keyUrl = 'https://api-na.myconnectwise.net/v4_6_release/apis/3.0/system/callbackkey/abc'
  const scope = nock('https://api-na.myconnectwise.net')
    .get('/v4_6_release/apis/3.0/system/callbackkey/abc').twice().reply(200, { signing_key: signingKey })
  t.equal(await fetcher.getSigningKey(keyUrl), signingKey)
  t.equal(await fetcher.getSigningKey(keyUrl), signingKey)
  t.equal(fetcher.calls(), 1, 'second read came from the cache')
  clock = 1001
  t.equal(await fetcher.getSigningKey(keyUrl), signingKey)
  t.equal(fetcher.calls(), 2, 'refetched after the TTL')
  scope.done()
})

t.test('key fetcher: an answer without signing_key is refused and not cached', async t => {
  const fetcher = createSigningKeyFetcher({ sleep: async () => {} })
  const scope = nock('https://api-eu.myconnectwise.net')
    .get('/k').reply(200, { nope: true })
    .get('/k').reply(200, { signing_key: 'k2' })
  await t.rejects(fetcher.getSigningKey('https://api-eu.myconnectwise.net/k'), { code: 'signing_key_unavailable' })
  t.equal(await fetcher.getSigningKey('https://api-eu.myconnectwise.net/k'), 'k2')
  scope.done()
})
