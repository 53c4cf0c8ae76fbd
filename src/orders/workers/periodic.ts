// The loop shared by the background workers: one run at a time, every `intervalMs` after the
// previous run ended, on demand (`wake`, coalesced with a run in progress), and a stop that waits
// for the run in progress to finish its unit of work.
export interface Periodic<T> {
  /** Runs once at once, then every interval. Idempotent. */
  start(): void;
  /** A run now, or the run in progress. */
  runOnce(): Promise<T>;
  /** Another run as soon as the current one ends (or now); nothing once stopped. */
  wake(): void;
  /** No new runs; resolves when the run in progress has finished. */
  stop(): Promise<void>;
  /** True once stop() was called: long runs check it between units of work. */
  readonly stopped: boolean;
}

export function periodic<T>(options: {
  readonly intervalMs: number;
  readonly run: () => Promise<T>;
  /** A failed run's result; the loop goes on. */
  readonly onError: (error: unknown) => T;
}): Periodic<T> {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<T> | undefined;
  let again = false;
  let started = false;
  let stopped = false;

  const runOnce = (): Promise<T> => {
    if (running !== undefined) return running;
    running = options
      .run()
      .catch(options.onError)
      .finally(() => {
        running = undefined;
        if (again && !stopped) {
          again = false;
          void runOnce();
        }
      });
    return running;
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void runOnce().finally(schedule);
    }, options.intervalMs);
    timer.unref();
  };

  return {
    start() {
      if (started || stopped) return;
      started = true;
      void runOnce().finally(schedule);
    },
    runOnce,
    wake() {
      if (!started || stopped) return;
      if (running === undefined) void runOnce();
      else again = true;
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
    get stopped() {
      return stopped;
    },
  };
}
