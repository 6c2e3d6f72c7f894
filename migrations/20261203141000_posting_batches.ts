import type { Knex } from 'knex'

/**
 * QuickBooks dedupes a batch by the batch request's requestid only; its
 * items carry none. A posting last sent inside a batch whose answer was lost
 * must therefore be sent again in that very batch (same members, same order,
 * so the same derived requestid), never on its own or in another batch,
 * or QuickBooks writes it twice. This column remembers the batch: the ids of
 * its postings, in order; null when the saved body was sent alone.
 */
export async function up (db: Knex): Promise<void> {
  await db.schema.alterTable('accounting_postings', t => { t.specificType('sent_in_batch', 'uuid[]') })
}

export async function down (db: Knex): Promise<void> {
  await db.schema.alterTable('accounting_postings', t => { t.dropColumn('sent_in_batch') })
}
