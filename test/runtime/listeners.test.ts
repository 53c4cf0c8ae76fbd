// Stopping intake on a real HTTP server with real sockets: the listener closes first, and the
// open keep-alive connections are drained without racing their clients.
import { createServer, type Server } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { IDLE_CLOSE_GRACE_MS, stopAccepting, trackConnections } from '../../src/runtime/listeners';

const REQUEST = 'GET /work HTTP/1.1\r\nHost: x\r\n\r\n';

interface Fixture {
  readonly server: Server;
  readonly port: number;
  readonly connections: ReturnType<typeof trackConnections>;
  /** The server-side sockets with a request being answered. */
  readonly busy: Set<Socket>;
  /** Answers the request in flight on each busy socket. */
  answerAll(): void;
}

const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.closeAllConnections();
});

/** A server whose /work answers only when the test says so, tracking its busy sockets. */
async function fixture(): Promise<Fixture> {
  const busy = new Set<Socket>();
  const pending: (() => void)[] = [];
  const server = createServer((req, res) => {
    busy.add(req.socket);
    pending.push(() => {
      busy.delete(req.socket);
      res.end('done');
    });
  });
  servers.push(server);
  const connections = trackConnections(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    connections,
    busy,
    answerAll: () => {
      for (const answer of pending.splice(0)) answer();
    },
  };
}

/** A raw client connection that collects what it receives and how it ended. */
async function connect(port: number) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let received = '';
  let ended: string | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    received += chunk;
  });
  socket.on('error', (error: NodeJS.ErrnoException) => {
    ended = error.code ?? error.message;
  });
  socket.on('close', () => {
    ended ??= 'closed';
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    send: (text: string) => socket.write(text),
    answers: () => received.split('HTTP/1.1 ').length - 1,
    ended: () => ended,
  };
}

async function until(check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await delay(5);
  }
}

function refused(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code));
  });
}

/** A client connection that has had one request answered and is kept alive, idle. */
async function keptAlive(f: Fixture): ReturnType<typeof connect> {
  const client = await connect(f.port);
  client.send(REQUEST);
  await until(() => f.busy.size === 1);
  f.answerAll();
  await until(() => client.answers() === 1);
  return client;
}

describe('stopAccepting', () => {
  it('when intake stops, then new connections are refused at once, and an idle keep-alive connection is closed only after it has been quiet for the grace period', async () => {
    const f = await fixture();
    const client = await keptAlive(f);

    const stoppedAt = Date.now();
    const drained = stopAccepting(f.server, {
      connections: f.connections,
      socketsInUse: () => f.busy,
    });

    expect(await refused(f.port)).toBe('ECONNREFUSED');
    expect(client.ended()).toBeUndefined();
    await drained;
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(IDLE_CLOSE_GRACE_MS - 5);
    await until(() => client.ended() !== undefined);
    expect(client.ended()).toBe('closed');
    expect(f.connections.open.size).toBe(0);
  });

  it('when a client sends on its kept-alive connection just after intake stops, then the request is served instead of reset', async () => {
    const f = await fixture();
    const client = await keptAlive(f);

    const drained = stopAccepting(f.server, {
      connections: f.connections,
      socketsInUse: () => f.busy,
    });
    await delay(IDLE_CLOSE_GRACE_MS / 2);
    client.send(REQUEST);
    await until(() => f.busy.size === 1);
    // Held longer than the grace: a connection with a request in flight is never closed.
    await delay(IDLE_CLOSE_GRACE_MS * 2);
    expect(client.ended()).toBeUndefined();
    f.answerAll();
    await until(() => client.answers() === 2);
    await drained;
    await until(() => client.ended() !== undefined);
    expect(client.ended()).toBe('closed');
  });

  it('when a connection has been quiet through the delay, then it is closed as soon as intake stops', async () => {
    const f = await fixture();
    const client = await keptAlive(f);
    // Shutdown begins: the connections are watched through the delay.
    f.connections.watch(IDLE_CLOSE_GRACE_MS / 5);
    await delay(IDLE_CLOSE_GRACE_MS * 2);

    const stoppedAt = Date.now();
    await stopAccepting(f.server, { connections: f.connections, socketsInUse: () => f.busy });
    expect(Date.now() - stoppedAt).toBeLessThan(IDLE_CLOSE_GRACE_MS / 2);
    await until(() => client.ended() !== undefined);
    expect(client.ended()).toBe('closed');
  });
});
