// A TCP proxy in front of PostgreSQL that a test can break, two ways:
//   cut()   every connection destroyed and new ones refused (the database host is gone);
//   stall() connections stay open but no byte is forwarded, and new ones are accepted and never
//           answered (a network black hole: only timeouts notice it).
// restore() ends the outage: stalled connections are dropped and forwarding resumes.
// clientChunks() counts the chunks read from clients: on loopback, one per write the client made
// while nothing else of its was in flight (how a test sees round trips).
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  clientChunks(): number;
  cut(): Promise<void>;
  stall(): void;
  restore(): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  readonly client: net.Socket;
  upstream?: net.Socket;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let stalled = false;
  let chunks = 0;

  const forward = (pair: Pair): void => {
    const upstream = net.connect(target);
    upstream.on('error', () => undefined);
    pair.upstream = upstream;
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
    upstream.once('close', () => pair.client.destroy());
  };
  const destroy = (pair: Pair): void => {
    pair.client.destroy();
    pair.upstream?.destroy();
    pairs.delete(pair);
  };

  const server = net.createServer((client) => {
    const pair: Pair = { client };
    pairs.add(pair);
    client.on('error', () => undefined);
    client.on('data', () => {
      chunks += 1;
    });
    client.once('close', () => destroy(pair));
    // Stalled: accepted, then silence.
    if (!stalled) forward(pair);
  });
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const { port } = server.address() as net.AddressInfo;

  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      for (const pair of pairs) destroy(pair);
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
    });

  return {
    port,
    clientChunks: () => chunks,
    cut: stop,
    stall() {
      stalled = true;
      for (const { client, upstream } of pairs) {
        if (upstream === undefined) continue;
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    async restore() {
      if (stalled) {
        stalled = false;
        for (const pair of pairs) destroy(pair);
      }
      if (!server.listening) await listen(port);
    },
    close: stop,
  };
}
