import { commandSecret } from '../config.js'
import type { Knex } from 'knex'
import { parseArgs } from 'node:util'
import { createConnectWisePsa, type ConnectWisePsa } from '../adapters/connectwise/psa.js'
import { describeInstall, installConnectWise, loadConnectWiseManifest, uninstallConnectWise } from '../services/psa-install.js'
import { createTenant, findTenantBySlug, getTenantSurcharge, setTenantSurcharge, setTenantTimeZone, type Tenant } from '../db/tenants.js'
import { getSyncState, listPsaConnections, listSyncRuns } from '../db/psa.js'
import { AppError } from '../errors.js'
import { asCurrency } from '../domain/money.js'
import { formatRate, parseRatePercent } from '../domain/surcharge.js'
import type { PsaSystem } from '../ports/psa.js'
import type { Keyring } from '../security/keyring.js'
import { connectAutotask, connectConnectWise, createPsaFactory } from '../services/psa-connections.js'
import { readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import { setBrand, type LogoType } from '../db/branding.js'
import { setInstallmentSettings } from '../db/installments.js'
import { putSecret } from '../db/secrets.js'
import { createApiKey, listKeys, revokeApiKey } from '../security/api-keys.js'
import { audit } from '../db/audit.js'
import { QBO_PRODUCTION, type QboEndpoints, assertRealmFree, connectQuickBooks, createAccountingFactory, discoverSettings, saveAccountingSettings, tokenRequest } from '../services/accounting-connections.js'
import { syncInvoices, type SyncProgress } from '../services/sync.js'
import { grantMember, listMemberGrants, liveLinkKey, liveLinkTemplates, revokeMember, signedLiveLinkUrl } from '../services/embedded.js'
import type { EmbeddedPermission, EmbeddedSystem } from '../security/embedded-sessions.js'
import { renderProgress, syncFraction } from './progress.js'

interface Deps {
  db: Knex
  keyring: Keyring
  publicUrl: string
  /** AUTOTASK_ZONE_URL and the QuickBooks endpoints from QUICKBOOKS_API_BASE / QUICKBOOKS_OAUTH_BASE. */
  autotaskZoneUrl?: string | null
  qbo?: QboEndpoints
}

const out = (text: string): void => { process.stdout.write(text + '\n') }

function required (values: Record<string, unknown>, name: string): string {
  const value = values[name]
  if (typeof value !== 'string' || value.trim() === '') throw new AppError('VALIDATION_FAILED', `--${name} is required.`)
  return value.trim()
}

function secretFromEnv (variable: string, what: string): string {
  const value = commandSecret(variable)
  if (value === undefined) throw new AppError('VALIDATION_FAILED', `Set ${variable} to the ${what}; secrets are never taken from the command line, where other users can see them.`)
  return value
}

async function tenantOf (db: Knex, values: Record<string, unknown>): Promise<Tenant> {
  const slug = required(values, 'tenant')
  const tenant = await findTenantBySlug(db, slug)
  if (tenant === null) throw new AppError('TENANT_NOT_FOUND', `No tenant "${slug}"; create it with settle tenants:create.`)
  return tenant
}

function logoTypeOf (path: string): LogoType {
  const type = ({ '.png': 'image/png', '.svg': 'image/svg+xml', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp' } as const)[extname(path).toLowerCase() as '.png']
  if (type === undefined) throw new AppError('VALIDATION_FAILED', `--logo must be a .png, .svg, .jpg or .webp file; got ${path}.`)
  return type
}

function systemOf (value: unknown): EmbeddedSystem {
  if (value === 'connectwise' || value === 'autotask') return value
  throw new AppError('VALIDATION_FAILED', '--system is connectwise or autotask.')
}

function permissionsOf (value: unknown): EmbeddedPermission[] {
  const list = String(value ?? '').split(',').map(s => s.trim()).filter(s => s !== '')
  const bad = list.filter(p => p !== 'charge' && p !== 'sync' && p !== 'paylink')
  if (list.length === 0 || bad.length > 0) throw new AppError('VALIDATION_FAILED', `--permissions is some of charge, sync, paylink, comma separated (everyone may view)${bad.length > 0 ? `; not ${bad.join(', ')}` : ''}.`)
  return [...new Set(list)] as EmbeddedPermission[]
}

/** Operator commands that act on one tenant. Returns the exit code. */
export async function runTenantCommand (command: string, args: string[], deps: Deps): Promise<number> {
  const { db, keyring } = deps
  const [sub, ...rest] = args
  const { values } = parseArgs({
    args: ['connect', 'install', 'uninstall'].includes(command) ? rest : args,
    options: {
      tenant: { type: 'string' }, slug: { type: 'string' }, name: { type: 'string' }, currency: { type: 'string' },
      system: { type: 'string' }, full: { type: 'boolean' }, 'recheck-open': { type: 'boolean' },
      site: { type: 'string' }, 'company-id': { type: 'string' }, 'public-key': { type: 'string' }, 'client-id': { type: 'string' },
      'api-user': { type: 'string' }, 'integration-code': { type: 'string' },
      rate: { type: 'string' }, block: { type: 'string' },
      'publishable-key': { type: 'string' }, realm: { type: 'string' }, accent: { type: 'string' }, logo: { type: 'string' }, 'support-email': { type: 'string' },
      'min-amount': { type: 'string' }, 'max-parts': { type: 'string' }, scopes: { type: 'string' }, zone: { type: 'string' },
      member: { type: 'string' }, permissions: { type: 'string' }, kind: { type: 'string' }, id: { type: 'string' }, days: { type: 'string' }, 'rotate-key': { type: 'boolean' }, move: { type: 'boolean' }
    },
    strict: true
  })

  if (command === 'tenants:create') {
    const tenant = await createTenant(db, { slug: required(values, 'slug'), name: required(values, 'name'), defaultCurrency: asCurrency(values.currency ?? 'USD') })
    out(`Created tenant ${tenant.slug} (${tenant.id}).`)
    return 0
  }

  const tenant = await tenantOf(db, values)
  if (command === 'tenants:surcharge') {
    // Either option left out keeps what is set; neither just shows it.
    const current = await getTenantSurcharge(db, tenant.id)
    let rateBp = current.rateBp
    if (typeof values.rate === 'string') {
      const parsed = parseRatePercent(values.rate)
      if (parsed === null) throw new AppError('VALIDATION_FAILED', `--rate takes a percentage such as 2.5 (at most 3), or 0 to turn the surcharge off; got "${values.rate}".`)
      rateBp = parsed
    }
    const blockedStates = typeof values.block === 'string' ? values.block.split(',').map(s => s.trim()).filter(s => s !== '') : current.blockedStates
    const settings = values.rate === undefined && values.block === undefined ? current : await setTenantSurcharge(db, tenant.id, { rateBp, blockedStates })
    out(settings.rateBp === 0
      ? `Card surcharge for ${tenant.slug}: off.`
      : `Card surcharge for ${tenant.slug}: ${formatRate(settings.rateBp)}% on credit cards${settings.blockedStates.length > 0 ? `; none for clients billed in ${settings.blockedStates.join(', ')} or whose state is unknown` : ''}.`)
    return 0
  }
  if (command === 'tenants:brand') {
    const logoPath = values.logo
    const logo = typeof logoPath === 'string' ? { type: logoTypeOf(logoPath), bytes: await readFile(logoPath) } : undefined
    const brand = await setBrand(db, tenant.id, {
      ...(typeof values.name === 'string' ? { name: values.name } : {}),
      ...(typeof values.accent === 'string' ? { accent: values.accent } : {}),
      ...(typeof values['support-email'] === 'string' ? { supportEmail: values['support-email'] } : {}),
      ...(logo !== undefined ? { logo } : {})
    })
    out(`Brand for ${tenant.slug}: ${brand.name}, accent ${brand.accent ?? 'default'}, ${brand.hasLogo ? 'with' : 'no'} logo, support ${brand.supportEmail ?? 'not set'}.`)
    return 0
  }
  if (command === 'tenants:time-zone') {
    await setTenantTimeZone(db, tenant.id, required(values, 'zone'))
    out(`${tenant.slug} runs auto-pay and installments by the calendar in ${String(values.zone)}.`)
    return 0
  }
  if (command === 'tenants:installments') {
    const minAmount = values['min-amount'] === undefined || values['min-amount'] === 'off' ? null : Math.round(Number(values['min-amount']) * 100)
    const maxParts = values['max-parts'] === undefined ? 6 : Number(values['max-parts'])
    if (minAmount !== null && (!Number.isSafeInteger(minAmount) || minAmount <= 0)) throw new AppError('VALIDATION_FAILED', `--min-amount takes dollars such as 1000, or off; got "${String(values['min-amount'])}".`)
    await setInstallmentSettings(db, tenant.id, { minAmount, maxParts })
    out(minAmount === null ? `Installments for ${tenant.slug}: off.` : `Installments for ${tenant.slug}: invoices from $${(minAmount / 100).toFixed(2)} may be paid in 2 to ${maxParts} monthly parts.`)
    return 0
  }
  if (command === 'api-keys:create') {
    const created = await createApiKey(db, tenant.id, required(values, 'name'), (values.scopes ?? '').split(',').map(s => s.trim()).filter(s => s !== ''))
    out(`Key "${String(values.name)}" for ${tenant.slug} (id ${created.id}). Shown once; store it now:\n${created.key}`)
    return 0
  }
  if (command === 'api-keys:list') {
    const keys = await listKeys(db, tenant.id)
    const when = (d: Date | null): string => d === null ? 'never used' : `last used ${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`
    out(keys.length === 0
      ? `${tenant.slug} has no API keys; make one with settle api-keys:create.`
      : keys.map(k => `${k.id}  ${k.name}  ${k.scopes.join(',')}  ${k.revokedAt !== null ? `revoked ${k.revokedAt.toISOString().slice(0, 10)}` : when(k.lastUsedAt)}`).join('\n'))
    return 0
  }
  if (command === 'api-keys:revoke') {
    const id = required(values, 'id')
    const name = await revokeApiKey(db, tenant.id, id)
    await audit(db, tenant.id, 'cli', 'api_key.revoke', id, { name })
    out(`Revoked "${name}" (${id}) for ${tenant.slug}: it is refused from its next request.`)
    return 0
  }
  if (command === 'members:grant' || command === 'members:revoke' || command === 'members:list') {
    if (command === 'members:list') {
      const grants = await listMemberGrants(db, tenant.id)
      out(grants.length === 0
        ? `No one in ${tenant.slug}'s PSAs may charge or sync yet; everyone may view. Grant with settle members:grant.`
        : grants.map(g => `${g.system} ${g.memberRef}: ${g.permissions.join(', ')}`).join('\n'))
      return 0
    }
    const system = systemOf(values.system)
    const member = required(values, 'member')
    const permissions = permissionsOf(values.permissions)
    if (command === 'members:grant') {
      await grantMember(db, tenant.id, system, member, permissions)
      out(`${member} in ${system} may now ${permissions.join(' and ')} from Settle's pages (everyone may view).`)
    } else {
      const removed = await revokeMember(db, tenant.id, system, member, permissions)
      out(`Removed ${removed} grant${removed === 1 ? '' : 's'}: ${member} in ${system} may no longer ${permissions.join(' or ')}.`)
    }
    return 0
  }
  if (command === 'livelinks') {
    // The templates carry no signature (Autotask cannot compute one), so they open on Settle's sign-in.
    if (values['rotate-key'] === true) await liveLinkKey(db, keyring, tenant.id, { rotate: true })
    else await liveLinkKey(db, keyring, tenant.id)
    const templates = liveLinkTemplates(deps.publicUrl, tenant.slug)
    out(`LiveLinks for ${tenant.slug} (Autotask › LiveLinks Designer; steps in manifest/autotask/README.md):
  Invoice: ${templates.invoice}
  Account: ${templates.company}
Opened from these, a person signs in with a Settle API key (payments:read; payments:charge to charge).${values['rotate-key'] === true ? '\nThe LiveLink key was rotated: signed links made before now no longer open.' : ''}`)
    return 0
  }
  if (command === 'livelinks:sign') {
    const kind = values.kind === 'invoice' || values.kind === 'company' ? values.kind : null
    if (kind === null) throw new AppError('VALIDATION_FAILED', '--kind is invoice or company.')
    const days = values.days === undefined ? 7 : Number(values.days)
    if (!Number.isInteger(days) || days < 1 || days > 90) throw new AppError('VALIDATION_FAILED', `--days is a whole number of days from 1 to 90; got "${String(values.days)}".`)
    const url = await signedLiveLinkUrl(db, keyring, deps.publicUrl, tenant, kind, required(values, 'id'), days * 86_400_000)
    out(`Signed link to Autotask ${kind} ${String(values.id)}, valid ${days} day${days === 1 ? '' : 's'} (whoever holds it sees that ${kind}'s payments; may charge only if livelink is granted charge):\n${url}`)
    return 0
  }
  if (command === 'connect') {
    if (sub === 'connectwise') {
      const creds = {
        site: required(values, 'site'),
        companyId: required(values, 'company-id'),
        publicKey: required(values, 'public-key'),
        clientId: required(values, 'client-id'),
        privateKey: secretFromEnv('SETTLE_CW_PRIVATE_KEY', 'API member\'s private key')
      }
      // Prove the credentials and register the invoice callback before saving anything.
      const psa = createConnectWisePsa(creds)
      const callback = await psa.registerInvoiceCallback({ url: `${deps.publicUrl}/webhooks/connectwise/${tenant.slug}`, description: `Settle invoice sync (${tenant.slug})` })
      await connectConnectWise(db, keyring, tenant.id, creds)
      out(`Connected ${tenant.slug} to ConnectWise ${creds.companyId}; invoice callback ${callback.created ? 'registered' : 'already registered'} (id ${callback.id}).`)
      return 0
    }
    if (sub === 'autotask') {
      await connectAutotask(db, keyring, tenant.id, {
        apiUser: required(values, 'api-user'),
        integrationCode: required(values, 'integration-code'),
        secret: secretFromEnv('SETTLE_AT_SECRET', 'API user\'s secret')
      })
      out(`Connected ${tenant.slug} to Autotask as ${String(values['api-user'])}. Invoices are polled every SYNC_INTERVAL_MINUTES (Autotask has no invoice webhooks).`)
      return 0
    }
    if (sub === 'stripe') {
      const secretKey = secretFromEnv('SETTLE_STRIPE_SECRET_KEY', 'Stripe secret key (sk_… or rk_…)')
      const webhookSecret = secretFromEnv('SETTLE_STRIPE_WEBHOOK_SECRET', 'webhook endpoint signing secret (whsec_…)')
      const publishable = required(values, 'publishable-key')
      if (!/^(sk|rk)_(live|test)_\w+$/.test(secretKey)) throw new AppError('VALIDATION_FAILED', 'SETTLE_STRIPE_SECRET_KEY must be a Stripe secret or restricted key (sk_live_…, rk_live_…).')
      if (!/^pk_(live|test)_\w+$/.test(publishable)) throw new AppError('VALIDATION_FAILED', '--publishable-key must be the account\'s publishable key (pk_live_…).')
      if (!/^whsec_\w+$/.test(webhookSecret)) throw new AppError('VALIDATION_FAILED', 'SETTLE_STRIPE_WEBHOOK_SECRET must be the endpoint\'s signing secret (whsec_…).')
      if (secretKey.split('_')[1] !== publishable.split('_')[1]) throw new AppError('VALIDATION_FAILED', 'The secret and publishable keys must both be live or both be test keys.')
      await putSecret(db, keyring, tenant.id, 'stripe.secret_key', secretKey)
      await putSecret(db, keyring, tenant.id, 'stripe.publishable_key', publishable)
      await putSecret(db, keyring, tenant.id, 'stripe.webhook_secret', webhookSecret)
      out(`Connected ${tenant.slug} to Stripe (${publishable.split('_')[1] ?? ''} mode). In Stripe, send events to ${deps.publicUrl}/webhooks/stripe/${tenant.slug}.`)
      return 0
    }
    if (sub === 'quickbooks') {
      const app = { clientId: secretFromEnv('SETTLE_QBO_CLIENT_ID', 'Intuit app client id'), clientSecret: secretFromEnv('SETTLE_QBO_CLIENT_SECRET', 'Intuit app client secret') }
      const refreshToken = secretFromEnv('SETTLE_QBO_REFRESH_TOKEN', 'QuickBooks refresh token for the company')
      const realmId = required(values, 'realm')
      const moveRealm = values.move === true
      await assertRealmFree(db, tenant.id, realmId, moveRealm)
      // Prove the refresh token (and rotate it) before saving anything.
      const tokens = await tokenRequest(deps.qbo ?? QBO_PRODUCTION, app, { grant_type: 'refresh_token', refresh_token: refreshToken })
      await connectQuickBooks(db, keyring, { tenantId: tenant.id, realmId, tokens, moveRealm, actor: 'cli' })
      const port = await createAccountingFactory({ db, keyring, app, endpoints: deps.qbo })(tenant.id)
      const settings = port === null ? null : await saveAccountingSettings(db, tenant.id, await discoverSettings(port))
      out(`Connected ${tenant.slug} to QuickBooks company ${realmId}; proposed settings: ${JSON.stringify(settings)}. Confirm them in settings.`)
      return 0
    }
    throw new AppError('VALIDATION_FAILED', 'Say what to connect: settle connect connectwise …, autotask … stripe … or quickbooks …')
  }

  if (command === 'install' || command === 'uninstall') {
    if (sub !== 'connectwise') throw new AppError('VALIDATION_FAILED', `Only ConnectWise installs through its API: settle ${command} connectwise --tenant SLUG. For Autotask follow manifest/autotask/README.md.`)
    const connection = (await listPsaConnections(db, { tenantId: tenant.id })).find(c => c.system === 'connectwise')
    if (connection === undefined) throw new AppError('PSA_NOT_CONNECTED', `${tenant.slug} has no ConnectWise connection; add one with settle connect connectwise.`)
    const psa = await createPsaFactory({ keyring, sandboxOrigin: () => deps.publicUrl, autotaskZoneUrl: deps.autotaskZoneUrl })(db, tenant.id, 'connectwise') as ConnectWisePsa
    const manifest = await loadConnectWiseManifest()
    if (command === 'install') {
      const summary = await installConnectWise({ psa, manifest, publicUrl: deps.publicUrl, slug: tenant.slug, clientId: String(connection.settings.clientId ?? '') })
      out(`Installed Settle in ConnectWise for ${tenant.slug} (pages at ${deps.publicUrl}):\n${describeInstall(summary)}`)
    } else {
      const removed = await uninstallConnectWise({ psa, manifest, publicUrl: deps.publicUrl, slug: tenant.slug })
      out(`Removed Settle from ConnectWise for ${tenant.slug}: ${removed.setupsRemoved} hosted setups, ${removed.callbacksRemoved} callbacks.`)
    }
    return 0
  }

  const connections = await listPsaConnections(db, { tenantId: tenant.id })
  const systems = (typeof values.system === 'string' ? [values.system] : connections.map(c => c.system)) as PsaSystem[]
  if (command === 'sync:status') {
    for (const system of systems) {
      const state = await getSyncState(db, tenant.id, system)
      out(`${system}: ${state?.lastStatus ?? 'never synced'}${state?.lastFinishedAt != null ? ` at ${state.lastFinishedAt.toISOString()}` : ''}${state?.lastError != null ? ` (${state.lastError})` : ''}`)
      for (const run of await listSyncRuns(db, tenant.id, { system, limit: 5 })) {
        out(`  #${run.id} ${run.startedAt.toISOString()} ${run.trigger} ${run.status}: ${run.invoicesSeen} read, ${run.created} new, ${run.changed} changed, ${run.voided} voided, ${run.calls} calls${run.error !== null ? ` (${run.error})` : ''}`)
      }
    }
    return 0
  }

  // sync
  if (systems.length === 0) throw new AppError('PSA_NOT_CONNECTED', `${tenant.slug} has no PSA connection; add one with settle connect.`)
  const psaFor = createPsaFactory({ keyring, sandboxOrigin: () => deps.publicUrl, autotaskZoneUrl: deps.autotaskZoneUrl })
  let failed = false
  for (const system of systems) {
    const tty = process.stderr.isTTY
    let lastLine = 0
    let latest: SyncProgress | null = null
    process.stderr.write(`Syncing ${tenant.name} from ${system === 'connectwise' ? 'ConnectWise PSA' : 'Autotask'}\n`)
    const result = await syncInvoices({
      db,
      tenantId: tenant.id,
      psa: await psaFor(db, tenant.id, system),
      trigger: 'cli',
      full: values.full === true,
      recheckOpen: values['recheck-open'] === true,
      onProgress: progress => {
        latest = progress
        const line = renderProgress(progress, syncFraction(progress, new Date()))
        if (tty) process.stderr.write(`\r${line}\u001b[K`)
        else if (Date.now() - lastLine > 2000) { process.stderr.write(line + '\n'); lastLine = Date.now() }
      }
    })
    const final: SyncProgress | null = latest
    if (final !== null && result.status === 'ok') process.stderr.write(`${tty ? '\r' : ''}${renderProgress(final, 1)}\u001b[K\n`)
    else if (tty) process.stderr.write('\n')
    out(`${system}: ${result.status}. ${result.invoicesSeen} invoices read in ${result.pages} pages: ${result.created} new, ${result.changed} changed, ${result.voided} voided, ${result.unchanged} unchanged; ${result.linesFetched} lines; ${result.calls} API calls.`)
    if (result.error !== null) { out(`  error: ${result.error}`); failed = true }
  }
  const state = await getSyncState(db, tenant.id, systems[0] as PsaSystem)
  if (state?.lastStatus === 'failed') failed = true
  return failed ? 1 : 0
}
