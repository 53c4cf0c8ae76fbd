// database-slow: PostgreSQL answers late (200 ms each way), then stops answering at all (a network
// black hole: connections stay open, nothing comes back), then comes back.
import { summarize } from '../load';
import type { Drill } from '../page';
import { concludeOutage, fmt, holdOutage, recovery } from './database-down';
import { metricRows, outcomesIn, posts } from './common';

const LATENCY_MS = 200;
const SLOW_MS = 3_000;
/** Longer than one database attempt may wait (connect 2 s + statement 5 s timeouts). */
const STALL_MIN_MS = 7_500;

export const databaseSlow: Drill = {
  name: 'database-slow',
  title: 'PostgreSQL answers slowly, then not at all',
  summary: `PostgreSQL ${LATENCY_MS} ms late each way for ${SLOW_MS / 1000} s, then a black hole (no answer), then back`,
  fault: `The service reaches PostgreSQL through a TCP proxy. At +0 the proxy delays every packet by ${LATENCY_MS} ms each way (a saturated database or network: answers still come, late). ${SLOW_MS / 1000} s later it stops forwarding anything while keeping connections open and accepting new ones (a network black hole, a hung server: only timeouts notice). Once the pod is degraded (5-10 s) the proxy forwards normally again; the orders that failed are retried with their keys; a normal SIGTERM ends the drill.`,
  via: { database: 'proxy' },
  env: {},
  load: { ratePerSecond: 6, maxInFlight: 12 },
  metrics: metricRows(['DEPENDENCY_UNAVAILABLE', 'CIRCUIT_OPEN', 'REQUEST_TIMEOUT']),
  async script(run) {
    await run.hold(2_500);
    await run.fault(`the proxy delays PostgreSQL traffic by ${LATENCY_MS} ms each way`, {
      key: 'slow',
      label: 'database slow',
    });
    run.databaseProxy?.slow(LATENCY_MS);
    await run.hold(SLOW_MS - 500);
    await run.lifecycle('database slow');
    await run.hold(500);
    await run.nextPhase('stalled', 'database not answering');
    const stalledAt = run.step(
      'the proxy stalls PostgreSQL: connections stay open, nothing is forwarded, new ones are accepted and never answered',
      'stall',
    );
    run.databaseProxy?.stall();
    await holdOutage(run, stalledAt, 'database not answering', STALL_MIN_MS);
    await recovery(run, async () => {
      await run.databaseProxy?.restore();
    });
  },
  async conclude(run) {
    const before = summarize(posts(outcomesIn(run, 'before')));
    // Requests sent while slow that were still waiting at the stall belong to the stall.
    const slow = outcomesIn(run, 'slow').filter((o) => o.doneAt < run.mark('stall'));
    const slowPosts = summarize(posts(slow));
    run.fact('orderP50BeforeMs', before.p50Ms);
    run.fact('orderP50SlowMs', slowPosts.p50Ms);
    run.fact('orderMaxSlowMs', slowPosts.maxMs);
    run.check(
      'clients see the slow database as slow orders',
      (slowPosts.p50Ms ?? 0) >= 2 * LATENCY_MS,
      `POST /v1/orders p50 ${String(before.p50Ms)} ms before, ${String(slowPosts.p50Ms)} ms while slow (max ${String(slowPosts.maxMs)} ms)`,
    );
    const slowSamples = (run.probes?.samples ?? []).filter(
      (s) => s.at >= run.mark('fault') && s.at < run.mark('stall'),
    );
    const readyWhileSlow = [...new Set(slowSamples.map((s) => s.ready))];
    run.fact('readyWhileSlow', readyWhileSlow.join(','));
    run.check(
      '/ready stays 200 while the database answers, however slowly (the pod can still serve)',
      readyWhileSlow.length === 1 && readyWhileSlow[0] === '200',
      `${slowSamples.length} samples while slow: ${readyWhileSlow.join(', ')}`,
    );
    run.check(
      'while slow, orders still succeed (those answered before the stall)',
      slowPosts.ok2xx > 0 && slowPosts.server5xx + slowPosts.noAnswer === 0,
      `${slowPosts.ok2xx} created, ${slowPosts.server5xx} 5xx, ${slowPosts.noAnswer} without an answer`,
    );
    const stallAt = run.mark('stall');
    const caught = (run.load?.outcomes ?? []).filter(
      (o) => o.sentAt < stallAt && o.doneAt > stallAt,
    );
    const caughtAfter = caught.map((o) => o.doneAt - stallAt);
    run.fact('inFlightAtStall', caught.length);
    run.fact(
      'inFlightAtStallEndedAfterMs',
      caught.length === 0 ? undefined : Math.max(...caughtAfter),
    );
    run.fact(
      'inFlightAtStallGot',
      [
        ...summarize(caught).details.entries(),
        ...(caught.some((o) => o.status === 201)
          ? [['201', caught.filter((o) => o.status === 201).length] as const]
          : []),
      ]
        .map(([what, count]) => `${what} ×${count}`)
        .join(', '),
    );
    run.check(
      'requests caught waiting by the black hole end within one database attempt (7 s), not at the request deadline (10 s)',
      caught.length > 0 && Math.max(...caughtAfter) < 7_000 + 1_000,
      caught.length === 0
        ? 'no request was waiting on the database when it stalled'
        : `${caught.length} in flight at the stall, answered ${caughtAfter.map((ms) => `${ms} ms`).join(', ')} after it: ${String(run.facts.inFlightAtStallGot)}`,
    );
    await concludeOutage(run, stallAt, 'stalled');
  },
  headline(run) {
    const f = run.facts;
    return `While PostgreSQL answered ${LATENCY_MS} ms late each way, orders took ${String(f.orderP50SlowMs)} ms (p50; ${String(f.orderP50BeforeMs)} ms before) and \`/ready\` said ${String(f.readyWhileSlow)}. Once it stopped answering, \`/ready\` went \`503 degraded\` ${fmt(f.readyDegradedAfterMs)} s later and new requests failed at once (slowest ${String(f.slowestAnswerOnceDegradedMs)} ms); the ${String(f.inFlightAtStall)} requests already waiting ended up to ${fmt(f.inFlightAtStallEndedAfterMs)} s after the stall (${String(f.inFlightAtStallGot)}). \`/ready\` was \`200\` again ${fmt(f.readyRecoveredAfterMs)} s after the database came back; all ${String(f.retriedKeys)} failed orders succeeded on retry.`;
  },
  meaning: `
Two different incidents that start alike. **Slow** (the database answers, late): the pod is right
to stay ready, since it can still serve; every order takes its round trips' worth of extra
latency (an order is two round trips), so the latency SLO burns, not the availability one, and
\`/ready\`, \`ops_dependency_up\` and the breaker all say "up". Look at latency
(\`http_server_request_duration\`, \`job_route:http_server_request_duration:p99_5m\`) and at the
database itself. **Not answering at all** (a black hole: connections open, nothing back): no error
arrives, only timeouts. The health ping (timeout \`min(DATABASE_HEALTH_INTERVAL_MS,
DATABASE_CONNECT_TIMEOUT_MS)\`, 1 s) fails twice and the pod turns \`ready.degraded\` within about
3 s and new requests are refused at once with \`503\` instead of hanging. Requests that were
already waiting on the database when it went silent wait out one attempt
(\`DATABASE_CONNECT_TIMEOUT_MS\` + \`DATABASE_STATEMENT_TIMEOUT_MS\`, 7 s): their clients see 7 s
of nothing, then a \`503\`; the first such timeout opens the breaker (\`breaker.open\`,
\`Operation timed out after 7000ms\`). Recovery is the same as for a database
that is down: automatic, within seconds of the database answering.

A slow database that gets slower ends up as a black hole: when latency grows past the ping
timeout the pod degrades. Seconds-long queries with the database otherwise healthy are usually
locks or saturation on the database side, not the network.
`,
  actions: [
    'Tell which one it is: `/ready` 200 with slow orders is **slow** (look at latency, `http_server_request_duration` per route); `/ready` 503 `degraded` with `ping failed: ... timeout` under `dependencies.database.reason` in `/lifecycle` is **not answering** (see [When the database is down](../orders.md#when-the-database-is-down)).',
    'Slow: check the database, not the pods: long transactions and locks (`pg_stat_activity`, see [Clients keep getting 409 for a key](../orders.md#clients-keep-getting-409-for-a-key) for the query), CPU and I/O saturation, the network path. Orders waiting on a lock fail after `DATABASE_LOCK_TIMEOUT_MS` with `503` ([DEPENDENCY_UNAVAILABLE](../errors.md#dependency_unavailable)); whole requests after `REQUEST_TIMEOUT_MS` ([REQUEST_TIMEOUT](../errors.md#request_timeout)).',
    'Not answering: treat it as [the database being down](../orders.md#when-the-database-is-down): do not restart pods, fix or escalate the database or the network (a firewall dropping packets, a failed-over address that still routes to the old host).',
    'Watch it come back by itself: `db.available`, `breaker.closed`, `/ready` 200. The latency alerts (`OpsServiceLatencyBudgetBurnFast`/`Slow`) and `OpsServiceDatabaseDown` resolve on their own.',
  ],
};
