/** An IANA time zone name this runtime knows ("America/Chicago", "UTC"). */
export function isTimeZone (name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name })
    return name.length > 0
  } catch {
    return false
  }
}

// Building a DateTimeFormat costs far more than formatting with one; time zones are few.
const dateFormats = new Map<string, Intl.DateTimeFormat>()
// Every zone's date changes on a minute boundary, so one answer per zone and minute holds (pages ask on every request).
const lastAnswer = new Map<string, { minute: number, date: string }>()

/** The calendar date (YYYY-MM-DD) at `at` in `timeZone`: what "today" means to the people there. */
export function localDate (at: Date, timeZone: string): string {
  const minute = Math.floor(at.getTime() / 60_000)
  const last = lastAnswer.get(timeZone)
  if (last !== undefined && last.minute === minute) return last.date
  let format = dateFormats.get(timeZone)
  if (format === undefined) {
    // en-CA formats dates as YYYY-MM-DD.
    format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })
    dateFormats.set(timeZone, format)
  }
  const date = format.format(at)
  lastAnswer.set(timeZone, { minute, date })
  return date
}
