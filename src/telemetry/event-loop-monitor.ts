// Event loop delay, as a p99 over the last window: read by load shedding (a loop this late
// cannot serve new requests in time) and by the metrics.
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface EventLoopMonitor {
  /** p99 delay in milliseconds over the last completed window. */
  p99Ms(): number;
  /** How many windows have completed (p99Ms reads the last one). */
  windowsClosed(): number;
  /** Forgets what was measured and starts a new window now (serving starts). */
  restart(): void;
  stop(): void;
}

export function createEventLoopMonitor(windowMs = 1000): EventLoopMonitor {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let last = 0;
  let closed = 0;
  const closeWindow = (): void => {
    last = histogram.count > 0 ? histogram.percentile(99) / 1e6 : 0;
    closed += 1;
    histogram.reset();
  };
  let timer = setInterval(closeWindow, windowMs);
  timer.unref();
  return {
    p99Ms: () => last,
    windowsClosed: () => closed,
    restart() {
      clearInterval(timer);
      histogram.reset();
      last = 0;
      timer = setInterval(closeWindow, windowMs);
      timer.unref();
    },
    stop: () => {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
