// A local identity provider's JWKS endpoint (node:http on 127.0.0.1, a free port) that counts
// its hits, and can be told to fail (HTTP 500), to answer with any body, to never answer, or to go
// away entirely.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type ServerMode = 'serve' | 'fail' | 'hang';

export interface JwksServer {
  readonly url: string;
  /** Requests received, including those never answered. */
  readonly hits: number;
  /** What GET answers with (serialised as JSON unless a string). */
  body: unknown;
  mode: ServerMode;
  /** Stops listening and drops every connection: the endpoint is gone. */
  stop(): Promise<void>;
}

export async function startJwksServer(body: unknown): Promise<JwksServer> {
  let hits = 0;
  const server = http.createServer((request, response) => {
    hits += 1;
    if (state.mode === 'hang') return;
    if (state.mode === 'fail') {
      response.writeHead(500, { 'content-type': 'text/plain' }).end('identity provider trouble');
      return;
    }
    const text = typeof state.body === 'string' ? state.body : JSON.stringify(state.body);
    response.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  const state: JwksServer = {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get hits() {
      return hits;
    },
    body,
    mode: 'serve',
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
  return state;
}
