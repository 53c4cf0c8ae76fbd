-- Captured payments from NATS JetStream (`payments.captured`, contract section 6). A payment is
-- applied once: its payment_id is the primary key, so a redelivered message finds it and changes
-- nothing, and it commits together with the order becoming paid.
CREATE TABLE payments (
  payment_id text PRIMARY KEY CHECK (char_length(payment_id) BETWEEN 1 AND 255),
  order_id uuid NOT NULL REFERENCES orders (id),
  amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
  -- Where it came from: the JetStream stream sequence of the message.
  stream_sequence bigint,
  applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payments_order_id_idx ON payments (order_id);

ALTER TABLE orders ADD COLUMN paid_at timestamptz;
