import type { Knex } from 'knex'
import { makeTenant } from './fixtures.js'
import { FakePsa } from './fake-psa.js'
import { syncInvoices } from '../../src/services/sync.js'
import { invoicesByPsaIds } from '../../src/db/invoices.js'

export interface ReconcileWorld { tenantId: string, psa: FakePsa, id: (psaId: string) => Promise<string>, harbor: string, summit: string }

/**
 * Two clients with open invoices synced from a fake PSA, for the matching
 * tests: Harbor Dental (INV-5001 $1,200, INV-5002 and INV-5003 $450 each: a
 * same-amount pair) and Summit Logistics (INV-6001 $800, INV-6002 $1,000,
 * INV-6003 $400).
 */
export async function reconcileWorld (db: Knex): Promise<ReconcileWorld> {
  const tenant = await makeTenant(db)
  const psa = new FakePsa()
  psa.addCompany('1', 'Harbor Dental')
  psa.addCompany('2', 'Summit Logistics')
  psa.put('1', { company: '1', total: 120_000, number: 'INV-5001' })
  psa.put('2', { company: '1', total: 45_000, number: 'INV-5002' })
  psa.put('3', { company: '1', total: 45_000, number: 'INV-5003' })
  psa.put('4', { company: '2', total: 80_000, number: 'INV-6001' })
  psa.put('5', { company: '2', total: 100_000, number: 'INV-6002' })
  psa.put('6', { company: '2', total: 40_000, number: 'INV-6003' })
  await syncInvoices({ db, tenantId: tenant.id, psa, trigger: 'test' })
  const id = async (psaId: string): Promise<string> => (await invoicesByPsaIds(db, tenant.id, 'connectwise', [psaId])).get(psaId)?.id as string
  const customerOf = async (psaId: string): Promise<string> => (await invoicesByPsaIds(db, tenant.id, 'connectwise', [psaId])).get(psaId)?.customerId as string
  return { tenantId: tenant.id, psa, id, harbor: await customerOf('1'), summit: await customerOf('4') }
}
