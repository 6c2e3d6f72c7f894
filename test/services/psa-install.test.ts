import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import connectwiseSandbox, { CONNECTWISE_SANDBOX_CREDENTIALS, connectwiseSandboxSite, createConnectWiseStore, type ConnectWiseStore } from '../../src/sandbox/connectwise/index.js'
import { createConnectWisePsa, type ConnectWisePsa } from '../../src/adapters/connectwise/psa.js'
import { createHostedSetup } from '../../src/adapters/connectwise/hosted.js'
import { UpstreamError } from '../../src/adapters/http.js'
import { describeInstall, installConnectWise, loadConnectWiseManifest, uninstallConnectWise } from '../../src/services/psa-install.js'

const PUBLIC_URL = 'https://settle.example.com'

async function start (t: { teardown: (fn: () => Promise<void>) => void }, store: ConnectWiseStore): Promise<ConnectWisePsa> {
  const app = Fastify()
  await app.register(connectwiseSandbox, { prefix: '/sandbox/connectwise', store, credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return createConnectWisePsa({ site: connectwiseSandboxSite(app.server.address() as AddressInfo), ...CONNECTWISE_SANDBOX_CREDENTIALS, sleep: async () => {} })
}

const install = async (psa: ConnectWisePsa): Promise<Awaited<ReturnType<typeof installConnectWise>>> =>
  await installConnectWise({ psa, manifest: await loadConnectWiseManifest(), publicUrl: PUBLIC_URL, slug: 'brightline', clientId: CONNECTWISE_SANDBOX_CREDENTIALS.clientId })

t.test('manifest: every setup fits the contract and points at our embedded pages', async t => {
  const manifest = await loadConnectWiseManifest()
  t.equal(manifest.setups.length, 5)
  for (const s of manifest.setups) {
    t.ok(s.description.startsWith(manifest.descriptionPrefix), `${s.key} carries the prefix`)
    t.ok(s.description.length <= 50, `${s.key} description ≤ 50`)
    t.match(s.url, /^\{PUBLIC_URL\}\/embedded\/cw\/(invoice|company|quickbooks)\?tenant=\{slug\}/)
    if (s.url.includes('/quickbooks')) continue
    t.ok(s.url.includes('&id=[cw_id]'), `${s.key} passes the record id`)
  }
  const button = manifest.setups.find(s => s.type === 'ToolbarButton')
  t.equal(button?.toolbarButtonText, 'Charge card')
  t.equal(button?.screen, 'Invoice')
  t.same(manifest.setups.filter(s => s.screen === 'Company').map(s => s.type).sort(), ['Pod', 'Pod', 'Tab'])
})

t.test('install registers once, a re-run is a no-op, a changed field is updated in place, uninstall removes', async t => {
  const store = createConnectWiseStore({ seed: 5 })
  const psa = await start(t, store)

  const first = await install(psa)
  t.same(first.lines.map(l => l.action), ['created', 'created', 'created', 'created', 'created', 'created'])
  t.equal(store.hostedSetups.length, 5)
  t.equal(store.callbacks.length, 1)
  t.equal(store.callbacks[0]?.url, `${PUBLIC_URL}/webhooks/connectwise/brightline`)
  const pod = store.hostedSetups.find(h => h.type === 'Pod' && h.screenId === 5)
  t.equal(pod?.url, `${PUBLIC_URL}/embedded/cw/invoice?tenant=brightline&id=[cw_id]`)
  t.equal(pod?.origin, PUBLIC_URL)
  t.equal(pod?.podHeight, 420)
  const button = store.hostedSetups.find(h => h.type === 'ToolbarButton')
  t.equal(button?.toolbarButtonText, 'Charge card')
  t.equal(button?.toolbarButtonDialogWidth, 720)
  t.match(describeInstall(first), /5 created|6 created/)

  const again = await install(psa)
  t.same(again.lines.slice(0, 5).map(l => l.action), ['unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged'])
  t.equal(store.hostedSetups.length, 5, 'no duplicate setups')
  t.equal(store.callbacks.length, 1, 'no duplicate callback')

  // Someone edits our pod in ConnectWise and a stray copy appears: install puts it back and removes the copy.
  pod!.podHeight = 100
  const copy = await createHostedSetup(psa.client, { screenId: 5, description: 'Settle: Payment', url: pod!.url, type: 'Pod', origin: PUBLIC_URL, podHeight: 420 })
  const third = await install(psa)
  const podLine = third.lines.find(l => l.key === 'invoice-pod')
  t.equal(podLine?.action, 'updated')
  t.match(podLine?.detail, /podHeight/)
  t.equal(third.duplicatesRemoved, 1)
  t.equal(store.hostedSetups.find(h => h.id === pod!.id)?.podHeight, 420)
  t.notOk(store.hostedSetups.some(h => h.id === copy.id), 'the copy went')
  t.equal(store.hostedSetups.length, 5)

  // Someone else's setup stays through uninstall.
  await createHostedSetup(psa.client, { screenId: 1, description: 'Other vendor', url: 'https://other.example/x?id=[cw_id]', type: 'Tab', origin: 'https://other.example' })
  const removed = await uninstallConnectWise({ psa, manifest: await loadConnectWiseManifest(), publicUrl: PUBLIC_URL, slug: 'brightline' })
  t.same(removed, { setupsRemoved: 5, callbacksRemoved: 1 })
  t.same(store.hostedSetups.map(h => h.description), ['Other vendor'])
  t.equal(store.callbacks.length, 0)
})

t.test('a tenant whose screen list has no Invoice: the invoice pod and button are skipped and said so', async t => {
  const store = createConnectWiseStore({ seed: 5 })
  store.hostedScreens.splice(store.hostedScreens.findIndex(s => s.screenId === 'Invoice'), 1)
  const psa = await start(t, store)
  const summary = await install(psa)
  const skipped = summary.lines.filter(l => l.action === 'skipped')
  t.same(skipped.map(l => l.key), ['invoice-pod', 'invoice-charge-button'])
  t.match(skipped[0]?.detail, /does not offer the Invoice screen/)
  t.equal(store.hostedSetups.length, 3)
  t.ok(store.hostedSetups.every(h => h.screenId === 2), 'all on Company')
  t.match(describeInstall(summary), /2 skipped/)
})

t.test('stand-in answers bad hosted setups in ConnectWise error shape', async t => {
  const store = createConnectWiseStore({ seed: 5 })
  const psa = await start(t, store)
  const error = await createHostedSetup(psa.client, { screenId: 5, description: 'x'.repeat(51), url: 'https://a.example', type: 'Pod', origin: 'https://a.example' }).catch((e: unknown) => e)
  t.ok(error instanceof UpstreamError)
  t.equal((error as UpstreamError).status, 400)
  const body = (error as UpstreamError).body as { code: string, errors: Array<{ field: string, resource: string }> }
  t.equal(body.code, 'InvalidObject')
  t.equal(body.errors[0]?.field, 'description')
  t.equal(body.errors[0]?.resource, 'connectWiseHostedSetup')
  const unknownScreen = await createHostedSetup(psa.client, { screenId: 99, description: 'Settle: x', url: 'https://a.example', type: 'Pod', origin: 'https://a.example' }).catch((e: unknown) => e)
  t.equal((unknownScreen as UpstreamError).status, 400)
  t.equal(store.hostedSetups.length, 0, 'nothing stored')
  const screens = await psa.client.get<Array<{ id: number, screenId: string, name: string }>>('/system/connectWiseHostedScreens')
  t.ok(screens.data.some(s => s.screenId === 'Company'))
})

t.test('settle install / uninstall connectwise through the CLI command', async t => {
  const { testDb } = await import('../helpers/db.js')
  const { testKeyring } = await import('../helpers/fixtures.js')
  const { createTenant } = await import('../../src/db/tenants.js')
  const { connectConnectWise } = await import('../../src/services/psa-connections.js')
  const { runTenantCommand } = await import('../../src/cli/commands.js')
  const db = await testDb(t)
  const keyring = testKeyring()
  const store = createConnectWiseStore({ seed: 5 })
  const app = Fastify()
  await app.register(connectwiseSandbox, { prefix: '/sandbox/connectwise', store, credentials: CONNECTWISE_SANDBOX_CREDENTIALS })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const tenant = await createTenant(db, { slug: 'clitest', name: 'CLI MSP' })
  await connectConnectWise(db, keyring, tenant.id, { site: connectwiseSandboxSite(app.server.address() as AddressInfo), ...CONNECTWISE_SANDBOX_CREDENTIALS })
  const printed: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  // tap reports on stdout too: take the command's lines, pass everything else through.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (/^(Installed|Removed) Settle/.test(String(chunk))) { printed.push(String(chunk)); return true }
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest)
  }) as typeof process.stdout.write
  try {
    t.equal(await runTenantCommand('install', ['connectwise', '--tenant', 'clitest'], { db, keyring, publicUrl: PUBLIC_URL }), 0)
    t.equal(await runTenantCommand('install', ['connectwise', '--tenant', 'clitest'], { db, keyring, publicUrl: PUBLIC_URL }), 0)
    t.equal(await runTenantCommand('uninstall', ['connectwise', '--tenant', 'clitest'], { db, keyring, publicUrl: PUBLIC_URL }), 0)
  } finally {
    process.stdout.write = write
  }
  // tap shares stdout: keep only the command's own output.
  const ours = printed.filter(p => /^(Installed|Removed) Settle/.test(p))
  t.equal(ours.length, 3)
  t.match(ours[0], /6 created, 0 updated, 0 unchanged, 0 skipped/)
  t.match(ours[0], /invoice-pod \(id \d+\): Pod on Invoice/)
  t.match(ours[1], /0 created, 1 updated, 5 unchanged/, 'the re-run only refreshes the callback')
  t.match(ours[2], /5 hosted setups, 1 callbacks/)
  t.equal(store.hostedSetups.length, 0)
  await t.rejects(runTenantCommand('install', ['autotask', '--tenant', 'clitest'], { db, keyring, publicUrl: PUBLIC_URL }), /Only ConnectWise installs through its API/)
})
