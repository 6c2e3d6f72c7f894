import { dirname, relative, resolve, sep } from 'node:path'

/**
 * The house lines (README, "Layout") as one lint rule: which folders a file
 * may import from. Relative imports are resolved against the importing file,
 * so a file moved into a subfolder keeps the same line; dynamic imports and
 * re-exports count like imports. A file on the `debt` list may still cross
 * the line, but once it no longer does, the rule says so until it is taken
 * off the list: the list only shrinks.
 */
const ROOT = process.cwd()

const toPosix = p => p.split(sep).join('/')
const repoPath = file => toPosix(relative(ROOT, file))
const inside = (path, folder) => path === folder || path.startsWith(`${folder}/`)

/** @type {import('eslint').Rule.RuleModule} */
export const layerImports = {
  meta: {
    type: 'problem',
    docs: { description: 'Keeps each layer to the imports the house allows' },
    schema: [{
      type: 'object',
      properties: {
        // Imports must resolve inside this folder (or be one of `packages`).
        within: { type: 'string' },
        packages: { type: 'array', items: { type: 'string' } },
        // Imports must not resolve inside any of these folders.
        forbidden: { type: 'array', items: { type: 'string' } },
        because: { type: 'string' },
        debt: { type: 'array', items: { type: 'string' } }
      },
      additionalProperties: false
    }],
    messages: {
      crosses: '{{file}} may not import "{{source}}": {{because}}',
      paid: '{{file}} no longer crosses this line: take it off the debt list in eslint.config.js.'
    }
  },
  create (context) {
    const { within, packages = [], forbidden = [], because = 'it crosses a house line', debt = [] } = context.options[0] ?? {}
    const file = repoPath(context.filename)
    const owed = debt.includes(file)
    let crossings = 0

    function check (node, source) {
      if (typeof source !== 'string') return
      const relativeImport = source.startsWith('.')
      const target = relativeImport ? repoPath(resolve(dirname(context.filename), source)) : null
      const crosses = target === null
        ? within !== undefined && !packages.includes(source)
        : (within !== undefined && !inside(target, within)) || forbidden.some(folder => inside(target, folder))
      if (!crosses) return
      crossings++
      if (!owed) context.report({ node, messageId: 'crosses', data: { file, source, because } })
    }

    const fromSource = node => { if (node.source != null) check(node.source, node.source.value) }
    return {
      ImportDeclaration: fromSource,
      ExportNamedDeclaration: fromSource,
      ExportAllDeclaration: fromSource,
      ImportExpression: node => { if (node.source.type === 'Literal') check(node.source, node.source.value) },
      'Program:exit': node => { if (owed && crossings === 0) context.report({ node, messageId: 'paid', data: { file } }) }
    }
  }
}

/** @type {import('eslint').Rule.RuleModule} */
export const configOnly = {
  meta: {
    type: 'problem',
    docs: { description: 'Every process.env read lives in src/config.ts' },
    schema: [{ type: 'object', properties: { debt: { type: 'array', items: { type: 'string' } } }, additionalProperties: false }],
    messages: {
      env: 'Read settings in src/config.ts (a SETTINGS entry), not process.env here.',
      paid: '{{file}} no longer reads process.env: take it off the debt list in eslint.config.js.'
    }
  },
  create (context) {
    const { debt = [] } = context.options[0] ?? {}
    const file = repoPath(context.filename)
    const owed = debt.includes(file)
    let reads = 0
    return {
      'MemberExpression[object.name="process"][property.name="env"]': node => {
        reads++
        if (!owed) context.report({ node, messageId: 'env' })
      },
      'Program:exit': node => { if (owed && reads === 0) context.report({ node, messageId: 'paid', data: { file } }) }
    }
  }
}

export default { rules: { 'layer-imports': layerImports, 'config-only': configOnly } }
