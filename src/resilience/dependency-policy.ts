// The one way to call a dependency (database, broker, cache): bulkhead -> retry with exponential
// backoff and jitter (retryable errors only, idempotent or idempotency-key-protected calls only,
// never past the request's own deadline) -> circuit breaker -> per-attempt timeout. Built on
// cockatiel. Breaker transitions are logged, exported as metrics and, for an essential
// dependency, reported so the lifecycle machine (and so readiness) tells the truth.
//
// Only the dependency's own failures count against the breaker: it unreachable, too slow, or
// failing on its side (`isFailure`; attempt timeouts always). A caller's data that the dependency
// refuses (a NUL in text, a constraint) is the caller's problem: counting it let five bad orders
// open the breaker for every client (issue #11). Such an error is passed on as it is (the error
// mapper answers 500 INTERNAL and logs it: validation should have refused it). A caller that went
// away mid-call (its signal aborted) does not count either.
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  bulkhead,
  CircuitState,
  circuitBreaker,
  ConsecutiveBreaker,
  ExponentialBackoff,
  handleWhen,
  retry,
  TaskCancelledError,
  timeout,
  TimeoutStrategy,
  wrap,
} from 'cockatiel';
import { isNativeError } from 'node:util/types';
import { AppError } from '../errors/catalogue';
import type { Logger } from '../telemetry/logger';
import type { BreakerState } from '../telemetry/metrics';

export interface DependencyPolicyOptions {
  readonly name: string;
  /** Time allowed for one attempt. */
  readonly attemptTimeoutMs: number;
  /** Attempts in all, first one included (1 = no retry). */
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** Consecutive failures that open the breaker. */
  readonly breakerThreshold: number;
  /** How long the breaker stays open before one trial call (half-open). */
  readonly halfOpenAfterMs: number;
  /** Calls running at once, and calls allowed to wait for a slot. */
  readonly concurrency: number;
  readonly queue: number;
  /** Which errors are worth retrying (connection refused, timeouts, serialization failures...). */
  readonly isRetryable: (error: Error) => boolean;
  /**
   * Which errors mean the dependency itself is failing (connection lost or refused, server-side
   * failures): these count against the breaker. Attempt timeouts always do. Anything else is
   * the call's own problem and is rethrown unchanged.
   */
  readonly isFailure: (error: Error) => boolean;
}

export interface DependencyHooks {
  readonly logger: Logger;
  readonly onBreakerState?: (state: BreakerState) => void;
  /** For essential dependencies: the breaker opened (down) or closed again (up). */
  readonly onAvailability?: (available: boolean, reason: string) => void;
}

export interface CallOptions {
  /** The request's AbortSignal: no attempt or backoff outlives it. */
  readonly signal?: AbortSignal | undefined;
  /** Retry only calls that are safe to repeat (idempotent, or protected by an idempotency key). */
  readonly retry: boolean;
}

export interface DependencyPolicy {
  readonly name: string;
  /** Runs `fn` under the policy; failures become AppErrors (DEPENDENCY_UNAVAILABLE, CIRCUIT_OPEN, OVERLOADED). */
  call<T>(fn: (signal: AbortSignal) => Promise<T>, options: CallOptions): Promise<T>;
  breakerState(): BreakerState;
}

const STATE_NAMES: Readonly<Record<CircuitState, BreakerState>> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half_open',
  [CircuitState.Isolated]: 'open',
};

export function createDependencyPolicy(
  options: DependencyPolicyOptions,
  hooks: DependencyHooks,
): DependencyPolicy {
  const { name } = options;
  const { logger } = hooks;
  let lastFailure = 'unknown';
  const counts = (error: Error): boolean =>
    error instanceof TaskCancelledError ||
    (!(error instanceof AppError) && !(error instanceof CallerGone) && options.isFailure(error));
  const breaker = circuitBreaker(handleWhen(counts), {
    halfOpenAfter: options.halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(options.breakerThreshold),
  });
  breaker.onStateChange((state) => {
    const named = STATE_NAMES[state];
    hooks.onBreakerState?.(named);
    if (named === 'open') {
      logger.warn('breaker.open', {
        dependency: name,
        reason: lastFailure,
        half_open_after_ms: options.halfOpenAfterMs,
      });
      hooks.onAvailability?.(false, `circuit open: ${lastFailure}`);
    } else if (named === 'half_open') {
      logger.info('breaker.half_open', { dependency: name });
    } else {
      logger.info('breaker.closed', { dependency: name });
      hooks.onAvailability?.(true, 'recovered');
    }
  });
  hooks.onBreakerState?.('closed');

  // abortOnReturn off: aborting every finished attempt's signal builds a DOMException per call
  // (measured as the resilience policy's main cost per order); nothing listens to it by then.
  const attemptTimeout = timeout(options.attemptTimeoutMs, {
    strategy: TimeoutStrategy.Aggressive,
    abortOnReturn: false,
  });
  const retrying = retry(
    handleWhen(
      (error) =>
        !(error instanceof BrokenCircuitError) &&
        (error instanceof TaskCancelledError || options.isRetryable(error)),
    ),
    {
      maxAttempts: Math.max(0, options.maxAttempts - 1),
      backoff: new ExponentialBackoff({
        initialDelay: options.initialBackoffMs,
        maxDelay: options.maxBackoffMs,
      }),
    },
  );
  const limiter = bulkhead(options.concurrency, options.queue);
  const withRetry = wrap(limiter, retrying);

  return {
    name,
    breakerState: () => STATE_NAMES[breaker.state],
    async call(fn, callOptions) {
      const caller = callOptions.signal;
      // The attempt, under its timeout; what fails after the caller stopped waiting (including
      // the timeout policy's own cancellation) is CallerGone, which the breaker does not count.
      const attempt = async (signal: AbortSignal): Promise<Awaited<ReturnType<typeof fn>>> => {
        try {
          return await attemptTimeout.execute(async ({ signal: attemptSignal }) => {
            // cockatiel's backoff does not watch the caller's signal: never start an attempt
            // after the request's deadline.
            caller?.throwIfAborted();
            return fn(attemptSignal);
          }, signal);
        } catch (error) {
          if (caller?.aborted === true) throw new CallerGone(error);
          if (isError(error) && counts(error)) lastFailure = error.message;
          throw error;
        }
      };
      const guarded = ({ signal }: { signal: AbortSignal }) =>
        breaker.execute(({ signal: inner }) => attempt(inner), signal);
      try {
        return await (callOptions.retry ? withRetry : limiter).execute(guarded, caller);
      } catch (error) {
        throw toAppError(name, error, caller, options.isFailure);
      }
    },
  };
}

// Errors from another realm (Node's own socket errors seen from a test sandbox) are Errors too.
const isError = (error: unknown): error is Error => error instanceof Error || isNativeError(error);

/** The caller's signal aborted (its deadline passed, its client went away) during the call. */
class CallerGone extends Error {
  constructor(cause: unknown) {
    super('the caller stopped waiting', { cause });
    this.name = 'CallerGone';
  }
}

function toAppError(
  name: string,
  error: unknown,
  signal: AbortSignal | undefined,
  isFailure: (error: Error) => boolean,
): unknown {
  if (error instanceof AppError) return error;
  if (error instanceof BrokenCircuitError) {
    return new AppError('CIRCUIT_OPEN', `Calls to ${name} are paused after repeated failures.`, {
      cause: error,
      retryAfterSeconds: 1,
    });
  }
  if (error instanceof BulkheadRejectedError) {
    return new AppError('OVERLOADED', `Too many calls to ${name} are waiting.`, { cause: error });
  }
  if (signal?.aborted === true || error instanceof CallerGone) {
    return new AppError('REQUEST_TIMEOUT', `The request's deadline passed while calling ${name}.`, {
      cause: error,
    });
  }
  if (error instanceof TaskCancelledError) {
    return new AppError('DEPENDENCY_UNAVAILABLE', `${name} did not answer in time.`, {
      cause: error,
    });
  }
  if (isError(error) && isFailure(error)) {
    return new AppError('DEPENDENCY_UNAVAILABLE', `${name} is unavailable.`, { cause: error });
  }
  // Not the dependency failing: the call's own error (a bug upstream of it), passed on as is.
  return error;
}
