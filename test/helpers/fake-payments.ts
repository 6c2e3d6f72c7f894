import type { ChargeInput, ChargeOutcome, PaymentsPort, PayoutState, PayoutTransaction, RefundOutcome, SetupState } from '../../src/ports/payments.js'
import { money } from '../../src/domain/money.js'

type Script = (input: ChargeInput) => ChargeOutcome | 'throw'

/**
 * A processor double that honours idempotency keys as Stripe does: the same
 * key returns the first result and never charges twice. `script` decides
 * each new charge's outcome; 'throw' models a crash after the processor
 * charged but before Settle heard back.
 */
export class FakePayments implements PaymentsPort {
  readonly processor = 'stripe' as const
  readonly browser = { publishableKey: 'pk_test_fake', sandboxApiBase: null }
  readonly customers = new Map<string, string>()
  readonly setups = new Map<string, SetupState>()
  readonly detached: string[] = []
  readonly charged: ChargeInput[] = []
  readonly byKey = new Map<string, ChargeOutcome>()
  delayMs = 0
  script: Script = input => ({ status: 'succeeded', intentId: `pi_${this.charged.length}`, chargeId: `ch_${this.charged.length}`, fee: money(Math.round(input.amount.amount * 0.029) + 30, input.amount.currency), raw: {} })

  async charge (input: ChargeInput): Promise<ChargeOutcome> {
    if (this.delayMs > 0) await new Promise(resolve => setTimeout(resolve, this.delayMs))
    const seen = this.byKey.get(input.idempotencyKey)
    if (seen !== undefined) return seen
    this.charged.push(input)
    const outcome = this.script(input)
    if (outcome === 'throw') {
      // The processor charged; the answer never reached us.
      this.byKey.set(input.idempotencyKey, { status: 'succeeded', intentId: `pi_${this.charged.length}`, chargeId: null, fee: null, raw: {} })
      throw new Error('socket hang up')
    }
    if (outcome.status !== 'unknown') this.byKey.set(input.idempotencyKey, outcome)
    return outcome
  }

  async retrieveIntent ({ intentId }: { intentId: string }): Promise<{ outcome: ChargeOutcome, attemptId: string | null }> {
    for (const [key, outcome] of this.byKey) {
      if ('intentId' in outcome && outcome.intentId === intentId) return { outcome, attemptId: key.replace('settle_attempt_', '') }
    }
    throw new Error(`no such intent ${intentId}`)
  }

  async createCustomer ({ idempotencyKey }: { idempotencyKey: string }): Promise<{ customerRef: string }> {
    const ref = this.customers.get(idempotencyKey) ?? `cus_${this.customers.size + 1}`
    this.customers.set(idempotencyKey, ref)
    return { customerRef: ref }
  }

  async startSetup ({ customerRef, metadata }: { customerRef: string, metadata: Record<string, string> }): Promise<{ setupId: string, clientSecret: string }> {
    const id = `seti_${this.setups.size + 1}`
    this.setups.set(id, { id, status: 'requires_payment_method', customerRef, metadata, method: null, mandateRef: null, error: null })
    return { setupId: id, clientSecret: `${id}_secret_fake` }
  }

  async retrieveSetup ({ setupId }: { setupId: string }): Promise<SetupState | null> {
    return this.setups.get(setupId) ?? null
  }

  async detachMethod ({ methodRef }: { methodRef: string }): Promise<void> { this.detached.push(methodRef) }

  readonly refunded: Array<Parameters<PaymentsPort['refund']>[0]> = []
  readonly refundsByKey = new Map<string, RefundOutcome>()

  /** Refunds always succeed, once per key (wire-level refund behaviour is tested against the Stripe stand-in). */
  async refund (input: Parameters<PaymentsPort['refund']>[0]): Promise<RefundOutcome> {
    const seen = this.refundsByKey.get(input.idempotencyKey)
    if (seen !== undefined) return seen
    this.refunded.push(input)
    const outcome: RefundOutcome = { status: 'succeeded', refundId: `re_${this.refunded.length}`, raw: {} }
    this.refundsByKey.set(input.idempotencyKey, outcome)
    return outcome
  }

  async retrieveDispute (): Promise<never> { throw new Error('disputes are tested against the Stripe stand-in') }

  /** Payouts a test sets up: id → the payout and its transactions. */
  readonly payouts = new Map<string, { payout: PayoutState, transactions: PayoutTransaction[] }>()

  async retrievePayout ({ payoutId }: { payoutId: string }): Promise<PayoutState> {
    const found = this.payouts.get(payoutId)
    if (found === undefined) throw new Error(`no such payout ${payoutId}`)
    return found.payout
  }

  async listPayoutTransactions ({ payoutId }: { payoutId: string }): Promise<PayoutTransaction[]> {
    return (await this.retrievePayout({ payoutId }), this.payouts.get(payoutId)?.transactions ?? [])
  }

  async findCharge ({ idempotencyKey }: { idempotencyKey: string, attemptId: string }): Promise<ChargeOutcome | null> {
    return this.byKey.get(idempotencyKey) ?? null
  }
}
