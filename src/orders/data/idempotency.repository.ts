// Idempotency-Keys (table idempotency_keys, migrations/003, 004 and 007). A key is scoped to its
// tenant (issue #15): the primary key is (tenant_id, key), every statement here names both, and
// two tenants sending the same key each get their own order and response, never the other's.
// The protocol is one transaction per request, with the key as its first statement:
//
//   BEGIN
//   INSERT key ... ON CONFLICT DO NOTHING   the key, complete with the response to replay
//   INSERT order, items, outbox event
//   COMMIT
//
// (On PostgreSQL everything before COMMIT goes out in one write: db/pg.adapter.ts, pipelining.)
// The unique index on (tenant_id, key) does the rest. While the first request's transaction is
// open, its key row is uncommitted: a second request of that tenant with the same key waits on it (lock_timeout,
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
  /** The tenant the key belongs to: the same key in another tenant is another record. */
  readonly tenant: string;
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
     (tenant_id, key, fingerprint, order_id, response_status, response_headers, response_body,
      expires_at)
   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7,
           now() + $8::double precision * interval '1 millisecond')
   ON CONFLICT (tenant_id, key) DO NOTHING`,
);

const READ = sql(
  'SELECT',
  'idempotency_keys',
  `SELECT tenant_id, key, fingerprint, order_id, response_status, response_headers,
          response_body
     FROM idempotency_keys
    WHERE tenant_id = $1 AND key = $2`,
);

// Past their retention, in batches; never a row another transaction holds (SKIP LOCKED: the
// purge waits for nobody). Rows are named by their whole primary key: the same key of another
// tenant, still within its retention, stays.
const PURGE = sql(
  'DELETE',
  'idempotency_keys',
  `DELETE FROM idempotency_keys
    WHERE (tenant_id, key) IN (
      SELECT tenant_id, key FROM idempotency_keys
       WHERE expires_at <= now()
       ORDER BY expires_at
       LIMIT $1
       FOR UPDATE SKIP LOCKED)`,
);

type KeyRow = {
  tenant_id: string;
  key: string;
  fingerprint: string;
  order_id: string;
  response_status: number;
  response_headers: Record<string, string>;
  response_body: string;
};

/**
 * In the creating transaction, first: true when the key is now this transaction's; false when a
 * committed request of the same tenant already has it (read it with `readKey` after rolling
 * back). Waits for a request of the same tenant still running with the key; past lock_timeout it
 * fails with `LOCK_NOT_AVAILABLE`. Another tenant's use of the key neither blocks nor counts.
 */
export function insertKey(session: Session, key: NewKey): Promise<boolean> {
  // A callback, not an async function: on the request path every promise pays the request
  // scope's async hooks (an async function with an await is two more per statement).
  return session
    .run(INSERT_KEY, [
      key.tenant,
      key.key,
      key.fingerprint,
      key.orderId,
      key.response.status,
      JSON.stringify(key.response.headers),
      key.response.body,
      key.retentionMs,
    ])
    .then(({ rowCount }) => rowCount === 1);
}

/** The tenant's record of `key`; undefined when this tenant has none (whatever others have). */
export async function readKey(
  session: Session,
  tenant: string,
  key: string,
): Promise<IdempotencyRecord | undefined> {
  const { rows } = await session.run<KeyRow>(READ, [tenant, key]);
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    tenant: row.tenant_id,
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
