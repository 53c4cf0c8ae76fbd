// The one way to call a dependency (database, broker, cache): bulkhead -> retry with exponential
// backoff and jitter (retryable errors only, idempotent or idempotency-key-protected calls only,
// never past the request's own deadline) -> circuit breaker -> per-attempt timeout. The backoff
// and the error classes are cockatiel's; the four steps are written here, as plain callbacks on
// one promise per attempt: cockatiel's policies cost about 30 µs of CPU per call on the request
// path (an AbortController, two abort listeners and two event objects per attempt, five async
// layers, each promise paying the async hooks of the request scope), as much as a GET's own query
// work (bench/README.md, scenario (i)). Breaker transitions are logged, exported as metrics and,
// for an essential dependency, reported so the lifecycle machine (and so readiness) tells the truth.
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
  ExponentialBackoff,
  type IBackoff,
  TaskCancelledError,
} from 'cockatiel';
import { isNativeError } from 'node:util/types';
import { AppError } from '../errors/catalogue';
import type { Logger } from '../telemetry/logger';
import { Cancellation, type CancelSignal } from './cancellation';
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
  /** The request's signal (or any AbortSignal): no attempt or backoff outlives it. */
  readonly signal?: CancelSignal | undefined;
  /** Retry only calls that are safe to repeat (idempotent, or protected by an idempotency key). */
  readonly retry: boolean;
}

export interface DependencyPolicy {
  readonly name: string;
  /** Runs `fn` under the policy; failures become AppErrors (DEPENDENCY_UNAVAILABLE, CIRCUIT_OPEN, OVERLOADED). */
  call<T>(fn: (signal: CancelSignal) => Promise<T>, options: CallOptions): Promise<T>;
  breakerState(): BreakerState;
}

type BreakerShape =
  | { readonly state: 'closed' }
  | { readonly state: 'open'; readonly openedAt: number }
  | { readonly state: 'half_open'; readonly trial: Promise<unknown> };

export function createDependencyPolicy(
  options: DependencyPolicyOptions,
  hooks: DependencyHooks,
): DependencyPolicy {
  const { name } = options;
  const { logger } = hooks;
  let lastFailure = 'unknown';
  const counts = (error: unknown): boolean =>
    error instanceof TaskCancelledError ||
    (isError(error) &&
      !(error instanceof AppError) &&
      !(error instanceof CallerGone) &&
      options.isFailure(error));
  const retryable = (error: unknown): boolean =>
    !(error instanceof BrokenCircuitError) &&
    (error instanceof TaskCancelledError || (isError(error) && options.isRetryable(error)));
  const retries = Math.max(0, options.maxAttempts - 1);
  const backoffs = new ExponentialBackoff({
    initialDelay: options.initialBackoffMs,
    maxDelay: options.maxBackoffMs,
  });

  // ---- circuit breaker: consecutive counted failures open it; after halfOpenAfterMs one trial
  // call runs (half-open) while the others wait for its outcome.
  let breaker: BreakerShape = { state: 'closed' };
  let failures = 0;
  const changed = (next: BreakerShape): void => {
    breaker = next;
    const named = next.state;
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
  };
  hooks.onBreakerState?.('closed');

  /** One attempt under its timeout (aggressive: the attempt's promise is abandoned at once). */
  function attempt<T>(fn: (signal: CancelSignal) => Promise<T>, caller: CancelSignal | undefined) {
    return new Promise<T>((resolve, reject) => {
      // cockatiel's backoff does not watch the caller's signal: never start an attempt after the
      // request's deadline.
      if (caller?.aborted === true) {
        reject(new CallerGone(caller.reason));
        return;
      }
      // A plain Cancellation, not an AbortController (see cancellation.ts).
      const controller = new Cancellation();
      let settled = false;
      const finish = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        caller?.removeEventListener('abort', cancel);
        return true;
      };
      // The timeout policy's own cancellation, as cockatiel's: the attempt's signal aborts and
      // the attempt fails with TaskCancelledError.
      const cancel = (): void => {
        if (!finish()) return;
        controller.abort();
        const cancelled = new TaskCancelledError(
          `Operation timed out after ${options.attemptTimeoutMs}ms`,
        );
        fail(cancelled);
      };
      const fail = (error: unknown): void => {
        // What fails after the caller stopped waiting is CallerGone, which the breaker does not
        // count.
        if (caller?.aborted === true) {
          reject(new CallerGone(error));
          return;
        }
        if (counts(error)) lastFailure = (error as Error).message;
        // Passed on as it came, Error or not (toAppError decides what the caller sees).
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        reject(error);
      };
      const timer = setTimeout(cancel, options.attemptTimeoutMs);
      caller?.addEventListener('abort', cancel, { once: true });
      started(() => fn(controller)).then(
        (value) => {
          if (finish()) resolve(value);
        },
        (error: unknown) => {
          if (finish()) fail(error);
        },
      );
    });
  }

  /** The attempt through the breaker: counted failures open it, a success closes it. */
  function guarded<T>(
    fn: (signal: CancelSignal) => Promise<T>,
    caller: CancelSignal | undefined,
  ): Promise<T> {
    const current = breaker;
    if (current.state === 'half_open') {
      // Wait for the trial's outcome, then go through the breaker as it is then.
      return current.trial
        .then(
          () => undefined,
          () => undefined,
        )
        .then(() => {
          if (breaker.state === 'closed' && caller?.aborted === true)
            throw new TaskCancelledError();
          return guarded(fn, caller);
        });
    }
    if (current.state === 'open') {
      if (Date.now() - current.openedAt < options.halfOpenAfterMs) {
        return Promise.reject(new BrokenCircuitError());
      }
      const trial = attempt(fn, caller).then(
        (value) => {
          failures = 0;
          changed({ state: 'closed' });
          return value;
        },
        (error: unknown) => {
          if (counts(error)) {
            failures += 1;
            changed({ state: 'open', openedAt: Date.now() });
          } else {
            // Not the dependency's failure: for the breaker, the trial went through.
            changed({ state: 'closed' });
          }
          throw error;
        },
      );
      changed({ state: 'half_open', trial });
      return trial;
    }
    return attempt(fn, caller).then(
      (value) => {
        failures = 0;
        return value;
      },
      (error: unknown) => {
        if (counts(error)) {
          failures += 1;
          if (failures >= options.breakerThreshold && breaker.state === 'closed') {
            changed({ state: 'open', openedAt: Date.now() });
          }
        }
        throw error;
      },
    );
  }

  /**
   * Retries of what is worth retrying, with backoff, while the caller still waits. A chain of
   * callbacks rather than an async loop: one promise more than the attempt's on the usual path.
   */
  function retried<T>(
    fn: (signal: CancelSignal) => Promise<T>,
    caller: CancelSignal | undefined,
    attemptNo = 0,
    backoff?: IBackoff<unknown>,
  ): Promise<T> {
    return guarded(fn, caller).catch((error: unknown) => {
      if (!retryable(error) || caller?.aborted === true || attemptNo >= retries) throw error;
      // cockatiel's exponential backoff with decorrelated jitter reads no context.
      const next = backoff === undefined ? backoffs.next() : backoff.next(undefined);
      return sleep(next.duration).then(() => retried(fn, caller, attemptNo + 1, next));
    });
  }

  // ---- bulkhead: `concurrency` calls run, `queue` wait for a slot, the rest are refused.
  let active = 0;
  const waiting: (() => void)[] = [];
  const leave = (): void => {
    active -= 1;
    const next = waiting.shift();
    if (next !== undefined) next();
  };
  /**
   * `task` in a slot of the bulkhead; its failure, or the bulkhead's refusal, goes through
   * `failed` (one promise for the slot and the answer).
   */
  function limited<T>(
    task: () => Promise<T>,
    caller: CancelSignal | undefined,
    failed: (error: unknown) => unknown,
  ): Promise<T> {
    const run = (): Promise<T> =>
      started(task).then(
        (value) => {
          leave();
          return value;
        },
        (error: unknown) => {
          leave();
          throw failed(error);
        },
      );
    const refuse = (error: Error): Promise<T> =>
      Promise.resolve().then(() => {
        throw failed(error);
      });
    if (caller?.aborted === true) return refuse(new TaskCancelledError());
    if (active < options.concurrency) {
      active += 1;
      return run();
    }
    if (waiting.length < options.queue) {
      return new Promise<void>((resolve) => waiting.push(resolve)).then(() => {
        active += 1;
        if (caller?.aborted !== true) return run();
        leave();
        throw failed(new TaskCancelledError());
      });
    }
    return refuse(new BulkheadRejectedError(options.concurrency, options.queue));
  }

  return {
    name,
    breakerState: () => breaker.state,
    call(fn, callOptions) {
      const caller = callOptions.signal;
      const task = callOptions.retry ? () => retried(fn, caller) : () => guarded(fn, caller);
      return limited(task, caller, (error) => toAppError(name, error, caller, options.isFailure));
    },
  };
}

/** `work()`, with a synchronous throw turned into a rejection. */
function started<T>(work: () => Promise<T>): Promise<T> {
  try {
    return work();
  } catch (error) {
    return Promise.reject(isError(error) ? error : new Error(String(error)));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
  signal: CancelSignal | undefined,
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
