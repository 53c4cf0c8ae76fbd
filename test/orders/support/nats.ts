// The local NATS JetStream server for broker tests: moved to scripts/incidents/kit/ (the incident
// drills use it too); tests keep importing it from here, with their polling helper.
import { setTimeout as delay } from 'node:timers/promises';

export * from '../../../scripts/incidents/kit/nats';

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(25);
  }
}
