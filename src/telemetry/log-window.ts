// One log line per window for something that can happen thousands of times a second (refused
// connections, rate-limited requests): the first occurrence is written at once, then at most one
// line per window with how many happened since the last line. Metrics still count every one.
import { outsideRequest } from './request-scope';

export interface LogWindow<T> {
  /** One more occurrence; `detail` is kept for the next line (the last one seen wins). */
  note(detail: T): void;
}

export function createLogWindow<T>(
  windowMs: number,
  write: (count: number, lastDetail: T) => void,
): LogWindow<T> {
  let pending = 0;
  let last: T | undefined;
  let quiet: NodeJS.Timeout | undefined;
  const report = (): void => {
    const count = pending;
    pending = 0;
    // The line is the process's, not the request's that happened to trigger it.
    outsideRequest(() => write(count, last as T));
    quiet = setTimeout(() => {
      quiet = undefined;
      if (pending > 0) report();
    }, windowMs);
    quiet.unref();
  };
  return {
    note(detail) {
      pending += 1;
      last = detail;
      if (quiet === undefined) report();
    },
  };
}
