// The orders API on the embedded PGlite (no DATABASE_URL): the whole service as a child process
// with its data directory in a temp folder. PGlite takes seconds and hundreds of MB to start, so
// this file starts it twice at most: once fresh, once reopening the same directory.
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { DRILL_SERVICE, spawnService, startService } from '../helpers/service-process';
import { tempDir, type TempDir } from '../helpers/temp-dir';
import { getPath, orderBody, postOrder } from './support/orders-client';

// PGlite compiles its WebAssembly and creates a data directory on a cold start: seconds, more on
// a busy machine.
const PGLITE_READY_MS = 45_000;
jest.setTimeout(120_000);

let dir: TempDir;
beforeAll(() => {
  dir = tempDir('ops-pglite-');
});
afterAll(() => {
  dir.remove();
});

it('when no DATABASE_URL is set, then the API runs on PGlite: create, replay, reuse 422, get, 404, and the data survives a restart', async () => {
  const dataDir = `${dir.path}/pglite`;
  // An empty DATABASE_URL overrides config/test.json's: the embedded database.
  const env = { DATABASE_URL: '', PGLITE_DATA_DIR: dataDir, STARTUP_TIMEOUT_MS: '40000' };
  const { service, port } = await startService(
    { RATE_LIMIT_MAX: '0', ...env },
    { readyTimeoutMs: PGLITE_READY_MS },
  ).catch((error: unknown) => {
    throw error;
  });
  let createdText: string | undefined;
  let location: string | undefined;
  try {
    expect(service.lines.find((l) => l.event === 'db.connected')).toMatchObject({
      driver: 'pglite',
      target: dataDir,
    });
    expect(service.lines.find((l) => l.event === 'db.migrations_applied')).toMatchObject({
      count: 7,
    });
    // No NATS_URL (the default): events stay in the outbox, and the log says so once.
    expect(service.lines.filter((l) => l.event === 'outbox.relay_disabled')).toEqual([
      expect.objectContaining({
        level: 'info',
        reason: 'NATS_URL is empty: events stay in the outbox (ops_outbox_backlog)',
      }),
    ]);

    // A second process on the same data directory is refused at startup, not allowed to corrupt it.
    const intruder = spawnService({ script: DRILL_SERVICE, env });
    expect(await intruder.exited()).toBe(1);
    expect(intruder.lines.find((l) => l.event === 'service.start_failed')?.reason).toMatch(
      /in use by process \d+/,
    );

    const key = `pglite-${randomUUID()}`;
    const body = orderBody('customer-pglite', 2);
    const created = await postOrder(port, key, body);
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({
      customer_id: 'customer-pglite',
      total_cents: 1999 * 3,
      status: 'pending',
    });
    expect(typeof created.json?.total_cents).toBe('number');
    createdText = created.text;
    location = created.headers?.location;

    const replay = await postOrder(port, key, body);
    expect(replay.status).toBe(201);
    expect(replay.headers?.['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(created.text);
    expect(replay.headers?.location).toBe(location);

    const reused = await postOrder(port, key, orderBody('someone-else'));
    expect(reused.status).toBe(422);
    expect(reused.json?.code).toBe('IDEMPOTENCY_KEY_REUSED');

    const read = await getPath(port, location as string);
    expect(read.status).toBe(200);
    expect(read.text).toBe(created.text);

    const missing = await getPath(port, `/v1/orders/${randomUUID()}`);
    expect(missing.json?.code).toBe('ORDER_NOT_FOUND');
    const malformed = await getPath(port, '/v1/orders/12');
    expect(malformed.status).toBe(404);

    const ready = await getPath(port, '/ready');
    expect(ready.status).toBe(200);
  } finally {
    service.kill('SIGTERM');
    expect(await service.exited(20_000)).toBe(0);
  }
  expect(existsSync(`${dataDir}.lock`)).toBe(false);

  // Reopened: the order is still there, and the migrations are not applied again.
  const again = await startService(
    { RATE_LIMIT_MAX: '0', ...env },
    { readyTimeoutMs: PGLITE_READY_MS },
  );
  try {
    expect(again.service.lines.find((l) => l.event === 'db.migrations_applied')).toMatchObject({
      count: 0,
    });
    const read = await getPath(again.port, location as string);
    // Status and body together: a failure shows the problem body.
    expect({ status: read.status, text: read.text }).toEqual({ status: 200, text: createdText });
  } finally {
    again.service.kill('SIGTERM');
    expect(await again.service.exited(20_000)).toBe(0);
  }
});
