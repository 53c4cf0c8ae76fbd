-- Tenants (issue #15). Every order and every Idempotency-Key belongs to one tenant, the tenant of
-- the caller that wrote it (src/http/caller.ts). Rows written before tenants existed get the
-- default tenant ('default', DEFAULT_TENANT in caller.ts): the tenant of every call with
-- AUTH_MODE=off, so they stay reachable exactly as before. A constant default is stored in the
-- catalogue, not written into each row: adding the columns rewrites neither table (the CHECKs
-- still read each existing row once, under this migration's lock). The service always writes the
-- tenant explicitly; the default is for old rows and for SQL written by hand.
--
-- A tenant id is what the token's tenant claim carries: 1-64 characters of [A-Za-z0-9._:-], the
-- same rule as src/orders/domain/tenant.ts (nothing that needs quoting in a log line or a label).
ALTER TABLE orders
  ADD COLUMN tenant_id text NOT NULL DEFAULT 'default'
    CONSTRAINT orders_tenant_id_check
    CHECK (char_length(tenant_id) BETWEEN 1 AND 64 AND tenant_id ~ '^[A-Za-z0-9._:-]+$');

ALTER TABLE idempotency_keys
  ADD COLUMN tenant_id text NOT NULL DEFAULT 'default'
    CONSTRAINT idempotency_keys_tenant_id_check
    CHECK (char_length(tenant_id) BETWEEN 1 AND 64 AND tenant_id ~ '^[A-Za-z0-9._:-]+$');

-- Idempotency-Keys are unique per tenant: two tenants sending the same key each get their own
-- order and their own stored response, never the other's (nor a 422 or a 409 caused by the
-- other). The primary key (tenant_id, key) keeps what 004 relies on, now per tenant: its unique
-- index makes a second request with the same tenant and key wait for the uncommitted row of the
-- first (lock_timeout, then 409) and find it once committed (ON CONFLICT (tenant_id, key) DO
-- NOTHING, then replay or 422); a request of another tenant with that key never waits for it.
-- The key column stays the second column: nothing looks keys up without their tenant.
ALTER TABLE idempotency_keys
  DROP CONSTRAINT idempotency_keys_pkey,
  ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, key);

-- No new index on orders: GET /v1/orders/{id} reads `WHERE id = $1 AND tenant_id = $2`, a lookup
-- on the primary key (id) that finds at most one row, the tenant checked on that row. Another
-- tenant's order and a missing one take the same path, one statement, zero rows: 404
-- ORDER_NOT_FOUND either way, nothing in the answer or its timing says the id exists. An index
-- on (tenant_id, id) would only add a write to every order; a listing of a tenant's orders
-- would bring its own (tenant_id, created_at) index.
