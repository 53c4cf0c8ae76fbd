// The one way to call a dependency: retries, timeouts, the breaker and the bulkhead, against a
// fake dependency whose failures the test scripts.
import { AppError } from '../../src/errors/catalogue';
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

  it('when the error is not retryable, then there is one attempt and DEPENDENCY_UNAVAILABLE keeps the cause', async () => {
    const { policy } = setup();
    let calls = 0;
    const cause = new Error('syntax error at or near "SELEC"');
    const error = await policy
      .call(
        () => {
          calls += 1;
          return Promise.reject(cause);
        },
        { retry: true },
      )
      .catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('DEPENDENCY_UNAVAILABLE');
    expect((error as AppError).cause).toBe(cause);
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
    setTimeout(() => controller.abort(new Error('deadline')), 50);
    const code = await codeOf(
      policy.call(() => ((calls += 1), Promise.reject(refused())), {
        retry: true,
        signal: controller.signal,
      }),
    );
    expect(code).toBe('REQUEST_TIMEOUT');
    expect(calls).toBe(1);
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

  it('when the half-open trial succeeds, then the breaker closes and the dependency is reported up', async () => {
    const { policy, states, availability, events } = setup();
    for (let i = 0; i < 3; i += 1)
      await codeOf(policy.call(() => Promise.reject(refused()), { retry: false }));
    await new Promise((resolve) => setTimeout(resolve, 200));
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
    await new Promise((resolve) => setTimeout(resolve, 200));
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
});
