// sigkill-mid-request: the process is killed (SIGKILL, as by the OOM killer or a kubelet at the end
// of the grace period) while orders are inside their database transaction; it is started again.
import type { LoadOutcome } from '../load';
import type { Drill } from '../page';
import {
  between,
  checkCreatedCommitted,
  checkExit,
  checkNoCrash,
  checkRetries,
  holdOrdersInFlight,
  metricRows,
  posts,
  retryStep,
  ts,
} from './common';
import { fmt } from './database-down';

const DOWN_MS = 2_000;

export const sigkillMidRequest: Drill = {
  name: 'sigkill-mid-request',
  title: 'The process is killed (SIGKILL) mid-request',
  summary: 'kill -9 while orders are inside their transaction; the service is started again',
  fault: `A steady load of orders runs. Shortly before +0 a session of the drill takes \`LOCK TABLE outbox IN EXCLUSIVE MODE\`, so that orders are held inside their transaction (their Idempotency-Key inserted, not committed), as slow queries would hold them. At +0 the process gets SIGKILL (the OOM killer, or a kubelet at the end of the grace period): no handler runs. The lock is released; ${DOWN_MS / 1000} s later the service is started again on the same ports and database (what Kubernetes does when the container dies), and every order that got no answer is sent again with its key.`,
  via: {},
  env: { DATABASE_LOCK_TIMEOUT_MS: '5000' },
  load: { ratePerSecond: 6, maxInFlight: 12 },
  metrics: metricRows(['IDEMPOTENCY_KEY_IN_PROGRESS']),
  async script(run) {
    await run.hold(2_000);
    const release = await holdOrdersInFlight(run, 2);
    await run.lifecycle('just before the kill');
    await run.fault('SIGKILL (kill -9) to the service process', {
      key: 'during',
      label: 'killed, not restarted yet',
    });
    run.service.kill('SIGKILL');
    await run.exited(5_000);
    await run.hold(200);
    run.step('the lock session commits');
    await release();
    await run.hold(DOWN_MS - 200);
    await run.nextPhase('after', 'restarted');
    run.step('the service is started again: same ports, same database', 'restart');
    await run.startService();
    run.step('service.ready: the new process serves', 'ready');
    await run.lifecycle('the new process');
    await retryStep(
      run,
      posts(run.load?.outcomes ?? []).filter(
        (o) => o.sentAt < run.mark('restart') && o.status !== 201,
      ),
    );
    await run.hold(1_500);
  },
  async conclude(run) {
    const killAt = run.mark('fault');
    const outcomes = run.load?.outcomes ?? [];
    const inFlight = run.lifecycles.find((c) => c.label === 'just before the kill')?.doc.in_flight;
    run.fact('inFlightBeforeKill', typeof inFlight === 'number' ? inFlight : undefined);
    const cut = outcomes.filter((o) => o.sentAt < killAt && o.error !== undefined);
    const refused = outcomes.filter(
      (o) => o.sentAt >= killAt && o.sentAt < run.mark('ready') && o.error !== undefined,
    );
    run.fact('requestsCutOff', cut.length);
    run.fact('requestsCutOffErrors', [...new Set(cut.map((o) => o.error))].join(','));
    run.fact('requestsRefusedWhileDown', refused.length);
    run.check(
      'the requests in flight at the kill get no answer (the connection is reset), none a wrong one',
      cut.length > 0 && cut.every((o) => o.status === undefined),
      `${cut.length} cut off: ${[...new Set(cut.map((o) => o.error))].join(', ')}; ${refused.length} refused while nothing listened`,
    );
    const killed = run.processes[0]?.lines ?? [];
    const lastEvent = killed.at(-1)?.event;
    run.fact('lastLineOfKilledProcess', lastEvent);
    run.check(
      'the killed process wrote no service.exit (a SIGKILL runs no handler)',
      !killed.some((l) => l.event === 'service.exit' || l.event === 'shutdown.begin'),
      `its last line: ${String(lastEvent)}`,
    );
    checkExit(run, 0, 137, 'killed by SIGKILL: 128 + 9');
    const ready = run.line('service.ready', 1);
    run.fact('restartToReadyMs', between(run.mark('restart'), ts(ready)));
    run.fact('startupMs', ready?.startup_ms as number | undefined);
    const retried = run.kept<LoadOutcome[]>('retried') ?? [];
    run.check(
      'no key is left held after the restart (no 409 IDEMPOTENCY_KEY_IN_PROGRESS)',
      !retried.some((o) => o.status === 409),
      `${retried.filter((o) => o.status === 409).length} of ${retried.length} retries answered 409`,
    );
    await checkRetries(run, retried);
    await checkCreatedCommitted(run);
    checkNoCrash(run);
    checkExit(run, 1, 0, 'the restarted process, SIGTERM at the end');
  },
  headline(run) {
    const f = run.facts;
    return `${String(f.inFlightBeforeKill)} requests were in flight at the kill; ${String(f.requestsCutOff)} got their connection reset (${String(f.requestsCutOffErrors)}) and ${String(f.requestsRefusedWhileDown)} were refused while nothing listened. The killed process's log just stops (last line \`${String(f.lastLineOfKilledProcess)}\`, no \`service.exit\`; exit ${String(f.exitCode)}). The new process was ready ${fmt(f.restartToReadyMs)} s after its start; the ${String(f.retriedKeys)} orders that got no answer, retried with their keys, made ${String(f.retriesCreated)} new orders and ${String(f.retriesReplayed)} replays, no 409 and no duplicate.`;
  },
  meaning: `
The process was killed from outside: no signal handler, no drain, no flush, no \`service.exit\`
line: the log just stops, and the container's exit code is **137** (128 + SIGKILL). Usually the
OOM killer (\`kubectl describe pod\`: \`OOMKilled\`), or the kubelet at the end of
\`terminationGracePeriodSeconds\` because the graceful path did not finish (or never got SIGTERM).
Clients of the requests in flight saw their connection reset, and nothing listened until the
restart. Their orders are safe: each order is one transaction with its Idempotency-Key, so
PostgreSQL rolled back what had not committed when the connections died, releasing the keys; a
client retrying with the same key gets its order created once (or the stored answer, if it had
committed). The spans still in memory are lost.
`,
  actions: [
    "Find why it was killed: `kubectl describe pod <pod>` (last state `OOMKilled`, exit 137), the previous container's last log lines (`kubectl logs <pod> --previous`): no `service.exit` means killed from outside; see [Exit codes](../lifecycle.md#exit-codes).",
    "OOM: compare `process_memory_rss` before the kill with the container's memory limit; raise the limit or find the growth. Grace period: check that delay + drain + close + flush fit in `terminationGracePeriodSeconds` ([Kubernetes settings](../shutdown.md#kubernetes-settings)).",
    'Nothing to repair in the data: clients retry with their keys and get one order each ([Idempotency-Keys](../orders.md#idempotency-keys)). A key answering `409` for long means a transaction is still open: [Clients keep getting 409 for a key](../orders.md#clients-keep-getting-409-for-a-key).',
    'If it happens again and again, `OpsServiceRestarting` fires (three restarts in an hour): see the same [Exit codes](../lifecycle.md#exit-codes) table.',
  ],
};
