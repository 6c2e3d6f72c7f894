import type { Db } from './knex.js'
import { requireTenantId } from './tenants.js'
import { AppError } from '../errors.js'

/** How the MSP appears to its clients on pay pages and messages: their name and colours, not Settle's. */
export interface Brand {
  tenantId: string
  /** What clients call the MSP; the tenant's name unless set. */
  name: string
  /** `#rrggbb`; null keeps the neutral default. */
  accent: string | null
  hasLogo: boolean
  supportEmail: string | null
  /** Changes whenever the brand does, so the theme and logo can be cached by URL. */
  version: string
}

export const LOGO_TYPES = ['image/png', 'image/svg+xml', 'image/jpeg', 'image/webp'] as const
export type LogoType = typeof LOGO_TYPES[number]
export const MAX_LOGO_BYTES = 256 * 1024

interface BrandRow { id: string, name: string, brand_name: string | null, brand_accent: string | null, has_logo: boolean, logo_bytes: number | null, support_email: string | null }

export async function getBrand (db: Db, tenantId: string): Promise<Brand> {
  const row = await db('tenants').where({ id: requireTenantId(tenantId) })
    .first('id', 'name', 'brand_name', 'brand_accent', 'support_email', db.raw('brand_logo is not null as has_logo'), db.raw('octet_length(brand_logo) as logo_bytes')) as BrandRow | undefined
  if (row === undefined) throw new AppError('TENANT_NOT_FOUND', `No tenant ${tenantId}.`)
  return {
    tenantId: row.id,
    name: row.brand_name ?? row.name,
    accent: row.brand_accent,
    hasLogo: row.has_logo,
    supportEmail: row.support_email,
    version: Buffer.from(`${row.brand_name ?? ''}|${row.brand_accent ?? ''}|${row.logo_bytes ?? 0}`).toString('base64url').slice(0, 16)
  }
}

export interface BrandInput {
  name?: string | null
  accent?: string | null
  supportEmail?: string | null
  logo?: { type: string, bytes: Buffer } | null
}

/** Sets any of the brand's parts; a bad value is refused and nothing changes. */
export async function setBrand (db: Db, tenantId: string, input: BrandInput): Promise<Brand> {
  requireTenantId(tenantId)
  const update: Record<string, unknown> = {}
  if (input.name !== undefined) {
    const name = input.name?.trim() ?? null
    if (name !== null && (name === '' || name.length > 120)) throw new AppError('VALIDATION_FAILED', 'The brand name must be 1 to 120 characters.')
    update.brand_name = name
  }
  if (input.accent !== undefined) {
    const accent = input.accent?.trim().toLowerCase() ?? null
    if (accent !== null && !/^#[0-9a-f]{6}$/.test(accent)) throw new AppError('VALIDATION_FAILED', `The accent colour must look like #0f766e; got "${input.accent ?? ''}".`)
    update.brand_accent = accent
  }
  if (input.supportEmail !== undefined) {
    const email = input.supportEmail?.trim() ?? null
    if (email !== null && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw new AppError('VALIDATION_FAILED', `"${email}" is not an email address.`)
    update.support_email = email
  }
  if (input.logo !== undefined) {
    if (input.logo !== null) {
      if (!(LOGO_TYPES as readonly string[]).includes(input.logo.type)) throw new AppError('VALIDATION_FAILED', `The logo must be PNG, SVG, JPEG or WebP; got ${input.logo.type}.`)
      if (input.logo.bytes.length === 0 || input.logo.bytes.length > MAX_LOGO_BYTES) throw new AppError('VALIDATION_FAILED', `The logo must be at most ${MAX_LOGO_BYTES / 1024} KB.`)
    }
    update.brand_logo = input.logo?.bytes ?? null
    update.brand_logo_type = input.logo?.type ?? null
  }
  if (Object.keys(update).length > 0) await db('tenants').where({ id: tenantId }).update(update)
  return await getBrand(db, tenantId)
}

export async function getLogo (db: Db, tenantId: string): Promise<{ type: LogoType, bytes: Buffer } | null> {
  const row = await db('tenants').where({ id: requireTenantId(tenantId) }).first('brand_logo', 'brand_logo_type') as { brand_logo: Buffer | Uint8Array | null, brand_logo_type: LogoType | null } | undefined
  if (row?.brand_logo == null || row.brand_logo_type === null) return null
  return { type: row.brand_logo_type, bytes: Buffer.from(row.brand_logo) }
}
