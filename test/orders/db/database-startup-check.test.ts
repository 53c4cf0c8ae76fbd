// The database startup check on PGlite waits for the event loop to be on time before the service
// is ready: PGlite's start runs WASM on the main thread, and load shedding reads the event-loop
// monitor, whose window holding that block closes only later (every second). A fake database and
// a fake monitor whose windows the test closes.
import { setTimeout as delay } from 'node:timers/promises';
import type { Db, DbSession, QueryResult, Row } from '../../../src/orders/db/db';
import { databaseStartupCheck } from '../../../src/orders/db/database.startup-check';
import { migrationsDir } from '../../../src/orders/orders.module';
import { captureLogger } from '../../helpers/log-capture';

const LIMIT_MS = 500;

function fakePglite(): Db {
  const empty = <R extends Row>(): Promise<QueryResult<R>> =>
    Promise.resolve({ rows: [], rowCount: 0 });
  const session: DbSession = { query: empty, exec: () => Promise.resolve() };
  return {
    driver: 'pglite',
    target: '/tmp/fake',
    query: empty,
    transaction: (work) => work(session),
    ping: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

/** The event-loop monitor as load shedding reads it; the test closes its windows. */
function fakeMonitor() {
  let p99 = 0;
  let closed = 0;
  return {
    p99Ms: () => p99,
    windowsClosed: () => closed,
    closeWindow(p99Ms: number) {
      p99 = p99Ms;
      closed += 1;
    },
  };
}

function check(eventLoop: ReturnType<typeof fakeMonitor>, onReady: () => void) {
  return databaseStartupCheck({
    open: () => Promise.resolve(fakePglite()),
    migrationsDir: migrationsDir(),
    startupTimeoutMs: 10_000,
    connectTimeoutMs: 1_000,
    logger: captureLogger().logger,
    onOpen: () => undefined,
    onReady,
    eventLoop,
    maxEventLoopDelayMs: LIMIT_MS,
  });
}

describe('the database startup check on PGlite', () => {
  it('when the window holding the start-up block has not closed yet, then ready waits for it and for a window on time after it', async () => {
    const monitor = fakeMonitor();
    const seenAtReady: { windows: number; p99: number }[] = [];
    // The last window closed on time; the open one holds the block (reported late when it closes).
    const running = check(monitor, () =>
      seenAtReady.push({ windows: monitor.windowsClosed(), p99: monitor.p99Ms() }),
    ).run(new AbortController().signal);
    await delay(200);
    expect(seenAtReady).toEqual([]);
    monitor.closeWindow(800);
    await delay(200);
    expect(seenAtReady).toEqual([]);
    monitor.closeWindow(3);
    await running;
    expect(seenAtReady).toEqual([{ windows: 2, p99: 3 }]);
  });

  it('when a window after the block is late too (the loop is still busy), then ready waits for one on time', async () => {
    const monitor = fakeMonitor();
    let ready = false;
    const running = check(monitor, () => {
      ready = true;
    }).run(new AbortController().signal);
    await delay(100);
    monitor.closeWindow(900);
    monitor.closeWindow(700);
    await delay(200);
    expect(ready).toBe(false);
    monitor.closeWindow(10);
    await running;
    expect(ready).toBe(true);
  });
});
