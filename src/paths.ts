import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Where the files that are not code live. Under tsx this module runs from
 * src/; the build (`npm run build`) runs it from dist/src/, one level deeper.
 * views/, manifest/ and the stand-ins' JSON are read from the checkout either
 * way, so the build copies nothing; only the migrations are compiled.
 */
export const RUNNING_BUILD = import.meta.url.endsWith('.js')

export const PROJECT_ROOT = fileURLToPath(new URL(RUNNING_BUILD ? '../../' : '../', import.meta.url))

export const projectPath = (...parts: string[]): string => join(PROJECT_ROOT, ...parts)

/** The migrations as they run: TypeScript under tsx, their compiled twins under the build. */
export const MIGRATIONS_DIR = RUNNING_BUILD ? projectPath('dist', 'migrations') : projectPath('migrations')
