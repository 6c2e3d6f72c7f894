import type { Knex } from 'knex'
import { randomBytes } from 'node:crypto'
import { createDb } from '../src/db/knex.js'

/**
 * Benchmarks compare against a baseline measured in the same run, because
 * absolute times drift on shared machines. They use a throwaway PostgreSQL
 * database (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local
 * server) and drop it afterwards.
 */
export const BENCH_SERVER = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

export async function withScratchDatabase<T> (poolMax: number, work: (db: Knex) => Promise<T>): Promise<T> {
  const name = `settle_bench_${randomBytes(4).toString('hex')}`
  const admin = createDb({ kind: 'postgres', url: BENCH_SERVER, poolMax: 1 })
  await admin.raw(`create database ${name}`)
  const url = new URL(BENCH_SERVER)
  url.pathname = `/${name}`
  const db = createDb({ kind: 'postgres', url: url.toString(), poolMax })
  try {
    return await work(db)
  } finally {
    await db.destroy()
    await admin.raw(`drop database if exists ${name} with (force)`)
    await admin.destroy()
  }
}

/** Runs `total` operations through `writers` concurrent loops; returns operations per second. */
export async function throughput (total: number, writers: number, op: (i: number) => Promise<void>): Promise<number> {
  let next = 0
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: writers }, async () => {
    for (let i = next++; i < total; i = next++) await op(i)
  }))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return Math.round(total / seconds)
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? 0
}

export function report (figures: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(figures) + '\n')
}

export function note (text: string): void {
  process.stdout.write(`# ${text}\n`)
}
