// The transactional outbox (migrations/002): events are inserted in the transaction of the change
// they announce. The relay (workers/outbox-relay.worker.ts) claims the oldest unpublished rows,
// publishes them to NATS JetStream and marks them published; without a broker the events wait
// here, counted by `countBacklog` for the ops_outbox_backlog gauge.
import type { Session } from '../db/database';
import { sql } from '../db/database';

export interface OutboxEvent {
  /** Also the broker's message id, so a republished duplicate is dropped there. */
  readonly eventId: string;
  readonly aggregateType: string;
  readonly aggregateId: string;
  readonly eventType: string;
  readonly subject: string;
  /** The event's JSON: a value to serialize, or a SerializedPayload (JSON text as it is). */
  readonly payload: unknown;
  /** W3C traceparent of the request that wrote it, if any. */
  readonly traceParent?: string | undefined;
}

const INSERT_EVENT = sql(
  'INSERT',
  'outbox',
  `INSERT INTO outbox
     (event_id, aggregate_type, aggregate_id, event_type, subject, payload, trace_parent)
   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)`,
);

const COUNT_BACKLOG = sql(
  'SELECT',
  'outbox',
  'SELECT count(*) AS backlog FROM outbox WHERE published_at IS NULL',
);

/** A payload already written as JSON text (the creating request has its order's JSON at hand). */
export class SerializedPayload {
  constructor(readonly json: string) {}
}

function serializedPayload(payload: unknown): string {
  return payload instanceof SerializedPayload ? payload.json : JSON.stringify(payload);
}

export function insertEvent(session: Session, event: OutboxEvent): Promise<unknown> {
  // Its result is not needed: the statement's own promise, no async wrapper (see insertKey).
  return session.run(INSERT_EVENT, [
    event.eventId,
    event.aggregateType,
    event.aggregateId,
    event.eventType,
    event.subject,
    serializedPayload(event.payload),
    event.traceParent ?? null,
  ]);
}

export async function countBacklog(session: Session): Promise<number> {
  const { rows } = await session.run<{ backlog: number }>(COUNT_BACKLOG);
  return rows[0]?.backlog ?? 0;
}

export interface PendingEvent {
  readonly eventId: string;
  readonly subject: string;
  /** The payload as stored (JSON text), published as is. */
  readonly payload: string;
  readonly publishAttempts: number;
  readonly traceParent: string | null;
}

// Oldest first; rows another relay (a second replica) is publishing right now are skipped.
const CLAIM_BATCH = sql(
  'SELECT',
  'outbox',
  `SELECT event_id, subject, payload::text AS payload, publish_attempts, trace_parent
     FROM outbox
    WHERE published_at IS NULL
    ORDER BY created_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED`,
);

const MARK_PUBLISHED = sql(
  'UPDATE',
  'outbox',
  `UPDATE outbox
      SET published_at = now(), publish_attempts = publish_attempts + 1, last_error = NULL
    WHERE event_id = ANY($1::uuid[])`,
);

const MARK_FAILED = sql(
  'UPDATE',
  'outbox',
  `UPDATE outbox
      SET publish_attempts = publish_attempts + 1, last_error = left($2, 500)
    WHERE event_id = $1`,
);

/** In the relay's transaction: locks up to `limit` unpublished events, oldest first. */
export async function claimPending(session: Session, limit: number): Promise<PendingEvent[]> {
  const { rows } = await session.run<{
    event_id: string;
    subject: string;
    payload: string;
    publish_attempts: number;
    trace_parent: string | null;
  }>(CLAIM_BATCH, [limit]);
  return rows.map((row) => ({
    eventId: row.event_id,
    subject: row.subject,
    payload: row.payload,
    publishAttempts: row.publish_attempts,
    traceParent: row.trace_parent,
  }));
}

export async function markPublished(session: Session, eventIds: readonly string[]): Promise<void> {
  if (eventIds.length > 0) await session.run(MARK_PUBLISHED, [eventIds]);
}

export async function markFailed(session: Session, eventId: string, reason: string): Promise<void> {
  await session.run(MARK_FAILED, [eventId, reason]);
}
