// Crash safety of the idempotency protocol: the real service on PostgreSQL is killed with
// SIGKILL while orders are in flight, restarted, and every request is retried with its key.
// Exactly one order per key; every 201 ever answered is in the database; no key stays held: the
// killed process's transactions roll back with its connections, so each retry is served at once.
import http from 'node:http';
import { delay, orderBody, type Outcome, postOrder } from './support/orders-client';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startService } from '../helpers/service-process';

jest.setTimeout(60_000);

const CONNECTIONS = 8;
// From the kill to the last key answered, including the restart (a couple of seconds here).
const RESOLVE_BUDGET_MS = 10_000;

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

const bodyFor = (key: string) => orderBody(`customer-${key}`, 2);

it('when the service is killed -9 mid-request and restarted, then retries with the same keys create exactly one order per key and no key stays held', async () => {
  const env = { DATABASE_URL: database.url };
  const first = await startService({ RATE_LIMIT_MAX: '0', ...env });
  const answers = new Map<string, Outcome[]>();
  const record = (outcome: Outcome): void => {
    const key = outcome.key as string;
    answers.set(key, [...(answers.get(key) ?? []), outcome]);
  };

  // Keep-alive connections sending orders back to back, each with a fresh key, until the kill.
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  let sending = true;
  let created = 0;
  const loops = Array.from({ length: CONNECTIONS }, async (_, loop) => {
    for (let n = 0; sending; n += 1) {
      const key = `crash-${loop}-${n}`;
      const outcome = await postOrder(first.port, key, bodyFor(key), agent);
      record(outcome);
      if (outcome.status === 201) created += 1;
    }
  });
  while (created < 40) await delay(5);
  first.service.kill('SIGKILL');
  const killedAt = Date.now();
  sending = false;
  await Promise.all(loops);
  agent.destroy();
  expect(await first.service.exited()).toBe(128 + 9);

  const keys = [...answers.keys()];
  const interrupted = keys.filter((key) => answers.get(key)?.some((o) => o.error !== undefined));
  const firstRound201 = keys.filter((key) => answers.get(key)?.some((o) => o.status === 201));

  // Restart and retry every key (a client that did not see an answer retries; one that did may
  // retry too) until each has a final answer.
  const second = await startService({ RATE_LIMIT_MAX: '0', ...env });
  let lastResolvedAt = Date.now();
  let conflicts = 0;
  try {
    await Promise.all(
      keys.map(async (key) => {
        for (;;) {
          const outcome = await postOrder(second.port, key, bodyFor(key));
          record(outcome);
          if (outcome.status === 201) break;
          expect(outcome.json?.code).toBe('IDEMPOTENCY_KEY_IN_PROGRESS');
          conflicts += 1;
          if (Date.now() - killedAt > RESOLVE_BUDGET_MS) throw new Error(`${key} still held`);
          await delay(100);
        }
        lastResolvedAt = Math.max(lastResolvedAt, Date.now());
      }),
    );
  } finally {
    second.service.kill('SIGTERM');
    await second.service.exited();
  }

  const rows = await database.query<{ id: string; idempotency_key: string }>(
    'SELECT id, idempotency_key FROM orders',
  );
  const byKey = new Map<string, string[]>();
  for (const row of rows)
    byKey.set(row.idempotency_key, [...(byKey.get(row.idempotency_key) ?? []), row.id]);

  // Exactly one order per key, and no order without a key that was sent.
  expect(rows).toHaveLength(keys.length);
  for (const key of keys) expect(byKey.get(key)).toHaveLength(1);
  // Every 201 ever answered (before the crash and after) names the one order of its key.
  for (const key of keys) {
    const ids = new Set(
      (answers.get(key) ?? [])
        .filter((o) => o.status === 201)
        .map((o) => (o.json as { id: string }).id),
    );
    expect([...ids]).toEqual(byKey.get(key));
  }
  // Every order has its one outbox event and its one key, and every key its order.
  const [events] = await database.query<{ count: string }>('SELECT count(*) FROM outbox');
  expect(Number(events?.count)).toBe(keys.length);
  const [stored] = await database.query<{ count: string }>(
    'SELECT count(*) FROM idempotency_keys k JOIN orders o ON o.id = k.order_id',
  );
  expect(Number(stored?.count)).toBe(keys.length);
  // A kill under load interrupts requests; their keys were free as soon as the service was back.
  expect(interrupted.length).toBeGreaterThan(0);
  expect(lastResolvedAt - killedAt).toBeLessThan(RESOLVE_BUDGET_MS);

  process.stdout.write(
    `crash drill: ${keys.length} keys sent, ${firstRound201.length} answered 201 before the kill, ` +
      `${interrupted.length} interrupted, ${conflicts} x 409 after the restart, ` +
      `${rows.length} orders in the database, all keys resolved ${lastResolvedAt - killedAt} ms after the kill\n`,
  );
});
