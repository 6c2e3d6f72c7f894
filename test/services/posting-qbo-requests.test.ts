import t from 'tap'
import { testDb } from '../helpers/db.js'
import { qboRequestsPerPayment } from '../../bench/qbo-requests.js'

// Counted at the QuickBooks stand-in (HTTP requests received), not as method calls on a fake.
t.test('syncNow posts 90 payments and their payout in at most 0.1 QuickBooks requests per payment', async t => {
  const db = await testDb(t)
  const count = await qboRequestsPerPayment(db, 90)
  t.equal(count.payments, 90)
  t.equal(count.deposits, 1)
  t.ok(count.perPayment <= 0.1, `${count.requests} requests for ${count.payments} payments`)
  t.ok(count.requests > 0, 'requests are counted at the stand-in')
})
