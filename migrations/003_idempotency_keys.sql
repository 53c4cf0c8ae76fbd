-- Idempotency-Keys of POST /v1/orders (IETF draft "The Idempotency-Key HTTP Header Field").
-- A key is claimed (in_progress, with a lease) before the work and completed, with the response
-- to replay, in the same transaction as the order. See src/orders/data/idempotency.repository.ts
-- and runbook/orders.md.
CREATE TABLE idempotency_keys (
  key text PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 255),
  -- SHA-256 of the canonical JSON body: the same key with another body is refused (422).
  fingerprint text NOT NULL,
  state text NOT NULL CHECK (state IN ('in_progress', 'completed')),
  -- The request holding the key, until lease_expires_at; after it, a retry may take it over.
  lease_token uuid,
  lease_expires_at timestamptz,
  -- 1 + how many times the key was taken over after an interrupted attempt.
  attempts integer NOT NULL DEFAULT 1,
  order_id uuid REFERENCES orders (id),
  response_status integer,
  response_headers jsonb,
  -- The response body exactly as sent (text, not jsonb: a replay is byte for byte the same).
  response_body text,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  -- End of the retention: the purge worker deletes the key after it.
  expires_at timestamptz NOT NULL,
  CHECK (state = 'in_progress' OR (response_status IS NOT NULL AND response_body IS NOT NULL))
);

-- The purge worker's scan.
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);

-- Keys still in progress, by lease end: what on-call looks at for a stuck key.
CREATE INDEX idempotency_keys_in_progress_idx ON idempotency_keys (lease_expires_at)
  WHERE state = 'in_progress';
