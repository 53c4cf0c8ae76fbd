// Binding and closing the HTTP listeners, with errors that name what went wrong.
import type { Server } from 'node:http';
import { type AddressInfo, Server as NetServer, type Socket } from 'node:net';

export class ListenError extends Error {
  readonly errorCode: 'PORT_IN_USE' | 'BIND_FAILED';

  constructor(name: string, host: string, port: number, cause: NodeJS.ErrnoException) {
    const inUse = cause.code === 'EADDRINUSE';
    super(
      `${name} listener cannot bind ${host}:${port}: ${inUse ? 'address already in use' : cause.message}`,
      { cause },
    );
    this.name = 'ListenError';
    this.errorCode = inUse ? 'PORT_IN_USE' : 'BIND_FAILED';
  }
}

/** Listens and resolves with the bound `host:port` (the real port when 0 was asked for). */
export function listen(server: Server, name: string, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(new ListenError(name, host, port, error));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve(`${shownHost}:${address.port}`);
    });
  });
}

/**
 * How long a kept-alive connection must have been quiet (nothing read or written) before the drain
 * closes it. A client that is using a connection sends its next request right after the previous
 * answer; one that stays silent this long has stopped using it (a load balancer that has taken
 * the instance out), so closing it does not race a request on the wire.
 */
export const IDLE_CLOSE_GRACE_MS = 100;

/**
 * The listener's open connections, from the first accept, and since when each has been quiet
 * (read and written nothing): looks compare each connection's byte counts with the previous
 * look's (no per-request work).
 */
export interface Connections {
  readonly open: ReadonlySet<Socket>;
  /** Looks every `everyMs` until intake stops (shutdown starts it when its delay begins). */
  watch(everyMs: number): void;
  /** Closes the connections with no request in flight that have been quiet for `quietMs`. */
  closeIdle(inUse: ReadonlySet<Socket>, quietMs: number): void;
}

export function trackConnections(server: Server): Connections {
  const open = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  // For each connection: bytes read and written at the last look, and the look that first saw
  // that count.
  const seen = new Map<Socket, { bytes: number; since: number }>();
  let watcher: NodeJS.Timeout | undefined;
  const look = (): number => {
    const now = performance.now();
    for (const socket of seen.keys()) if (!open.has(socket)) seen.delete(socket);
    for (const socket of open) {
      // Written too: a client sends its next request once it has read the last response.
      const bytes = socket.bytesRead + socket.bytesWritten;
      if (seen.get(socket)?.bytes !== bytes) seen.set(socket, { bytes, since: now });
    }
    return now;
  };
  return {
    open,
    watch: (everyMs) => {
      look();
      watcher ??= setInterval(look, everyMs).unref();
    },
    closeIdle: (inUse, quietMs) => {
      clearInterval(watcher);
      const now = look();
      for (const socket of open) {
        const since = seen.get(socket)?.since ?? now;
        if (now - since >= quietMs && !inUse.has(socket) && socket.writableLength === 0) {
          socket.destroy();
        }
      }
    },
  };
}

export interface IntakeDrain {
  /** The listener's connections (`trackConnections`). */
  readonly connections: Connections;
  /** The sockets of the requests still being answered: never closed here. */
  readonly socketsInUse: () => ReadonlySet<Socket>;
  /** Defaults to IDLE_CLOSE_GRACE_MS. */
  readonly idleGraceMs?: number;
}

/**
 * Stops accepting new connections and drains the open ones without racing their clients; resolves
 * once every connection has closed.
 *
 * The listening socket closes first, so a new connection is refused at once (its client learns it
 * and goes elsewhere) instead of waiting in the kernel's accept backlog to be reset later. It
 * closes through `net.Server#close`: since Node 19 `http.Server#close` also destroys every idle
 * keep-alive connection at that instant, which resets a request its client is sending on it.
 * A connection with a request in flight closes after its response, which says `Connection: close`
 * (the drain gate and `RequestTracker.closeConnectionsAfterResponse`). A connection with none is
 * closed once it has been quiet for a whole grace period, checked in the check phase, right after
 * a poll phase has read whatever had arrived: a request on the wire makes it busy instead.
 * Connections already quiet that long through the end of the delay close at once.
 */
export function stopAccepting(server: Server, drain: IntakeDrain): Promise<void> {
  const { connections, socketsInUse } = drain;
  const graceMs = drain.idleGraceMs ?? IDLE_CLOSE_GRACE_MS;
  if (server.listening) NetServer.prototype.close.call(server);
  const { open } = connections;
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    // True once every connection has closed (trackConnections forgets a socket on its 'close'
    // before the listener added here runs).
    const drained = (): boolean => {
      if (open.size > 0) return false;
      clearTimeout(timer);
      resolve();
      return true;
    };
    // At once (the connections already quiet through the end of the delay), then every fifth of
    // the grace period.
    const sweep = (): void => {
      connections.closeIdle(socketsInUse(), graceMs);
      if (!drained()) timer = setTimeout(() => setImmediate(sweep), graceMs / 5);
    };
    for (const socket of open) socket.once('close', drained);
    if (!drained()) setImmediate(sweep);
  });
}
