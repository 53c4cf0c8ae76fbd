// Tenants (issue #15): every order and Idempotency-Key belongs to the tenant of the caller that
// wrote it (http/caller.ts, `callerOf(res).tenant`). A tenant id is 1-64 characters of
// [A-Za-z0-9._:-], the CHECK of migrations/007_tenants.sql: the authentication step should refuse
// a token whose tenant claim is anything else, before the orders code sees it.

const TENANT_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Whether `value` can name a tenant (what the database accepts as `tenant_id`). */
export function isTenantId(value: string): boolean {
  return TENANT_ID.test(value);
}

/**
 * Refuses a tenant the database would refuse, before any statement. A bug upstream (the
 * authentication step let an unusable tenant through), so a plain Error: a 500, never an answer
 * that depends on the data.
 */
export function assertTenantId(value: string): void {
  if (!isTenantId(value)) {
    throw new Error('the caller has no valid tenant id (1-64 characters of [A-Za-z0-9._:-])');
  }
}
