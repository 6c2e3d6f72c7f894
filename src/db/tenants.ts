import type { Db } from './knex.js'
import { pgError } from './knex.js'
import { AppError } from '../errors.js'
import { asCurrency, type Currency } from '../domain/money.js'
import { isTimeZone, localDate } from '../domain/calendar.js'
import { checkSurchargeSettings, type SurchargeSettings } from '../domain/surcharge.js'

export interface Tenant {
  id: string
  slug: string
  name: string
  defaultCurrency: Currency
  createdAt: Date
}

interface TenantRow { id: string, slug: string, name: string, default_currency: string, created_at: Date }

const toTenant = (row: TenantRow): Tenant => ({
  id: row.id,
  slug: row.slug,
  name: row.name,
  defaultCurrency: asCurrency(row.default_currency),
  createdAt: row.created_at
})

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Ids are UUIDs; anything else is not-found before it reaches the database. */
export const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID.test(value)

/** Every repository calls this first: no tenant, no query. */
export function requireTenantId (tenantId: unknown): string {
  if (!isUuid(tenantId)) {
    throw new AppError('TENANT_REQUIRED', 'This operation needs a tenant; none (or a malformed one) was given.')
  }
  return tenantId
}

export async function createTenant (db: Db, input: { slug: string, name: string, defaultCurrency?: Currency }): Promise<Tenant> {
  const currency = asCurrency(input.defaultCurrency ?? 'USD')
  if (!/^[a-z0-9][a-z0-9-]{1,62}$/.test(input.slug)) {
    throw new AppError('VALIDATION_FAILED', `Tenant slug "${input.slug}" must be 2–63 characters of lower-case letters, digits and dashes.`)
  }
  try {
    const [row] = await db<TenantRow>('tenants')
      .insert({ slug: input.slug, name: input.name, default_currency: currency })
      .returning('*')
    return toTenant(row as TenantRow)
  } catch (error) {
    if (pgError(error).code === '23505') throw new AppError('CONFLICT', `A tenant with slug "${input.slug}" already exists.`)
    throw error
  }
}

/** Creates the tenant once; later calls return the existing one (seeding, installs). */
export async function ensureTenant (db: Db, input: { slug: string, name: string, defaultCurrency?: Currency }): Promise<Tenant> {
  const existing = await findTenantBySlug(db, input.slug)
  if (existing !== null) return existing
  await db('tenants').insert({ slug: input.slug, name: input.name, default_currency: input.defaultCurrency ?? 'USD' }).onConflict('slug').ignore()
  const created = await findTenantBySlug(db, input.slug)
  if (created === null) throw new AppError('INTERNAL', `Tenant ${input.slug} could not be created.`)
  return created
}

export async function getTenant (db: Db, tenantId: string): Promise<Tenant> {
  const row = await db<TenantRow>('tenants').where({ id: requireTenantId(tenantId) }).first()
  if (row === undefined) throw new AppError('TENANT_NOT_FOUND', `No tenant ${tenantId}.`)
  return toTenant(row)
}

export async function findTenantBySlug (db: Db, slug: string): Promise<Tenant | null> {
  const row = await db<TenantRow>('tenants').where({ slug }).first()
  return row === undefined ? null : toTenant(row)
}

/** The tenant's card surcharge settings (a rate of 0 is off). */
export async function getTenantSurcharge (db: Db, tenantId: string): Promise<SurchargeSettings> {
  const row = await db('tenants').where({ id: requireTenantId(tenantId) }).first('surcharge_rate_bp', 'surcharge_blocked_states') as
    { surcharge_rate_bp: number, surcharge_blocked_states: string[] | null } | undefined
  if (row === undefined) throw new AppError('TENANT_NOT_FOUND', `No tenant ${tenantId}.`)
  return { rateBp: Number(row.surcharge_rate_bp), blockedStates: row.surcharge_blocked_states ?? [] }
}

/** Sets the card surcharge; bad input is refused whole, before anything is written. */
export async function setTenantSurcharge (db: Db, tenantId: string, input: { rateBp: number, blockedStates: readonly string[] }): Promise<SurchargeSettings> {
  requireTenantId(tenantId)
  const checked = checkSurchargeSettings(input)
  if (!checked.ok) throw new AppError('VALIDATION_FAILED', checked.problem)
  const updated = await db('tenants').where({ id: tenantId })
    .update({ surcharge_rate_bp: checked.settings.rateBp, surcharge_blocked_states: [...checked.settings.blockedStates] })
  if (updated === 0) throw new AppError('TENANT_NOT_FOUND', `No tenant ${tenantId}.`)
  return checked.settings
}

/** The tenant's today (YYYY-MM-DD) in its own time zone. */
export async function tenantToday (db: Db, tenantId: string, now = new Date()): Promise<string> {
  const row = await db('tenants').where({ id: requireTenantId(tenantId) }).first('time_zone') as { time_zone: string } | undefined
  if (row === undefined) throw new AppError('TENANT_NOT_FOUND', `No tenant ${tenantId}.`)
  return localDate(now, row.time_zone)
}

export async function setTenantTimeZone (db: Db, tenantId: string, timeZone: string): Promise<void> {
  if (!isTimeZone(timeZone)) throw new AppError('VALIDATION_FAILED', `"${timeZone}" is not a time zone; use a name such as America/Chicago or UTC.`)
  await db('tenants').where({ id: requireTenantId(tenantId) }).update({ time_zone: timeZone })
}
