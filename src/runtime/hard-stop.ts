// The last deadline (SHUTDOWN_HARD_STOP_MS), armed by the first signal. It lives outside the
// machine on purpose: it must fire even if the machine or an effect it waits on is wedged. unref'd,
// so it never keeps a finished process alive.
export interface HardStop {
  arm(): void;
  disarm(): void;
}

export function createHardStop(ms: number, fire: () => void): HardStop {
  let timer: NodeJS.Timeout | undefined;
  return {
    arm() {
      if (timer !== undefined) return;
      timer = setTimeout(fire, ms);
      timer.unref();
    },
    disarm() {
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}
