// Boot time: from process start to /ready answering 200, under tsx (npm start)
// and from the build (npm run start:prod; run npm run build first).
// node bench/boot-time.mjs [runs]  — each run is a fresh demo on PGlite.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const RUNS = Number(process.argv[2] ?? 3)
const STARTS = {
  tsx: ['--import', 'tsx', 'src/server.ts'],
  built: ['--enable-source-maps', 'dist/src/server.js']
}

async function bootOnce (args, port) {
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-boot-'))
  const started = performance.now()
  const child = spawn(process.execPath, args, { env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, stdio: 'ignore' })
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`)
      try {
        const answer = await fetch(`http://127.0.0.1:${port}/ready`)
        if (answer.status === 200) return performance.now() - started
      } catch { /* not listening yet */ }
      await new Promise(resolve => setTimeout(resolve, 10))
    }
  } finally {
    child.kill('SIGTERM')
    await new Promise(resolve => child.once('exit', resolve))
    rmSync(dataDir, { recursive: true, force: true })
  }
}

const figures = {}
for (const [name, args] of Object.entries(STARTS)) {
  const ms = []
  for (let i = 0; i < RUNS; i++) ms.push(Math.round(await bootOnce(args, 3950 + i)))
  figures[name] = { runs: ms, medianMs: [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)] }
}
process.stdout.write(JSON.stringify(figures, null, 2) + '\n')
