import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// npm run start:prod runs dist/: the migrations it applies must carry the
// names tsx applies, and views, the manifest and the stand-ins' JSON must be
// found from there. One build, then both ways over one database.
const root = new URL('..', import.meta.url).pathname
const run = (args: string[], env: Record<string, string>): { status: number | null, out: string } => {
  const result = spawnSync(process.execPath, args, { cwd: root, env: { ...process.env, DATABASE_URL: '', LOG_LEVEL: 'silent', ...env }, encoding: 'utf8' })
  return { status: result.status, out: `${result.stdout}${result.stderr}` }
}

// A whole tsc build plus two migration runs: room beyond tap's default on 2 busy cores.
t.setTimeout(300_000)

t.test('the build applies the migrations under their source names and finds its files', async t => {
  const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, encoding: 'utf8' })
  t.equal(build.status, 0, `npm run build succeeds ${build.stderr}`)
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-build-'))
  t.teardown(() => { rmSync(dataDir, { recursive: true, force: true }) })

  const migrate = run(['dist/src/cli.js', 'migrate'], { DATA_DIR: dataDir })
  t.equal(migrate.status, 0, migrate.out)
  const sources = readdirSync(join(root, 'migrations')).filter(f => f.endsWith('.ts'))
  for (const name of sources) t.match(migrate.out, name, `the build applied ${name} by its source name`)
  const status = run(['--import', 'tsx', 'src/cli.ts', 'migrate:status'], { DATA_DIR: dataDir })
  t.match(status.out, /No pending migrations/, 'tsx sees the database the build migrated as current')

  const files = run(['--input-type=module', '-e', [
    "const { PROJECT_ROOT, RUNNING_BUILD } = await import('./dist/src/paths.js')",
    "await import('./dist/src/sandbox/quickbooks/validate.js')",
    "const { loadConnectWiseManifest } = await import('./dist/src/services/psa-install.js')",
    'const manifest = await loadConnectWiseManifest()',
    "process.stdout.write(JSON.stringify({ root: PROJECT_ROOT, built: RUNNING_BUILD, callbacks: manifest.callbacks.length }))"
  ].join('\n')], {})
  t.equal(files.status, 0, files.out)
  const found = JSON.parse(files.out) as { root: string, built: boolean, callbacks: number }
  t.same([found.root, found.built], [root, true], 'the build knows it is the build and finds the checkout (views/ live there)')
  t.ok(found.callbacks > 0, 'the stand-ins\' shapes load and the manifest is read, from dist/')
})
