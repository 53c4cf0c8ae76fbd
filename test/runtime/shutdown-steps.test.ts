// The runtime's shutdown effects as units, without a process: workers stopping, resources closing
// in order within their budgets, what is still running, the hard stop, startup's order.
import { createServer, type ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { ResourceCloseTimeout } from '../../src/contracts';
import { RequestTracker } from '../../src/http/request-tracker';
import { createHardStop } from '../../src/runtime/hard-stop';
import { activeHandleKinds, pendingWork } from '../../src/runtime/pending-work';
import { budgetOf, createResourceCloser } from '../../src/runtime/resources';
import { startup, StartupCheckError, type StartupParts } from '../../src/runtime/startup';
import { createWorkerStopper } from '../../src/runtime/workers';
import { captureLogger } from '../helpers/log-capture';

const never = (): Promise<void> => new Promise<void>(() => undefined);

describe('stopping workers', () => {
  it('when workers stop, then each is asked once, the ones not done are pending, and a failure is logged without stopping the rest', async () => {
    const log = captureLogger();
    let releaseSlow: () => void = () => undefined;
    const calls: string[] = [];
    const stopper = createWorkerStopper(
      [
        { name: 'quick', stop: () => Promise.resolve(void calls.push('quick')) },
        {
          name: 'slow',
          stop: () => {
            calls.push('slow');
            return new Promise<void>((resolve) => (releaseSlow = resolve));
          },
        },
        { name: 'broken', stop: () => Promise.reject(new Error('checkpoint failed')) },
      ],
      log.logger,
    );
    expect(stopper.pending()).toEqual(['quick', 'slow', 'broken']);
    const all = stopper.stopAll();
    expect(stopper.stopAll()).toBe(all);
    await delay(5);
    expect(stopper.pending()).toEqual(['slow']);
    releaseSlow();
    await all;
    expect(stopper.pending()).toEqual([]);
    expect(calls).toEqual(['quick', 'slow']);
    expect(log.records()).toEqual([
      expect.objectContaining({
        level: 'error',
        event: 'worker.stop_failed',
        worker: 'broken',
        error_code: 'WORKER_STOP_FAILED',
      }),
    ]);
  });
});

describe('closing resources', () => {
  it('when resources close, then one at a time in declared order, each logged with close_ms', async () => {
    const log = captureLogger();
    const order: string[] = [];
    const closer = createResourceCloser(
      ['database', 'broker'].map((name) => ({
        name,
        close: async () => {
          order.push(`${name} start`);
          await delay(10);
          order.push(`${name} end`);
        },
      })),
      { logger: log.logger, stepBudgetMs: 1_000 },
    );
    await closer.closeAll();
    expect(order).toEqual(['database start', 'database end', 'broker start', 'broker end']);
    expect(log.records().map((r) => [r.event, r.resource])).toEqual([
      ['resource.closed', 'database'],
      ['resource.closed', 'broker'],
    ]);
    expect(log.records()[0]?.close_ms).toBeGreaterThanOrEqual(9);
    expect(closer.pending()).toEqual([]);
  });

  it('when one never closes, then it is given up at its budget and the next one still closes', async () => {
    const log = captureLogger();
    const closer = createResourceCloser(
      [
        { name: 'hung', close: never },
        { name: 'fine', close: () => Promise.resolve() },
      ],
      { logger: log.logger, stepBudgetMs: 100 },
    );
    const started = Date.now();
    await closer.closeAll();
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(Date.now() - started).toBeLessThan(500);
    expect(log.records()).toEqual([
      expect.objectContaining({
        event: 'resource.close_timeout',
        resource: 'hung',
        budget_ms: 50,
        error_code: 'RESOURCE_CLOSE_TIMEOUT',
        level: 'warn',
      }),
      expect.objectContaining({ event: 'resource.closed', resource: 'fine' }),
    ]);
    expect(closer.pending()).toEqual(['hung']);
    expect(closer.states()).toEqual({ hung: 'close_timeout', fine: 'closed' });
  });

  it('when one fails, then it is logged as close_failed and the others close', async () => {
    const log = captureLogger();
    const closer = createResourceCloser(
      [
        { name: 'broken', close: () => Promise.reject(new Error('gone')) },
        { name: 'fine', close: () => Promise.resolve() },
      ],
      { logger: log.logger, stepBudgetMs: 1_000 },
    );
    await closer.closeAll();
    expect(log.records().map((r) => [r.event, r.level, r.error_code])).toEqual([
      ['resource.close_failed', 'error', 'RESOURCE_CLOSE_FAILED'],
      ['resource.closed', 'info', undefined],
    ]);
  });

  it('when one stops waiting by itself (its own timer), then it is a close_timeout with its reason, never closed', async () => {
    const log = captureLogger();
    const closer = createResourceCloser(
      [
        {
          name: 'database',
          close: () =>
            Promise.reject(new ResourceCloseTimeout('1 connection(s) still checked out')),
        },
      ],
      { logger: log.logger, stepBudgetMs: 1_000 },
    );
    await closer.closeAll();
    expect(log.records()).toEqual([
      expect.objectContaining({
        event: 'resource.close_timeout',
        level: 'warn',
        resource: 'database',
        reason: '1 connection(s) still checked out',
      }),
    ]);
    expect(closer.pending()).toEqual(['database']);
  });

  it('when a resource declares its own budget, then it keeps it; others share the step equally', () => {
    expect(budgetOf({ name: 'a', closeTimeoutMs: 700, close: never }, 1_000, 2)).toBe(700);
    expect(budgetOf({ name: 'b', close: never }, 1_000, 4)).toBe(250);
  });
});

describe('what is still running', () => {
  it('when requests are in flight, then the oldest are listed with method, route, age, id and stage', () => {
    const tracker = new RequestTracker();
    const response = (method: string, url: string) =>
      ({
        req: { method, url },
        writableFinished: false,
      }) as unknown as ServerResponse;
    const first = tracker.begin(response('GET', '/v1/orders/1'), 'req-1');
    tracker.begin(response('POST', '/v1/orders'), 'req-2');
    tracker.startHandling(first);
    const work = pendingWork({
      tracker,
      workers: () => ['payments-consumer'],
      resources: () => ['database', 'broker'],
    });
    expect(work).toMatchObject({
      in_flight: 2,
      workers: ['payments-consumer'],
      resources: ['database', 'broker'],
    });
    expect(work.requests.map((r) => [r.method, r.route, r.request_id, r.stage])).toEqual([
      ['GET', '(unmatched)', 'req-1', 'handler'],
      ['POST', '(unmatched)', 'req-2', 'body'],
    ]);
    expect(work.requests[0]?.age_ms).toBeGreaterThanOrEqual(0);
  });

  it('when handles are counted, then they are grouped by kind', () => {
    expect(activeHandleKinds(() => ['Timeout', 'TCPSocketWrap', 'Timeout'])).toEqual({
      Timeout: 2,
      TCPSocketWrap: 1,
    });
  });
});

describe('the hard stop', () => {
  it('when armed, then it fires once after its time; arming again does not restart it; disarmed, it never fires', async () => {
    let fired = 0;
    const stop = createHardStop(30, () => (fired += 1));
    stop.arm();
    await delay(15);
    stop.arm();
    await delay(25);
    expect(fired).toBe(1);
    const quiet = createHardStop(20, () => (fired += 1));
    quiet.arm();
    quiet.disarm();
    await delay(40);
    expect(fired).toBe(1);
  });
});

describe('startup', () => {
  const LOOPBACK = { http: { host: '127.0.0.1', port: 0 }, ops: { host: '127.0.0.1', port: 0 } };
  /** Runs startup on two fresh servers (port 0) with `checks`. */
  function run(
    checks: StartupParts['checks'],
    servers = { mainServer: createServer(), opsServer: createServer() },
  ) {
    return {
      ...servers,
      result: startup({ config: LOOPBACK, ...servers, checks }, new AbortController().signal),
    };
  }

  it('when it runs, then the ops listener binds first, the checks run together, and the main listener opens once all have passed', async () => {
    const order: string[] = [];
    const mainServer = createServer();
    const opsServer = createServer();
    mainServer.on('listening', () => order.push('main'));
    opsServer.on('listening', () => order.push('ops'));
    let releaseA: () => void = () => undefined;
    let bDone: () => void = () => undefined;
    const bFinished = new Promise<void>((resolve) => {
      bDone = resolve;
    });
    try {
      const { result } = run(
        [
          {
            name: 'a',
            run: () =>
              new Promise<void>((resolve) => {
                order.push('check a started');
                releaseA = () => {
                  order.push('check a done');
                  resolve();
                };
              }),
          },
          {
            name: 'b',
            run: () => {
              order.push('check b started');
              order.push('check b done');
              bDone();
              return Promise.resolve();
            },
          },
        ],
        { mainServer, opsServer },
      );
      // b started and finished while a is still waiting; the main listener waits for a.
      await bFinished;
      await delay(20);
      expect(mainServer.listening).toBe(false);
      releaseA();
      const output = await result;
      expect(order).toEqual([
        'ops',
        'check a started',
        'check b started',
        'check b done',
        'check a done',
        'main',
      ]);
      expect(output.bind).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(output.opsBind).toMatch(/^127\.0\.0\.1:\d+$/);
    } finally {
      mainServer.close();
      opsServer.close();
    }
  });

  it('when one check fails while another still waits, then startup fails naming the failed one, the other is aborted and the main listener never opens', async () => {
    let waiting: AbortSignal | undefined;
    const { mainServer, opsServer, result } = run([
      {
        name: 'auth-keys',
        run: (signal) => {
          waiting = signal;
          return new Promise<void>((_resolve, reject) => {
            signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
          });
        },
      },
      {
        name: 'database',
        run: async () => {
          await delay(10);
          throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
        },
      },
    ]);
    try {
      const error = await result.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StartupCheckError);
      expect((error as StartupCheckError).message).toBe(
        'database: connect ECONNREFUSED 127.0.0.1:5432',
      );
      expect(waiting?.aborted).toBe(true);
      expect(mainServer.listening).toBe(false);
    } finally {
      opsServer.close();
    }
  });

  it('when a check fails, then startup fails naming it and the main listener never opens', async () => {
    const { mainServer, opsServer, result } = run([
      { name: 'database', run: () => Promise.reject(new Error('refused')) },
    ]);
    try {
      const error = await result.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StartupCheckError);
      expect((error as StartupCheckError).message).toBe('database: refused');
      expect((error as StartupCheckError).errorCode).toBe('DEPENDENCY_UNAVAILABLE');
      expect(mainServer.listening).toBe(false);
    } finally {
      opsServer.close();
    }
  });
});
