// The cancellation that a request's work and each dependency attempt carry: the part of
// AbortSignal that the service's own code uses (`aborted`, `reason`, one-shot 'abort' listeners),
// so an AbortSignal is one too (workers, startup and tests pass theirs), and `Cancellation`, a
// plain object that the hot path makes instead of an AbortController.
//
// Why not AbortController there: on Node 20 every AbortController is an EventTarget (its listener
// map, a Listener object per listener, an event object when it fires). The request's signal and the
// policy's attempt signal made two per call, and profiles of `GET /v1/orders/{id}` showed the
// request graphs they reach surviving young-generation collections: with both, 1.75 MB survived
// each scavenge against 0.46-0.53 MB with this class, and scavenges cost 35 µs of CPU per GET
// against 8.5 (bench/README.md, GET rows, "Measured ... cancellation").

/** What cancellable work reads: `aborted`, `reason` and one-shot 'abort' listeners. */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * A one-shot cancellation: `abort(reason)` sets `aborted` and `reason` and calls every listener
 * once, in the order they were added; listeners added after it are not called (as EventTarget).
 * A listener is one entry however often it is added; a listener that throws is reported as an
 * uncaught exception after the others ran (as EventTarget does).
 */
export class Cancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  // Most cancellations have one listener at a time (the attempt's, the connection's): no array.
  private first: (() => void) | undefined = undefined;
  private others: (() => void)[] | undefined = undefined;

  /** Every listener is called once at most (`once` or not): a cancellation aborts once. */
  addEventListener(_type: 'abort', listener: () => void, _options?: { once?: boolean }): void {
    if (this.aborted || this.first === listener || this.others?.includes(listener) === true) return;
    if (this.first === undefined) this.first = listener;
    else (this.others ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.first === listener) {
      this.first = this.others?.shift();
      return;
    }
    const at = this.others?.indexOf(listener) ?? -1;
    if (at !== -1) this.others?.splice(at, 1);
  }

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    const { first, others } = this;
    this.first = undefined;
    this.others = undefined;
    if (first !== undefined) call(first);
    if (others !== undefined) for (const listener of others) call(listener);
  }
}

function call(listener: () => void): void {
  try {
    listener();
  } catch (error) {
    process.nextTick(() => {
      throw error;
    });
  }
}
