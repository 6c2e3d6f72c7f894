import { readFile } from 'node:fs/promises'
import { projectPath } from '../paths.js'
import { createHostedSetup, deleteHostedSetup, listHostedScreens, listHostedSetups, updateHostedSetup, type HostedScreen, type HostedSetup, type HostedSetupInput } from '../adapters/connectwise/hosted.js'
import type { ConnectWisePsa } from '../adapters/connectwise/psa.js'
import { AppError } from '../errors.js'

/** One entry of manifest/connectwise/hosted-setups.json. */
export interface ManifestSetup {
  key: string
  screen: string
  type: HostedSetupInput['type']
  description: string
  url: string
  podHeight?: number
  toolbarButtonText?: string
  toolbarButtonToolTip?: string
  toolbarButtonDialogWidth?: number
  toolbarButtonDialogHeight?: number
}

export interface ConnectWiseManifest {
  descriptionPrefix: string
  setups: ManifestSetup[]
  callbacks: Array<{ key: string, type: string, level: string, description: string, url: string }>
}

export type InstallAction = 'created' | 'updated' | 'unchanged' | 'skipped'
export interface InstallLine { key: string, action: InstallAction, id: number | null, detail: string }
export interface InstallSummary { lines: InstallLine[], duplicatesRemoved: number }

const MANIFEST_DIR = projectPath('manifest', 'connectwise')

export async function loadConnectWiseManifest (dir = MANIFEST_DIR): Promise<ConnectWiseManifest> {
  const setups = JSON.parse(await readFile(`${dir}/hosted-setups.json`, 'utf8')) as { descriptionPrefix: string, setups: ManifestSetup[] }
  const callbacks = JSON.parse(await readFile(`${dir}/callbacks.json`, 'utf8')) as { callbacks: ConnectWiseManifest['callbacks'] }
  return { descriptionPrefix: setups.descriptionPrefix, setups: setups.setups, callbacks: callbacks.callbacks }
}

function fill (template: string, publicUrl: string, slug: string): string {
  return template.replaceAll('{PUBLIC_URL}', publicUrl.replace(/\/+$/, '')).replaceAll('{slug}', encodeURIComponent(slug))
}

function screenFor (screens: readonly HostedScreen[], name: string): HostedScreen | undefined {
  const wanted = name.toLowerCase()
  return screens.find(s => String(s.screenId).toLowerCase() === wanted) ?? screens.find(s => String(s.name).toLowerCase() === wanted)
}

/** The fields we own on a setup; a difference in any of them means an update. */
function desired (setup: ManifestSetup, screenId: number, publicUrl: string, slug: string, clientId: string): HostedSetupInput {
  return {
    screenId,
    description: setup.description.slice(0, 50),
    url: fill(setup.url, publicUrl, slug),
    type: setup.type,
    // ConnectWise posts messages to the frame only from/to this origin; our script checks the reverse.
    origin: new URL(publicUrl).origin,
    clientId,
    podHeight: setup.podHeight ?? null,
    toolbarButtonText: setup.toolbarButtonText ?? '',
    toolbarButtonToolTip: setup.toolbarButtonToolTip ?? '',
    toolbarButtonDialogWidth: setup.toolbarButtonDialogWidth ?? null,
    toolbarButtonDialogHeight: setup.toolbarButtonDialogHeight ?? null,
    disabledFlag: false
  }
}

function differs (existing: HostedSetup, want: HostedSetupInput): string[] {
  const fields = Object.keys(want) as Array<keyof HostedSetupInput>
  // The server may echo '' for absent strings and null for absent numbers: compare like with like.
  const norm = (v: unknown): unknown => v === undefined || v === '' ? null : v
  return fields.filter(f => norm(existing[f]) !== norm(want[f]))
}

function isOurs (setup: HostedSetup, prefix: string, origin: string): boolean {
  if (typeof setup.description === 'string' && setup.description.startsWith(prefix)) return true
  try { return new URL(setup.url).origin === origin } catch { return false }
}

/**
 * Registers the manifest's hosted setups and callbacks for one tenant.
 * Idempotent: each setup is found again by screen + type + (description or
 * url) and updated in place when a field changed; extra copies of ours are
 * removed, so a re-run never duplicates.
 */
export async function installConnectWise (input: { psa: ConnectWisePsa, manifest: ConnectWiseManifest, publicUrl: string, slug: string, clientId: string }): Promise<InstallSummary> {
  const { psa, manifest, publicUrl, slug } = input
  if (!/^https?:\/\//.test(publicUrl)) throw new AppError('VALIDATION_FAILED', `PUBLIC_URL must be an absolute http(s) URL for ConnectWise to frame our pages; got "${publicUrl}".`)
  const client = psa.client
  const screens = await listHostedScreens(client)
  const existing = await listHostedSetups(client)
  const claimed = new Set<number>()
  const lines: InstallLine[] = []
  let duplicatesRemoved = 0

  for (const setup of manifest.setups) {
    const screen = screenFor(screens, setup.screen)
    if (screen === undefined) {
      lines.push({ key: setup.key, action: 'skipped', id: null, detail: `this ConnectWise does not offer the ${setup.screen} screen to the Hosted API; ${setup.screen === 'Invoice' ? 'use the Company tab and pod instead' : 'nothing installed there'}` })
      continue
    }
    const want = desired(setup, screen.id, publicUrl, slug, input.clientId)
    const matches = existing.filter(e => !claimed.has(e.id) && e.screenId === screen.id && e.type === want.type && (e.description === want.description || e.url === want.url))
    const [first, ...extra] = matches
    for (const dup of extra) { await deleteHostedSetup(client, dup.id); claimed.add(dup.id); duplicatesRemoved++ }
    if (first === undefined) {
      const created = await createHostedSetup(client, want)
      claimed.add(created.id)
      lines.push({ key: setup.key, action: 'created', id: created.id, detail: `${want.type} on ${screen.name}` })
      continue
    }
    claimed.add(first.id)
    const changed = differs(first, want)
    if (changed.length === 0) {
      lines.push({ key: setup.key, action: 'unchanged', id: first.id, detail: `${want.type} on ${screen.name}` })
    } else {
      await updateHostedSetup(client, first.id, want)
      lines.push({ key: setup.key, action: 'updated', id: first.id, detail: `${want.type} on ${screen.name}: ${changed.join(', ')}` })
    }
  }

  for (const callback of manifest.callbacks) {
    // The same registration `connect connectwise` does: matched by url, updated in place.
    const result = await psa.registerInvoiceCallback({ url: fill(callback.url, publicUrl, slug), description: fill(callback.description, publicUrl, slug) })
    lines.push({ key: `callback:${callback.key}`, action: result.created ? 'created' : 'updated', id: result.id, detail: `${callback.type} callback` })
  }
  return { lines, duplicatesRemoved }
}

/** Removes every hosted setup that is ours (description prefix or our origin) and the manifest's callbacks. */
export async function uninstallConnectWise (input: { psa: ConnectWisePsa, manifest: ConnectWiseManifest, publicUrl: string, slug: string }): Promise<{ setupsRemoved: number, callbacksRemoved: number }> {
  const { psa, manifest, publicUrl, slug } = input
  const origin = new URL(publicUrl).origin
  let setupsRemoved = 0
  for (const setup of await listHostedSetups(psa.client)) {
    if (!isOurs(setup, manifest.descriptionPrefix, origin)) continue
    await deleteHostedSetup(psa.client, setup.id)
    setupsRemoved++
  }
  let callbacksRemoved = 0
  for (const callback of manifest.callbacks) {
    callbacksRemoved += (await psa.removeInvoiceCallback({ url: fill(callback.url, publicUrl, slug) })).removed
  }
  return { setupsRemoved, callbacksRemoved }
}

export function describeInstall (summary: InstallSummary): string {
  const rows = summary.lines.map(l => `  ${l.action.padEnd(9)} ${l.key}${l.id !== null ? ` (id ${l.id})` : ''}: ${l.detail}`)
  const count = (a: InstallAction): number => summary.lines.filter(l => l.action === a).length
  const tail = `${count('created')} created, ${count('updated')} updated, ${count('unchanged')} unchanged, ${count('skipped')} skipped${summary.duplicatesRemoved > 0 ? `, ${summary.duplicatesRemoved} duplicates removed` : ''}.`
  return [...rows, tail].join('\n')
}
