// The database as the orders code sees it: one small interface with two adapters, PostgreSQL
// through a pg Pool (DATABASE_URL) and the embedded PGlite (no DATABASE_URL), so repositories and
// migrations have a single code path. Both speak the same `$1` SQL; the adapters hide how each
// checks out a connection, runs a transaction and types int8.
import type { CancelSignal } from '../../resilience/cancellation';

export type Row = Record<string, unknown>;

export interface QueryResult<R extends Row = Row> {
  readonly rows: R[];
  /** Rows inserted, updated or deleted (or returned, for a SELECT). */
  readonly rowCount: number;
}

/** A connection inside a transaction (or the pool itself, outside one). */
export interface DbSession {
  query<R extends Row = Row>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements, without parameters (migrations). */
  exec(script: string): Promise<void>;
}

export type DbDriver = 'postgresql' | 'pglite';

export interface Db {
  readonly driver: DbDriver;
  /** Where the data lives, for logs and spans: `host:port/database` or the data directory. Never credentials. */
  readonly target: string;
  /** One statement on a connection of its own; `signal` cuts it off (the connection is discarded). */
  query<R extends Row = Row>(
    text: string,
    params?: readonly unknown[],
    signal?: CancelSignal,
  ): Promise<QueryResult<R>>;
  /** BEGIN, `work`, COMMIT; ROLLBACK when `work` throws. `signal` abandons it (nothing commits). */
  transaction<T>(work: (tx: DbSession) => Promise<T>, signal?: CancelSignal): Promise<T>;
  /** `SELECT 1` on a connection a busy pool cannot starve (the health check). */
  ping(signal: AbortSignal): Promise<void>;
  /** Closes every connection; bounded, idempotent; rejects with ResourceCloseTimeout when it stopped waiting. */
  close(): Promise<void>;
}

/**
 * int8 (`bigint` columns, `count(*)`) comes back as a string from pg and as a BigInt or number
 * from PGlite. Money is in integer cents within Number.MAX_SAFE_INTEGER (checked on input), so
 * every adapter hands out plain numbers, and refuses to round silently.
 */
export function toSafeNumber(value: bigint | string): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number)) {
    throw new RangeError(`int8 value ${String(value)} is outside the safe integer range`);
  }
  return number;
}

/** Rows with every BigInt turned into a number (PGlite), in place. */
export function normaliseRows<R extends Row>(rows: R[]): R[] {
  for (const row of rows) {
    for (const key of Object.keys(row)) {
      const value = row[key];
      if (typeof value === 'bigint') (row as Row)[key] = toSafeNumber(value);
    }
  }
  return rows;
}

/** Settles like `work`, or rejects with the signal's reason as soon as it aborts. */
export function untilAborted<T>(work: Promise<T>, signal: CancelSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

export function abortReason(signal: CancelSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('the database call was aborted');
}

/** One line for logs and startup errors; AggregateError (every address refused) has no message. */
export function describeDbError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return error.errors.map(describeDbError).join('; ');
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const message = error.message === '' ? error.name : error.message;
    return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
  }
  return String(error);
}
