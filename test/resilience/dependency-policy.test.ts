// The one way to call a dependency: retries, timeouts, the breaker and the bulkhead, against a
// fake dependency whose failures the test scripts.
import { setTimeout as delay } from 'node:timers/promises';
import { AppError } from '../../src/errors/catalogue';
import { Cancellation, type CancelSignal } from '../../src/resilience/cancellation';
import {
  createDependencyPolicy,
  type DependencyPolicyOptions,
} from '../../src/resilience/dependency-policy';
import type { BreakerState } from '../../src/telemetry/metrics';
import { captureLogger } from '../helpers/log-capture';

const OPTIONS: DependencyPolicyOptions = {
  name: 'database',
  attemptTimeoutMs: 200,
  maxAttempts: 3,
  initialBackoffMs: 5,
  maxBackoffMs: 20,
  breakerThreshold: 3,
  halfOpenAfterMs: 150,
  concurrency: 4,
  queue: 0,
  isRetryable: (error) => (error as NodeJS.ErrnoException).code === 'ECONNREFUSED',
  // The fake dependency's own failures: refused connections and scripted outages.
  isFailure: (error) =>
    ['ECONNREFUSED', 'OUTAGE'].includes(String((error as { code?: unknown }).code)),
};

function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
}

function setup(overrides: Partial<DependencyPolicyOptions> = {}) {
  const log = captureLogger();
  const states: BreakerState[] = [];
  const availability: [boolean, string][] = [];
  const policy = createDependencyPolicy(
    { ...OPTIONS, ...overrides },
    {
      logger: log.logger,
      onBreakerState: (state) => states.push(state),
      onAvailability: (available, reason) => availability.push([available, reason]),
    },
  );
  return { policy, log, states, availability, events: () => log.records().map((r) => r.event) };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return error instanceof AppError ? error.code : `not an AppError: ${String(error)}`;
  }
}

describe('retries', () => {
  it('when a retryable error happens twice, then the call is retried with backoff and succeeds', async () => {
    const { policy } = setup({ breakerThreshold: 10 });
    let calls = 0;
    const result = await policy.call(
      async () => {
        calls += 1;
        if (calls < 3) throw refused();
        return Promise.resolve('row');
      },
      { retry: true },
    );
    expect(result).toBe('row');
    expect(calls).toBe(3);
  });

  /** One call failing with `cause` (not retryable): how many attempts, and what it rejects with. */
  async function failOnce(cause: Error): Promise<{ calls: number; error: unknown }> {
    const { policy } = setup();
    let calls = 0;
    const error = await policy
      .call(() => ((calls += 1), Promise.reject(cause)), { retry: true })
      .catch((e: unknown) => e);
    return { calls, error };
  }

  it('when the dependency fails in a way a retry cannot fix, then there is one attempt and DEPENDENCY_UNAVAILABLE keeps the cause', async () => {
    const cause = Object.assign(new Error('could not write to file: No space left on device'), {
      code: 'OUTAGE',
    });
    const { calls, error } = await failOnce(cause);
    expect(calls).toBe(1);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('DEPENDENCY_UNAVAILABLE');
    expect((error as AppError).cause).toBe(cause);
  });

  it("when the error is the call's own (the dependency refused its data), then there is one attempt and the error is passed on unchanged", async () => {
    const cause = Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), {
      code: '22021',
    });
    const { calls, error } = await failOnce(cause);
    expect(calls).toBe(1);
    expect(error).toBe(cause);
  });

  it('when the call is not safe to repeat, then it is never retried', async () => {
    const { policy } = setup();
    let calls = 0;
    await codeOf(policy.call(() => ((calls += 1), Promise.reject(refused())), { retry: false }));
    expect(calls).toBe(1);
  });

  it('when every attempt outlives the attempt timeout, then after maxAttempts the call fails with DEPENDENCY_UNAVAILABLE', async () => {
    const { policy } = setup({ attemptTimeoutMs: 30, breakerThreshold: 10 });
    let calls = 0;
    const started = Date.now();
    const code = await codeOf(
      policy.call(
        (signal) => {
          calls += 1;
          return new Promise((_resolve, reject) =>
            signal.addEventListener('abort', () => reject(new Error('cancelled'))),
          );
        },
        { retry: true },
      ),
    );
    expect(code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(calls).toBe(3);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("when the request's own deadline passes, then no further attempt is made and the error is REQUEST_TIMEOUT", async () => {
    const { policy } = setup({ initialBackoffMs: 200, maxBackoffMs: 200, breakerThreshold: 10 });
    const controller = new AbortController();
    let calls = 0;
    // The deadline passes while the first attempt fails (not on a timer: the backoff has jitter,
    // and a short one could fit a second attempt before any fixed time).
    const code = await codeOf(
      policy.call(
        () => {
          calls += 1;
          controller.abort(new Error('deadline'));
          return Promise.reject(refused());
        },
        { retry: true, signal: controller.signal },
      ),
    );
    expect(code).toBe('REQUEST_TIMEOUT');
    expect(calls).toBe(1);
  });

  it("when the request's Cancellation aborts mid-attempt, then the attempt's signal fires, the call fails with REQUEST_TIMEOUT and no listener is left on the request", async () => {
    const { policy } = setup({ attemptTimeoutMs: 5_000, breakerThreshold: 10 });
    const request = new Cancellation();
    const attemptSignals: CancelSignal[] = [];
    const call = policy.call(
      (signal) => {
        attemptSignals.push(signal);
        return new Promise((_resolve, reject) =>
          signal.addEventListener('abort', () => reject(new Error('query cancelled'))),
        );
      },
      { retry: true, signal: request },
    );
    while (attemptSignals.length === 0) await new Promise((resolve) => setImmediate(resolve));
    request.abort(new Error('client went away'));
    expect(await codeOf(call)).toBe('REQUEST_TIMEOUT');
    expect(attemptSignals).toHaveLength(1);
    expect(attemptSignals[0]?.aborted).toBe(true);
    expect(policy.breakerState()).toBe('closed');

    // The finished call left nothing listening on the request: a second abort-listener count
    // would show as a call to the attempt's cancel after it settled.
    const later = new Cancellation();
    let attempt: CancelSignal | undefined;
    await policy.call((signal) => ((attempt = signal), Promise.resolve(1)), {
      retry: true,
      signal: later,
    });
    later.abort(new Error('after the answer'));
    expect(attempt?.aborted).toBe(false);
  });
});

describe('circuit breaker', () => {
  it('when failures reach the threshold, then the breaker opens, calls fail fast with CIRCUIT_OPEN, and the dependency is reported down', async () => {
    const { policy, states, availability, events, log } = setup();
    for (let i = 0; i < 3; i += 1)
      await codeOf(policy.call(() => Promise.reject(refused()), { retry: false }));
    expect(policy.breakerState()).toBe('open');
    let called = false;
    const code = await codeOf(
      policy.call(() => ((called = true), Promise.resolve(1)), { retry: true }),
    );
    expect(code).toBe('CIRCUIT_OPEN');
    expect(called).toBe(false);
    expect(states).toEqual(['closed', 'open']);
    expect(availability).toEqual([[false, 'circuit open: connect ECONNREFUSED 127.0.0.1:5432']]);
    expect(events()).toEqual(['breaker.open']);
    expect(log.records()[0]).toMatchObject({
      level: 'warn',
      dependency: 'database',
      half_open_after_ms: 150,
    });
  });

  it("when many calls fail on the caller's own data, then the breaker stays closed and the dependency is never reported down", async () => {
    const { policy, states, availability, events } = setup();
    const dataError = (): Error =>
      Object.assign(new Error('invalid input syntax for type json'), { code: '22P02' });
    for (let i = 0; i < 10; i += 1)
      await policy.call(() => Promise.reject(dataError()), { retry: true }).catch(() => undefined);
    expect(policy.breakerState()).toBe('closed');
    expect(states).toEqual(['closed']);
    expect(availability).toEqual([]);
    expect(events()).toEqual([]);
    // The dependency's own failures still count.
    for (let i = 0; i < 3; i += 1)
      await codeOf(policy.call(() => Promise.reject(refused()), { retry: false }));
    expect(policy.breakerState()).toBe('open');
  });

  it('when callers give up mid-call again and again, then the breaker stays closed (their clients went away, the dependency did not fail)', async () => {
    const { policy, states } = setup({ attemptTimeoutMs: 1_000 });
    for (let i = 0; i < 6; i += 1) {
      const controller = new AbortController();
      const call = policy.call(
        (signal) =>
          new Promise((_resolve, reject) =>
            signal.addEventListener('abort', () => reject(new Error('query cancelled'))),
          ),
        { retry: true, signal: controller.signal },
      );
      setTimeout(() => controller.abort(new Error('client went away')), 5);
      expect(await codeOf(call)).toBe('REQUEST_TIMEOUT');
    }
    expect(policy.breakerState()).toBe('closed');
    expect(states).toEqual(['closed']);
  });

  it('when attempts time out, then they count against the breaker', async () => {
    const { policy } = setup({ attemptTimeoutMs: 10, maxAttempts: 1 });
    for (let i = 0; i < 3; i += 1)
      await codeOf(policy.call(() => new Promise(() => undefined), { retry: false }));
    expect(policy.breakerState()).toBe('open');
  });

  it('when the half-open trial succeeds, then the breaker closes and the dependency is reported up', async () => {
    const { policy, states, availability, events } = setup();
    for (let i = 0; i < 3; i += 1)
      await codeOf(policy.call(() => Promise.reject(refused()), { retry: false }));
    await delay(200);
    expect(await policy.call(() => Promise.resolve('back'), { retry: false })).toBe('back');
    expect(policy.breakerState()).toBe('closed');
    expect(states).toEqual(['closed', 'open', 'half_open', 'closed']);
    expect(events()).toEqual(['breaker.open', 'breaker.half_open', 'breaker.closed']);
    expect(availability.at(-1)).toEqual([true, 'recovered']);
  });

  it('when the half-open trial fails, then the breaker opens again', async () => {
    const { policy, states } = setup();
    for (let i = 0; i < 3; i += 1)
      await codeOf(policy.call(() => Promise.reject(refused()), { retry: false }));
    await delay(200);
    await codeOf(policy.call(() => Promise.reject(refused()), { retry: false }));
    expect(policy.breakerState()).toBe('open');
    expect(states).toEqual(['closed', 'open', 'half_open', 'open']);
  });
});

describe('bulkhead', () => {
  it('when more calls run than the bulkhead allows, then the extra one is refused with OVERLOADED', async () => {
    const { policy } = setup({ concurrency: 1, queue: 0 });
    let release: () => void = () => undefined;
    const first = policy.call(() => new Promise<void>((resolve) => (release = resolve)), {
      retry: false,
    });
    expect(await codeOf(policy.call(() => Promise.resolve(), { retry: false }))).toBe('OVERLOADED');
    release();
    await first;
  });

  it('when calls wait in the queue, then each runs as a slot frees, in order, never more than the bulkhead allows at once', async () => {
    const { policy } = setup({ concurrency: 2, queue: 3 });
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const calls = Array.from({ length: 5 }, (_, i) =>
      policy.call(
        async () => {
          running += 1;
          most = Math.max(most, running);
          order.push(i);
          await delay(5);
          running -= 1;
          return i;
        },
        { retry: false },
      ),
    );
    expect(await Promise.all(calls)).toEqual([0, 1, 2, 3, 4]);
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });

  it("when a queued call's deadline passes before its turn, then it never runs and answers REQUEST_TIMEOUT", async () => {
    const { policy } = setup({ concurrency: 1, queue: 1 });
    let release: () => void = () => undefined;
    const first = policy.call(() => new Promise<void>((resolve) => (release = resolve)), {
      retry: false,
    });
    const controller = new AbortController();
    let ran = false;
    const queued = policy.call(() => ((ran = true), Promise.resolve()), {
      retry: false,
      signal: controller.signal,
    });
    controller.abort(new Error('deadline'));
    release();
    await first;
    expect(await codeOf(queued)).toBe('REQUEST_TIMEOUT');
    expect(ran).toBe(false);
  });
});

describe('half-open breaker and concurrent calls', () => {
  it('when calls arrive during the half-open trial, then they wait for it and run once it closed the breaker', async () => {
    const { policy, states } = setup();
    for (let i = 0; i < 3; i += 1)
      await codeOf(policy.call(() => Promise.reject(refused()), { retry: false }));
    await delay(200);
    let endTrial: () => void = () => undefined;
    let trialDone = false;
    const trial = policy.call(
      () =>
        new Promise<string>((resolve) => {
          endTrial = () => {
            trialDone = true;
            resolve('trial');
          };
        }),
      { retry: false },
    );
    expect(policy.breakerState()).toBe('half_open');
    const waiting = policy.call(() => Promise.resolve(trialDone ? 'after' : 'during'), {
      retry: false,
    });
    await delay(10);
    endTrial();
    expect(await trial).toBe('trial');
    expect(await waiting).toBe('after');
    expect(states).toEqual(['closed', 'open', 'half_open', 'closed']);
  });
});
