// The two databases the orders code runs on, for the suites that run once on each
// (`describe.each(backends)`): the real PostgreSQL on this machine (a fresh database per test
// file, see test-database.ts) and the embedded PGlite (one instance per test file, in a temp
// directory, opened by the service's own adapter, on a copy of a data directory initialised once
// per run: helpers/pglite-template.ts). PGlite still takes a second or more to start, so a file
// opens it once and empties it between tests (`reset`) rather than opening another.
//
// PGlite's ESM/WASM bundle is loaded with import(), which jest allows only when Node runs with
// --experimental-vm-modules: `npm test` starts jest that way (`npm test -- <file>` for one file).
import type { Db, Row } from '../../../src/orders/db/db';
import * as pgliteAdapter from '../../../src/orders/db/pglite.adapter';
import { freshPgliteData } from '../../helpers/pglite-template';
import { tempDir } from '../../helpers/temp-dir';
import { type DatabaseStack, databaseStack, databaseStackOn } from './database-stack';
import { type InProcessOptions, type InProcessService, startInProcess } from './in-process-service';
import { createTestDatabase } from './test-database';

export type BackendName = 'postgres' | 'pglite';

/** The test's own SQL on a database, beside the code under test (setup and checks). */
export interface SqlAccess {
  query<R extends Row = Row>(text: string, params?: unknown[]): Promise<R[]>;
}

export interface BackendDatabase extends SqlAccess {
  /** The orders data-access stack on this database; closing the stack leaves the database open. */
  stack(poolMax?: number, wrap?: (db: Db) => Db): DatabaseStack;
  /** Drops every table (and the migrations record): as empty as a fresh database. */
  reset(): Promise<void>;
  /** Removes it; idempotent (a failed open leaves the previous one in a file's variable). */
  close(): Promise<void>;
}

export interface BackendService {
  readonly service: InProcessService;
  /** The database the service runs on, for the test's own SQL. */
  readonly database: SqlAccess;
  /** Stops the service, then removes its database; idempotent. */
  stop(): Promise<void>;
}

export interface Backend {
  readonly name: BackendName;
  /** A fresh, empty database of its own. */
  open(): Promise<BackendDatabase>;
  /** The service in this process (in-process-service.ts) on a fresh database of this backend. */
  startService(env?: Record<string, string>, options?: InProcessOptions): Promise<BackendService>;
}

/** For the hooks that open one: a cold PGlite takes seconds, more on a busy machine. */
export const OPEN_TIMEOUT_MS = 60_000;

const RESET = ['DROP SCHEMA public CASCADE', 'CREATE SCHEMA public'];

function once(work: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= work());
}

function explained(error: unknown): unknown {
  const message = error instanceof Error ? error.message : String(error);
  if (!message.includes('--experimental-vm-modules')) return error;
  return new Error(
    'PGlite loads only when jest runs under `node --experimental-vm-modules`: run the tests with `npm test` (`npm test -- <file>` for one file)',
    { cause: error },
  );
}

const postgres: Backend = {
  name: 'postgres',
  async open() {
    const database = await createTestDatabase();
    return {
      query: <R extends Row>(text: string, params?: unknown[]) => database.query<R>(text, params),
      stack: (poolMax, wrap) => databaseStack(database.url, poolMax, wrap),
      async reset() {
        for (const statement of RESET) await database.query(statement);
      },
      close: once(() => database.drop()),
    };
  },
  async startService(env = {}, options = {}) {
    const database = await createTestDatabase();
    try {
      const service = await startInProcess({ ...env, DATABASE_URL: database.url }, options);
      return {
        service,
        database,
        stop: once(async () => {
          await service.stop();
          await database.drop();
        }),
      };
    } catch (error) {
      await database.drop();
      throw error;
    }
  },
};

const pglite: Backend = {
  name: 'pglite',
  async open() {
    const dir = tempDir('ops-pglite-');
    let db: Db;
    try {
      await freshPgliteData(`${dir.path}/pglite`, pgliteAdapter.createPgliteDb);
      db = await pgliteAdapter.createPgliteDb(`${dir.path}/pglite`);
    } catch (error) {
      dir.remove();
      throw explained(error);
    }
    return {
      query: async <R extends Row>(text: string, params?: unknown[]) =>
        (await db.query<R>(text, params)).rows,
      // One instance for the file: every stack shares it, and only close() below closes it.
      stack: (poolMax = 10, wrap = (real) => real) =>
        databaseStackOn(db, poolMax, wrap, () => Promise.resolve()),
      async reset() {
        for (const statement of RESET) await db.query(statement);
      },
      close: once(async () => {
        await db.close();
        dir.remove();
      }),
    };
  },
  async startService(env = {}, options = {}) {
    const dir = tempDir('ops-pglite-');
    await freshPgliteData(`${dir.path}/pglite`, pgliteAdapter.createPgliteDb).catch(
      (error: unknown) => {
        dir.remove();
        throw explained(error);
      },
    );
    // A data directory is opened by one instance only (the adapter locks it), and here the
    // service opens it, through its own code path (an empty DATABASE_URL). The test borrows that
    // instance for its own SQL: a spy that calls through records what the adapter returned. It
    // stays in place for the file (jest drops it with the module registry), because the
    // service's import() of the adapter keeps the function it found first.
    const opening = jest.spyOn(pgliteAdapter, 'createPgliteDb');
    const calls = opening.mock.results.length;
    let service: InProcessService;
    try {
      service = await startInProcess(
        {
          ...env,
          DATABASE_URL: '',
          PGLITE_DATA_DIR: `${dir.path}/pglite`,
          STARTUP_TIMEOUT_MS: String(OPEN_TIMEOUT_MS - 5_000),
        },
        options,
      );
    } catch (error) {
      dir.remove();
      throw explained(error);
    }
    const opened = opening.mock.results[calls];
    if (opened?.type !== 'return') {
      await service.stop();
      dir.remove();
      throw new Error('the service started without opening PGlite');
    }
    const db = await opened.value;
    return {
      service,
      database: {
        query: async <R extends Row>(text: string, params?: unknown[]) =>
          (await db.query<R>(text, params)).rows,
      },
      stop: once(async () => {
        await service.stop();
        dir.remove();
      }),
    };
  },
};

export const backends: readonly Backend[] = [postgres, pglite];
