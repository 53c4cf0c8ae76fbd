// The transactional outbox (migrations/002): events are inserted in the transaction of the change
// they announce. Publishing (a relay to NATS JetStream) is separate; without a broker the events
// wait here, counted by `countBacklog` for the ops_outbox_backlog gauge.
import type { Session } from '../db/database';
import { sql } from '../db/database';

export interface OutboxEvent {
  /** Also the broker's message id, so a republished duplicate is dropped there. */
  readonly eventId: string;
  readonly aggregateType: string;
  readonly aggregateId: string;
  readonly eventType: string;
  readonly subject: string;
  readonly payload: unknown;
}

const INSERT_EVENT = sql(
  'INSERT',
  'outbox',
  `INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, subject, payload)
   VALUES ($1, $2, $3, $4, $5, $6::jsonb)`,
);

const COUNT_BACKLOG = sql(
  'SELECT',
  'outbox',
  'SELECT count(*) AS backlog FROM outbox WHERE published_at IS NULL',
);

export async function insertEvent(session: Session, event: OutboxEvent): Promise<void> {
  await session.run(INSERT_EVENT, [
    event.eventId,
    event.aggregateType,
    event.aggregateId,
    event.eventType,
    event.subject,
    JSON.stringify(event.payload),
  ]);
}

export async function countBacklog(session: Session): Promise<number> {
  const { rows } = await session.run<{ backlog: number }>(COUNT_BACKLOG);
  return rows[0]?.backlog ?? 0;
}
