// The background workers' loop: stop() lets the run in progress finish its unit; abort() (a
// shutdown whose drain was cut short) tells it to give up at once, through the run's signal.
import { setTimeout as delay } from 'node:timers/promises';
import { periodic } from '../../../src/orders/workers/periodic';

function loopWithSlowRun() {
  const seen: { aborted: boolean; reason?: unknown }[] = [];
  const loop = periodic({
    intervalMs: 60_000,
    run: (signal) =>
      new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve('finished'), 500);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          seen.push({ aborted: true, reason: signal.reason });
          resolve('gave up');
        });
      }),
    onError: () => 'failed',
  });
  return { loop, seen };
}

it('when the loop is stopped, then the run in progress finishes its unit and no run follows', async () => {
  const { loop, seen } = loopWithSlowRun();
  const run = loop.runOnce();
  await loop.stop();
  expect(await run).toBe('finished');
  expect(seen).toEqual([]);
  loop.wake();
  expect(loop.stopped).toBe(true);
});

it('when the loop is aborted, then the run in progress is told through its signal and gives up at once', async () => {
  const { loop, seen } = loopWithSlowRun();
  const run = loop.runOnce();
  await delay(20);
  const abortedAt = Date.now();
  loop.abort();
  expect(await run).toBe('gave up');
  expect(Date.now() - abortedAt).toBeLessThan(400);
  expect(seen).toHaveLength(1);
  expect(seen[0]?.aborted).toBe(true);
  expect(String((seen[0]?.reason as Error | undefined)?.message)).toMatch(/drain was cut short/);
  expect(loop.stopped).toBe(true);
});
