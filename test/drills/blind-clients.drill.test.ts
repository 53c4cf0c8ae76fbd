// Whole-process shutdown drill with blind clients: the real runtime in a child process, real
// sockets, a real SIGTERM, and clients that never look at readiness (endpoint removal slower than
// SHUTDOWN_DELAY_MS, every request still routed here). Each keeps one keep-alive connection busy,
// reconnects when a response says `Connection: close` (as Node's agent does) and stops at its first
// error. A refused connection is not a drop (nothing was sent, the client learns it at once);
// a reset, a hang-up or an incomplete answer to a request that was sent is.
import http from 'node:http';
import { delay, get, type Outcome } from './drill-kit';
import { startService } from '../helpers/service-process';

jest.setTimeout(30_000);

const CONNECTIONS = 64;
const DELAY_MS = 500;
const REQUEST_MS = 20;
/** The clients stop by themselves this long after the signal (the process is gone by then). */
const BLIND_FOR_MS = 2_000;

async function blindLoad(port: number, signalled: () => number | undefined): Promise<Outcome[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const outcomes: Outcome[] = [];
  const loop = async (): Promise<void> => {
    for (;;) {
      const since = signalled();
      if (since !== undefined && Date.now() - since > BLIND_FOR_MS) return;
      const outcome = await get(port, `/drill/work?ms=${REQUEST_MS}&bytes=1024`, agent);
      outcomes.push(outcome);
      if (!outcome.ok) return;
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, loop));
  agent.destroy();
  return outcomes;
}

describe('shutdown with blind keep-alive clients', () => {
  it('when SIGTERM arrives while 64 blind clients keep sending through the delay and after, then no request they sent is dropped, every answer is a 200 and the exit code is 0', async () => {
    const { service, port } = await startService({
      SHUTDOWN_DELAY_MS: String(DELAY_MS),
      SHUTDOWN_DRAIN_TIMEOUT_MS: '5000',
      SHUTDOWN_FLUSH_TIMEOUT_MS: '1000',
      SHUTDOWN_HARD_STOP_MS: '10000',
      // A deadline that fits in the drain: requests on open connections during it are served.
      REQUEST_TIMEOUT_MS: '1000',
      RATE_LIMIT_MAX: '0',
    });
    const clock: { signalAt?: number } = {};
    const load = blindLoad(port, () => clock.signalAt);
    await delay(500);
    const signalAt = Date.now();
    clock.signalAt = signalAt;
    service.kill('SIGTERM');
    const [outcomes, code] = await Promise.all([load, service.exited()]);

    const refused = outcomes.filter((o) => o.error === 'ECONNREFUSED');
    const dropped = outcomes.filter((o) => !o.ok && o.status === undefined && !refused.includes(o));
    const notServed = outcomes.filter((o) => o.status !== undefined && o.status !== 200);
    const sentAfterSignal = outcomes.filter((o) => o.sentAt > signalAt);

    expect(dropped.map((o) => `${o.error ?? '?'} after ${o.sentAt - signalAt} ms`)).toEqual([]);
    expect(notServed.map((o) => o.status)).toEqual([]);
    expect(code).toBe(0);
    // The clients kept sending through the delay, and every one stopped on a refusal.
    expect(sentAfterSignal.length).toBeGreaterThan(CONNECTIONS * 5);
    expect(refused.length).toBe(CONNECTIONS);
  });
});
