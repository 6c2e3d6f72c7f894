/**
 * Dates as people read them, on every page and in every message: one
 * formatter per locale and style, built once (building an Intl formatter
 * costs far more than formatting with one). Calendar dates (`YYYY-MM-DD`,
 * an invoice's due date) are days, not instants: they are formatted at noon
 * UTC in UTC, so no time zone moves them a day. Instants (when a payment was
 * made) are shown in the tenant's time zone.
 */

/** Settle's pages are in English; a tenant without a locale of its own reads US English. */
export const DEFAULT_LOCALE = 'en-US'

const formats = new Map<string, Intl.DateTimeFormat>()

function formatter (locale: string, style: 'day' | 'moment', timeZone: string): Intl.DateTimeFormat {
  const key = `${locale}|${style}|${timeZone}`
  let format = formats.get(key)
  if (format === undefined) {
    format = style === 'day'
      ? new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' })
      : new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZone, timeZoneName: 'short' })
    formats.set(key, format)
  }
  return format
}

const CALENDAR_DATE = /^\d{4}-\d{2}-\d{2}/

/** "Dec 6, 2026" for a calendar date or an instant's UTC day; '' for nothing. */
export function formatDay (value: string | Date | null | undefined, locale = DEFAULT_LOCALE): string {
  if (value === null || value === undefined) return ''
  const at = typeof value === 'string' ? (CALENDAR_DATE.test(value) ? new Date(`${value.slice(0, 10)}T12:00:00Z`) : new Date(value)) : value
  return Number.isNaN(at.getTime()) ? '' : formatter(locale, 'day', 'UTC').format(at)
}

/** "Dec 6, 2026, 3:04 PM CST": an instant in the tenant's time zone. */
export function formatMoment (value: Date | string | null | undefined, locale = DEFAULT_LOCALE, timeZone = 'UTC'): string {
  if (value === null || value === undefined) return ''
  const at = typeof value === 'string' ? new Date(value) : value
  return Number.isNaN(at.getTime()) ? '' : formatter(locale, 'moment', timeZone).format(at)
}
