import t from 'tap'
import Stripe from 'stripe'
import { DISPUTE_FEE, cardFee } from '../../../src/sandbox/stripe/index.js'
import { receiver, start } from '../../helpers/stripe-harness.js'

const SECRET = 'whsec_payouts_test'
const verifier = new Stripe('sk_test_x')
const DAY = 86_400_000

t.test('automatic payout: available charges net of fees, refunds and dispute withdrawals, through the official SDK', async t => {
  const hook = await receiver(t)
  const { stripe, store, port } = await start(t, {}, { webhook: { url: hook.url, secret: SECRET } })
  const amounts = [10_000, 2_550, 123_45, 999]
  const intents: Stripe.PaymentIntent[] = []
  for (const amount of amounts) intents.push(await stripe.paymentIntents.create({ amount, currency: 'usd', payment_method: 'pm_card_visa', confirm: true }))
  await stripe.refunds.create({ payment_intent: intents[1]?.id ?? '', amount: 1_000 })
  const disputed = await stripe.paymentIntents.create({ amount: 5_000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true })
  store.runAll() // the dispute opens
  t.equal(store.runPayout(), null, 'charges are pending for two days: nothing to pay out yet')
  store.advance(3 * DAY)
  await store.flushEvents()
  hook.received.length = 0

  const wire = store.runPayout()
  t.ok(wire)
  const payoutId = String(wire?.id)
  t.match(payoutId, /^po_[0-9A-Za-z]{24}$/)
  const fees = amounts.reduce((s, a) => s + cardFee(a), 0) + cardFee(5_000) + DISPUTE_FEE
  const expectedNet = amounts.reduce((s, a) => s + a, 0) + 5_000 - 1_000 - 5_000 - fees
  const payout = await stripe.payouts.retrieve(payoutId)
  t.match(payout, { object: 'payout', id: payoutId, amount: expectedNet, currency: 'usd', status: 'paid', automatic: true, type: 'bank_account', failure_code: null })
  t.match(payout.balance_transaction, /^txn_/)
  t.equal(payout.arrival_date % 86_400, 0, 'arrival_date is a day (midnight UTC)')
  t.ok(payout.arrival_date <= payout.created && payout.created - payout.arrival_date < 86_400, 'paid at once: it arrives today')

  // Paged by 2 so auto-pagination has to follow starting_after several times.
  const seen: Stripe.BalanceTransaction[] = []
  for await (const bt of stripe.balanceTransactions.list({ payout: payoutId, limit: 2, expand: ['data.source'] })) seen.push(bt)
  t.equal(new Set(seen.map(b => b.id)).size, seen.length, 'no transaction twice across pages')
  const items = seen.filter(b => b.type !== 'payout')
  t.same(items.map(b => b.type).sort(), ['adjustment', 'charge', 'charge', 'charge', 'charge', 'charge', 'refund'])
  t.equal(items.reduce((s, b) => s + b.net, 0), payout.amount, 'the payout is the sum of its transactions\' net')
  t.equal(seen.reduce((s, b) => s + b.net, 0), 0, 'with its own payout transaction the list nets to zero')
  const own = seen.find(b => b.type === 'payout')
  t.match(own, { id: payout.balance_transaction, amount: -expectedNet, reporting_category: 'payout' })
  const charge = items.find(b => b.type === 'charge' && typeof b.source === 'object' && (b.source as Stripe.Charge).payment_intent === intents[0]?.id)
  t.match(charge, { amount: 10_000, fee: cardFee(10_000), net: 10_000 - cardFee(10_000), reporting_category: 'charge', source: { object: 'charge' } }, 'expand[]=data.source renders the charge')
  t.match(items.find(b => b.type === 'adjustment'), { reporting_category: 'dispute', amount: -5_000, fee: DISPUTE_FEE, source: { object: 'dispute', payment_intent: disputed.id } })
  t.match(items.find(b => b.type === 'refund'), { amount: -1_000, fee: 0, source: { object: 'refund', payment_intent: intents[1]?.id } })

  // Everything was paid out: a second run has nothing; a new charge goes in the next payout only.
  t.equal(store.runPayout(), null)
  await stripe.paymentIntents.create({ amount: 700, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
  store.advance(3 * DAY)
  const next = store.runPayout()
  t.equal(next?.amount, 700 - cardFee(700))
  const nextList = await stripe.balanceTransactions.list({ payout: String(next?.id), limit: 100 })
  t.equal(nextList.data.length, 2, 'the new charge and the payout itself')
  t.equal(nextList.has_more, false)

  await store.flushEvents()
  const events = hook.received.map(r => verifier.webhooks.constructEvent(r.raw, r.signature, SECRET))
  t.same(events.filter(e => e.type.startsWith('payout.')).map(e => `${e.type}:${(e.data.object as { id: string }).id}`),
    [`payout.created:${payoutId}`, `payout.paid:${payoutId}`, `payout.created:${String(next?.id)}`, `payout.paid:${String(next?.id)}`], 'signed payout events, created then paid')

  // The stand-in-only route the demo uses, through the SDK's raw request.
  await stripe.paymentIntents.create({ amount: 4_200, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
  const refused = await fetch(`http://127.0.0.1:${port}/v1/test_helpers/payouts/run`, { method: 'POST', headers: { authorization: 'Bearer sk_test_settle_sandbox' } })
  t.equal(refused.status, 400, 'pending money is not paid out unless asked')
  const ran = await fetch(`http://127.0.0.1:${port}/v1/test_helpers/payouts/run`, { method: 'POST', headers: { authorization: 'Bearer sk_test_settle_sandbox', 'content-type': 'application/x-www-form-urlencoded' }, body: 'include_pending=true' })
  t.match(await ran.json(), { object: 'payout', amount: 4_200 - cardFee(4_200), status: 'paid' })
})

t.test('lists and errors in Stripe\'s shapes', async t => {
  const { stripe, store } = await start(t)
  for (let i = 0; i < 5; i++) await stripe.paymentIntents.create({ amount: 1_000 + i, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
  const po = store.runPayout({ includePending: true, status: 'in_transit' })
  const inTransit = await stripe.payouts.retrieve(String(po?.id))
  t.equal(inTransit.status, 'in_transit')
  t.ok(inTransit.arrival_date > inTransit.created, 'in transit: it arrives tomorrow')
  const first = await stripe.balanceTransactions.list({ payout: String(po?.id), limit: 4 })
  t.equal(first.data.length, 4)
  t.equal(first.has_more, true)
  const rest = await stripe.balanceTransactions.list({ payout: String(po?.id), limit: 4, starting_after: first.data[3]?.id ?? '' })
  t.equal(rest.data.length, 2, 'five charges and the payout')
  t.equal(rest.has_more, false)
  await t.rejects(stripe.payouts.retrieve('po_missing'), { type: 'StripeInvalidRequestError', code: 'resource_missing', statusCode: 404 })
  await t.rejects(stripe.balanceTransactions.list({ payout: 'po_missing' }), { type: 'StripeInvalidRequestError', code: 'resource_missing', statusCode: 404 })
  await t.rejects(stripe.balanceTransactions.list({ limit: 101 }), { type: 'StripeInvalidRequestError', param: 'limit', message: /between 1 and 100/ })
  store.payPayout(String(po?.id))
  t.equal((await stripe.payouts.retrieve(String(po?.id))).status, 'paid')
  store.failPayout(String(po?.id))
  const failed = await stripe.payouts.retrieve(String(po?.id))
  t.match(failed, { status: 'failed', failure_code: 'account_closed' })
  const back = await stripe.balanceTransactions.retrieve(String(failed.failure_balance_transaction))
  t.match(back, { type: 'payout_failure', amount: failed.amount }, 'the money returns to the balance')
  t.equal(store.runPayout({ includePending: true })?.amount, failed.amount, 'and goes out again in the next payout')
})
