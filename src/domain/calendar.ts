/** An IANA time zone name this runtime knows ("America/Chicago", "UTC"). */
export function isTimeZone (name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name })
    return name.length > 0
  } catch {
    return false
  }
}

/** The calendar date (YYYY-MM-DD) at `at` in `timeZone`: what "today" means to the people there. */
// Building a DateTimeFormat costs far more than formatting with one; time zones are few.
const dateFormats = new Map<string, Intl.DateTimeFormat>()

export function localDate (at: Date, timeZone: string): string {
  let format = dateFormats.get(timeZone)
  if (format === undefined) {
    // en-CA formats dates as YYYY-MM-DD.
    format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })
    dateFormats.set(timeZone, format)
  }
  return format.format(at)
}
