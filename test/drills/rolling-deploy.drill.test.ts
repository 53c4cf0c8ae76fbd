// Rolling-deploy drill through a real HAProxy: three replicas of the production entry point
// (`node dist/main.js`) on one PostgreSQL database and one NATS JetStream prefix, behind HAProxy
// running deploy/haproxy/haproxy.cfg unchanged (health check GET /ready every 200 ms, fall 2,
// rise 2, retries 0: every failure reaches the client). Each replica listens on fixed ports, so a
// restarted replica is the same HAProxy server.
//
// A: a graceful roll under a steady POST /v1/orders load (and payments.captured messages): each
//    replica in turn gets SIGTERM, exits, restarts on its ports and is UP in HAProxy before the
//    next. No client sees an error; every 201 is one order, one order.created event on the stream
//    and every payment is applied once.
// B: one replica is SIGKILLed under load, then restarted. Clients see errors for its requests and
//    retry them with the same Idempotency-Key until a 2xx: nothing committed is lost or doubled.
import http from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import type { JsMsg } from 'nats';
import {
  HAPROXY_SERVERS,
  type Haproxy,
  type ServerName,
  type ServerState,
  startHaproxy,
} from '../helpers/haproxy';
import { freePort } from '../helpers/ports';
import { MAIN, type ServiceProcess, startService } from '../helpers/service-process';
import { openTestNats, TEST_NATS_URL, type TestNats } from '../orders/support/nats';
import { type OrderBody, orderBody, postOrder, send } from '../orders/support/orders-client';
import { createTestDatabase, type TestDatabase } from '../orders/support/test-database';

// Measured on the 2-core CI machine: case A ~19 s, case B ~10 s.
jest.setTimeout(60_000);

/** Covers HAProxy's detection (inter 200 ms x fall 2 + a check's latency) with a wide margin. */
const SHUTDOWN_DELAY_MS = 1_500;
/** Concurrent keep-alive client loops sending POST /v1/orders through HAProxy. */
const LOOPS = 8;
/** A client gives up on a key after this many failed attempts (case B; a broken retry path). */
const MAX_ATTEMPTS = 100;
const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const RATE_LIMIT_MAX = 1_000_000;
/** The load connects from this loopback address (HAProxy sees it and forwards it). */
const LOAD_CLIENT_ADDRESS = '127.0.0.2';

// ---------------------------------------------------------------------------------------------
// The cluster: database, NATS prefix, three replicas on fixed ports, HAProxy.

interface Replica {
  readonly name: ServerName;
  readonly port: number;
  readonly opsPort: number;
  /** The running process (the latest one). */
  process: ServiceProcess;
  /** Every process this replica ran, oldest first. */
  readonly processes: ServiceProcess[];
}

interface Cluster {
  readonly database: TestDatabase;
  readonly nats: TestNats;
  readonly haproxy: Haproxy;
  readonly replicas: Replica[];
  /** Starts the replica again on its own ports; resolves once it logged service.ready. */
  restart(replica: Replica): Promise<void>;
  /** SIGTERM to every running replica; resolves with their exit codes. */
  stopReplicas(): Promise<number[]>;
}

// What each test started, stopped in reverse order after it (passed or not).
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) {
    await cleanup().catch((error: unknown) => {
      console.error('rolling-deploy drill cleanup:', error);
    });
  }
});

function replicaEnv(
  database: TestDatabase,
  nats: TestNats,
  port: number,
  opsPort: number,
): Record<string, string> {
  return {
    PORT: String(port),
    OPS_PORT: String(opsPort),
    DATABASE_URL: database.url,
    NATS_URL: TEST_NATS_URL,
    NATS_SUBJECT_PREFIX: nats.prefix,
    // HAProxy adds X-Forwarded-For (option forwardfor): one trusted hop.
    TRUST_PROXY_HOPS: '1',
    // Every client here is 127.0.0.1: a limit that never interferes, still in the request path,
    // its counts shared by the replicas in Redis (ignored by a build without REDIS_URL).
    RATE_LIMIT_MAX: String(RATE_LIMIT_MAX),
    REDIS_URL: TEST_REDIS_URL,
    RATE_LIMIT_REDIS_PREFIX: `ops-service:rl:${nats.prefix}:`,
    SHUTDOWN_DELAY_MS: String(SHUTDOWN_DELAY_MS),
    SHUTDOWN_DRAIN_TIMEOUT_MS: '5000',
    SHUTDOWN_CLOSE_TIMEOUT_MS: '1500',
    SHUTDOWN_FLUSH_TIMEOUT_MS: '1000',
    // > 1500 + 5000 + 1500 + 1000 (the config's cross-key rule).
    SHUTDOWN_HARD_STOP_MS: '10000',
    // A payments.captured message in a killed replica's hands (or pulled and not handled by a
    // stopping one) comes back after this, not after the 30 s default.
    PAYMENTS_ACK_WAIT_MS: '2000',
  };
}

/** Stops a process if it still runs: SIGTERM, SIGKILL after 12 s. Never rejects. */
async function ensureStopped(service: ServiceProcess): Promise<void> {
  if (service.child.exitCode !== null || service.child.signalCode !== null) return;
  service.kill('SIGTERM');
  await service.exited(12_000).catch(() => undefined);
}

async function startCluster(): Promise<Cluster> {
  const database = await createTestDatabase();
  cleanups.push(() => database.drop());
  const nats = await openTestNats();
  cleanups.push(() => nats.close());

  const replicas: Replica[] = [];
  cleanups.push(() => Promise.all(replicas.flatMap((r) => r.processes.map(ensureStopped))));
  const launch = async (
    name: ServerName,
    port: number,
    opsPort: number,
  ): Promise<ServiceProcess> => {
    const { service } = await startService(replicaEnv(database, nats, port, opsPort), {
      script: MAIN,
      readyTimeoutMs: 20_000,
    });
    await service.waitForEvent('broker.connected', 10_000);
    return service;
  };
  const ports = [];
  for (const name of HAPROXY_SERVERS)
    ports.push({ name, port: await freePort(), opsPort: await freePort() });
  // The first one applies the migrations; the other two then start together.
  const started: Promise<ServiceProcess>[] = [];
  for (const { name, port, opsPort } of ports) {
    started.push(launch(name, port, opsPort));
    if (started.length === 1) await started[0];
  }
  const services = await Promise.all(started);
  ports.forEach(({ name, port, opsPort }, index) => {
    const service = services[index] as ServiceProcess;
    replicas.push({ name, port, opsPort, process: service, processes: [service] });
  });

  const haproxy = await startHaproxy({
    port: await freePort(),
    replicas: replicas.map((r) => `127.0.0.1:${r.port}`),
  });
  cleanups.push(() => haproxy.stop());
  for (const replica of replicas) {
    await haproxy.waitForServer(replica.name, (status) => status === 'UP');
  }

  return {
    database,
    nats,
    haproxy,
    replicas,
    async restart(replica) {
      const service = await launch(replica.name, replica.port, replica.opsPort);
      replica.process = service;
      replica.processes.push(service);
    },
    async stopReplicas() {
      for (const replica of replicas) replica.process.kill('SIGTERM');
      return Promise.all(replicas.map((r) => r.process.exited(12_000)));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Load: keep-alive loops posting orders through HAProxy, each with a fresh Idempotency-Key.

interface Attempt {
  readonly key: string;
  readonly attempt: number;
  readonly status?: number;
  readonly error?: string;
  readonly id?: string;
  readonly replayed: boolean;
}

interface Created {
  readonly key: string;
  readonly body: OrderBody;
  readonly id: string;
  readonly totalCents: number;
}

interface Load {
  readonly attempts: Attempt[];
  readonly created: Created[];
  /** Keys a client gave up on (MAX_ATTEMPTS failures in a row). */
  readonly abandoned: string[];
  /** Stops sending new keys; resolves when every key sent has its final answer. */
  stop(): Promise<void>;
  /** Stops sending and retrying at once (cleanup after a failure). */
  abort(): Promise<void>;
}

const is2xx = (status: number | undefined): boolean =>
  status !== undefined && status >= 200 && status < 300;

function startLoad(port: number, label: string, retryUntil2xx: boolean): Load {
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: LOOPS,
    localAddress: LOAD_CLIENT_ADDRESS,
  });
  const attempts: Attempt[] = [];
  const created: Created[] = [];
  const abandoned: string[] = [];
  let sending = true;
  let aborted = false;
  const loop = async (loopNo: number): Promise<void> => {
    for (let n = 0; sending; n += 1) {
      const key = `${label}-${loopNo}-${n}`;
      const body = orderBody(`customer-${label}-${loopNo}`, 1 + (n % 3));
      for (let attempt = 1; ; attempt += 1) {
        const outcome = await postOrder(port, key, body, agent);
        const json = outcome.json as { id?: string; total_cents?: number } | undefined;
        const ok = outcome.error === undefined && is2xx(outcome.status);
        attempts.push({
          key,
          attempt,
          ...(outcome.status === undefined ? {} : { status: outcome.status }),
          ...(outcome.error === undefined ? {} : { error: outcome.error }),
          ...(ok && json?.id !== undefined ? { id: json.id } : {}),
          replayed: outcome.headers?.['idempotent-replayed'] === 'true',
        });
        if (ok && json?.id !== undefined) {
          created.push({ key, body, id: json.id, totalCents: Number(json.total_cents) });
          break;
        }
        if (!retryUntil2xx || aborted) break;
        if (attempt >= MAX_ATTEMPTS) {
          abandoned.push(key);
          break;
        }
        await delay(Math.min(250, 25 * attempt));
      }
    }
  };
  const loops = Array.from({ length: LOOPS }, (_, index) => loop(index));
  const stop = async (): Promise<void> => {
    sending = false;
    await Promise.all(loops);
    agent.destroy();
  };
  const load: Load = {
    attempts,
    created,
    abandoned,
    stop,
    abort() {
      aborted = true;
      return stop();
    },
  };
  cleanups.push(() => load.abort());
  return load;
}

interface Payments {
  readonly published: { orderId: string; paymentId: string }[];
  stop(): Promise<void>;
}

/** Publishes payments.captured for orders already created (201), one every ~25 ms. */
function startPayments(nats: TestNats, load: Load): Payments {
  const published: { orderId: string; paymentId: string }[] = [];
  let running = true;
  const run = (async () => {
    let next = 0;
    while (running) {
      const order = load.created[next];
      if (order === undefined) {
        await delay(25);
        continue;
      }
      next += 1;
      const paymentId = `pay-${order.id}`;
      await nats.publish('payments.captured', {
        order_id: order.id,
        payment_id: paymentId,
        amount_cents: order.totalCents,
      });
      published.push({ orderId: order.id, paymentId });
      await delay(25);
    }
  })();
  const stop = async (): Promise<void> => {
    running = false;
    await run;
  };
  cleanups.push(stop);
  return { published, stop };
}

// ---------------------------------------------------------------------------------------------
// Replacing one replica, as a deploy (SIGTERM) or a crash (SIGKILL) would.

interface ReplicaRow {
  readonly replica: ServerName;
  readonly signal: NodeJS.Signals;
  /** Signal -> HAProxy shows the server DOWN. */
  readonly downMs: number;
  /** Signal -> the process exited, and its exit code. */
  readonly exitMs: number;
  readonly exitCode: number;
  /** Signal -> the old process stopped accepting (shutdown.intake_stopped), when graceful. */
  readonly intakeStoppedMs?: number;
  /** Requests the old process answered after the signal (still routed while being taken out). */
  readonly servedAfterSignal: number;
  /** Restart -> service.ready, and restart -> HAProxy shows the server UP. */
  readonly readyMs: number;
  readonly upMs: number;
}

const isDown = (status: string): boolean => status.startsWith('DOWN');

async function replace(
  cluster: Cluster,
  replica: Replica,
  signal: NodeJS.Signals,
): Promise<ReplicaRow> {
  const old = replica.process;
  const signalAt = Date.now();
  const down = cluster.haproxy
    .waitForServer(replica.name, isDown, 10_000)
    .then(() => Date.now() - signalAt);
  old.kill(signal);
  const exit = old.exited(15_000).then((code) => ({ code, ms: Date.now() - signalAt }));
  const [downMs, exited] = await Promise.all([down, exit]);

  const restartAt = Date.now();
  await cluster.restart(replica);
  const readyMs = Date.now() - restartAt;
  await cluster.haproxy.waitForServer(replica.name, (status) => status === 'UP', 10_000);
  const upMs = Date.now() - restartAt;

  const events = old.events();
  const begin = events.indexOf('shutdown.begin');
  const stopped = old.lines.find((line) => line.event === 'shutdown.intake_stopped');
  return {
    replica: replica.name,
    signal,
    downMs,
    exitMs: exited.ms,
    exitCode: exited.code,
    ...(stopped === undefined ? {} : { intakeStoppedMs: Number(stopped.since_shutdown_ms) }),
    servedAfterSignal:
      begin < 0 ? 0 : events.slice(begin).filter((event) => event === 'http.request').length,
    readyMs,
    upMs,
  };
}

// ---------------------------------------------------------------------------------------------
// What ended up in PostgreSQL and on the streams.

/** Every message on `subject` of a stream, through one ordered consumer (not one request each). */
async function readSubject(
  nats: TestNats,
  stream: 'ORDERS' | 'PAYMENTS',
  subject: string,
): Promise<JsMsg[]> {
  const name = nats.naming.stream(stream);
  const filter = nats.naming.subject(subject);
  const info = await nats.jsm.streams.info(name, { subjects_filter: filter });
  const expected = info.state.subjects?.[filter] ?? 0;
  if (expected === 0) return [];
  const consumer = await nats.nc.jetstream().consumers.get(name, { filterSubjects: filter });
  const messages = await consumer.consume({ max_messages: 1_000 });
  const found: JsMsg[] = [];
  const timer = setTimeout(() => messages.stop(), 15_000);
  for await (const message of messages) {
    found.push(message);
    if (found.length >= expected) break;
  }
  clearTimeout(timer);
  messages.stop();
  return found;
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<number> {
  const startedAt = Date.now();
  while (!(await check())) {
    if (Date.now() - startedAt > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await delay(100);
  }
  return Date.now() - startedAt;
}

interface Settled {
  readonly orders: { id: string; idempotency_key: string; status: string }[];
  /** order id -> times its order.created is on the ORDERS stream. */
  readonly events: Map<string, number>;
  readonly eventMessages: number;
  readonly payments: { payment_id: string; order_id: string }[];
  readonly deadLetters: number;
  readonly outboxRows: number;
  readonly drainMs: number;
}

/** Waits for the outbox to be published and the payments to apply, then reads everything. */
async function settle(cluster: Cluster, paymentsPublished: number): Promise<Settled> {
  const { database, nats } = cluster;
  const startedAt = Date.now();
  await waitFor(
    'the outbox to drain',
    async () => {
      const [row] = await database.query<{ pending: string }>(
        'SELECT count(*) AS pending FROM outbox WHERE published_at IS NULL',
      );
      return Number(row?.pending) === 0;
    },
    15_000,
  );
  await waitFor(
    'the payments to apply',
    async () => {
      const [row] = await database.query<{ n: string }>('SELECT count(*) AS n FROM payments');
      return Number(row?.n) >= paymentsPublished;
    },
    15_000,
  );
  const drainMs = Date.now() - startedAt;
  const orders = await database.query<{ id: string; idempotency_key: string; status: string }>(
    'SELECT id, idempotency_key, status FROM orders',
  );
  const payments = await database.query<{ payment_id: string; order_id: string }>(
    'SELECT payment_id, order_id FROM payments',
  );
  const [outbox] = await database.query<{ n: string }>('SELECT count(*) AS n FROM outbox');
  const messages = await readSubject(nats, 'ORDERS', 'orders.created');
  const events = new Map<string, number>();
  for (const message of messages) {
    const id = message.json<{ order: { id: string } }>().order.id;
    events.set(id, (events.get(id) ?? 0) + 1);
  }
  const deadLetters = (await readSubject(nats, 'PAYMENTS', 'payments.dlq')).length;
  return {
    orders,
    events,
    eventMessages: messages.length,
    payments,
    deadLetters,
    outboxRows: Number(outbox?.n),
    drainMs,
  };
}

/** payment.applied / payment.duplicate lines over every process of every replica. */
function paymentLog(cluster: Cluster): { applied: number; duplicates: number } {
  const lines = cluster.replicas.flatMap((r) => r.processes.flatMap((p) => p.lines));
  return {
    applied: lines.filter((l) => l.event === 'payment.applied').length,
    duplicates: lines.filter((l) => l.event === 'payment.duplicate').length,
  };
}

function printTable(title: string, summary: Record<string, unknown>, rows: ReplicaRow[]): void {
  const header = [
    'replica',
    'signal',
    'DOWN in HAProxy (ms)',
    'intake stopped (ms)',
    'served after signal',
    'exit (ms)',
    'exit code',
    'restart -> ready (ms)',
    'restart -> UP (ms)',
  ];
  const body = rows.map((r) => [
    r.replica,
    r.signal,
    r.downMs,
    r.intakeStoppedMs ?? '-',
    r.servedAfterSignal,
    r.exitMs,
    r.exitCode,
    r.readyMs,
    r.upMs,
  ]);
  const lines = [header, ...body].map((cells) => `| ${cells.map(String).join(' | ')} |`);
  lines.splice(1, 0, `|${header.map(() => ' --- |').join('')}`);
  const figures = Object.entries(summary)
    .map(([key, value]) => `${key}=${String(value)}`)
    .join(', ');
  console.log(`${title}\n${figures}\n${lines.join('\n')}`);
}

/**
 * HAProxy's own log of failed requests (option dontlog-normal logs only those), counted by
 * status and termination state, e.g. `503 SC--` (connection refused by the server).
 */
function haproxyErrors(haproxy: Haproxy): Record<string, number> {
  const found = haproxy
    .output()
    .split('\n')
    .map((line) => / orders_api \S+ \S+ (\d+) \d+ \S+ \S+ (\S{4}) /.exec(line))
    .filter((match): match is RegExpExecArray => match !== null);
  return countBy(found, (match) => `${match[1]} ${match[2]}`);
}

function countBy<T>(items: readonly T[], keyOf: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[keyOf(item)] = (counts[keyOf(item)] ?? 0) + 1;
  return counts;
}

const describeFailure = (a: Attempt): string => a.error ?? `HTTP ${String(a.status)}`;

/** What is left of the rate limit budget of a client connecting from `localAddress`. */
async function budgetLeft(port: number, localAddress: string, path: string): Promise<number> {
  const agent = new http.Agent({ localAddress });
  const outcome = await send(port, { method: 'GET', path, agent });
  agent.destroy();
  return Number(/;r=(\d+);/.exec(String(outcome.headers?.ratelimit))?.[1]);
}

// ---------------------------------------------------------------------------------------------

it('when each replica in turn gets SIGTERM, exits and restarts behind HAProxy under a steady order load, then no client sees an error, every replica exits 0, and every order, event and payment exists exactly once', async () => {
  const cluster = await startCluster();
  const load = startLoad(cluster.haproxy.port, 'roll', false);
  const payments = startPayments(cluster.nats, load);
  const rows: ReplicaRow[] = [];
  try {
    await delay(1_000);
    for (const replica of cluster.replicas) {
      rows.push(await replace(cluster, replica, 'SIGTERM'));
    }
    await delay(500);
  } finally {
    await payments.stop();
    await load.stop();
  }
  const settled = await settle(cluster, payments.published.length);
  const log = paymentLog(cluster);
  const servers = await cluster.haproxy.servers();
  // option forwardfor + TRUST_PROXY_HOPS=1: the replicas count each client by the address HAProxy
  // saw, not by HAProxy's own, so a client from another address has its whole budget.
  const anOrder = `/v1/orders/${String(load.created[0]?.id)}`;
  const budgets = {
    load: await budgetLeft(cluster.haproxy.port, LOAD_CLIENT_ADDRESS, anOrder),
    other: await budgetLeft(cluster.haproxy.port, '127.0.0.3', anOrder),
  };
  const finalCodes = await cluster.stopReplicas();

  const failures = load.attempts.filter((a) => a.error !== undefined || !is2xx(a.status));
  printTable(
    'rolling deploy, graceful (SIGTERM each replica in turn)',
    {
      requests: load.attempts.length,
      '201s': load.attempts.filter((a) => a.status === 201).length,
      failures: failures.length,
      failure_kinds: JSON.stringify(countBy(failures, describeFailure)),
      orders_in_db: settled.orders.length,
      events_on_stream: settled.eventMessages,
      payments_published: payments.published.length,
      payments_applied: settled.payments.length,
      payment_redeliveries_seen_as_duplicate: log.duplicates,
      outbox_and_payments_settled_ms: settled.drainMs,
      rate_limit_left: `${LOAD_CLIENT_ADDRESS}=${budgets.load} 127.0.0.3=${budgets.other}`,
      haproxy_picks: servers.map((s: ServerState) => `${s.name}:${s.picked}`).join(' '),
      haproxy_logged_errors: JSON.stringify(haproxyErrors(cluster.haproxy)),
      final_stop_exit_codes: finalCodes.join(' '),
    },
    rows,
  );

  // No client-visible failure, through the whole roll (HAProxy's log says why, if any).
  if (failures.length > 0) console.log(`haproxy log:\n${cluster.haproxy.output().slice(-5000)}`);
  expect(failures.map((a) => `${a.key}: ${describeFailure(a)}`)).toEqual([]);
  expect(haproxyErrors(cluster.haproxy)).toEqual({});
  expect(load.attempts.every((a) => a.status === 201 && !a.replayed)).toBe(true);
  expect(load.created.length).toBeGreaterThan(100);
  // Every replica was taken out by HAProxy before it stopped accepting, and exited 0.
  for (const row of rows) {
    expect(row.exitCode).toBe(0);
    expect(row.downMs).toBeLessThan(SHUTDOWN_DELAY_MS);
    expect(row.intakeStoppedMs).toBeGreaterThanOrEqual(SHUTDOWN_DELAY_MS);
  }
  expect(finalCodes).toEqual([0, 0, 0]);
  expect(servers.map((s) => s.connectionErrors + s.responseErrors)).toEqual([0, 0, 0]);
  expect(budgets.other).toBe(RATE_LIMIT_MAX - 1);
  expect(budgets.load).toBeLessThan(RATE_LIMIT_MAX - 1);

  // Every 201 is exactly one order row, and there is no other row.
  const createdIds = load.created.map((c) => c.id);
  expect(new Set(createdIds).size).toBe(createdIds.length);
  expect(settled.orders.map((o) => o.id).sort()).toEqual([...createdIds].sort());
  const keyOf = new Map(settled.orders.map((o) => [o.id, o.idempotency_key]));
  expect(load.created.every((c) => keyOf.get(c.id) === c.key)).toBe(true);
  // Every order's order.created is on the stream exactly once, and nothing else is.
  expect(settled.outboxRows).toBe(createdIds.length);
  expect(settled.eventMessages).toBe(createdIds.length);
  expect(createdIds.filter((id) => settled.events.get(id) !== 1)).toEqual([]);
  // Every payment is applied exactly once.
  expect(settled.payments.map((p) => p.payment_id).sort()).toEqual(
    payments.published.map((p) => p.paymentId).sort(),
  );
  expect(log.applied).toBe(payments.published.length);
  expect(settled.deadLetters).toBe(0);
  const paid = new Set(payments.published.map((p) => p.orderId));
  expect(settled.orders.filter((o) => paid.has(o.id) !== (o.status === 'paid'))).toEqual([]);
});

it('when a replica is SIGKILLed under load and restarted, then clients that retry with the same Idempotency-Key all end with one order each, replays return the same order id, and every event and payment exists exactly once', async () => {
  const cluster = await startCluster();
  const load = startLoad(cluster.haproxy.port, 'kill', true);
  const payments = startPayments(cluster.nats, load);
  const rows: ReplicaRow[] = [];
  const victim = cluster.replicas[1] as Replica;
  try {
    await delay(1_500);
    rows.push(await replace(cluster, victim, 'SIGKILL'));
    await delay(1_000);
  } finally {
    await payments.stop();
    await load.stop();
  }
  const settled = await settle(cluster, payments.published.length);
  const log = paymentLog(cluster);

  // Replays: every key that saw a failure, and a sample of the others, sent again as is.
  const failedKeys = new Set(
    load.attempts.filter((a) => a.error !== undefined || !is2xx(a.status)).map((a) => a.key),
  );
  const sample = load.created.filter((c, index) => failedKeys.has(c.key) || index % 50 === 0);
  const agent = new http.Agent({ keepAlive: true, maxSockets: LOOPS });
  const replays = await Promise.all(
    sample.map(async (c) => ({
      created: c,
      outcome: await postOrder(cluster.haproxy.port, c.key, c.body, agent),
    })),
  );
  agent.destroy();
  const finalCodes = await cluster.stopReplicas();

  const failures = load.attempts.filter((a) => a.error !== undefined || !is2xx(a.status));
  const keys = new Set(load.attempts.map((a) => a.key));
  printTable(
    'replica SIGKILLed under load, clients retry with the same Idempotency-Key',
    {
      requests: load.attempts.length,
      keys: keys.size,
      '201s': load.attempts.filter((a) => a.status === 201).length,
      failures: failures.length,
      failure_kinds: JSON.stringify(countBy(failures, describeFailure)),
      keys_retried: failedKeys.size,
      replayed_on_retry: load.attempts.filter((a) => a.attempt > 1 && a.replayed).length,
      abandoned: load.abandoned.length,
      orders_in_db: settled.orders.length,
      events_on_stream: settled.eventMessages,
      payments_published: payments.published.length,
      payments_applied: settled.payments.length,
      payment_redeliveries_seen_as_duplicate: log.duplicates,
      outbox_and_payments_settled_ms: settled.drainMs,
      replays_checked: replays.length,
      haproxy_logged_errors: JSON.stringify(haproxyErrors(cluster.haproxy)),
      final_stop_exit_codes: finalCodes.join(' '),
    },
    rows,
  );

  expect(rows[0]?.exitCode).toBe(137);
  expect(load.abandoned).toEqual([]);
  // Each key ended with one 2xx, and with exactly one order row: the one its answer named.
  expect(load.created.length).toBe(keys.size);
  const byKey = countBy(settled.orders, (o) => o.idempotency_key);
  expect(Object.entries(byKey).filter(([, n]) => n !== 1)).toEqual([]);
  expect(Object.keys(byKey).sort()).toEqual([...keys].sort());
  const idOfKey = new Map(settled.orders.map((o) => [o.idempotency_key, o.id]));
  expect(load.created.filter((c) => idOfKey.get(c.key) !== c.id)).toEqual([]);
  // Replays answer the stored response: same status, same order id.
  for (const { created, outcome } of replays) {
    expect({ key: created.key, status: outcome.status, id: outcome.json?.id }).toEqual({
      key: created.key,
      status: 201,
      id: created.id,
    });
    expect(outcome.headers?.['idempotent-replayed']).toBe('true');
  }
  // Events exactly once per order; payments applied exactly once.
  expect(settled.outboxRows).toBe(settled.orders.length);
  expect(settled.eventMessages).toBe(settled.orders.length);
  expect(settled.orders.filter((o) => settled.events.get(o.id) !== 1)).toEqual([]);
  expect(settled.payments.map((p) => p.payment_id).sort()).toEqual(
    payments.published.map((p) => p.paymentId).sort(),
  );
  expect(settled.deadLetters).toBe(0);
  const paid = new Set(payments.published.map((p) => p.orderId));
  expect(settled.orders.filter((o) => paid.has(o.id) !== (o.status === 'paid'))).toEqual([]);
  expect(finalCodes).toEqual([0, 0, 0]);
});
