-- Idempotency-Keys are now written once, complete, inside the transaction that creates the order
-- (see src/orders/data/idempotency.repository.ts). A request in progress is an uncommitted key row:
-- PostgreSQL's unique index makes a second request with the key wait for it (DATABASE_LOCK_TIMEOUT_MS,
-- then 409), and a crash, a timeout or a drain that cuts the request off rolls the row back with the
-- order. The lease columns of 003 are no longer needed: a key can no longer be left held.
DELETE FROM idempotency_keys WHERE state <> 'completed';

DROP INDEX idempotency_keys_in_progress_idx;

ALTER TABLE idempotency_keys
  DROP COLUMN state,
  DROP COLUMN lease_token,
  DROP COLUMN lease_expires_at,
  DROP COLUMN attempts,
  DROP COLUMN completed_at,
  ALTER COLUMN order_id SET NOT NULL,
  ALTER COLUMN response_status SET NOT NULL,
  ALTER COLUMN response_headers SET NOT NULL,
  ALTER COLUMN response_body SET NOT NULL;

-- The key is the transaction's first statement (a duplicate request stops there, before any other
-- work); its order is inserted after it, so the reference is checked at COMMIT.
ALTER TABLE idempotency_keys
  ALTER CONSTRAINT idempotency_keys_order_id_fkey DEFERRABLE INITIALLY DEFERRED;
