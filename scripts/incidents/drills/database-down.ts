// database-down: PostgreSQL refuses connections for a few seconds, then comes back.
import { type LoadOutcome, summarize } from '../load';
import { type Drill, seconds } from '../page';
import type { DrillRun } from '../run';
import {
  alertSeen,
  between,
  checkCreatedCommitted,
  checkExit,
  checkHealthAlways200,
  checkNoCrash,
  checkLoggedDownAndUp,
  checkRetries,
  metricRows,
  outcomesIn,
  posts,
  retryStep,
} from './common';

const OUTAGE_MIN_MS = 5_000;
const OUTAGE_MAX_MS = 10_000;

/**
 * Holds an outage that began at `from` for at least `minMs`, and until /ready said 503 and
 * (with Prometheus) OpsServiceDatabaseDown is pending, at most OUTAGE_MAX_MS; then reads
 * /lifecycle. Shared with database-slow.
 */
export async function holdOutage(
  run: DrillRun,
  from: number,
  label: string,
  minMs = OUTAGE_MIN_MS,
): Promise<void> {
  await run.until(
    () =>
      Date.now() - from >= minMs &&
      run.readyAnswer('503', from) !== undefined &&
      alertSeen(run, 'OpsServiceDatabaseDown'),
    OUTAGE_MAX_MS,
  );
  await run.lifecycle(label);
}

/** Brings the database back, waits for /ready 200, then retries what the outage cut off. */
export async function recovery(run: DrillRun, restore: () => Promise<void>): Promise<void> {
  await run.nextPhase('after', 'database back');
  const at = run.step('the proxy forwards again (the database is back)', 'restore');
  await restore();
  await run.until(() => run.readyAnswer('200', at) !== undefined, 15_000);
  await run.hold(1_000);
  // Every order that did not get its 201 (sent during the outage, or just before or after it).
  await retryStep(
    run,
    posts(run.load?.outcomes ?? []).filter((o) => o.status !== 201),
  );
  await run.hold(1_000);
}

/** Facts and checks of a database outage, from `from` (the outage began) to `restore`. */
export async function concludeOutage(run: DrillRun, from: number, phase: string): Promise<void> {
  const restore = run.mark('restore');
  const degradedAt = run.readyAnswer('503', from);
  const degraded = run.probes?.samples.find((s) => s.at === degradedAt);
  const recoveredAt = run.readyAnswer('200', restore);
  run.fact('readyDegradedAfterMs', between(from, degradedAt));
  run.fact('readyBodyDegraded', degraded?.readyBody);
  run.fact('readyRecoveredAfterMs', between(restore, recoveredAt));
  const body = JSON.parse(degraded?.readyBody ?? '{}') as {
    status?: string;
    reasons?: Record<string, string>;
  };
  run.check(
    '/ready turns 503 degraded, naming the database',
    body.status === 'degraded' && body.reasons?.database !== undefined,
    degradedAt === undefined
      ? 'no 503 seen'
      : `${seconds(degradedAt - from)} s after the fault: ${degraded?.readyBody ?? ''}`,
  );
  const doc = run.lifecycles.find((c) => c.at >= from)?.doc as
    | { state?: string; dependencies?: { database?: { status?: string; reason?: string } } }
    | undefined;
  run.fact('lifecycleState', doc?.state);
  run.fact('lifecycleDatabaseReason', doc?.dependencies?.database?.reason);
  run.check(
    '/lifecycle says ready.degraded with the cause of the outage',
    doc?.state === 'ready.degraded' && (doc.dependencies?.database?.reason ?? '') !== '',
    `state ${String(doc?.state)}, database ${JSON.stringify(doc?.dependencies?.database)}`,
  );
  run.check(
    '/ready is 200 again by itself once the database answers',
    recoveredAt !== undefined,
    recoveredAt === undefined ? 'never 200 again' : `${seconds(recoveredAt - restore)} s after`,
  );
  checkHealthAlways200(run);

  const during: LoadOutcome[] = outcomesIn(run, phase);
  const failures = during.filter((o) => o.status !== undefined && o.status >= 500);
  const badFailures = failures.filter(
    (o) =>
      o.status !== 503 ||
      !['DEPENDENCY_UNAVAILABLE', 'CIRCUIT_OPEN', 'REQUEST_TIMEOUT'].includes(o.code ?? '') ||
      o.retryAfter === undefined,
  );
  run.fact('failedDuringOutage', failures.length);
  run.check(
    'requests that need the database get a retryable 503 (DEPENDENCY_UNAVAILABLE, CIRCUIT_OPEN, or REQUEST_TIMEOUT for one already waiting) with Retry-After',
    badFailures.length === 0 && failures.length > 0,
    `${failures.length} failed: ${[...summarize(failures).details.entries()].map(([w, n]) => `${w} ×${n}`).join(', ') || 'none'}${
      badFailures.length === 0 ? '' : `; ${badFailures.length} otherwise`
    }`,
  );
  const answered = during.filter((o) => o.status !== undefined);
  const slowest = Math.max(0, ...answered.map((o) => o.doneAt - o.sentAt));
  const late = answered.filter((o) => o.sentAt >= (degradedAt ?? Number.POSITIVE_INFINITY));
  const slowestLate = Math.max(0, ...late.map((o) => o.doneAt - o.sentAt));
  run.fact('slowestAnswerDuringMs', slowest);
  run.fact('slowestAnswerOnceDegradedMs', slowestLate);
  run.check(
    'once degraded, requests fail fast instead of waiting for timeouts',
    slowestLate < 1_000,
    `slowest answer once /ready said 503: ${slowestLate} ms (slowest in the whole outage: ${slowest} ms)`,
  );
  run.check(
    'no request went unanswered',
    during.every((o) => o.error === undefined),
    `${during.filter((o) => o.error !== undefined).length} of ${during.length} without an answer`,
  );
  checkLoggedDownAndUp(
    run,
    'database',
    { down: 'db.unavailable', up: 'db.available', fact: 'db' },
    from,
    restore,
  );
  await checkRetries(run, run.kept<LoadOutcome[]>('retried') ?? []);
  await checkCreatedCommitted(run);
  checkNoCrash(run);
  checkExit(run, 0, 0, 'SIGTERM at the end: a clean stop');
}

export const databaseDown: Drill = {
  name: 'database-down',
  title: 'PostgreSQL refuses connections',
  summary: 'PostgreSQL is gone (connections refused) for 5-10 s, then comes back',
  fault:
    'The service reaches PostgreSQL through a TCP proxy. At +0 the proxy closes every connection and refuses new ones, as when the database host or PostgreSQL is down; once `/ready` has said 503 for a while (5-10 s) it forwards again. The orders that failed meanwhile are retried with their keys; then a normal SIGTERM ends the drill.',
  via: { database: 'proxy' },
  env: {},
  load: { ratePerSecond: 6, maxInFlight: 12 },
  metrics: metricRows(['DEPENDENCY_UNAVAILABLE', 'CIRCUIT_OPEN']),
  async script(run) {
    await run.hold(2_500);
    await run.fault('the proxy cuts PostgreSQL: every connection closed, new ones refused', {
      key: 'during',
      label: 'database down',
    });
    await run.databaseProxy?.cut();
    await holdOutage(run, run.mark('fault'), 'database down');
    await recovery(run, async () => {
      await run.databaseProxy?.restore();
    });
  },
  async conclude(run) {
    await concludeOutage(run, run.mark('fault'), 'during');
  },
  headline(run) {
    const f = run.facts;
    return `\`/ready\` went \`503 degraded\` ${fmt(f.readyDegradedAfterMs)} s after the cut and \`200\` again ${fmt(f.readyRecoveredAfterMs)} s after the database came back; \`/health\` stayed \`200\`. ${String(f.failedDuringOutage)} requests got a retryable \`503\` meanwhile (slowest answer once degraded: ${String(f.slowestAnswerOnceDegradedMs)} ms); all ${String(f.retriedKeys)} failed orders succeeded when retried with their keys, and the stop was clean (exit ${String(f.exitCode)}).`;
  },
  meaning: `
The pod lost its **essential** dependency. Within about two seconds (two failed health pings, or
the circuit breaker opening on failed order calls) it turns \`ready.degraded\`: \`/ready\` answers
\`503 degraded\` so load balancers stop sending it traffic, while \`/health\` stays \`200\` so nothing
restarts it, since a restart cannot bring a database back. Requests that need the database fail
fast with a retryable \`503\` (\`DEPENDENCY_UNAVAILABLE\` while pings fail, \`CIRCUIT_OPEN\` once the
breaker is open), with \`Retry-After\`, instead of waiting for timeouts. Nothing is lost or doubled:
an order either committed before the cut (a retry with its Idempotency-Key replays it) or did not
(a retry creates it). When the database answers again the service recovers by itself within a
few seconds (\`db.available\`, \`breaker.closed\`, \`/ready\` 200).

All pods degraded at once: the database, or the network to it, is down. One pod only: that pod's
network path, DNS, or the database refusing its connections (\`max_connections\`, \`pg_hba.conf\`).
`,
  actions: [
    'Confirm it is the database: `curl -s 127.0.0.1:9464/lifecycle | jq .dependencies` gives the current cause under `database.reason` (the public `/ready` only says `unavailable`); see [Reading `/lifecycle`](../lifecycle.md#reading-lifecycle).',
    'Do **not** restart pods: `/health` stays 200 on purpose, a restarted pod cannot become ready until the database answers (it exits 1 after `STARTUP_TIMEOUT_MS`), and the running ones recover by themselves. See [When the database is down](../orders.md#when-the-database-is-down).',
    'Fix or escalate the database: is PostgreSQL up, reachable from the pods, under its connection limit? The `reason` of `db.unavailable` and `breaker.open` in the logs says how calls fail ([DEPENDENCY_UNAVAILABLE](../errors.md#dependency_unavailable), [CIRCUIT_OPEN](../errors.md#circuit_open)).',
    'Watch it come back: `db.available`, `breaker.closed`, `/ready` 200, `ops_dependency_up{dependency="database"}` 1; `OpsServiceDatabaseDown` resolves by itself.',
    'Afterwards nothing needs reconciling: clients retry with the same Idempotency-Key and get one order each ([Idempotency-Keys](../orders.md#idempotency-keys)). If it keeps coming and going, `OpsServiceReadinessFlapping` fires: see [ready.degraded](../lifecycle.md#readydegraded).',
  ],
};

export function fmt(ms: unknown): string {
  return typeof ms === 'number' ? seconds(ms) : '—';
}
