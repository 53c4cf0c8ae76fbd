// The production entry point turns V8's allocation-site pretenuring off for its process before
// anything else loads (src/heap-tuned.ts, runtime/heap-tuning.ts). Under load, pretenuring made
// every scavenge copy whole requests into the old generation (bench/README.md, "Garbage
// collection"). V8's --trace-pretenuring-statistics prints a line at each scavenge while
// pretenuring is on, and nothing when it is off: the bundled service, serving orders, must print
// none. The same service started with the flag on node's command line (an operator's explicit
// choice, which the service leaves as it is) prints them: the check can fail.
import { ORDER_BODY } from '../../bench/protocol';
import { MAIN, type Started, startService } from '../helpers/service-process';
import { type TestDatabase, createTestDatabase } from '../orders/support/test-database';

jest.setTimeout(60_000);

/** Enough GETs (with their allocations) that V8 runs scavenges after startup. */
const GETS = 400;
const CONCURRENCY = 8;

let database: TestDatabase;
const services: Started[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  for (const started of services) started.service.kill('SIGKILL');
  await database?.drop();
});

/** Starts dist/main.js with node's `nodeArgs`, serves an order and GETs of it, stops it. */
async function serveOrders(nodeArgs: readonly string[], key: string): Promise<string[]> {
  const started = await startService(
    { DATABASE_URL: database.url, SHUTDOWN_DELAY_MS: '0' },
    {
      script: MAIN,
      readyTimeoutMs: 20_000,
      nodeArgs: ['--trace-pretenuring-statistics', ...nodeArgs],
    },
  );
  services.push(started);
  const base = `http://127.0.0.1:${started.port}`;
  const created = await fetch(`${base}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(ORDER_BODY),
  });
  expect(created.status).toBe(201);
  const location = `${base}${created.headers.get('location') ?? ''}`;
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = 0; i < GETS / CONCURRENCY; i++) {
        const answer = await fetch(location);
        await answer.arrayBuffer();
        statuses.push(answer.status);
      }
    }),
  );
  expect(statuses.filter((status) => status !== 200)).toEqual([]);
  const exited = started.service.exited();
  started.service.kill('SIGTERM');
  expect(await exited).toBe(0);
  return started.service.rawStdout.filter((line) => line.includes('pretenuring:'));
}

it('when the bundled service serves orders, then V8 keeps no pretenuring statistics: pretenuring is off', async () => {
  expect(await serveOrders([], 'heap-tuning-off')).toEqual([]);
});

it('when node is started with --allocation-site-pretenuring, then the service leaves it on and V8 reports its statistics', async () => {
  const lines = await serveOrders(['--allocation-site-pretenuring'], 'heap-tuning-on');
  expect(lines.length).toBeGreaterThan(0);
});
