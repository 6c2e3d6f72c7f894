import t from 'tap'
import { isTimeZone, localDate } from '../../src/domain/calendar.js'

t.test('today is the tenant\'s today', async t => {
  const evening = new Date('2026-11-26T03:30:00Z') // 7:30 pm on the 25th in Los Angeles
  t.equal(localDate(evening, 'UTC'), '2026-11-26')
  t.equal(localDate(evening, 'America/Los_Angeles'), '2026-11-25')
  t.equal(localDate(new Date('2026-11-26T23:30:00Z'), 'Australia/Sydney'), '2026-11-27')
  t.ok(isTimeZone('America/Chicago'))
  t.notOk(isTimeZone('Mars/Olympus'))
  t.notOk(isTimeZone(''))
})
