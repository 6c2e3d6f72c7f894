/** Stripe's form encoding: `a[b][c]=v`, `list[]=v`, `list[0]=v` (what the SDK sends), parsed into nested objects and arrays. */

export class FormError extends Error {}

type Node = Record<string, unknown>

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype'])

function splitKey (key: string): string[] {
  const open = key.indexOf('[')
  if (open <= 0) return [key]
  const parts = [key.slice(0, open)]
  const re = /\[([^[\]]*)\]/g
  let m: RegExpExecArray | null
  let end = open
  re.lastIndex = open
  while ((m = re.exec(key)) !== null) {
    if (m.index !== end) throw new FormError(`Invalid parameter name: ${key}`)
    parts.push(m[1] ?? '')
    end = re.lastIndex
  }
  if (end !== key.length) throw new FormError(`Invalid parameter name: ${key}`)
  return parts
}

function set (root: Node, path: string[], value: string): void {
  let node: Node = root
  for (let i = 0; i < path.length; i++) {
    // `[]` appends: give it the next free index, turned into an array below
    const seg = path[i] === '' ? String(Object.keys(node).length) : path[i] as string
    if (FORBIDDEN.has(seg)) throw new FormError(`Invalid parameter name: ${path.join('.')}`)
    if (i === path.length - 1) {
      if (typeof node[seg] === 'object') throw new FormError(`Conflicting values for parameter ${path.slice(0, i + 1).join('.')}`)
      node[seg] = value
      return
    }
    const next = node[seg]
    if (next === undefined) {
      const child: Node = {}
      node[seg] = child
      node = child
    } else if (typeof next === 'object' && next !== null) {
      node = next as Node
    } else {
      throw new FormError(`Conflicting values for parameter ${path.slice(0, i + 1).join('.')}`)
    }
  }
}

/** Objects keyed 0..n-1 become arrays, except under `metadata`, whose keys are the caller's own strings. */
function arrays (value: unknown, underMetadata: boolean): unknown {
  if (typeof value !== 'object' || value === null) return value
  const node = value as Node
  const keys = Object.keys(node)
  for (const k of keys) node[k] = arrays(node[k], k === 'metadata' || underMetadata)
  if (!underMetadata && keys.length > 0 && keys.every((k, i) => k === String(i))) return keys.map(k => node[k])
  return node
}

export function parseForm (body: string): Node {
  const root: Node = {}
  for (const [key, value] of new URLSearchParams(body)) set(root, splitKey(key), value)
  for (const k of Object.keys(root)) root[k] = arrays(root[k], k === 'metadata')
  return root
}
