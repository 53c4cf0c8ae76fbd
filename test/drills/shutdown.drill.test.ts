// Whole-process shutdown drills: the real runtime in a child process, real sockets, real signals.
// The load models a load balancer: clients keep sending (new connections too) for a propagation
// lag after SIGTERM that is shorter than SHUTDOWN_DELAY_MS, then send nothing new. Everything
// sent must be answered in full.
import net from 'node:net';
import { CONTRACT_SHUTDOWN_ORDER, contractEvents, delay, get, runLoad, timeOf } from './drill-kit';
import { DRILL_SERVICE, spawnService, startService } from '../helpers/service-process';

jest.setTimeout(30_000);

const figures: Record<string, unknown>[] = [];
afterAll(() => {
  // The runbook's shutdown page records these figures (runbook/shutdown.md).
  process.stdout.write(`drill figures: ${JSON.stringify(figures)}\n`);
});

describe('the golden shutdown path under load', () => {
  it.each([['SIGTERM'], ['SIGINT']] as const)(
    'when %s arrives with 64 busy keep-alive connections, then readiness fails first, nothing is dropped, events follow the contract and the exit code is 0',
    async (signal) => {
      const DELAY_MS = 1_000;
      const LAG_MS = 600;
      // Requests sent late in the lag outlive the delay: the drain has real work to wait for.
      const MAX_REQUEST_MS = 900;
      const { service, port } = await startService({
        SHUTDOWN_DELAY_MS: String(DELAY_MS),
        SHUTDOWN_DRAIN_TIMEOUT_MS: '5000',
        SHUTDOWN_FLUSH_TIMEOUT_MS: '1000',
        SHUTDOWN_HARD_STOP_MS: '10000',
      });
      let stopSending: () => void = () => undefined;
      const load = runLoad({
        port,
        connections: 64,
        minMs: 10,
        maxMs: MAX_REQUEST_MS,
        stopSending: new Promise<void>((resolve) => {
          stopSending = resolve;
        }),
      });
      await delay(700);

      const signalAt = Date.now();
      service.kill(signal);
      const begin = await service.waitForEvent('shutdown.begin');
      // Readiness fails at once, while the listener still serves new connections.
      const readiness = await get(port, '/ready', false);
      const fresh = await get(port, '/drill/work?ms=5', false);
      await delay(Math.max(0, LAG_MS - (Date.now() - signalAt)));
      stopSending();
      const outcomes = await load;
      const code = await service.exited();

      const dropped = outcomes.filter((outcome) => !outcome.ok);
      // Answered during the delay: kept alive. Answered after intake stopped: Connection: close.
      const intakeStoppedAt = timeOf(service, 'shutdown.intake_stopped');
      const duringDelay = outcomes.filter(
        (o) => o.doneAt > timeOf(service, 'shutdown.begin') + 5 && o.doneAt < intakeStoppedAt - 5,
      );
      const afterIntakeStop = outcomes.filter((o) => o.doneAt > intakeStoppedAt + 5);
      const exitMs = timeOf(service, 'service.exit') - signalAt;
      const drained = service.lines.find((line) => line.event === 'shutdown.drain_complete');
      figures.push({
        drill: `golden ${signal}`,
        requests: outcomes.length,
        in_flight_at_intake_stop: service.lines.find((l) => l.event === 'shutdown.intake_stopped')
          ?.in_flight,
        dropped: dropped.length,
        in_flight_at_signal: begin.in_flight,
        drain_ms: drained?.drain_ms,
        exit_ms_after_signal: exitMs,
      });

      expect(code).toBe(0);
      expect(dropped).toEqual([]);
      expect(outcomes.length).toBeGreaterThan(200);
      expect(begin).toMatchObject({ signal, cause: 'signal' });
      expect(begin.in_flight).toBeGreaterThan(0);
      expect(readiness.status).toBe(503);
      expect(fresh.ok).toBe(true);
      expect(duringDelay.length).toBeGreaterThan(0);
      expect(duringDelay.every((o) => o.connection === 'keep-alive')).toBe(true);
      expect(afterIntakeStop.length).toBeGreaterThan(0);
      expect(afterIntakeStop.every((o) => o.connection === 'close')).toBe(true);
      expect(contractEvents(service)).toEqual(CONTRACT_SHUTDOWN_ORDER);
      // Contract section 3: the required fields of each event.
      const line = (event: string) => service.lines.find((l) => l.event === event);
      expect(line('service.start')).toMatchObject({ version: '0.1.0', env: 'test' });
      expect(typeof line('service.start')?.bind).toBe('string');
      expect(line('service.ready')).toMatchObject({ ready: true, bind: `127.0.0.1:${port}` });
      expect(typeof line('service.ready')?.startup_ms).toBe('number');
      expect(typeof line('service.ready')?.ops_bind).toBe('string');
      expect(line('shutdown.intake_stopped')?.in_flight).toEqual(expect.any(Number));
      expect(line('shutdown.drain_complete')?.drain_ms).toEqual(expect.any(Number));
      expect(line('telemetry.flush')?.flush_ms).toEqual(expect.any(Number));
      const transitions = service.lines.filter((l) => l.event === 'lifecycle.transition');
      expect(
        transitions.map((t) => `${String(t.from)} -> ${String(t.to)} (${String(t.cause)})`),
      ).toEqual(
        expect.arrayContaining([
          'starting -> ready.serving (xstate.done.actor.startup)',
          `ready.serving -> draining.delaying (SIGNAL)`,
          'flushing -> stopped (xstate.done.actor.flushTelemetry)',
        ]),
      );
      expect(drained?.in_flight).toBe(0);
      expect(service.lines.find((l) => l.event === 'telemetry.flush')).toMatchObject({
        status: 'ok',
      });
      expect(service.lines.at(-1)).toMatchObject({ event: 'service.exit', code: 0 });
      // Lifecycle lines are the process's, never a request's (even when a request's end triggers them).
      const lifecycleLines = service.lines.filter((l) =>
        /^(shutdown|lifecycle|telemetry|service)\./.test(l.event),
      );
      expect(lifecycleLines.filter((l) => 'request_id' in l)).toEqual([]);
      expect(
        service.lines.find((l) => l.event === 'shutdown.intake_stopped')?.in_flight,
      ).toBeGreaterThan(0);
      // The delay, or the longest request sent before the load stopped, plus a small margin.
      expect(exitMs).toBeGreaterThanOrEqual(DELAY_MS);
      expect(exitMs).toBeLessThan(Math.max(DELAY_MS, LAG_MS + MAX_REQUEST_MS) + 500);
    },
  );
});

describe('shutdown when work cannot finish in time', () => {
  it('when requests outlive the drain budget, then shutdown.drain_timeout reports them, they are aborted, telemetry flushes and the exit code is 1 within the budget', async () => {
    const budget = { delay: 100, drain: 600, flush: 500 };
    const { service, port } = await startService({
      SHUTDOWN_DELAY_MS: String(budget.delay),
      SHUTDOWN_DRAIN_TIMEOUT_MS: String(budget.drain),
      SHUTDOWN_FLUSH_TIMEOUT_MS: String(budget.flush),
      SHUTDOWN_HARD_STOP_MS: '5000',
    });
    const slow = Array.from({ length: 5 }, () => get(port, '/drill/work?ms=10000', false));
    await delay(200);
    const signalAt = Date.now();
    service.kill('SIGTERM');
    const code = await service.exited();
    const outcomes = await Promise.all(slow);
    const timeout = await service.waitForEvent('shutdown.drain_timeout');
    const exitMs = timeOf(service, 'service.exit') - signalAt;
    figures.push({
      drill: 'drain timeout',
      in_flight: timeout.in_flight,
      aborted: timeout.aborted,
      exit_ms_after_signal: exitMs,
    });

    expect(code).toBe(1);
    expect(timeout).toMatchObject({ in_flight: 5, aborted: 5, cause: 'drain_timeout' });
    expect(service.events()).not.toContain('shutdown.drain_complete');
    expect(contractEvents(service)).toEqual([
      'service.start',
      'service.ready',
      'shutdown.begin',
      'shutdown.intake_stopped',
      'shutdown.drain_timeout',
      'telemetry.flush',
      'service.exit',
    ]);
    expect(outcomes.every((o) => !o.ok)).toBe(true);
    expect(exitMs).toBeGreaterThanOrEqual(budget.delay + budget.drain);
    expect(exitMs).toBeLessThan(budget.delay + budget.drain + budget.flush + 1_000);
  });

  it('when a second signal arrives during the drain, then the drain is skipped, telemetry still flushes and the exit code is 1', async () => {
    const { service, port } = await startService({
      SHUTDOWN_DELAY_MS: '3000',
      SHUTDOWN_DRAIN_TIMEOUT_MS: '10000',
      SHUTDOWN_HARD_STOP_MS: '20000',
    });
    const slow = [get(port, '/drill/work?ms=8000', false), get(port, '/drill/work?ms=8000', false)];
    await delay(100);
    service.kill('SIGTERM');
    await service.waitForEvent('shutdown.begin');
    await delay(200);
    const secondAt = Date.now();
    service.kill('SIGTERM');
    const code = await service.exited();
    await Promise.all(slow);
    const exitMs = timeOf(service, 'service.exit') - secondAt;
    figures.push({ drill: 'second signal', exit_ms_after_second_signal: exitMs });

    expect(code).toBe(1);
    expect(service.lines.find((l) => l.event === 'shutdown.drain_timeout')).toMatchObject({
      cause: 'second_signal',
      in_flight: 2,
    });
    expect(service.events()).toContain('telemetry.flush');
    expect(exitMs).toBeLessThan(1_000);
  });
});

describe('signals and failures around startup', () => {
  it('when SIGTERM arrives during startup, then the service never becomes ready, stops at once and exits 0', async () => {
    const service = spawnService({ script: DRILL_SERVICE, env: { DRILL_STARTUP_MS: '5000' } });
    await service.waitForEvent('service.start');
    await delay(100);
    const signalAt = Date.now();
    service.kill('SIGTERM');
    const code = await service.exited();

    expect(code).toBe(0);
    expect(service.events()).not.toContain('service.ready');
    expect(contractEvents(service)).toEqual([
      'service.start',
      'shutdown.begin',
      'shutdown.intake_stopped',
      'shutdown.drain_complete',
      'telemetry.flush',
      'service.exit',
    ]);
    expect(timeOf(service, 'service.exit') - signalAt).toBeLessThan(1_000);
  });

  it('when the port is taken, then service.start_failed says PORT_IN_USE, telemetry flushes and the exit code is 1', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const service = spawnService({ env: { PORT: String(port) } });
      const code = await service.exited();
      expect(code).toBe(1);
      expect(service.lines.find((l) => l.event === 'service.start_failed')).toMatchObject({
        level: 'error',
        error_code: 'PORT_IN_USE',
        reason: `main listener cannot bind 127.0.0.1:${port}: address already in use`,
      });
      expect(contractEvents(service)).toEqual([
        'service.start',
        'service.start_failed',
        'telemetry.flush',
        'service.exit',
      ]);
      expect(service.lines.at(-1)).toMatchObject({ event: 'service.exit', code: 1 });
    } finally {
      blocker.close();
    }
  });

  it('when a dependency does not answer within the startup budget, then service.start_failed says STARTUP_TIMEOUT and the exit code is 1', async () => {
    const service = spawnService({
      script: DRILL_SERVICE,
      env: { DRILL_STARTUP_MS: '10000', STARTUP_TIMEOUT_MS: '300' },
    });
    const code = await service.exited();
    expect(code).toBe(1);
    expect(service.lines.find((l) => l.event === 'service.start_failed')).toMatchObject({
      error_code: 'STARTUP_TIMEOUT',
      reason: 'startup did not complete within 300 ms',
    });
  });
});

describe('a crash', () => {
  it('when an exception escapes outside any request, then process.crash is logged, in-flight requests still finish, and the exit code is 1', async () => {
    const { service, port } = await startService({ SHUTDOWN_DELAY_MS: '200' });
    const inFlight = [
      get(port, '/drill/work?ms=600', false),
      get(port, '/drill/work?ms=600', false),
    ];
    await delay(50);
    const crash = await get(port, '/drill/crash', false);
    const code = await service.exited();
    const outcomes = await Promise.all(inFlight);

    expect(crash.status).toBe(202);
    expect(code).toBe(1);
    expect(service.lines.find((l) => l.event === 'process.crash')).toMatchObject({
      level: 'error',
      error_code: 'PROCESS_CRASH',
      error_category: 'unexpected',
      origin: 'uncaughtException',
    });
    expect(service.lines.find((l) => l.event === 'shutdown.begin')).toMatchObject({
      cause: 'crash',
    });
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(service.lines.at(-1)).toMatchObject({ event: 'service.exit', code: 1, cause: 'crash' });
    // Contract section 5: error lines carry error_code and error_category.
    const errorLines = service.lines.filter((l) => l.level === 'error');
    expect(errorLines.length).toBeGreaterThan(0);
    expect(errorLines.filter((l) => !('error_code' in l) || !('error_category' in l))).toEqual([]);
  });
});
