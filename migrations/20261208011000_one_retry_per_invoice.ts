import type { Knex } from 'knex'

/**
 * One retry schedule per invoice, whatever triggered the failure (auto-pay,
 * Charge card, a pay link, an installment): at most one pending
 * `payments.retry` job names an invoice. The running one may schedule its
 * successor, so only pending jobs count. Retry jobs carry `invoiceId`;
 * older ones get it from their attempt, and where an invoice already held
 * several, the earliest stays and the rest are closed as superseded.
 */
export async function up (db: Knex): Promise<void> {
  await db.raw(`update jobs j set payload = j.payload || jsonb_build_object('invoiceId', a.invoice_id::text)
    from payment_attempts a
    where j.queue = 'payments.retry' and j.state = 'pending' and (j.payload->>'invoiceId') is null
      and a.tenant_id = j.tenant_id and a.id::text = j.payload->>'attemptId' and a.invoice_id is not null`)
  await db.raw(`update jobs j set state = 'done', finished_at = now(), last_error = 'superseded: the invoice already has a retry scheduled'
    from (select id, row_number() over (partition by tenant_id, payload->>'invoiceId' order by run_at, id) as n
          from jobs where queue = 'payments.retry' and state = 'pending' and payload->>'invoiceId' is not null) ranked
    where j.id = ranked.id and ranked.n > 1`)
  await db.raw(`create unique index jobs_one_retry_per_invoice on jobs (tenant_id, (payload->>'invoiceId'))
    where queue = 'payments.retry' and state = 'pending'`)
}

export async function down (db: Knex): Promise<void> {
  await db.raw('drop index jobs_one_retry_per_invoice')
}
