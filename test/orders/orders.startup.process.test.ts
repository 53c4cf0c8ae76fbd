// The database as a startup dependency: the service waits for it within the startup budget, and
// gives up with a reason that names the database and the cause (exit 1) when it never answers.
import { randomUUID } from 'node:crypto';
import { contractEvents } from '../drills/drill-kit';
import { freePort } from '../helpers/ports';
import { DRILL_SERVICE, spawnService } from '../helpers/service-process';
import { delay, orderBody, postOrder } from './support/orders-client';
import { startTcpProxy } from './support/tcp-proxy';
import { createTestDatabase, type TestDatabase, urlOf } from './support/test-database';

jest.setTimeout(30_000);

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

it('when the database never answers, then service.start_failed names it and its cause within the startup budget, and the exit code is 1', async () => {
  const port = await freePort();
  const startedAt = Date.now();
  const service = spawnService({
    script: DRILL_SERVICE,
    env: {
      DATABASE_URL: `postgres://orders:not-logged@127.0.0.1:${port}/orders`,
      STARTUP_TIMEOUT_MS: '2000',
    },
  });
  expect(await service.exited()).toBe(1);
  expect(Date.now() - startedAt).toBeLessThan(2_000 + 2_000);
  const failed = service.lines.find((l) => l.event === 'service.start_failed');
  expect(failed).toMatchObject({ error_code: 'DEPENDENCY_UNAVAILABLE' });
  expect(failed?.reason).toMatch(
    new RegExp(
      `^database: not reachable at 127\\.0\\.0\\.1:${port}/orders after \\d+ ms: .*ECONNREFUSED`,
    ),
  );
  expect(service.events()).toContain('db.waiting');
  expect(contractEvents(service)).toEqual([
    'service.start',
    'service.start_failed',
    'telemetry.flush',
    'service.exit',
  ]);
  expect(JSON.stringify(service.lines) + service.stderr()).not.toContain('not-logged');
});

it('when the database comes up during startup, then the service waits for it and becomes ready', async () => {
  const target = new URL(database.url);
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  await proxy.cut();
  const service = spawnService({
    script: DRILL_SERVICE,
    env: {
      DATABASE_URL: urlOf(database.name, `postgres://postgres@127.0.0.1:${proxy.port}/`),
      STARTUP_TIMEOUT_MS: '10000',
    },
  });
  try {
    await service.waitForEvent('db.waiting');
    await delay(500);
    await proxy.restore();
    const ready = await service.waitForEvent('service.ready');
    expect(service.lines.find((l) => l.event === 'db.connected')?.attempts).toBeGreaterThan(1);
    const port = Number(/:(\d+)$/.exec(String(ready.bind))?.[1]);
    expect((await postOrder(port, `startup-${randomUUID()}`, orderBody())).status).toBe(201);
  } finally {
    service.kill('SIGTERM');
    expect(await service.exited()).toBe(0);
    await proxy.close();
  }
});
