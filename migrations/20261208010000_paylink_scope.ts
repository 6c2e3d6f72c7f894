import type { Knex } from 'knex'

/**
 * Minting a pay link is a write, so it gets its own API scope
 * (`paylinks:write`) and embedded permission (`paylink`), no longer implied
 * by `payments:read` or `view`. Whoever could charge keeps sending links:
 * keys with `payments:charge` gain the scope, members granted `charge` gain
 * the permission. Read-only keys and view-only members lose it.
 */
export async function up (db: Knex): Promise<void> {
  await db.raw("update api_keys set scopes = array_append(scopes, 'paylinks:write') where 'payments:charge' = any(scopes) and not 'paylinks:write' = any(scopes)")
  await db.raw('alter table embedded_member_permissions drop constraint embedded_member_permissions_permission')
  await db.raw("alter table embedded_member_permissions add constraint embedded_member_permissions_permission check (permission in ('view','charge','sync','paylink'))")
  await db.raw(`insert into embedded_member_permissions (tenant_id, psa_system, member_ref, permission)
    select tenant_id, psa_system, member_ref, 'paylink' from embedded_member_permissions where permission = 'charge'
    on conflict do nothing`)
}

export async function down (db: Knex): Promise<void> {
  await db.raw("update api_keys set scopes = array_remove(array_remove(scopes, 'paylinks:write'), 'api-keys:manage')")
  await db('embedded_member_permissions').where({ permission: 'paylink' }).delete()
  await db.raw('alter table embedded_member_permissions drop constraint embedded_member_permissions_permission')
  await db.raw("alter table embedded_member_permissions add constraint embedded_member_permissions_permission check (permission in ('view','charge','sync'))")
}
