// Binding and closing the HTTP listeners, with errors that name what went wrong.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

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
 * Stops accepting new connections and closes the sockets idle right now. Sockets with a request
 * in flight stay open until their response is done (it carries `Connection: close`).
 */
export function stopAccepting(server: Server): void {
  if (server.listening) server.close();
  server.closeIdleConnections();
}
