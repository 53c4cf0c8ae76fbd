-- Orders and their items (contract section 6). Amounts are integer minor units (cents).
CREATE TABLE orders (
  id uuid PRIMARY KEY,
  customer_id text NOT NULL CHECK (char_length(customer_id) BETWEEN 1 AND 100),
  currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  total_cents bigint NOT NULL CHECK (total_cents >= 0),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid')),
  -- The Idempotency-Key that created it: outlives the key's own row (purged after the
  -- retention), for "did this key create an order?" questions later.
  idempotency_key text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX orders_idempotency_key_idx ON orders (idempotency_key);

CREATE TABLE order_items (
  order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  -- Position in the request, from 1: items come back in the order they were sent.
  line_no integer NOT NULL CHECK (line_no >= 1),
  sku text NOT NULL CHECK (char_length(sku) BETWEEN 1 AND 64),
  quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
  unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
  PRIMARY KEY (order_id, line_no)
);
