import { ConfigProblems, configTableMarkdown, envExample, loadConfig, loadDotEnv } from './config.js'
import { qboEndpoints } from './services/accounting-connections.js'
import { createDb, describeTarget } from './db/knex.js'
import { migrateLatest, migrateRollbackAll, pendingMigrations } from './db/migrate.js'
import { databaseTarget } from './plugins/db.js'
import { Keyring } from './security/keyring.js'
import { resealWithActiveKey } from './db/secrets.js'
import { runTenantCommand } from './cli/commands.js'

const USAGE = `Usage: settle <command> [options]

  tenants:create --slug SLUG --name NAME [--currency USD]
  tenants:surcharge --tenant SLUG [--rate PERCENT] [--block CT,MA]
                     (credit card surcharge, at most 3; --rate 0 turns it off; --block '' clears the states)
  connect connectwise --tenant SLUG --site URL --company-id ID --public-key KEY --client-id GUID
                     (private key from SETTLE_CW_PRIVATE_KEY; registers the invoice callback at PUBLIC_URL)
  connect autotask --tenant SLUG --api-user USER --integration-code CODE
                     (secret from SETTLE_AT_SECRET)
  connect stripe --tenant SLUG --publishable-key pk_live_…
                     (SETTLE_STRIPE_SECRET_KEY and SETTLE_STRIPE_WEBHOOK_SECRET from the environment)
  tenants:brand --tenant SLUG [--name NAME] [--accent #1d4ed8] [--logo FILE] [--support-email ADDRESS]
  tenants:time-zone --tenant SLUG --zone America/Chicago   ("today" for auto-pay and installments)
  tenants:installments --tenant SLUG --min-amount DOLLARS|off [--max-parts 2-12]
  api-keys:create --tenant SLUG --name NAME --scopes payments:read,payments:charge,…
  api-keys:list --tenant SLUG      (ids, scopes, last use; never the secrets)
  api-keys:revoke --tenant SLUG --id KEY_ID   (refused from its next request)
  install connectwise --tenant SLUG
                     (registers the pods, tab, toolbar button and callback in manifest/connectwise/; re-run to update)
  uninstall connectwise --tenant SLUG
  members:grant --tenant SLUG --system connectwise|autotask --member ID|livelink|* --permissions charge,sync,paylink
  members:revoke --tenant SLUG --system … --member … --permissions …
  members:list --tenant SLUG      (who may charge and sync from the PSA pages; everyone may view)
  livelinks --tenant SLUG [--rotate-key]
                     (the Autotask LiveLink URLs to paste into the LiveLinks Designer)
  livelinks:sign --tenant SLUG --kind invoice|company --id AUTOTASK_ID [--days 7]
                     (a signed link that opens without sign-in, for a note or a notification)
  sync --tenant SLUG [--system connectwise|autotask] [--full] [--recheck-open]
  sync:status --tenant SLUG
  migrate            apply pending migrations
  migrate:status     list pending migrations
  migrate:rollback   undo every migration (development only)
  keys:generate      print a new SETTLE_ENCRYPTION_KEYS entry
  keys:reseal        re-encrypt stored secrets with the first (active) key
  config:table       print the configuration table for the README
  config:env-example print .env.example (npm run env:example writes it)
`

const TENANT_COMMANDS = [
  'tenants:create', 'tenants:surcharge', 'tenants:brand', 'tenants:time-zone', 'tenants:installments', 'api-keys:create', 'api-keys:list', 'api-keys:revoke', 'connect', 'install', 'uninstall', 'sync', 'sync:status',
  'members:grant', 'members:revoke', 'members:list', 'livelinks', 'livelinks:sign'
]

/** Operator commands. Output goes to stdout for people; errors to stderr with a non-zero exit. */
async function main (argv: string[]): Promise<number> {
  const [command] = argv
  if (command === 'config:table') {
    process.stdout.write(configTableMarkdown() + '\n')
    return 0
  }
  if (command === 'config:env-example') {
    process.stdout.write(envExample())
    return 0
  }
  if (command === 'keys:generate') {
    process.stdout.write(Keyring.generateEntry() + '\n')
    return 0
  }
  if (command === undefined || !['migrate', 'migrate:status', 'migrate:rollback', 'keys:reseal', ...TENANT_COMMANDS].includes(command)) {
    process.stderr.write(USAGE)
    return command === undefined || command === '--help' ? 0 : 64
  }
  loadDotEnv()
  const config = loadConfig()
  // The CLI manages real data: never the demo server's in-memory database.
  const target = databaseTarget({ ...config, demo: false })
  const db = createDb(target)
  try {
    if (TENANT_COMMANDS.includes(command)) {
      const keyring = config.encryptionKeys !== null ? new Keyring(config.encryptionKeys) : Keyring.loadOrCreateLocal(config.dataDir)
      return await runTenantCommand(command, argv.slice(1), { db, keyring, publicUrl: config.publicUrl, autotaskZoneUrl: config.autotaskZoneUrl, qbo: qboEndpoints(config) })
    }
    if (command === 'migrate') {
      const applied = await migrateLatest(db)
      process.stdout.write(applied.length === 0 ? `${describeTarget(target)}: already current\n` : `${describeTarget(target)}: applied ${applied.join(', ')}\n`)
    } else if (command === 'migrate:status') {
      const pending = await pendingMigrations(db)
      process.stdout.write(pending.length === 0 ? 'No pending migrations.\n' : `Pending: ${pending.join(', ')}\n`)
    } else if (command === 'migrate:rollback') {
      if (config.nodeEnv === 'production') throw new Error('Refusing to roll back every migration with NODE_ENV=production.')
      process.stdout.write(`Rolled back: ${(await migrateRollbackAll(db)).join(', ') || 'nothing'}\n`)
    } else {
      const keyring = config.encryptionKeys !== null ? new Keyring(config.encryptionKeys) : Keyring.loadOrCreateLocal(config.dataDir)
      process.stdout.write(`Re-sealed ${await resealWithActiveKey(db, keyring)} secrets with key ${keyring.activeKeyId}.\n`)
    }
    return 0
  } finally {
    await db.destroy()
  }
}

main(process.argv.slice(2)).then(code => { process.exitCode = code }, (error: unknown) => {
  process.stderr.write(error instanceof ConfigProblems ? `Fix these settings:\n  ${error.problems.map(p => p.message).join('\n  ')}\n` : `settle: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})
