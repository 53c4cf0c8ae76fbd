// Idempotency-Keys (table idempotency_keys, migrations/003). The protocol, in three steps:
//   claim    INSERT ... ON CONFLICT, its own autocommit statement: the key is created in_progress
//            with a lease (lease_token, lease_expires_at), or taken over when its lease expired
//            (same fingerprint only), or left alone and read back (replay / 422 / 409).
//   complete inside the order's transaction: the key row is locked (FOR UPDATE) and checked to
//            still carry our lease_token, then the order, its outbox event and the completion
//            (response to replay) commit together.
//   release  on failure, the lease is ended at once so a retry need not wait for it to expire.
// Primary-key uniqueness serialises claims: of N concurrent claims one inserts, the others wait
// for its commit and then find a live lease. The FOR UPDATE in `complete` serialises a takeover
// with a slow first attempt: only the lease holder can complete, and a completed key never goes
// back to in_progress, so a key yields at most one order.
import type { Session } from '../db/database';
import { sql } from '../db/database';

export interface StoredResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The body exactly as first sent. */
  readonly body: string;
}

export type KeyState = 'in_progress' | 'completed';

export interface IdempotencyRecord {
  readonly key: string;
  readonly fingerprint: string;
  readonly state: KeyState;
  readonly leaseToken: string | null;
  readonly leaseExpired: boolean;
  readonly attempts: number;
  readonly orderId: string | null;
  readonly response: StoredResponse | null;
}

export interface ClaimRequest {
  readonly key: string;
  readonly fingerprint: string;
  /** Identifies this attempt's lease (a fresh UUID per request). */
  readonly leaseToken: string;
  readonly leaseMs: number;
  readonly retentionMs: number;
}

// Taken over: an expired lease (same body only). Ours again: our own lease (a retried claim).
const CLAIM = sql(
  'INSERT',
  'idempotency_keys',
  `INSERT INTO idempotency_keys AS k
     (key, fingerprint, state, lease_token, lease_expires_at, expires_at)
   VALUES ($1, $2, 'in_progress', $3,
     now() + $4::double precision * interval '1 millisecond',
     now() + $5::double precision * interval '1 millisecond')
   ON CONFLICT (key) DO UPDATE
     SET lease_token = EXCLUDED.lease_token,
         lease_expires_at = EXCLUDED.lease_expires_at,
         attempts = CASE WHEN k.lease_token = EXCLUDED.lease_token THEN k.attempts
                         ELSE k.attempts + 1 END
     WHERE k.state = 'in_progress'
       AND k.fingerprint = EXCLUDED.fingerprint
       AND (k.lease_expires_at <= now() OR k.lease_token = EXCLUDED.lease_token)
   RETURNING attempts`,
);

const READ = sql(
  'SELECT',
  'idempotency_keys',
  `SELECT key, fingerprint, state, lease_token, attempts, order_id,
          response_status, response_headers, response_body,
          coalesce(lease_expires_at <= now(), true) AS lease_expired
     FROM idempotency_keys
    WHERE key = $1`,
);

const LOCK_LEASE = sql(
  'SELECT',
  'idempotency_keys',
  `SELECT key FROM idempotency_keys
    WHERE key = $1 AND lease_token = $2 AND state = 'in_progress'
    FOR UPDATE`,
);

const COMPLETE = sql(
  'UPDATE',
  'idempotency_keys',
  `UPDATE idempotency_keys
      SET state = 'completed', lease_token = NULL, lease_expires_at = NULL,
          order_id = $3, response_status = $4, response_headers = $5::jsonb, response_body = $6,
          completed_at = now(),
          expires_at = now() + $7::double precision * interval '1 millisecond'
    WHERE key = $1 AND lease_token = $2 AND state = 'in_progress'`,
);

const RELEASE = sql(
  'UPDATE',
  'idempotency_keys',
  `UPDATE idempotency_keys
      SET lease_token = NULL, lease_expires_at = now()
    WHERE key = $1 AND lease_token = $2 AND state = 'in_progress'`,
);

// Past their retention, in batches; never a key whose lease is still running, never a row
// another transaction holds (SKIP LOCKED: the purge waits for nobody).
const PURGE = sql(
  'DELETE',
  'idempotency_keys',
  `DELETE FROM idempotency_keys
    WHERE key IN (
      SELECT key FROM idempotency_keys
       WHERE expires_at <= now()
         AND (state = 'completed' OR lease_expires_at IS NULL OR lease_expires_at <= now())
       ORDER BY expires_at
       LIMIT $1
       FOR UPDATE SKIP LOCKED)`,
);

type KeyRow = {
  key: string;
  fingerprint: string;
  state: KeyState;
  lease_token: string | null;
  attempts: number;
  order_id: string | null;
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  lease_expired: boolean;
};

/** `acquired` when this request now holds the key; otherwise the key as it stands. */
export type ClaimResult =
  | { readonly kind: 'acquired'; readonly attempts: number }
  | { readonly kind: 'existing'; readonly record: IdempotencyRecord }
  /** Purged between the claim and the read: claim again. */
  | { readonly kind: 'vanished' };

export async function claimKey(session: Session, request: ClaimRequest): Promise<ClaimResult> {
  const claimed = await session.run<{ attempts: number }>(CLAIM, [
    request.key,
    request.fingerprint,
    request.leaseToken,
    request.leaseMs,
    request.retentionMs,
  ]);
  const row = claimed.rows[0];
  if (row !== undefined) return { kind: 'acquired', attempts: row.attempts };
  const record = await readKey(session, request.key);
  return record === undefined ? { kind: 'vanished' } : { kind: 'existing', record };
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
    state: row.state,
    leaseToken: row.lease_token,
    leaseExpired: row.lease_expired,
    attempts: row.attempts,
    orderId: row.order_id,
    response:
      row.response_status === null || row.response_body === null
        ? null
        : {
            status: row.response_status,
            headers: row.response_headers ?? {},
            body: row.response_body,
          },
  };
}

/** In the completing transaction, first: locks the key row if this request still holds it. */
export async function lockLease(
  session: Session,
  key: string,
  leaseToken: string,
): Promise<boolean> {
  const { rows } = await session.run(LOCK_LEASE, [key, leaseToken]);
  return rows.length === 1;
}

export async function completeKey(
  session: Session,
  completion: {
    readonly key: string;
    readonly leaseToken: string;
    readonly orderId: string;
    readonly response: StoredResponse;
    readonly retentionMs: number;
  },
): Promise<boolean> {
  const { rowCount } = await session.run(COMPLETE, [
    completion.key,
    completion.leaseToken,
    completion.orderId,
    completion.response.status,
    JSON.stringify(completion.response.headers),
    completion.response.body,
    completion.retentionMs,
  ]);
  return rowCount === 1;
}

export async function releaseKey(
  session: Session,
  key: string,
  leaseToken: string,
): Promise<boolean> {
  const { rowCount } = await session.run(RELEASE, [key, leaseToken]);
  return rowCount === 1;
}

/** Deletes up to `batch` keys past their retention; returns how many. */
export async function purgeExpiredKeys(session: Session, batch: number): Promise<number> {
  const { rowCount } = await session.run(PURGE, [batch]);
  return rowCount;
}
