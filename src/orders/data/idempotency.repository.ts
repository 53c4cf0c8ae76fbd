// Idempotency-Keys (table idempotency_keys, migrations/003 and 004). The protocol is one
// transaction per request, with the key as its first statement:
//
//   BEGIN
//   INSERT key ... ON CONFLICT DO NOTHING   the key, complete with the response to replay
//   INSERT order, items, outbox event
//   COMMIT
//
// (On PostgreSQL everything before COMMIT goes out in one write: db/pg.adapter.ts, pipelining.)
// The unique index on `key` does the rest. While the first request's transaction is open, its
// key row is uncommitted: a second request with the same key waits on it (lock_timeout,
// DATABASE_LOCK_TIMEOUT_MS) and then either finds it committed (replay, or 422 for another body)
// or gives up (409 IDEMPOTENCY_KEY_IN_PROGRESS). A request cut off by a crash, its deadline or a
// drain rolls back its key with its order: the key is free at once, nothing half-done remains,
// and a key can never yield two orders. A process that hangs mid-transaction is ended by
// PostgreSQL (idle_in_transaction_session_timeout, statement_timeout).
import type { Session } from '../db/database';
import { sql } from '../db/database';

export interface StoredResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The body exactly as first sent. */
  readonly body: string;
}

export interface IdempotencyRecord {
  readonly key: string;
  /** SHA-256 of the canonical request body (domain/fingerprint.ts). */
  readonly fingerprint: string;
  readonly orderId: string;
  readonly response: StoredResponse;
}

export interface NewKey extends IdempotencyRecord {
  /** How long the key is kept (replays within it return the stored response). */
  readonly retentionMs: number;
}

/** SQLSTATE 55P03: the key row is held by a transaction still running (lock_timeout elapsed). */
export const LOCK_NOT_AVAILABLE = '55P03';

const INSERT_KEY = sql(
  'INSERT',
  'idempotency_keys',
  `INSERT INTO idempotency_keys
     (key, fingerprint, order_id, response_status, response_headers, response_body, expires_at)
   VALUES ($1, $2, $3, $4, $5::jsonb, $6, now() + $7::double precision * interval '1 millisecond')
   ON CONFLICT (key) DO NOTHING`,
);

const READ = sql(
  'SELECT',
  'idempotency_keys',
  `SELECT key, fingerprint, order_id, response_status, response_headers, response_body
     FROM idempotency_keys
    WHERE key = $1`,
);

// Past their retention, in batches; never a row another transaction holds (SKIP LOCKED: the
// purge waits for nobody).
const PURGE = sql(
  'DELETE',
  'idempotency_keys',
  `DELETE FROM idempotency_keys
    WHERE key IN (
      SELECT key FROM idempotency_keys
       WHERE expires_at <= now()
       ORDER BY expires_at
       LIMIT $1
       FOR UPDATE SKIP LOCKED)`,
);

type KeyRow = {
  key: string;
  fingerprint: string;
  order_id: string;
  response_status: number;
  response_headers: Record<string, string>;
  response_body: string;
};

/**
 * In the creating transaction, first: true when the key is now this transaction's; false when a
 * committed request already has it (read it with `readKey` after rolling back). Waits for a
 * request still running with the key; past lock_timeout it fails with `LOCK_NOT_AVAILABLE`.
 */
export async function insertKey(session: Session, key: NewKey): Promise<boolean> {
  const { rowCount } = await session.run(INSERT_KEY, [
    key.key,
    key.fingerprint,
    key.orderId,
    key.response.status,
    JSON.stringify(key.response.headers),
    key.response.body,
    key.retentionMs,
  ]);
  return rowCount === 1;
}

export async function readKey(
  session: Session,
  key: string,
): Promise<IdempotencyRecord | undefined> {
  const { rows } = await session.run<KeyRow>(READ, [key]);
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    key: row.key,
    fingerprint: row.fingerprint,
    orderId: row.order_id,
    response: {
      status: row.response_status,
      headers: row.response_headers,
      body: row.response_body,
    },
  };
}

/** Deletes up to `batch` keys past their retention; returns how many. */
export async function purgeExpiredKeys(session: Session, batch: number): Promise<number> {
  const { rowCount } = await session.run(PURGE, [batch]);
  return rowCount;
}
