// drain-timeout and second-signal: a shutdown that cannot wait for what is in flight.
import { CONTRACT_SHUTDOWN_ORDER } from '../kit/contract';
import type { Drill } from '../page';
import type { DrillRun } from '../run';
import {
  between,
  checkCutOffRolledBack,
  checkExit,
  checkNoCrash,
  contractOf,
  holdOrdersInFlight,
  lineAfter,
  metricRows,
  ts,
} from './common';
import { fmt } from './database-down';

const DRAIN_TIMEOUT_MS = 2_000;
const SECOND_SIGNAL_DELAY_MS = 3_000;

/**
 * The requests in flight when the drain was cut short (at the shutdown.drain_timeout line): their
 * keys and what their clients got. Requests refused at the door (ECONNREFUSED) were never in.
 */
function cutOff(run: DrillRun): { keys: string[]; errors: string[]; answered: number } {
  const at = ts(run.line('shutdown.drain_timeout')) ?? run.mark('fault');
  const caught = (run.load?.outcomes ?? []).filter(
    (o) => o.sentAt < at && o.doneAt >= at && o.error !== 'ECONNREFUSED',
  );
  const unanswered = caught.filter((o) => o.status === undefined);
  return {
    keys: unanswered.filter((o) => o.key !== undefined).map((o) => o.key as string),
    errors: [...new Set(unanswered.map((o) => o.error ?? 'no answer'))],
    answered: caught.length - unanswered.length,
  };
}

/** What both drills set up alike: orders held on a lock, the load, the metrics shown. */
const HELD_ORDERS = {
  via: {},
  load: { ratePerSecond: 6, maxInFlight: 12 },
  metrics: metricRows(['SHUTTING_DOWN']),
} as const;

/** Orders held in flight, then the first SIGTERM (time zero); returns what releases the lock. */
async function sigtermWithOrdersInFlight(
  run: DrillRun,
  atLeast: number,
  phaseLabel: string,
): Promise<() => Promise<void>> {
  await run.hold(2_000);
  const release = await holdOrdersInFlight(run, atLeast);
  await run.fault('SIGTERM (a rollout) while the orders wait on the lock', {
    key: 'during',
    label: phaseLabel,
  });
  run.service.kill('SIGTERM');
  return release;
}

/** Waits for the exit, releases the lock, then watches from outside a little longer. */
async function exitedThenRelease(
  run: DrillRun,
  release: () => Promise<void>,
  timeoutMs: number,
): Promise<void> {
  await run.exited(timeoutMs);
  run.step('the lock session commits');
  await release();
  await run.nextPhase('exited', 'process gone');
  await run.hold(1_500);
}

/** The contract's clean shutdown, with the drain cut short: `shutdown.drain_timeout` instead. */
const DRAIN_CUT_SHORT = CONTRACT_SHUTDOWN_ORDER.map((event) =>
  event === 'shutdown.drain_complete' ? 'shutdown.drain_timeout' : event,
);

/** Facts and checks both shutdown drills share. */
async function concludeShutdown(
  run: DrillRun,
  expected: { events: string[]; cause: string; exitWithinMs: number; from: number },
): Promise<void> {
  const begin = run.line('shutdown.begin');
  const timeout = run.line('shutdown.drain_timeout');
  const pending = run.line('shutdown.pending_work');
  const exit = run.line('service.exit');
  run.fact('inFlightAtSignal', begin?.in_flight as number | undefined);
  run.fact('drainTimeoutCause', timeout?.cause as string | undefined);
  run.fact('drainMs', timeout?.drain_ms as number | undefined);
  run.fact('aborted', timeout?.aborted as number | undefined);
  const requests = Array.isArray(pending?.requests)
    ? (pending.requests as { route?: string }[])
    : [];
  run.fact('pendingRequests', requests.length);
  run.fact('pendingRoutes', [...new Set(requests.map((r) => r.route))].join(','));
  run.fact('exitAfterMs', between(expected.from, ts(exit)));
  const events = contractOf(run, 0);
  run.fact('contractEvents', events.join(' > '));
  run.check(
    'the log has the documented events, in order',
    events.join(' > ') === expected.events.join(' > '),
    `${events.join(' > ')}`,
  );
  run.check(
    `shutdown.drain_timeout says cause=${expected.cause} and counts what it aborted`,
    timeout?.cause === expected.cause && Number(timeout.aborted) > 0,
    timeout === undefined
      ? 'no shutdown.drain_timeout line'
      : `in_flight=${String(timeout.in_flight)} aborted=${String(timeout.aborted)} drain_ms=${String(timeout.drain_ms)}`,
  );
  run.check(
    'shutdown.pending_work names the requests that were cut short',
    requests.length > 0 && pending?.cause === expected.cause,
    `cause=${String(pending?.cause)}, ${requests.length} requests: ${[...new Set(requests.map((r) => r.route))].join(', ')}`,
  );
  run.check(
    `the process exits within ${expected.exitWithinMs} ms`,
    (between(expected.from, ts(exit)) ?? Number.POSITIVE_INFINITY) <= expected.exitWithinMs,
    `service.exit ${String(between(expected.from, ts(exit)))} ms after`,
  );
  // Resources are closed in order after the drain, each within its budget, and each line says
  // what happened: resource.closed, or resource.close_timeout with the reason (a connection still
  // checked out by a worker whose unit of work was cut short: known, bounded by the budget).
  const outcomes = run
    .lines()
    .filter(
      ({ line }) => line.event === 'resource.closed' || line.event === 'resource.close_timeout',
    )
    .map(({ line }) => ({
      resource: String(line.resource),
      event: line.event,
      closeMs: Number(line.close_ms),
      reason: typeof line.reason === 'string' ? line.reason : undefined,
    }));
  const at = (name: string): number => outcomes.findIndex((o) => o.resource === name);
  run.check(
    'the database pool and then the broker are closed in order, before the flush',
    at('database') >= 0 && at('broker') > at('database'),
    outcomes.map((o) => `${o.event}: ${o.resource} (${o.closeMs} ms)`).join(', ') || 'none',
  );
  const database = outcomes.find((o) => o.resource === 'database');
  run.fact('databaseCloseMs', database?.closeMs);
  run.fact('databaseClosed', database?.event === 'resource.closed');
  run.check(
    'the log says what happened to the database pool: closed, or close_timeout with the connections still checked out',
    database !== undefined &&
      (database.event === 'resource.closed' || (database.reason ?? '').includes('checked out')),
    database === undefined
      ? 'no line for the database'
      : `${database.event} close_ms=${database.closeMs}${database.reason === undefined ? '' : ` reason="${database.reason}"`}`,
  );
  const cut = cutOff(run);
  run.fact('clientsCutOff', cut.keys.length);
  run.fact('clientsCutOffErrors', cut.errors.join(','));
  run.check(
    'clients of the aborted requests get the connection closed, not an answer',
    cut.keys.length > 0 && cut.answered === 0,
    `${cut.keys.length + cut.answered} requests in flight when the drain was cut short (the service counted aborted=${String(timeout?.aborted)}): ${cut.keys.length} without an answer (${cut.errors.join(', ')}), ${cut.answered} answered`,
  );
  await checkCutOffRolledBack(run, cut.keys);
  checkNoCrash(run);
  checkExit(run, 0, 1, 'the shutdown aborted accepted requests');
}

export const drainTimeout: Drill = {
  name: 'drain-timeout',
  title: 'The drain runs out of time',
  summary: `SIGTERM while orders hang on a lock longer than the drain budget (${DRAIN_TIMEOUT_MS / 1000} s here)`,
  fault: `Orders hang: a session of the drill holds \`LOCK TABLE outbox IN EXCLUSIVE MODE\`, so every new order waits inside its transaction (\`DATABASE_LOCK_TIMEOUT_MS=8000\`). At +0 the pod gets SIGTERM, as in a rollout. The orders cannot finish within \`SHUTDOWN_DRAIN_TIMEOUT_MS\`, shortened to ${DRAIN_TIMEOUT_MS / 1000} s for the drill (20 s by default). The lock is released once the process has exited.`,
  ...HELD_ORDERS,
  env: { SHUTDOWN_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS), DATABASE_LOCK_TIMEOUT_MS: '8000' },
  async script(run) {
    const release = await sigtermWithOrdersInFlight(run, 3, 'shutting down');
    await run.hold(250);
    await run.lifecycle('during the delay');
    await run.until(
      async () => (await run.lifecycleDoc())?.state === 'draining.drain.waiting',
      2_000,
    );
    await run.hold(800);
    await run.lifecycle('the drain, waiting for the requests in flight');
    await run.snapshot();
    await exitedThenRelease(run, release, 12_000);
  },
  async conclude(run) {
    await concludeShutdown(run, {
      events: DRAIN_CUT_SHORT,
      cause: 'drain_timeout',
      // delay + drain + close + flush budgets, plus a second for a busy machine.
      exitWithinMs: 500 + DRAIN_TIMEOUT_MS + 1_500 + 3_000 + 1_000,
      from: run.mark('fault'),
    });
    const intake = run.line('shutdown.intake_stopped');
    run.fact('inFlightAtIntakeStop', intake?.in_flight as number | undefined);
  },
  headline(run) {
    const f = run.facts;
    return `${String(f.inFlightAtSignal)} orders were in flight at the SIGTERM and ${String(f.inFlightAtIntakeStop)} at intake stop (the load kept coming during the delay); the drain gave up after ${String(f.drainMs)} ms (\`shutdown.drain_timeout\`, \`aborted=${String(f.aborted)}\`), \`shutdown.pending_work\` named them (${String(f.pendingRoutes)}), their ${String(f.clientsCutOff)} clients got the connection closed (${String(f.clientsCutOffErrors)}) and their transactions were rolled back. The process exited ${String(f.exitCode)} ${fmt(f.exitAfterMs)} s after the signal.`;
  },
  meaning: `
A stop that could not wait for everything it had accepted. The drain budget
(\`SHUTDOWN_DRAIN_TIMEOUT_MS\`, 20 s by default) ran out with requests still running: they were
aborted (their clients see the connection closed without a response, not a \`503\`), the resources
were still closed and telemetry flushed, and the exit code is **1**. The data is consistent: each
aborted order rolled back with its Idempotency-Key, so a client retrying with its key gets it
created once. What matters is *why* requests outlived the budget: here a lock held them; in real
life slow queries, a hung dependency without a timeout, or a budget shorter than the slowest
legitimate request.

Workers still busy at the deadline are aborted with the requests (here the outbox relay, waiting
on the same lock: its transaction is abandoned and rolls back, and its events are published by
the next process), so no unit of work keeps a database connection and the pool closes at once.
Were a connection still checked out, the log would say so: \`resource.close_timeout\` for the
database with \`reason\` naming the connections.
`,
  actions: [
    'Find what was running: `shutdown.pending_work` lists the requests (method, route, age, `request_id`) and workers; follow a `request_id` to its own log lines and trace. See [What is holding shutdown](../shutdown.md#what-is-holding-shutdown).',
    'Once: a slow dependency at the wrong moment (look at the database: locks, long transactions). On every rollout: the budget is shorter than the slowest legitimate request, or something hangs; see [Drain timeout](../shutdown.md#drain-timeout).',
    'Keep `REQUEST_TIMEOUT_MS` well below `SHUTDOWN_DRAIN_TIMEOUT_MS` so a request always ends before the drain does ([REQUEST_TIMEOUT](../errors.md#request_timeout)); if you raise the drain budget, keep delay + drain + close + flush below `SHUTDOWN_HARD_STOP_MS` and `terminationGracePeriodSeconds` ([Budgets](../shutdown.md#budgets)).',
    'Nothing to repair in the data: the aborted orders rolled back; clients retry with their keys ([Idempotency-Keys](../orders.md#idempotency-keys)).',
  ],
};

export const secondSignal: Drill = {
  name: 'second-signal',
  title: 'A second signal during the shutdown',
  summary: 'SIGTERM, then a second SIGTERM during the shutdown delay, with orders in flight',
  fault: `Orders are in flight (a session of the drill holds \`LOCK TABLE outbox IN EXCLUSIVE MODE\`). At +0 the pod gets SIGTERM; \`SHUTDOWN_DELAY_MS\` is ${SECOND_SIGNAL_DELAY_MS / 1000} s. One second later a second SIGTERM arrives (someone runs \`kill\` again, Ctrl-C twice, a supervisor re-sending the signal).`,
  ...HELD_ORDERS,
  env: { SHUTDOWN_DELAY_MS: String(SECOND_SIGNAL_DELAY_MS), DATABASE_LOCK_TIMEOUT_MS: '8000' },
  async script(run) {
    const release = await sigtermWithOrdersInFlight(run, 2, 'first signal, delay');
    await run.hold(1_000);
    await run.lifecycle('during the delay, before the second signal');
    await run.nextPhase('second', 'second signal');
    run.signal('SIGTERM', 'a second SIGTERM (someone runs kill again)', 'second');
    await exitedThenRelease(run, release, 8_000);
  },
  async conclude(run) {
    await concludeShutdown(run, {
      // During the delay: intake never formally stopped (runbook/shutdown.md, Second signal).
      events: DRAIN_CUT_SHORT.filter((event) => event !== 'shutdown.intake_stopped'),
      cause: 'second_signal',
      // close + flush budgets, plus a second for a busy machine.
      exitWithinMs: 1_500 + 3_000 + 1_000,
      from: run.mark('second'),
    });
    const during = (run.probes?.samples ?? []).filter(
      (s) => s.at >= run.mark('fault') + 200 && s.at < run.mark('second'),
    );
    const readyDuring = [...new Set(during.map((s) => `${s.ready} ${s.readyBody}`))];
    run.fact('readyDuringDelay', readyDuring.join(' / '));
    run.check(
      'during the delay /ready says 503 draining while /health stays 200',
      during.length > 0 &&
        during.every(
          (s) => s.ready === '503' && s.readyBody.includes('"draining"') && s.health === '200',
        ),
      readyDuring.join(' / ') || 'no samples',
    );
    run.check(
      'drain_ms is 0: the second signal came during the delay, before intake stopped',
      run.line('shutdown.drain_timeout')?.drain_ms === 0 &&
        run.line('shutdown.intake_stopped') === undefined,
      `drain_ms=${String(run.line('shutdown.drain_timeout')?.drain_ms)}, shutdown.intake_stopped ${run.line('shutdown.intake_stopped') === undefined ? 'absent' : 'present'}`,
    );
    const exit = lineAfter(run, 'service.exit', run.mark('second'));
    run.fact('exitCause', exit?.cause as string | undefined);
  },
  headline(run) {
    const f = run.facts;
    return `The second SIGTERM skipped the rest of the delay and the drain: \`shutdown.drain_timeout\` with \`cause=${String(f.drainTimeoutCause)}\`, \`drain_ms=${String(f.drainMs)}\`, \`aborted=${String(f.aborted)}\`; the resources were closed in order (${f.databaseClosed === true ? `the database pool in ${String(f.databaseCloseMs)} ms` : `the database pool given up after ${String(f.databaseCloseMs)} ms: \`resource.close_timeout\`, a connection still checked out`}) and telemetry flushed, and the process exited ${String(f.exitCode)} ${String(f.exitAfterMs)} ms after the second signal. The ${String(f.clientsCutOff)} orders in flight got the connection closed (${String(f.clientsCutOffErrors)}) and rolled back.`;
  },
  meaning: `
The first signal started the normal, graceful stop (readiness off, \`SHUTDOWN_DELAY_MS\` of
serving, then the drain). The second one means "stop now": what is left of the delay and the
drain is skipped, the requests in flight are aborted (their clients see the connection closed),
the resources are still closed in order and telemetry is still flushed within its budget, and the
exit code is **1**. \`service.exit\` says \`cause=signal\`; the \`second_signal\` is on
\`shutdown.drain_timeout\` and \`shutdown.pending_work\`. Aborted orders rolled back with their keys.
Nothing is broken; the stop was just not clean, and clients of the aborted requests must retry.
Workers busy on the database (here the outbox relay, waiting on the same lock) are not aborted:
closing the pool waits for them up to its share of \`SHUTDOWN_CLOSE_TIMEOUT_MS\`, which is most of
the time from the second signal to the exit.
`,
  actions: [
    'Find who sent it: a person (Ctrl-C twice, `kill` again), a supervisor or script that re-sends SIGTERM, `docker stop -t` too short. Kubernetes itself sends SIGTERM once, then SIGKILL at the end of the grace period. See [Second signal](../shutdown.md#second-signal).',
    'While a pod is `draining.*` in `/lifecycle`, do not signal it again unless you accept aborting what is in flight: [Can it stop safely now?](../README.md#3-can-it-stop-safely-now).',
    'What was cut short is in `shutdown.pending_work` ([What is holding shutdown](../shutdown.md#what-is-holding-shutdown)); nothing to repair in the data, clients retry with their keys ([Idempotency-Keys](../orders.md#idempotency-keys)).',
  ],
};
