// The main listener's app (supertest) with a real lifecycle actor driven into each state.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Router } from 'express';
import request from 'supertest';
import type { RequestTracker } from '../../src/http/request-tracker';
import type { CancelSignal } from '../../src/resilience/cancellation';
import { testApp } from '../helpers/test-app';
import { BUDGETS, harness, settle, toReady, type Harness } from '../helpers/lifecycle-harness';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function appFor(h: Harness, routers: Router[] = []) {
  return testApp(h.actor, { routers });
}

async function draining(h: Harness): Promise<void> {
  await toReady(h);
  h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
}

async function flushing(h: Harness): Promise<void> {
  await draining(h);
  jest.advanceTimersByTime(BUDGETS.delayMs);
  await settle();
}

beforeEach(() => {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('liveness: /health and /livez', () => {
  it.each([
    ['starting', () => Promise.resolve()],
    ['ready', toReady],
    ['draining', draining],
    ['flushing', flushing],
  ] as const)('when the service is %s, then liveness answers 200 ok', async (_name, drive) => {
    const h = harness();
    await drive(h);
    const { app } = appFor(h);
    for (const path of ['/health', '/livez']) {
      const res = await request(app).get(path);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: 'ok' });
    }
  });
});

describe('readiness: /ready and /readyz tell the truth', () => {
  it('when starting, then 503 starting', async () => {
    const { app } = appFor(harness());
    const res = await request(app).get('/ready');
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({
      status: 'starting',
      reasons: { lifecycle: 'service is starting' },
    });
  });

  it('when ready with every dependency up, then 200 ready with the dependencies', async () => {
    const h = harness();
    await toReady(h);
    const { app } = appFor(h);
    for (const path of ['/ready', '/readyz']) {
      const res = await request(app).get(path);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        status: 'ready',
        dependencies: { database: { essential: true, status: 'up' } },
      });
      expect(res.headers['cache-control']).toBe('no-store');
    }
  });

  it('when an essential dependency is down, then 503 degraded with a coarse, stable reason and no internal error text', async () => {
    const h = harness();
    await toReady(h);
    h.send({
      type: 'DEPENDENCY_DOWN',
      name: 'database',
      reason: 'ping failed: the database system is shutting down',
    });
    const res = await request(appFor(h).app).get('/readyz');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({
      status: 'degraded',
      reasons: { database: 'unavailable', lifecycle: 'service is degraded' },
      dependencies: { database: { essential: true, status: 'down' } },
    });
    expect(res.text).not.toContain('shutting down');
  });

  it('when draining, then 503 draining at once, before the listener closes', async () => {
    const h = harness();
    await draining(h);
    expect(h.state()).toBe('draining.delaying');
    const res = await request(appFor(h).app).get('/ready');
    expect(res.status).toBe(503);
    expect((res.body as { status: string }).status).toBe('draining');
  });
});

describe('readiness after the drain', () => {
  it('when flushing, then readiness still answers truthfully: 503 stopping', async () => {
    const h = harness();
    await flushing(h);
    const res = await request(appFor(h).app).get('/ready');
    expect(res.status).toBe(503);
    expect((res.body as { status: string }).status).toBe('stopping');
  });
});

describe('while draining and after', () => {
  function slowRouter(): Router {
    const router = Router();
    router.get('/work', (_req, res) => {
      res.json({ done: true });
    });
    return router;
  }

  it('when a request arrives during the shutdown delay, then it is served normally and its connection is kept alive', async () => {
    const h = harness();
    await draining(h);
    expect(h.state()).toBe('draining.delaying');
    const res = await request(appFor(h, [slowRouter()]).app)
      .get('/work')
      .set('Connection', 'keep-alive');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ done: true });
    expect(res.headers.connection).toBe('keep-alive');
  });

  it('when intake has stopped, then a request on an already-open connection is served with Connection: close', async () => {
    const h = harness({ workersStopAtOnce: false });
    await draining(h);
    jest.advanceTimersByTime(BUDGETS.delayMs);
    await settle();
    expect(h.state()).toBe('draining.drain.waiting');
    // A request deadline that fits in what is left of the drain (BUDGETS.drainTimeoutMs).
    const { app } = testApp(h.actor, {
      routers: [slowRouter()],
      env: { REQUEST_TIMEOUT_MS: '1000' },
    });
    const res = await request(app).get('/work').set('Connection', 'keep-alive');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ done: true });
    expect(res.headers.connection).toBe('close');
  });

  it('when ready, then responses keep the connection alive', async () => {
    const h = harness();
    await toReady(h);
    const server = appFor(h, [slowRouter()]).app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const agent = new http.Agent({ keepAlive: true });
    try {
      const { port } = server.address() as AddressInfo;
      const headers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/work', agent }, (res) => {
            res.resume();
            res.once('end', () => resolve(res.headers));
          })
          .once('error', reject);
      });
      expect(headers.connection).toBe('keep-alive');
    } finally {
      agent.destroy();
      server.closeAllConnections();
      server.close();
    }
  });

  it('when past the drain, then a request gets the fast 503 SHUTTING_DOWN without running its handler', async () => {
    const h = harness();
    await flushing(h);
    expect(h.state()).toBe('flushing');
    const handler = jest.fn();
    const router = Router();
    router.get('/work', handler);
    const { app, tracker } = appFor(h, [router]);
    const res = await request(app).get('/work').set('X-Request-Id', 'drain-check-1');
    expect(handler).not.toHaveBeenCalled();
    expect(tracker.inFlight).toBe(0);
    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.headers.connection).toBe('close');
    expect(res.body).toMatchObject({
      status: 503,
      code: 'SHUTTING_DOWN',
      title: 'The service is shutting down',
      request_id: 'drain-check-1',
    });
  });
});

describe('request ids and tracking', () => {
  it('when a request has no X-Request-Id, then one is generated and returned', async () => {
    const h = harness();
    await toReady(h);
    const res = await request(appFor(h).app).get('/health');
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it('when a request has a valid X-Request-Id, then it is kept', async () => {
    const h = harness();
    await toReady(h);
    const res = await request(appFor(h).app).get('/health').set('X-Request-Id', 'lb-7f3a.42:abc');
    expect(res.headers['x-request-id']).toBe('lb-7f3a.42:abc');
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['unsafe characters', 'id with spaces<script>'],
    ['empty', ''],
  ])('when the incoming X-Request-Id is %s, then a fresh one replaces it', async (_why, value) => {
    const h = harness();
    await toReady(h);
    const res = await request(appFor(h).app).get('/health').set('X-Request-Id', value);
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it('when a handler is running, then it is counted in flight and its AbortSignal fires on abortAll', async () => {
    const h = harness();
    await toReady(h);
    let signal: CancelSignal | undefined;
    const router = Router();
    router.get('/hold', (_req, res) => {
      const own = tracker.signalOf(
        (res.locals as { tracked: Parameters<RequestTracker['signalOf']>[0] }).tracked,
      );
      signal = own;
      own.addEventListener('abort', () => res.status(503).json({ aborted: true }));
    });
    const { app, tracker } = testApp(h.actor, { routers: [router] });
    const pending = request(app)
      .get('/hold')
      .then((res) => res);
    while (tracker.inFlight === 0) await new Promise((resolve) => setImmediate(resolve));
    expect(tracker.inFlight).toBe(1);
    expect(tracker.abortAll(new Error('drain deadline'))).toBe(1);
    const res = await pending;
    expect(res.body).toEqual({ aborted: true });
    expect(signal?.aborted).toBe(true);
    expect(tracker.inFlight).toBe(0);
  });
});

describe('errors are problem+json and never leak internals', () => {
  it('when no route matches, then 404 ROUTE_NOT_FOUND as problem+json with the request id', async () => {
    const h = harness();
    await toReady(h);
    const res = await request(appFor(h).app).get('/nope').set('X-Request-Id', 'r-404');
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({
      status: 404,
      code: 'ROUTE_NOT_FOUND',
      request_id: 'r-404',
      detail: 'No route for GET /nope.',
    });
    expect((res.body as { type: string }).type).toBe('urn:ops-service:error:route-not-found');
  });

  it('when a handler throws, then 500 INTERNAL without stack or message, and the error is logged once', async () => {
    const h = harness();
    await toReady(h);
    const router = Router();
    router.get('/boom', () => {
      throw new Error('secret internal detail: pg pool exhausted at /srv/app.js:12');
    });
    const { app, log } = appFor(h, [router]);
    const res = await request(app).get('/boom');
    expect(res.status).toBe(500);
    expect(res.body).toMatchObject({ code: 'INTERNAL', detail: 'An unexpected error occurred.' });
    expect(JSON.stringify(res.body)).not.toMatch(/secret internal|app\.js|at /);
    const logged = log
      .records()
      .filter((r: Record<string, unknown>) => r.event === 'http.unhandled_error');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      error_code: 'INTERNAL',
      error_category: 'unexpected',
      request_id: res.headers['x-request-id'],
      trace_id: (res.body as { trace_id: string }).trace_id,
    });
    expect(logged[0]?.span_id).toMatch(/^[0-9a-f]{16}$/);
    expect((res.body as { trace_id: string }).trace_id).toMatch(/^[0-9a-f]{32}$/);
  });
});
