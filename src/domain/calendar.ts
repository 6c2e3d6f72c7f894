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
export function localDate (at: Date, timeZone: string): string {
  // en-CA formats dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(at)
}
