// PostgreSQL through a pg Pool. Every call checks out its own client so that an aborted call (its
// request's deadline, the policy's attempt timeout) can discard that connection: PostgreSQL then
// rolls back whatever transaction was open on it, and the pool opens a fresh one.
//
// With pipelining (DATABASE_PIPELINE, the default) a transaction's BEGIN and the statements its
// work gives before awaiting any of them leave in one write, and PostgreSQL answers them in
// order; COMMIT or ROLLBACK follows once they are all answered. Without it, each statement waits
// for the previous one's answer.
import { setTimeout as sleep } from 'node:timers/promises';
import { isNativeError } from 'node:util/types';
import pg from 'pg';
import { ResourceCloseTimeout } from '../../contracts';
import type { CancelSignal } from '../../resilience/cancellation';
import type { Logger } from '../../telemetry/logger';
import {
  type Db,
  type DbSession,
  describeDbError,
  type QueryResult,
  type Row,
  abortReason,
  toSafeNumber,
} from './db';

/**
 * The error as an Error. isNativeError also holds for errors from another realm (Node's own
 * socket errors seen from a jest sandbox), which instanceof would rewrap and strip of their code.
 */
function asError(error: unknown): Error {
  return isNativeError(error) || error instanceof Error ? error : new Error(String(error));
}

export interface PgOptions {
  readonly url: string;
  readonly poolMax: number;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  /** lock_timeout: how long a statement waits for a lock (a running request's Idempotency-Key). */
  readonly lockTimeoutMs: number;
  /** idle_in_transaction_session_timeout: ends a transaction its process stopped driving. */
  readonly idleInTransactionTimeoutMs: number;
  /** Named prepared statements for statements with parameters (DATABASE_PREPARED_STATEMENTS). */
  readonly preparedStatements?: boolean;
  /** Statements of a transaction sent without waiting for each answer (DATABASE_PIPELINE). */
  readonly pipeline?: boolean;
  /** How long close() waits for checked-out connections before it stops waiting. */
  readonly closeTimeoutMs: number;
}

const INT8_OID = 20;

// int8 as numbers (see toSafeNumber); every other type keeps pg's own parser. pg asks for each
// column of every result: the int8 parser is one function, not a new one per column.
const int8 = (text: string): number => toSafeNumber(text);
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID) return int8;
    return pg.types.getTypeParser(oid, format ?? 'text') as unknown;
  }) as typeof pg.types.getTypeParser,
};

/** `host:port/database`, never the user or password. */
export function targetOf(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname || '/'}`;
  } catch {
    return 'postgresql';
  }
}

function poolOf(options: PgOptions, max: number, logger: Logger, role: string): pg.Pool {
  const config: pg.PoolConfig & { pipeline?: boolean } = {
    connectionString: options.url,
    max,
    connectionTimeoutMillis: options.connectTimeoutMs,
    // Server-side bound on every statement; the policy's attempt timeout is the client-side one.
    statement_timeout: options.statementTimeoutMs,
    lock_timeout: options.lockTimeoutMs,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs,
    idleTimeoutMillis: 10_000,
    // Dead peers (a cut network) are noticed by TCP keep-alive between requests too.
    keepAlive: true,
    application_name: 'ops-service',
    types,
    // pg's pipeline mode (8.23): queries given to a client before the previous one answered go
    // out at once, each with its own Sync, and are answered in order.
    pipeline: options.pipeline ?? true,
  };
  const pool = new pg.Pool(config);
  // An idle connection that breaks (the server restarted, the network was cut) is reported here;
  // without a listener the pool would throw it as an uncaught exception.
  pool.on('error', (error) => {
    logger.warn('db.connection_lost', {
      pool: role,
      reason: describeDbError(error),
      error_code: 'DEPENDENCY_UNAVAILABLE',
      error_category: 'expected',
    });
  });
  return pool;
}

/**
 * pg's socket for a client (`client.connection.stream`, not a public API): corked, it sends a
 * transaction's statements in one write (2 round trips per order instead of 6, see
 * DATABASE_PIPELINE); destroyed, it drops a connection a cut network would hold. Checked by
 * test/http/library-seams.test.ts against the installed pg.
 */
export function socketOf(
  client: pg.PoolClient,
): { cork(): void; uncork(): void; destroy(): void } | undefined {
  return (
    client as unknown as {
      connection?: { stream?: { cork(): void; uncork(): void; destroy(): void } };
    }
  ).connection?.stream;
}

/** Destroys the socket now: `release(error)` alone ends it politely, which a cut network never acknowledges. */
function discard(client: pg.PoolClient, reason: Error): void {
  client.release(reason);
  socketOf(client)?.destroy();
}

/**
 * Checks out a client, runs `work` on it and releases it, with one abort listener for the whole
 * call. An abort rejects at once: a client still being connected goes back to the pool when it
 * arrives, one in use is discarded (PostgreSQL rolls back what was open on it).
 */
function withClient<T>(
  pool: pg.Pool,
  signal: CancelSignal | undefined,
  work: (client: pg.PoolClient, markBroken: (error: Error) => void) => Promise<T>,
): Promise<T> {
  if (signal?.aborted === true) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    let client: pg.PoolClient | undefined;
    /** The caller has its answer; whatever comes later only cleans up. */
    let answered = false;
    let released = false;
    let broken: Error | undefined;
    // While checked out, the pool does not listen for this client's errors: a socket error with
    // no listener would crash the process. The failing query rejects on its own.
    const onError = (error: Error): void => {
      broken = error;
    };
    const release = (reason?: Error): void => {
      if (client === undefined || released) return;
      released = true;
      client.removeListener('error', onError);
      const cause = reason ?? broken;
      if (cause === undefined) client.release();
      else discard(client, cause);
    };
    const onAbort = (): void => {
      if (answered || signal === undefined) return;
      answered = true;
      reject(abortReason(signal));
      release(new Error('database call aborted'));
    };
    const answer = (settle: () => void): void => {
      if (answered) return;
      answered = true;
      signal?.removeEventListener('abort', onAbort);
      release();
      settle();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    pool.connect().then(
      (checkedOut) => {
        if (answered) {
          // The caller gave up while this connection was being made: straight back to the pool.
          checkedOut.release();
          return;
        }
        client = checkedOut;
        checkedOut.on('error', onError);
        const markBroken = (error: Error): void => {
          broken ??= error;
        };
        let running: Promise<T>;
        try {
          running = work(checkedOut, markBroken);
        } catch (error) {
          running = Promise.reject(asError(error));
        }
        running.then(
          (value) => answer(() => resolve(value)),
          (error: unknown) => {
            const failure = asError(error);
            // A statement error (SQLSTATE) leaves the connection usable; anything else may not.
            if (!isStatementError(error)) broken ??= failure;
            answer(() => reject(failure));
          },
        );
      },
      (error: unknown) => {
        answer(() => reject(asError(error)));
      },
    );
  });
}

function isStatementError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  // Class 08 (connection exception) and 57P (operator intervention) mean the connection is gone.
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^08|^57P/.test(code);
}

// Statements with parameters run as named prepared statements: each connection parses and plans
// one the first time and then only binds and executes it, which saves PostgreSQL's parse and plan
// work on every order (its CPU is shared with the service here). The names come from the text;
// the orders code has a fixed set of statements, and texts past PREPARED_MAX run unnamed.
const PREPARED_MAX = 256;
const preparedNames = new Map<string, string>();

function preparedName(text: string): string | undefined {
  const known = preparedNames.get(text);
  if (known !== undefined || preparedNames.size >= PREPARED_MAX) return known;
  const name = `ops_${preparedNames.size + 1}`;
  preparedNames.set(text, name);
  return name;
}

/** The prepared statement's name, or undefined to run it unnamed. */
function nameOf(prepared: boolean, text: string, params: readonly unknown[]): string | undefined {
  return !prepared || params.length === 0 ? undefined : preparedName(text);
}

/** What pg's Query reads when it is submitted (set after construction, see `statementOf`). */
interface SubmittedQuery {
  text: string;
  values: unknown[] | undefined;
  name: string | undefined;
  callback: (error: Error | undefined, result: pg.QueryResult) => void;
}

/**
 * One statement for `client.query`, as pg's own Query. Given a config object, pg copies it with
 * Object.getOwnPropertyDescriptors and wraps its answer in two more promises (one per statement,
 * 4 per order); built from the text alone and answered through its callback, it costs neither.
 */
function statementOf<R extends Row>(
  client: pg.PoolClient,
  text: string,
  values: unknown[],
  name: string | undefined,
): Promise<QueryResult<R>> {
  return new Promise((resolve, reject) => {
    const query = new pg.Query(text) as unknown as pg.Query & SubmittedQuery;
    query.values = values;
    query.name = name;
    query.callback = (error, result) => {
      if (error !== undefined && error !== null) reject(error);
      else resolve({ rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length });
    };
    client.query(query);
  });
}

function sessionOf(client: pg.PoolClient, prepared: boolean, pipelined: boolean): DbSession {
  const send = <R extends Row>(text: string, params: readonly unknown[]): Promise<QueryResult<R>> =>
    statementOf<R>(client, text, params as unknown[], nameOf(prepared, text, params));
  // Without pipelining, a statement given before the previous one answered waits for it here
  // (pg itself would queue it, with a deprecation warning).
  let previous: Promise<unknown> = Promise.resolve();
  return {
    query<R extends Row>(text: string, params: readonly unknown[] = []) {
      if (pipelined) return send<R>(text, params);
      const next = previous.then(() => send<R>(text, params));
      previous = next.catch(() => undefined);
      return next;
    },
    async exec(script: string) {
      // No parameters: the simple query protocol, which runs several statements.
      await client.query(script);
    },
  };
}

export function createPgDb(options: PgOptions, logger: Logger): Db {
  const prepared = options.preparedStatements ?? true;
  const pipelined = options.pipeline ?? true;
  const pool = poolOf(options, options.poolMax, logger, 'main');
  // The health check has a connection of its own: a pool busy with requests must not read as a
  // database that is down (readiness would flap exactly when the service is loaded).
  const healthPool = poolOf(
    { ...options, statementTimeoutMs: options.connectTimeoutMs },
    1,
    logger,
    'health',
  );
  let closing: Promise<void> | undefined;

  return {
    driver: 'postgresql',
    target: targetOf(options.url),
    query<R extends Row>(text: string, params: readonly unknown[] = [], signal?: CancelSignal) {
      // One statement on its own connection: nothing to queue behind, no session needed.
      return withClient(pool, signal, (client) =>
        statementOf<R>(client, text, params as unknown[], nameOf(prepared, text, params)),
      );
    },
    transaction<T>(work: (tx: DbSession) => Promise<T>, signal?: CancelSignal) {
      return withClient(pool, signal, async (client, markBroken) => {
        let result: T;
        try {
          if (pipelined) {
            // BEGIN goes out with the transaction's first statements, not a round trip ahead.
            // Both settle before anything else is sent: no statement of `work` may run after
            // the ROLLBACK below.
            // Corked, they leave in one write.
            const stream = socketOf(client);
            stream?.cork();
            const beginning = client.query('BEGIN');
            let working: Promise<T>;
            try {
              working = work(sessionOf(client, prepared, true));
            } catch (error) {
              working = Promise.reject(asError(error));
            } finally {
              stream?.uncork();
            }
            const [begun, done] = await Promise.allSettled([beginning, working]);
            if (begun.status === 'rejected') throw begun.reason;
            if (done.status === 'rejected') throw done.reason;
            result = done.value;
          } else {
            await client.query('BEGIN');
            result = await work(sessionOf(client, prepared, false));
          }
        } catch (error) {
          // If ROLLBACK itself fails the connection is broken: it is discarded, and PostgreSQL
          // rolls back when the connection goes. The caller sees the original error.
          await client.query('ROLLBACK').catch((rollbackError: unknown) => {
            markBroken(isNativeError(rollbackError) ? rollbackError : new Error('ROLLBACK failed'));
          });
          throw error;
        }
        await client.query('COMMIT');
        return result;
      });
    },
    async ping(signal: AbortSignal) {
      await withClient(healthPool, signal, (client) => client.query('SELECT 1'));
    },
    close() {
      // Bounded, and truthful: when connections are still checked out at the end of the wait,
      // close() says so (the runtime logs resource.close_timeout, not resource.closed).
      closing ??= Promise.race([
        Promise.all([pool.end(), healthPool.end()]).then(() => true),
        sleep(options.closeTimeoutMs, false, { ref: false }),
      ]).then((closed) => {
        if (!closed) {
          const busy = pool.totalCount - pool.idleCount;
          throw new ResourceCloseTimeout(
            `the pool did not close within ${options.closeTimeoutMs} ms: ${busy} connection(s) still checked out`,
          );
        }
      });
      return closing;
    },
  };
}

export type { QueryResult };
