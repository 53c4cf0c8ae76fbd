// INSPECT=websocket://host:port streams the live machine to an XState inspector. A local
// WebSocket receiver stands in for the inspector UI (the hosted one is not reachable here).
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { freePort } from '../helpers/ports';
import { spawnService } from '../helpers/service-process';

jest.setTimeout(20_000);

interface InspectionMessage {
  type: string;
  name?: string;
  definition?: string;
  snapshot?: { value?: unknown };
  event?: { type?: string };
}

it('when INSPECT names a local WebSocket inspector, then the machine definition and its live transitions arrive there, and stopping is not held up', async () => {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  const messages: InspectionMessage[] = [];
  server.on('connection', (socket) => {
    socket.on('message', (data: Buffer) =>
      messages.push(JSON.parse(data.toString('utf8')) as InspectionMessage),
    );
  });
  const { port } = server.address() as AddressInfo;
  try {
    const service = spawnService({
      env: { INSPECT: `websocket://127.0.0.1:${port}`, SHUTDOWN_DELAY_MS: '0' },
    });
    await service.waitForEvent('service.ready');
    const deadline = Date.now() + 5_000;
    const sawReady = (): boolean =>
      messages.some(
        (m) =>
          m.type === '@xstate.snapshot' &&
          JSON.stringify(m.snapshot?.value) === '{"ready":"serving"}',
      );
    while (!sawReady() && Date.now() < deadline) await delay(50);
    const signalAt = Date.now();
    service.kill('SIGTERM');
    const code = await service.exited();

    expect(code).toBe(0);
    expect(Date.now() - signalAt).toBeLessThan(2_000);
    expect(service.lines.find((l) => l.event === 'inspector.start')).toMatchObject({
      target: `ws://127.0.0.1:${port}`,
    });
    const actor = messages.find((m) => m.type === '@xstate.actor' && m.name === 'lifecycle');
    expect(actor?.definition).toContain('"draining"');
    expect(sawReady()).toBe(true);
    // The whole shutdown reaches the inspector, the final state included.
    const values = messages
      .filter((m) => m.type === '@xstate.snapshot')
      .map((m) => JSON.stringify(m.snapshot?.value));
    expect(values).toEqual(
      expect.arrayContaining(['{"draining":"delaying"}', '"flushing"', '"stopped"']),
    );
  } finally {
    server.close();
  }
});

it('when the inspector is unreachable, then the service still starts, serves and stops on time', async () => {
  const closed = await freePort();
  const service = spawnService({
    env: { INSPECT: `websocket://127.0.0.1:${closed}`, SHUTDOWN_DELAY_MS: '0' },
  });
  await service.waitForEvent('service.ready');
  const signalAt = Date.now();
  service.kill('SIGTERM');
  expect(await service.exited()).toBe(0);
  expect(Date.now() - signalAt).toBeLessThan(2_000);
});
