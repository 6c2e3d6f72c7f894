/**
 * A small read-through cache with a time limit, for values that are safe to
 * be briefly stale in one process (a tenant's webhook secret). Nothing here
 * is needed by another process: each one reads the database on a miss.
 * Concurrent misses for one key share a single load.
 */
export function readThroughCache<K, V> (ttlMs: number, load: (key: K) => Promise<V>, maxEntries = 1000): { get: (key: K) => Promise<V>, clear: () => void } {
  const entries = new Map<K, { value: Promise<V>, expires: number }>()
  return {
    async get (key: K): Promise<V> {
      const hit = entries.get(key)
      if (hit !== undefined && hit.expires > Date.now()) return await hit.value
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as K)
      const value = load(key)
      entries.set(key, { value, expires: Date.now() + ttlMs })
      // A failed load is not remembered.
      value.catch(() => { entries.delete(key) })
      return await value
    },
    clear () { entries.clear() }
  }
}

/**
 * Values rebuilt only when their source changed: the caller reads a cheap
 * version of the source on every use (so nothing is ever stale), and the
 * costly build runs only when that version differs from the stored one.
 * Per process, bounded, oldest entry out first.
 */
export function versionedCache<K, V> (maxEntries = 1000): { get: (key: K, version: string, build: () => Promise<V>) => Promise<V> } {
  const entries = new Map<K, { version: string, value: V }>()
  return {
    async get (key, version, build) {
      const hit = entries.get(key)
      if (hit !== undefined && hit.version === version) return hit.value
      const value = await build()
      entries.delete(key)
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as K)
      entries.set(key, { version, value })
      return value
    }
  }
}
