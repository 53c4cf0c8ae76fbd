import { setTimeout as delay } from 'node:timers/promises';
import net from 'node:net';

/** A port that was free a moment ago (bind 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Tries to connect to `port` every few milliseconds until `until` settles; resolves with whether
 * any attempt connected (used to prove that a process never listened).
 */
export async function everListened(port: number, until: Promise<unknown>): Promise<boolean> {
  let done = false;
  let connected = false;
  void until.finally(() => {
    done = true;
  });
  while (!done) {
    if (await canConnect(port)) connected = true;
    await delay(5);
  }
  return connected;
}
