-- Transactional outbox: an event row is written in the same transaction as the change it
-- announces, so an event exists if and only if its order does. A relay publishes the rows to
-- NATS JetStream (message id = event_id, so the broker drops a republished duplicate) and sets
-- published_at; without a broker they wait here and are counted (ops_outbox_backlog).
CREATE TABLE outbox (
  event_id uuid PRIMARY KEY,
  aggregate_type text NOT NULL,
  aggregate_id uuid NOT NULL,
  event_type text NOT NULL,
  subject text NOT NULL,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz,
  publish_attempts integer NOT NULL DEFAULT 0,
  last_error text
);

-- The relay's scan (oldest unpublished first) and the backlog count; stays small as events are
-- published.
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;
