// The few places the service reaches into a library's private parts, each worth it (see the
// comment at each): if an upgrade moves one, this fails loudly here instead of quietly costing
// speed or truth in production.
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import express from 'express';
import pg from 'pg';
import { routerSymbols } from '../../src/http/stable-shapes';
import { allowedMethods } from '../../src/http/method-not-allowed';
import { socketOf } from '../../src/orders/db/pg.adapter';
import { TEST_DATABASE_URL } from '../orders/support/test-database';

describe('library internals the service relies on', () => {
  it("when Express's router is loaded, then router/lib/symbols still exports the matched-route symbol (stable-shapes.ts)", () => {
    expect(routerSymbols()).toHaveLength(1);
    expect(typeof routerSymbols()[0]).toBe('symbol');
  });

  it('when stable-shapes.ts imports router/lib/symbols, then it gets the copy Express itself loads (the bundled entry point holds one copy)', () => {
    const fromExpress = createRequire(require.resolve('express'));
    expect(require.resolve('router/lib/symbols')).toBe(fromExpress.resolve('router/lib/symbols'));
  });

  it('when Express routes a request, then the request carries the matched-route symbol stable-shapes.ts presets', async () => {
    const [matchedRoute] = routerSymbols();
    const app = express();
    let carried: unknown[] = [];
    app.get('/things/:id', (req, res) => {
      carried = Object.getOwnPropertySymbols(req);
      res.end();
    });
    const server = http.createServer(app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await fetch(`http://127.0.0.1:${port}/things/7`);
    } finally {
      server.close();
    }
    expect(carried).toContain(matchedRoute);
  });

  it('when an Express 5 app is made, then app.handle and app.router.stack are still there (stable-shapes.ts, method-not-allowed.ts)', () => {
    const app = express();
    app.get('/things/:id', (_req, res) => {
      res.end();
    });
    expect(typeof (app as unknown as { handle?: unknown }).handle).toBe('function');
    expect(allowedMethods(app, '/things/7')).toEqual(['GET', 'HEAD']);
  });

  it("when a pg client is checked out, then its socket is still connection.stream, with cork, uncork and destroy (pg.adapter.ts's pipelining)", async () => {
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1 });
    try {
      const client = await pool.connect();
      const socket = socketOf(client);
      expect(typeof socket?.cork).toBe('function');
      expect(typeof socket?.uncork).toBe('function');
      expect(typeof socket?.destroy).toBe('function');
      client.release();
    } finally {
      await pool.end();
    }
  });

  it("when Node serves a request, then the socket's response in progress is still socket._httpMessage (client-error.ts)", async () => {
    let seen: unknown;
    const server = http.createServer((req, res) => {
      seen = (req.socket as unknown as { _httpMessage?: unknown })._httpMessage;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve) => {
        http.get({ host: '127.0.0.1', port, agent: false }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
      });
      expect(seen).toBeInstanceOf(http.ServerResponse);
    } finally {
      server.close();
    }
  });
});
