// What several drills share: the metrics table's rows, reading the run's outcomes and lines,
// retrying cut-off orders with their keys, and the checks every drill makes.
import { contractEvents } from '../kit/contract';
import { send } from '../kit/orders-client';
import { type LoadOutcome, outcomeOf, summarize } from '../load';
import type { DrillRun, MetricRow } from '../run';

const row = (name: string, labels?: Record<string, string>): MetricRow => ({
  label:
    labels === undefined
      ? name
      : `${name}{${Object.entries(labels)
          .map(([k, v]) => `${k}="${v}"`)
          .join(',')}}`,
  name,
  ...(labels === undefined ? {} : { labels }),
});

/** The series every drill's metrics table shows, then the error codes it cares about. */
export function metricRows(errorCodes: readonly string[]): MetricRow[] {
  return [
    row('ops_lifecycle_state', { state: 'ready' }),
    row('ops_lifecycle_state', { state: 'draining' }),
    row('ops_dependency_up', { dependency: 'database' }),
    row('ops_dependency_up', { dependency: 'broker' }),
    row('ops_circuit_breaker_state', { dependency: 'database', state: 'open' }),
    row('http_server_active_requests'),
    row('http_server_request_duration_count', { http_response_status_class: '2xx' }),
    row('http_server_request_duration_count', { http_response_status_class: '5xx' }),
    ...errorCodes.map((code) => row('ops_errors_total', { error_code: code })),
    row('ops_outbox_backlog'),
    row('ops_broker_messages_total', { flow: 'outbox', outcome: 'published' }),
    row('nodejs_eventloop_delay_p99'),
  ];
}

/** Outcomes of the requests sent during phase `key`. */
export function outcomesIn(run: DrillRun, key: string): LoadOutcome[] {
  const index = run.phases.findIndex((p) => p.key === key);
  const phase = run.phases[index];
  if (phase === undefined) return [];
  const end = run.phases[index + 1]?.startedAt ?? Number.POSITIVE_INFINITY;
  return (run.load?.outcomes ?? []).filter((o) => o.sentAt >= phase.startedAt && o.sentAt < end);
}

export const posts = (outcomes: readonly LoadOutcome[]): LoadOutcome[] =>
  outcomes.filter((o) => o.op === 'POST /v1/orders');

/** Keys of the orders that were answered 201. */
export const createdKeys = (run: DrillRun): string[] =>
  posts(run.load?.outcomes ?? [])
    .filter((o) => o.status === 201 && o.key !== undefined)
    .map((o) => o.key as string);

/** Whether Prometheus saw `alert` active at some point (true when no Prometheus ran). */
export function alertSeen(run: DrillRun, alert: string): boolean {
  if (run.alerts === undefined) return true;
  return run.alerts.polls.some((poll) => poll.states.has(alert));
}

/** The first line of `event` at or after `since`, of any process. */
export function lineAfter(run: DrillRun, event: string, since: number) {
  return run.lines().find(({ line }) => line.event === event && Date.parse(line.ts) >= since)?.line;
}

/**
 * Sends every key again, one at a time, with the body it was first sent with: what a client with
 * a retry policy does once the service answers again.
 */
export async function retryKeys(run: DrillRun, keys: readonly string[]): Promise<LoadOutcome[]> {
  const retried: LoadOutcome[] = [];
  for (const key of keys) {
    const sentAt = Date.now();
    const body = run.load?.bodyOf(key);
    const headers = { ...run.bearer.headers };
    const res = await send(run.port, { method: 'POST', path: '/v1/orders', key, body, headers });
    retried.push(outcomeOf('POST /v1/orders', sentAt, res));
  }
  return retried;
}

/**
 * Sends again every order of `failed` with its key, as a step of the drill, and keeps the
 * outcomes under `retried` for checkRetries.
 */
export async function retryStep(run: DrillRun, failed: readonly LoadOutcome[]): Promise<void> {
  const keys = failed.filter((o) => o.key !== undefined).map((o) => o.key as string);
  run.step(`the ${keys.length} orders that got no 201 are sent again with their Idempotency-Keys`);
  run.keep('retried', await retryKeys(run, keys));
}

/**
 * Checks that the logs say when a dependency went (`down`, from `from` on) and came back (`up`,
 * after `restore`); records both delays as `<fact>DownLoggedAfterMs` and `<fact>UpLoggedAfterMs`.
 */
export function checkLoggedDownAndUp(
  run: DrillRun,
  what: string,
  events: { down: string; up: string; fact: string },
  from: number,
  restore: number,
): void {
  const down = lineAfter(run, events.down, from);
  const up = lineAfter(run, events.up, restore);
  run.fact(`${events.fact}DownLoggedAfterMs`, between(from, ts(down)));
  run.fact(`${events.fact}UpLoggedAfterMs`, between(restore, ts(up)));
  const at = (ms: number | undefined): string =>
    ms === undefined ? 'missing' : `${(ms / 1000).toFixed(2)} s`;
  run.check(
    `the logs say when the ${what} went and came back`,
    down !== undefined && up !== undefined,
    `${events.down} ${at(between(from, ts(down)))} after the fault, ${events.up} ${at(between(restore, ts(up)))} after the restore`,
  );
}

/** Checks the retries all got 201 and every key made exactly one order; records the counts. */
export async function checkRetries(run: DrillRun, retried: readonly LoadOutcome[]): Promise<void> {
  const keys = retried.map((o) => o.key as string);
  const replayed = retried.filter((o) => o.status === 201 && o.replayed === true).length;
  const created = retried.filter((o) => o.status === 201 && o.replayed !== true).length;
  const other = retried.length - replayed - created;
  run.fact('retriedKeys', retried.length);
  run.fact('retriesCreated', created);
  run.fact('retriesReplayed', replayed);
  run.fact('retriesNot201', other);
  run.check(
    'every order cut off by the fault succeeds when retried with its Idempotency-Key',
    other === 0,
    `${retried.length} retried: ${created} created now, ${replayed} replayed (had committed)${
      other === 0
        ? ''
        : `, ${other} other: ${[...summarize(retried).details.entries()].map(([w, n]) => `${w} ×${n}`).join(', ')}`
    }`,
  );
  const byKey = await run.ordersByKey(keys);
  const wrong = keys.filter((key) => byKey.get(key) !== 1);
  run.check(
    'one order per retried key (no duplicate, none lost)',
    wrong.length === 0,
    wrong.length === 0
      ? `${keys.length} keys, ${keys.length} orders`
      : `${wrong.length} keys with ${wrong.map((k) => byKey.get(k) ?? 0).join('/')} orders`,
  );
}

/** Checks that every order answered 201 during the run is in the database, once. */
export async function checkCreatedCommitted(run: DrillRun): Promise<void> {
  const keys = createdKeys(run);
  const byKey = await run.ordersByKey(keys);
  const missing = keys.filter((key) => byKey.get(key) !== 1);
  run.fact('orders201', keys.length);
  run.check(
    'every 201 is a committed order, once',
    missing.length === 0,
    missing.length === 0
      ? `${keys.length} orders answered 201, all in the database`
      : `${missing.length} of ${keys.length} missing or duplicated`,
  );
}

export function checkExit(run: DrillRun, proc: number, expected: number, why: string): void {
  const code = run.exitCodes.get(proc);
  run.fact(proc === 0 ? 'exitCode' : `exitCode${proc + 1}`, code);
  run.check(
    `process #${proc + 1} exits ${expected} (${why})`,
    code === expected,
    `exit code ${String(code)}${
      run.line('service.exit', proc) === undefined
        ? ', no service.exit line'
        : `, service.exit ${JSON.stringify({ code: run.line('service.exit', proc)?.code, cause: run.line('service.exit', proc)?.cause })}`
    }`,
  );
}

export function checkNoCrash(run: DrillRun): void {
  const crashes = run.lines().filter(({ line }) => line.event === 'process.crash').length;
  const unhandled = run.lines().filter(({ line }) => line.event === 'http.unhandled_error').length;
  run.check(
    'no crash and no unhandled error',
    crashes === 0 && unhandled === 0,
    `${crashes} process.crash, ${unhandled} http.unhandled_error`,
  );
}

export function checkHealthAlways200(run: DrillRun, until = Number.POSITIVE_INFINITY): void {
  const samples = (run.probes?.samples ?? []).filter((s) => s.at < until);
  const other = samples.filter((s) => s.health !== '200');
  run.check(
    '/health answered 200 throughout (liveness never restarts the pod for this)',
    other.length === 0,
    other.length === 0
      ? `${samples.length} samples, all 200`
      : `${other.length} of ${samples.length} samples were ${[...new Set(other.map((s) => s.health))].join(', ')}`,
  );
}

/** Events of the shutdown contract (CONTRACT.md section 3) process #proc+1 wrote, in order. */
export function contractOf(run: DrillRun, proc: number): string[] {
  const service = run.processes[proc];
  return service === undefined ? [] : contractEvents(service);
}

/** ms between two instants, or undefined when either is missing. */
export function between(from: number | undefined, to: number | undefined): number | undefined {
  return from === undefined || to === undefined ? undefined : to - from;
}

export function ts(line: { ts: string } | undefined): number | undefined {
  return line === undefined ? undefined : Date.parse(line.ts);
}

/**
 * Holds orders in flight, as slow queries would: a session of the drill takes
 * `LOCK TABLE outbox IN EXCLUSIVE MODE` and the orders wait inside their transaction. Waits until
 * /lifecycle counts `atLeast` in flight (at most 3 s). Returns what releases the lock.
 */
export async function holdOrdersInFlight(
  run: DrillRun,
  atLeast: number,
): Promise<() => Promise<void>> {
  run.step(
    'a session of the drill takes LOCK TABLE outbox IN EXCLUSIVE MODE: new orders wait inside their transaction',
  );
  const release = await run.lockTable('outbox');
  await run.until(async () => Number((await run.lifecycleDoc())?.in_flight ?? 0) >= atLeast, 3_000);
  return release;
}

/**
 * Checks that the orders cut off by a shutdown left nothing behind: no order, no held
 * Idempotency-Key (PostgreSQL rolled their transactions back with their connections).
 */
export async function checkCutOffRolledBack(run: DrillRun, keys: readonly string[]): Promise<void> {
  const orders = await run.ordersByKey(keys);
  const held = await run.database.query<{ n: string }>(
    'SELECT count(*) AS n FROM idempotency_keys WHERE key = ANY($1::text[])',
    [keys],
  );
  const committed = [...orders.values()].reduce((sum, n) => sum + n, 0);
  run.fact('cutOffOrdersCommitted', committed);
  run.check(
    'the orders cut off by the shutdown were rolled back with their keys (a retry creates them once)',
    committed === 0 && Number(held[0]?.n) === 0,
    `${keys.length} cut off: ${committed} orders and ${String(held[0]?.n)} Idempotency-Keys in the database`,
  );
}
