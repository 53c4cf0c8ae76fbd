// A TCP proxy in front of a dependency (PostgreSQL, NATS, a collector) that a test or an incident
// drill can break, three ways:
//   cut()    every connection destroyed and new ones refused (the host is gone);
//   stall()  connections stay open but no byte is forwarded, and new ones are accepted and never
//            answered (a network black hole: only timeouts notice it);
//   slow(ms) every chunk, both ways, is forwarded `ms` later, in order (a slow link or an
//            overloaded server: answers still come, late).
// restore() ends the outage: stalled and slowed connections are dropped (the client reconnects)
// and forwarding resumes.
// clientChunks() counts the chunks read from clients: on loopback, one per write the client made
// while nothing else of its was in flight (how a test sees round trips).
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  clientChunks(): number;
  cut(): Promise<void>;
  stall(): void;
  slow(ms: number): void;
  restore(): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  readonly client: net.Socket;
  upstream?: net.Socket;
  /** Set while the pair forwards with a delay: stops the delayed forwarding. */
  unslow?: () => void;
}

/** Forwards `from` to `to`, each chunk `ms` later, in order; returns what stops it. */
function delayed(from: net.Socket, to: net.Socket, ms: number): () => void {
  let releaseAt = 0;
  const timers = new Set<NodeJS.Timeout>();
  const onData = (chunk: Buffer): void => {
    releaseAt = Math.max(Date.now() + ms, releaseAt);
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!to.destroyed) to.write(chunk);
    }, releaseAt - Date.now());
    timers.add(timer);
  };
  from.on('data', onData);
  return () => {
    from.off('data', onData);
    for (const timer of timers) clearTimeout(timer);
  };
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let stalled = false;
  let latencyMs = 0;
  let chunks = 0;

  const slowDown = (pair: Pair): void => {
    const { client, upstream } = pair;
    if (upstream === undefined || pair.unslow !== undefined) return;
    client.unpipe(upstream);
    upstream.unpipe(client);
    const stopUp = delayed(client, upstream, latencyMs);
    const stopDown = delayed(upstream, client, latencyMs);
    client.resume();
    upstream.resume();
    pair.unslow = () => {
      stopUp();
      stopDown();
    };
  };
  const forward = (pair: Pair): void => {
    const upstream = net.connect(target);
    upstream.on('error', () => undefined);
    pair.upstream = upstream;
    upstream.once('close', () => pair.client.destroy());
    if (latencyMs > 0) {
      slowDown(pair);
      return;
    }
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
  };
  const destroy = (pair: Pair): void => {
    pair.unslow?.();
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
      for (const pair of pairs) {
        const { client, upstream } = pair;
        if (upstream === undefined) continue;
        pair.unslow?.();
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    slow(ms) {
      latencyMs = ms;
      for (const pair of pairs) slowDown(pair);
    },
    async restore() {
      if (stalled || latencyMs > 0) {
        stalled = false;
        latencyMs = 0;
        for (const pair of pairs) destroy(pair);
      }
      if (!server.listening) await listen(port);
    },
    close: stop,
  };
}
