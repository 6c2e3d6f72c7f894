import t from 'tap'
import fc from 'fast-check'
import { addBusinessDays, classifyFailure, decideRetry, DEFAULT_RETRY_POLICY } from '../../src/domain/retry-policy.js'

const at = (iso: string): Date => new Date(iso)

t.test('advice code first, then decline code, then code', async t => {
  t.equal(classifyFailure({ method: 'card', code: 'card_declined', declineCode: 'insufficient_funds' }).class, 'retry_later')
  t.equal(classifyFailure({ method: 'card', code: 'card_declined', declineCode: 'insufficient_funds', adviceCode: 'do_not_try_again' }).class, 'never_retry', 'the issuer\'s advice wins')
  t.equal(classifyFailure({ method: 'card', code: 'card_declined', declineCode: 'generic_decline', adviceCode: 'confirm_card_data' }).class, 'needs_client')
  t.equal(classifyFailure({ method: 'card', code: 'card_declined', declineCode: 'fraudulent' }).class, 'never_retry')
  t.equal(classifyFailure({ method: 'card', code: 'expired_card' }).class, 'needs_client')
  t.equal(classifyFailure({ method: 'card', code: 'authentication_required' }).class, 'needs_client')
  t.equal(classifyFailure({ method: 'card', code: 'card_declined', declineCode: 'stolen_card' }).class, 'needs_client')
  t.equal(classifyFailure({ method: 'ach', code: 'insufficient_funds' }).class, 'retry_later')
  t.equal(classifyFailure({ method: 'ach', code: 'bank_account_closed' }).class, 'never_retry')
  t.equal(classifyFailure({ method: 'ach', code: 'debit_not_authorized' }).class, 'never_retry')
  t.equal(classifyFailure({ method: 'card', code: 'some_new_code_from_stripe' }).class, 'retry_later', 'unknown codes never stop collection silently')
  const words = classifyFailure({ method: 'card', code: 'expired_card' })
  t.match(words.explanation, /expired/)
  t.match(words.nextStep, /pay link/)
})

t.test('soft card declines retry at +1, +3, +5, +7 days from the first failure, then stop', async t => {
  const first = at('2026-11-02T15:00:00Z')
  const days: number[] = []
  for (let n = 0; n < 5; n++) {
    const failedAt = n === 0 ? first : new Date(first.getTime() + (days[n - 1] ?? 0) * 86_400_000)
    const d = decideRetry({ failure: { method: 'card', code: 'card_declined', declineCode: 'insufficient_funds' }, firstFailedAt: first, failedAt, retriesSoFar: n, attemptTimes: [] })
    if (!d.retry) { t.equal(d.why, 'schedule_exhausted'); t.equal(n, 4); break }
    days.push((d.at.getTime() - first.getTime()) / 86_400_000)
  }
  t.same(days, [1, 3, 5, 7])
})

t.test('ACH insufficient funds: one retry after 3 business days; closed accounts never', async t => {
  const friday = at('2026-11-06T16:00:00Z')
  const d = decideRetry({ failure: { method: 'ach', code: 'insufficient_funds' }, firstFailedAt: friday, failedAt: friday, retriesSoFar: 0, attemptTimes: [] })
  t.ok(d.retry)
  if (d.retry) t.equal(d.at.toISOString(), '2026-11-11T16:00:00.000Z', 'Friday + 3 business days = Wednesday')
  const second = decideRetry({ failure: { method: 'ach', code: 'insufficient_funds' }, firstFailedAt: friday, failedAt: friday, retriesSoFar: 1, attemptTimes: [] })
  t.same(second.retry ? 'retried' : second.why, 'schedule_exhausted')
  const closed = decideRetry({ failure: { method: 'ach', code: 'bank_account_closed' }, firstFailedAt: friday, failedAt: friday, retriesSoFar: 0, attemptTimes: [] })
  t.same(closed.retry ? 'retried' : closed.why, 'never_retry')
  t.equal(addBusinessDays(at('2026-11-07T10:00:00Z'), 1).toISOString(), '2026-11-09T10:00:00.000Z', 'Saturday + 1 = Monday')
})

t.test('needs-client failures stop retrying and say why', async t => {
  const d = decideRetry({ failure: { method: 'card', code: 'authentication_required' }, firstFailedAt: new Date(), failedAt: new Date(), retriesSoFar: 0, attemptTimes: [] })
  t.same(d.retry ? 'retried' : d.why, 'needs_client')
})

t.test('property: following the decisions never exceeds 15 attempts in any 30 days, and hard declines never retry', async t => {
  const codes = ['insufficient_funds', 'generic_decline', 'do_not_honor', 'fraudulent', 'expired_card', 'try_again_later']
  fc.assert(fc.property(
    fc.array(fc.record({ code: fc.constantFrom(...codes), gapHours: fc.integer({ min: 0, max: 72 }) }), { minLength: 1, maxLength: 80 }),
    fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 4, maxLength: 4 }),
    (failures, retryDays) => {
      const policy = { ...DEFAULT_RETRY_POLICY, cardRetryDays: retryDays.map((d, i) => d + i) }
      const attempts: Date[] = []
      let now = Date.parse('2026-01-05T12:00:00Z')
      let first = now
      let retries = 0
      for (const failure of failures) {
        attempts.push(new Date(now))
        const d = decideRetry({ failure: { method: 'card', code: 'card_declined', declineCode: failure.code }, firstFailedAt: new Date(first), failedAt: new Date(now), retriesSoFar: retries, attemptTimes: attempts }, policy)
        if (['fraudulent', 'expired_card'].includes(failure.code) && d.retry) return false
        if (d.retry) {
          if (d.at.getTime() <= now) return false
          now = d.at.getTime()
          retries++
        } else {
          // A new collection starts later (the next invoice run, or a person retrying).
          now += (failure.gapHours + 24) * 3_600_000
          first = now
          retries = 0
        }
        const windowStart = now - 30 * 86_400_000
        if (attempts.filter(a => a.getTime() > windowStart).length > 15 && d.retry) return false
      }
      return true
    }), { numRuns: 300 })
  t.pass('cap and hard declines respected')
})
