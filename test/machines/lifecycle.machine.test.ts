// The lifecycle chart on its own: fake effects, fake timers, no I/O.
import { drainDeadlineOf, readinessOf, statePath, TAGS } from '../../machines/lifecycle.machine';
import { BUDGETS, harness, settle, toReady } from '../helpers/lifecycle-harness';

beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

describe('starting', () => {
  it('when the machine starts, then it is starting, not ready, and logs service.start', () => {
    const h = harness();
    expect(h.state()).toBe('starting');
    expect(readinessOf(h.actor.getSnapshot())).toBe('starting');
    expect(h.actor.getSnapshot().hasTag(TAGS.accepting)).toBe(false);
    expect(h.actions).toEqual(['logServiceStart']);
  });

  it('when startup completes with every essential dependency up, then it is ready.serving and records the binds', async () => {
    const h = harness();
    await toReady(h);
    expect(h.state()).toBe('ready.serving');
    expect(readinessOf(h.actor.getSnapshot())).toBe('ready');
    expect(h.context()).toMatchObject({ bind: '127.0.0.1:8080', opsBind: '127.0.0.1:9464' });
    expect(h.actions).toContain('logServiceReady');
  });

  it('when startup completes but an essential dependency is not up, then it is ready.degraded', async () => {
    const h = harness();
    h.startup.resolve({ bind: 'b', opsBind: 'o' });
    await settle();
    expect(h.state()).toBe('ready.degraded');
    expect(readinessOf(h.actor.getSnapshot())).toBe('degraded');
  });

  it('when startup fails, then it logs service.start_failed with the error code, flushes, and exits 1', async () => {
    const h = harness();
    h.startup.reject(
      Object.assign(new Error('main listener cannot bind'), { errorCode: 'PORT_IN_USE' }),
    );
    await settle();
    expect(h.state()).toBe('flushing');
    expect(h.context()).toMatchObject({
      exitCode: 1,
      stopReason: 'startup_failed',
      failure: { errorCode: 'PORT_IN_USE', reason: 'main listener cannot bind' },
    });
    expect(h.actions).toEqual([
      'logServiceStart',
      'logStartFailed',
      'closeResources',
      'flushTelemetry',
    ]);
    h.flush.resolve({ status: 'ok' });
    await settle();
    expect(h.state()).toBe('stopped');
    expect(h.actions.slice(-2)).toEqual(['logTelemetryFlush', 'exitProcess']);
  });

  it('when a startup error has no code, then the failure is STARTUP_FAILED', async () => {
    const h = harness();
    h.startup.reject(new Error('boom'));
    await settle();
    expect(h.context().failure).toEqual({ errorCode: 'STARTUP_FAILED', reason: 'boom' });
  });

  it('when startup outlives STARTUP_TIMEOUT, then it fails with STARTUP_TIMEOUT and exits 1', async () => {
    const h = harness();
    jest.advanceTimersByTime(BUDGETS.startupTimeoutMs - 1);
    expect(h.state()).toBe('starting');
    jest.advanceTimersByTime(1);
    expect(h.state()).toBe('draining.closing');
    await settle();
    expect(h.state()).toBe('flushing');
    expect(h.context().failure?.errorCode).toBe('STARTUP_TIMEOUT');
    expect(h.context().exitCode).toBe(1);
    h.flush.resolve({ status: 'ok' });
    await settle();
    expect(h.state()).toBe('stopped');
  });

  it('when a signal arrives during startup, then it skips the delay, drains at once and exits 0', async () => {
    const h = harness();
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    await settle();
    expect(h.actions).toContain('logShutdownBegin');
    expect(h.actions).toContain('stopIntake');
    expect(h.state()).toBe('flushing');
    h.flush.resolve({ status: 'ok' });
    await settle();
    expect(h.state()).toBe('stopped');
    expect(h.context()).toMatchObject({ exitCode: 0, signal: 'SIGTERM', drainOutcome: 'complete' });
  });

  it('when the process crashes during startup, then it fails with PROCESS_CRASH and exits 1', async () => {
    const h = harness();
    h.send({ type: 'CRASH', error: new Error('oops') });
    expect(h.state()).toBe('draining.closing');
    await settle();
    expect(h.state()).toBe('flushing');
    expect(h.context()).toMatchObject({
      exitCode: 1,
      stopReason: 'crash',
      failure: { errorCode: 'PROCESS_CRASH', reason: 'oops' },
    });
  });
});

describe('ready: dependencies', () => {
  it('when an essential dependency goes down, then readiness is degraded; when it comes back, serving again', async () => {
    const h = harness();
    await toReady(h);
    h.send({ type: 'DEPENDENCY_DOWN', name: 'database', reason: 'connection refused' });
    expect(h.state()).toBe('ready.degraded');
    expect(readinessOf(h.actor.getSnapshot())).toBe('degraded');
    expect(h.actor.getSnapshot().hasTag(TAGS.accepting)).toBe(true);
    expect(h.context().dependencies.database).toEqual({
      essential: true,
      status: 'down',
      reason: 'connection refused',
    });
    h.send({ type: 'DEPENDENCY_UP', name: 'database' });
    expect(h.state()).toBe('ready.serving');
    expect(h.context().dependencies.database).toEqual({ essential: true, status: 'up' });
  });

  it('when a non-essential dependency goes down, then the service stays ready and reports it', async () => {
    const h = harness();
    await toReady(h);
    h.send({ type: 'DEPENDENCY_DOWN', name: 'broker', reason: 'timeout' });
    expect(h.state()).toBe('ready.serving');
    expect(h.context().dependencies.broker).toEqual({
      essential: false,
      status: 'down',
      reason: 'timeout',
    });
  });
});

describe('the golden shutdown path', () => {
  it('when SIGTERM arrives, then readiness fails at once but intake stays open for SHUTDOWN_DELAY', async () => {
    const h = harness({ inFlight: 3 });
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    expect(h.state()).toBe('draining.delaying');
    expect(readinessOf(h.actor.getSnapshot())).toBe('draining');
    expect(h.actor.getSnapshot().hasTag(TAGS.accepting)).toBe(true);
    expect(h.actor.getSnapshot().hasTag(TAGS.draining)).toBe(true);
    jest.advanceTimersByTime(BUDGETS.delayMs - 1);
    expect(h.actions).not.toContain('stopIntake');
    jest.advanceTimersByTime(1);
    await settle();
    expect(h.actions).toContain('stopIntake');
    expect(h.actions).toContain('logIntakeStopped');
    expect(h.state()).toBe('draining.drain.waiting');
    expect(h.actor.getSnapshot().hasTag(TAGS.accepting)).toBe(false);
    expect(h.actor.getSnapshot().hasTag(TAGS.intakeClosed)).toBe(true);
  });

  it('when the last request finishes and workers stopped, then it flushes, stops, and exits 0', async () => {
    const h = harness({ inFlight: 2 });
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    h.requestsFinish();
    expect(h.state()).toBe('draining.closing');
    expect(h.actions.slice(-2)).toEqual(['logDrainComplete', 'closeResources']);
    await settle();
    expect(h.state()).toBe('flushing');
    expect(h.actor.getSnapshot().hasTag(TAGS.stopping)).toBe(true);
    h.flush.resolve({ status: 'ok' });
    await settle();
    expect(h.state()).toBe('stopped');
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.context()).toMatchObject({ exitCode: 0, drainOutcome: 'complete', flushStatus: 'ok' });
    expect(h.actions).toEqual([
      'logServiceStart',
      'startServingWindow',
      'logServiceReady',
      'armHardStop',
      'logShutdownBegin',
      'watchConnections',
      'stopWorkers',
      'stopIntake',
      'logIntakeStopped',
      'logDrainComplete',
      'closeResources',
      'flushTelemetry',
      'logTelemetryFlush',
      'exitProcess',
    ]);
    // Each step's start is on the machine's clock, in order.
    const { clock } = h.context();
    expect(clock.shutdownStartedAt).toBeDefined();
    expect(clock.intakeStoppedAt).toBeGreaterThanOrEqual(clock.shutdownStartedAt ?? Infinity);
    expect(clock.closeStartedAt).toBeGreaterThanOrEqual(clock.intakeStoppedAt ?? Infinity);
    expect(clock.flushStartedAt).toBeGreaterThanOrEqual(clock.closeStartedAt ?? Infinity);
    expect(clock.stoppedAt).toBeGreaterThanOrEqual(clock.flushStartedAt ?? Infinity);
    expect(clock.intakeStoppedAt).toBe(clock.shutdownStartedAt! + BUDGETS.delayMs);
  });

  it('when intake has stopped, then the drain deadline is intake stopped + DRAIN_TIMEOUT, read from the machine', async () => {
    const h = harness({ inFlight: 1 });
    await toReady(h);
    expect(drainDeadlineOf(h.context())).toBeUndefined();
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    expect(drainDeadlineOf(h.context())).toBe(
      (h.context().clock.intakeStoppedAt ?? 0) + BUDGETS.drainTimeoutMs,
    );
  });

  it('when requests are done but workers have not stopped, then the drain waits for them', async () => {
    const h = harness({ workersStopAtOnce: false });
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGINT' });
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    expect(h.state()).toBe('draining.drain.waiting');
    h.send({ type: 'WORKERS_STOPPED' });
    await settle();
    expect(h.state()).toBe('flushing');
    expect(h.context().signal).toBe('SIGINT');
  });
});

describe('closing resources, after the drain and before the flush', () => {
  async function toClosing(options: Parameters<typeof harness>[0] = {}) {
    const h = harness({ resourcesCloseAtOnce: false, ...options });
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    expect(h.state()).toBe('draining.closing');
    return h;
  }

  it('when resources are closing, then readiness says stopping and new work gets the fast 503 (stopping tag)', async () => {
    const h = await toClosing();
    expect(readinessOf(h.actor.getSnapshot())).toBe('stopping');
    expect(h.actor.getSnapshot().hasTag(TAGS.stopping)).toBe(true);
    expect(h.actions).not.toContain('flushTelemetry');
    h.close.resolve();
    await settle();
    expect(h.state()).toBe('flushing');
  });

  it('when closing outlives CLOSE_TIMEOUT, then it is logged and the flush starts with its whole budget', async () => {
    const h = await toClosing();
    jest.advanceTimersByTime(BUDGETS.closeTimeoutMs - 1);
    expect(h.state()).toBe('draining.closing');
    jest.advanceTimersByTime(1);
    expect(h.state()).toBe('flushing');
    expect(h.actions.slice(-2)).toEqual(['logCloseTimeout', 'flushTelemetry']);
    // The flush's own deadline counts from the flush's start.
    jest.advanceTimersByTime(BUDGETS.flushTimeoutMs - 1);
    expect(h.state()).toBe('flushing');
    jest.advanceTimersByTime(1);
    expect(h.state()).toBe('stopped');
    expect(h.context().flushStatus).toBe('timeout');
  });

  it('when a signal arrives while closing, then closing goes on (it has its own budget) and the exit code is 1', async () => {
    const h = await toClosing();
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    expect(h.state()).toBe('draining.closing');
    expect(h.actions.filter((a) => a === 'closeResources')).toHaveLength(1);
    h.close.resolve();
    h.flush.resolve({ status: 'ok' });
    await settle();
    expect(h.state()).toBe('stopped');
    expect(h.context().exitCode).toBe(1);
  });

  it('when startup fails after opening resources, then they are closed before the flush', async () => {
    const h = harness();
    h.startup.reject(new Error('boom'));
    await settle();
    expect(h.actions).toEqual([
      'logServiceStart',
      'logStartFailed',
      'closeResources',
      'flushTelemetry',
    ]);
  });
});

describe('readiness and load shedding', () => {
  it('when the service becomes ready, then the load window starts over before it says ready', async () => {
    const h = harness();
    await toReady(h);
    expect(h.actions.slice(0, 3)).toEqual([
      'logServiceStart',
      'startServingWindow',
      'logServiceReady',
    ]);
  });
});

describe('shutdown deadlines and failures', () => {
  it('when the drain outlives DRAIN_TIMEOUT, then remaining work is aborted, telemetry still flushes, and the exit code is 1', async () => {
    const h = harness({ inFlight: 1 });
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    jest.advanceTimersByTime(BUDGETS.drainTimeoutMs - 1);
    expect(h.state()).toBe('draining.drain.waiting');
    jest.advanceTimersByTime(1);
    await settle();
    expect(h.state()).toBe('flushing');
    expect(h.actions.slice(-5)).toEqual([
      'logDrainTimeout',
      'logPendingWork',
      'abortInFlight',
      'closeResources',
      'flushTelemetry',
    ]);
    expect(h.context()).toMatchObject({ exitCode: 1, drainOutcome: 'timeout' });
  });

  it('when a second signal arrives while draining, then the drain is skipped, telemetry flushes, and the exit code is 1', async () => {
    const h = harness({ inFlight: 1 });
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    await settle();
    expect(h.state()).toBe('flushing');
    expect(h.actions).toContain('abortInFlight');
    expect(h.actions).toContain('logPendingWork');
    expect(h.context()).toMatchObject({ exitCode: 1, drainOutcome: 'skipped' });
    h.flush.resolve({ status: 'ok' });
    await settle();
    expect(h.state()).toBe('stopped');
  });

  it('when a signal arrives while flushing, then the flush goes on and the exit code becomes 1', async () => {
    const h = harness();
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    expect(h.state()).toBe('flushing');
    h.send({ type: 'SIGNAL', signal: 'SIGINT' });
    expect(h.state()).toBe('flushing');
    h.flush.resolve({ status: 'ok' });
    await settle();
    expect(h.context().exitCode).toBe(1);
  });

  it('when the process crashes while ready, then it takes the graceful path and exits 1', async () => {
    const h = harness();
    await toReady(h);
    h.send({ type: 'CRASH', error: new Error('handler blew up') });
    expect(h.state()).toBe('draining.delaying');
    expect(h.context()).toMatchObject({ exitCode: 1, stopReason: 'crash' });
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    h.flush.resolve({ status: 'ok' });
    await settle();
    expect(h.state()).toBe('stopped');
    expect(h.context().exitCode).toBe(1);
  });

  it('when the process crashes while draining, then the drain goes on and the exit code becomes 1', async () => {
    const h = harness();
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    h.send({ type: 'CRASH', error: new Error('late') });
    expect(h.state()).toBe('draining.delaying');
    expect(h.context().exitCode).toBe(1);
  });

  it('when the flush outlives FLUSH_TIMEOUT, then it stops with status timeout and the exit code is unchanged', async () => {
    const h = harness();
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    jest.advanceTimersByTime(BUDGETS.flushTimeoutMs - 1);
    expect(h.state()).toBe('flushing');
    jest.advanceTimersByTime(1);
    expect(h.state()).toBe('stopped');
    expect(h.context()).toMatchObject({ flushStatus: 'timeout', exitCode: 0 });
  });

  it('when the flush fails, then it stops with status error and the exit code is unchanged', async () => {
    const h = harness();
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    h.flush.reject(new Error('collector unavailable'));
    await settle();
    expect(h.state()).toBe('stopped');
    expect(h.context()).toMatchObject({ flushStatus: 'error', exitCode: 0 });
  });
});

describe('statePath', () => {
  it('when given nested state values, then it returns the dotted active path', () => {
    expect(statePath('starting')).toBe('starting');
    expect(statePath({ ready: 'serving' })).toBe('ready.serving');
    expect(statePath({ draining: { drain: 'waiting' } })).toBe('draining.drain.waiting');
  });
});
