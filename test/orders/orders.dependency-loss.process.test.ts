// Losing the database while ready: the real service reaches PostgreSQL through a TCP proxy the
// test breaks, either refusing connections (cut) or silently dropping every byte (stall, a
// network black hole). Readiness turns 503 degraded within seconds, order requests fail fast
// with 503 (CIRCUIT_OPEN or DEPENDENCY_UNAVAILABLE), liveness stays 200, the process does not
// crash, and when the proxy comes back everything recovers by itself.
import { randomUUID } from 'node:crypto';
import {
  getPath,
  orderBody,
  type Outcome,
  postOrder,
  readiness,
  waitUntil,
} from './support/orders-client';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy';
import { createTestDatabase, type TestDatabase, urlOf } from './support/test-database';
import { startService } from '../helpers/service-process';

jest.setTimeout(60_000);

let database: TestDatabase;
let proxy: TcpProxy;
beforeAll(async () => {
  database = await createTestDatabase();
  const target = new URL(database.url);
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
});
afterEach(async () => {
  await proxy.restore();
});
afterAll(async () => {
  await proxy.close();
  await database.drop();
});

async function postMany(port: number, count: number): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  for (let i = 0; i < count; i += 1) {
    outcomes.push(await postOrder(port, `during-${i}-${randomUUID()}`, orderBody()));
  }
  return outcomes;
}

function expectRetryable503(failures: readonly Outcome[]): void {
  for (const failure of failures) {
    expect(failure.status).toBe(503);
    expect(['CIRCUIT_OPEN', 'DEPENDENCY_UNAVAILABLE']).toContain(failure.json?.code);
    expect(failure.headers?.['retry-after']).toBeDefined();
  }
}

const describeFailures = (failures: readonly Outcome[]): string =>
  failures.map((f) => `${f.ms} ms ${String(f.json?.code)}`).join(', ');

/**
 * Breaks the proxy, sends `early` orders at once (before health pings notice), waits for 503
 * degraded, sends more orders, restores the proxy and waits for 200 ready.
 */
async function outage(
  breakIt: () => Promise<void> | void,
  early: number,
  expectFast: (early: readonly Outcome[], late: readonly Outcome[]) => void,
): Promise<string> {
  const viaProxy = urlOf(database.name, `postgres://postgres@127.0.0.1:${proxy.port}/`);
  const { service, port, opsPort } = await startService({
    RATE_LIMIT_MAX: '0',
    DATABASE_URL: viaProxy,
    DATABASE_CONNECT_TIMEOUT_MS: '1000',
  });
  try {
    expect((await postOrder(port, `before-${randomUUID()}`, orderBody())).status).toBe(201);
    expect((await readiness(port)).status).toBe(200);

    await breakIt();
    const brokenAt = Date.now();
    const earlyFailures = await postMany(port, early);
    await waitUntil(async () => (await readiness(port)).status === 503, 10_000, 25);
    const toDegraded = Date.now() - brokenAt;
    // Public readiness: coarse, stable words; the cause itself is on the ops listener.
    const degraded = await readiness(port);
    expect(degraded.body).toMatchObject({
      status: 'degraded',
      reasons: { database: 'unavailable' },
      dependencies: { database: { status: 'down', essential: true } },
    });
    expect(JSON.stringify(degraded.body)).not.toMatch(/ECONN|terminated|timeout|ping failed/i);
    const lifecycle = (await getPath(opsPort, '/lifecycle')).json as {
      dependencies: { database: { status: string; reason?: string } };
    };
    expect(lifecycle.dependencies.database.status).toBe('down');
    expect(lifecycle.dependencies.database.reason).toMatch(/\S/);
    expect(toDegraded).toBeLessThan(5_000);
    expect((await getPath(port, '/health')).status).toBe(200);

    const failures = await postMany(port, 4);
    expectRetryable503([...earlyFailures, ...failures]);
    expectFast(earlyFailures, failures);
    expect((await getPath(port, `/v1/orders/${randomUUID()}`)).status).toBe(503);

    await proxy.restore();
    const toReady = await waitUntil(async () => (await readiness(port)).status === 200, 15_000, 25);
    expect(toReady).toBeLessThan(6_000);
    expect((await postOrder(port, `after-${randomUUID()}`, orderBody())).status).toBe(201);
    // A key whose request failed during the outage works on retry.
    expect((await postOrder(port, failures[0]?.key as string, orderBody())).status).toBe(201);

    const events = service.events();
    expect(events).toContain('db.unavailable');
    if (early > 0) expect(events).toContain('breaker.open');
    expect(events).toContain('db.available');
    expect(events).not.toContain('process.crash');
    return (
      `orders sent at once failed in ${describeFailures(earlyFailures) || '(none sent)'}; ` +
      `503 degraded ${toDegraded} ms after the outage began; orders then failed in ` +
      `${describeFailures(failures)}; ` +
      `200 ready ${toReady} ms after the database came back`
    );
  } finally {
    service.kill('SIGTERM');
    expect(await service.exited()).toBe(0);
  }
}

it('when connections to the database are refused, then the breaker opens, readiness turns 503 degraded, orders get 503 at once, and both recover by themselves', async () => {
  const summary = await outage(
    () => proxy.cut(),
    6,
    (early, late) => {
      // Before the pings notice: retried, then refused by the open breaker without a try.
      for (const failure of early) expect(failure.ms).toBeLessThan(2_500);
      expect(early.at(-1)?.json?.code).toBe('CIRCUIT_OPEN');
      expect(early.at(-1)?.ms).toBeLessThan(100);
      for (const failure of late) expect(failure.ms).toBeLessThan(100);
    },
  );
  process.stdout.write(`dependency loss (refused): ${summary}\n`);
});

it('when the database stops answering (a black hole), then readiness turns 503 degraded and orders get 503 at once instead of hanging', async () => {
  const summary = await outage(
    () => proxy.stall(),
    0,
    (_early, late) => {
      for (const failure of late) expect(failure.ms).toBeLessThan(100);
    },
  );
  process.stdout.write(`dependency loss (black hole): ${summary}\n`);
});
