// The embedded PostgreSQL (PGlite, WASM) for runs without DATABASE_URL, so `npm start` needs no
// database server. One instance per process, in database.dataDir. It runs one statement at a time
// and cannot cancel one: an aborted call is only abandoned (the transaction still finishes or
// rolls back on its own, which the idempotency protocol is built to tolerate).
//
// PGlite is loaded with a real `import()` (kept by TypeScript's node16 module mode) and only on
// this path, so runs on PostgreSQL never load its ~10 MB WASM bundle.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  type Db,
  type DbSession,
  normaliseRows,
  type QueryResult,
  type Row,
  untilAborted,
} from './db';
import type { CancelSignal } from '../../resilience/cancellation';
import { acquireDirectoryLock } from './directory-lock';

interface PgliteQueryable {
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[]; affectedRows?: number }>;
  exec(script: string): Promise<unknown>;
}

function sessionOf(target: PgliteQueryable): DbSession {
  const send = async <R extends Row>(
    text: string,
    params: readonly unknown[],
  ): Promise<QueryResult<R>> => {
    const result = await target.query<R>(text, [...params]);
    return {
      rows: normaliseRows(result.rows),
      rowCount: result.affectedRows ?? result.rows.length,
    };
  };
  // PGlite runs one statement at a time: a statement given before the previous one answered
  // waits for it here, so they run in the order given.
  let previous: Promise<unknown> = Promise.resolve();
  return {
    query<R extends Row>(text: string, params: readonly unknown[] = []) {
      const next = previous.then(() => send<R>(text, params));
      previous = next.catch(() => undefined);
      return next;
    },
    async exec(script: string) {
      await target.exec(script);
    },
  };
}

async function open(directory: string) {
  const { PGlite } = await import('@electric-sql/pglite');
  return PGlite.create({ dataDir: directory });
}

export async function createPgliteDb(dataDir: string): Promise<Db> {
  const directory = path.resolve(dataDir);
  mkdirSync(directory, { recursive: true });
  // PGlite does not lock its data directory; two processes writing one would corrupt it.
  const lock = acquireDirectoryLock(directory);
  const pglite = await open(directory).catch((error: unknown) => {
    lock.release();
    throw error;
  });
  const session = sessionOf(pglite);
  let closing: Promise<void> | undefined;

  return {
    driver: 'pglite',
    target: directory,
    query<R extends Row>(text: string, params: readonly unknown[] = [], signal?: CancelSignal) {
      return untilAborted(session.query<R>(text, params), signal);
    },
    transaction<T>(work: (tx: DbSession) => Promise<T>, signal?: CancelSignal) {
      return untilAborted(
        pglite.transaction((tx) => work(sessionOf(tx))),
        signal,
      );
    },
    async ping(signal: AbortSignal) {
      await untilAborted(session.query('SELECT 1'), signal);
    },
    close() {
      closing ??= pglite.close().finally(() => lock.release());
      return closing;
    },
  };
}
