/**
 * A server process that dies mid-charge, for the crash-recovery test: it
 * starts Charge card on an invoice with a processor that never answers,
 * prints `charging <attempt id>` once the attempt is committed and the
 * processor has been called, and waits to be killed (kill -9).
 */
import { createDb } from '../../src/db/knex.js'
import { chargeInvoice } from '../../src/services/charge.js'
import { FakePayments } from './fake-payments.js'
import type { ChargeInput, ChargeOutcome } from '../../src/ports/payments.js'

const [url, tenantId, invoiceId, paymentMethodId] = process.argv.slice(2)
if (url === undefined || tenantId === undefined || invoiceId === undefined || paymentMethodId === undefined) throw new Error('usage: charge-process <database-url> <tenant> <invoice> <method>')

class NeverAnswers extends FakePayments {
  override async charge (input: ChargeInput): Promise<ChargeOutcome> {
    process.stdout.write(`charging ${input.metadata.settle_attempt_id ?? ''}\n`)
    return await new Promise<never>(() => {})
  }
}

const db = createDb({ kind: 'postgres', url, poolMax: 2 })
// A bug must fail the test, not hang CI.
setTimeout(() => { process.stderr.write('charge-process: not killed after 60 s\n'); process.exit(2) }, 60_000).unref()
await chargeInvoice(db, new NeverAnswers(), { tenantId, invoiceId, paymentMethodId, actor: 'cw:jsmith', trigger: 'charge_card' })
