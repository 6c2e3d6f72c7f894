import { UpstreamError } from '../http.js'
import type { ConnectWiseClient } from './client.js'

/** GET /system/connectWiseHostedScreens row: `id` is what a setup's `screenId` refers to. */
export interface HostedScreen { id: number, screenId: string, name: string }

/** The ConnectWiseHostedSetup fields we send (contract: description ≤50, url ≤1024, origin ≤100). */
export interface HostedSetupInput {
  screenId: number
  description: string
  url: string
  type: 'Tab' | 'Pod' | 'ToolbarButton'
  origin: string
  clientId?: string
  podHeight?: number | null
  toolbarButtonText?: string
  toolbarButtonToolTip?: string
  toolbarButtonDialogHeight?: number | null
  toolbarButtonDialogWidth?: number | null
  disabledFlag?: boolean
}

export interface HostedSetup extends HostedSetupInput { id: number, _info?: Record<string, string> }

async function all<T> (client: ConnectWiseClient, path: string): Promise<T[]> {
  const rows: T[] = []
  for await (const page of client.pages<T>(path, { orderBy: 'id asc' })) rows.push(...page)
  return rows
}

// The contract spells the screens path with capitals, the setups path in lower case; we send exactly those.
export async function listHostedScreens (client: ConnectWiseClient): Promise<HostedScreen[]> {
  return await all<HostedScreen>(client, '/system/connectWiseHostedScreens')
}

export async function listHostedSetups (client: ConnectWiseClient): Promise<HostedSetup[]> {
  return await all<HostedSetup>(client, '/system/connectwisehostedsetups')
}

export async function createHostedSetup (client: ConnectWiseClient, input: HostedSetupInput): Promise<HostedSetup> {
  const { data } = await client.post<HostedSetup>('/system/connectwisehostedsetups', input)
  if (typeof data?.id !== 'number') throw new UpstreamError('connectwise', 200, 'malformed_response', 'hosted setup created without an id', false, null, data)
  return data
}

/** PUT replaces the record: send every field we own. */
export async function updateHostedSetup (client: ConnectWiseClient, id: number, input: HostedSetupInput): Promise<HostedSetup> {
  const { data } = await client.put<HostedSetup>(`/system/connectwisehostedsetups/${id}`, { ...input, id })
  return data
}

export async function deleteHostedSetup (client: ConnectWiseClient, id: number): Promise<void> {
  try { await client.delete(`/system/connectwisehostedsetups/${id}`) } catch (error) {
    // Already gone is what uninstall wants.
    if (!(error instanceof UpstreamError && error.status === 404)) throw error
  }
}
