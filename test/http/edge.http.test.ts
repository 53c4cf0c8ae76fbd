// The edge policies and the error catalogue, through the real app (supertest).
import { setTimeout as delay } from 'node:timers/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Router } from 'express';
import { parseList } from 'structured-headers';
import request from 'supertest';
import {
  AppError,
  ERROR_CATALOGUE,
  ERROR_CODES,
  type ErrorCode,
  ValidationError,
} from '../../src/errors/catalogue';
import { type RequestLocals, requestSignal } from '../../src/http/request-context.middleware';
import type { CancelSignal } from '../../src/resilience/cancellation';
import { drainDeadlineOf } from '../../machines/lifecycle.machine';
import { harness, toReady, type Harness } from '../helpers/lifecycle-harness';
import { rawRequest } from '../helpers/raw-http';
import { testApp } from '../helpers/test-app';
import { RATE_LIMITED_LOG_WINDOW_MS } from '../../src/http/observe.middleware';

async function ready(): Promise<Harness> {
  const h = harness();
  await toReady(h);
  return h;
}

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  request_id: string;
  trace_id: string;
  errors?: unknown;
}

function expectProblem(res: request.Response, code: ErrorCode): ProblemBody {
  const body = res.body as ProblemBody;
  expect(res.status).toBe(ERROR_CATALOGUE[code].status);
  expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
  expect(body).toMatchObject({
    code,
    status: ERROR_CATALOGUE[code].status,
    title: ERROR_CATALOGUE[code].title,
  });
  expect(body.type).toBe(`urn:ops-service:error:${code.toLowerCase().replace(/_/g, '-')}`);
  expect(body.request_id).toBe(res.headers['x-request-id']);
  expect(body.trace_id).toMatch(/^[0-9a-f]{32}$/);
  expect(typeof body.detail).toBe('string');
  return body;
}

describe('every catalogue code through the mapper (table-driven)', () => {
  const router = Router();
  router.get('/throw/:code', (req) => {
    const code = req.params.code as ErrorCode;
    throw new AppError(code, `detail for ${code}`, {
      cause: new Error('internal cause, never shown'),
    });
  });

  it.each(ERROR_CODES.map((code) => [code]))(
    'when a handler throws %s, then the answer is its problem+json',
    async (code) => {
      const h = await ready();
      const res = await request(testApp(h.actor, { routers: [router] }).app).get(`/throw/${code}`);
      const body = expectProblem(res, code);
      expect(body.detail).toBe(`detail for ${code}`);
      expect(JSON.stringify(body)).not.toContain('internal cause');
      expect(res.headers['retry-after'] === undefined).toBe(!ERROR_CATALOGUE[code].retryable);
    },
  );

  it('when a handler throws something unknown, then INTERNAL, no internal message, logged once with its cause, counted', async () => {
    const h = await ready();
    const crashing = Router();
    crashing.get('/bug', () => {
      throw new TypeError('cannot read properties of undefined (reading "id") at orders.ts:42', {
        cause: new Error('root'),
      });
    });
    const { app, log } = testApp(h.actor, { routers: [crashing] });
    const res = await request(app).get('/bug');
    const body = expectProblem(res, 'INTERNAL');
    expect(body.detail).toBe('An unexpected error occurred.');
    expect(JSON.stringify(body)).not.toMatch(/undefined|orders\.ts/);
    const logged = log.records().filter((r) => r.event === 'http.unhandled_error');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      error_code: 'INTERNAL',
      error_category: 'unexpected',
      error: { name: 'TypeError', cause: { message: 'root' } },
    });
  });

  it('when validation fails, then VALIDATION_FAILED carries one entry per field', async () => {
    const h = await ready();
    const validating = Router();
    validating.post('/validate', () => {
      throw new ValidationError([
        { field: 'currency', message: 'must be an ISO 4217 code' },
        { field: 'items[0].quantity', message: 'must be 1-1000' },
      ]);
    });
    const res = await request(testApp(h.actor, { routers: [validating] }).app)
      .post('/validate')
      .send({ a: 1 });
    const body = expectProblem(res, 'VALIDATION_FAILED');
    expect(body.errors).toEqual([
      { field: 'currency', message: 'must be an ISO 4217 code' },
      { field: 'items[0].quantity', message: 'must be 1-1000' },
    ]);
  });
});

describe('request bodies', () => {
  const echo = Router();
  echo.post('/echo', (req, res) => {
    res.json({ got: req.body as unknown });
  });

  it('when the body is valid JSON, then the handler gets it', async () => {
    const h = await ready();
    const res = await request(testApp(h.actor, { routers: [echo] }).app)
      .post('/echo')
      .send({ n: 1 });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ got: { n: 1 } });
  });

  it('when the body is malformed JSON, then 400 MALFORMED_JSON', async () => {
    const h = await ready();
    const res = await request(testApp(h.actor, { routers: [echo] }).app)
      .post('/echo')
      .set('Content-Type', 'application/json')
      .send('{"n": 1,');
    expectProblem(res, 'MALFORMED_JSON');
  });

  it('when the body is larger than BODY_LIMIT_BYTES, then 413 PAYLOAD_TOO_LARGE; a smaller one passes again', async () => {
    const h = await ready();
    const { app } = testApp(h.actor, { routers: [echo], env: { BODY_LIMIT_BYTES: '1024' } });
    expectProblem(
      await request(app)
        .post('/echo')
        .send({ s: 'x'.repeat(2000) }),
      'PAYLOAD_TOO_LARGE',
    );
    expect(
      (
        await request(app)
          .post('/echo')
          .send({ s: 'x'.repeat(100) })
      ).status,
    ).toBe(200);
  });

  it.each([
    ['text/plain'],
    ['application/x-www-form-urlencoded'],
    ['multipart/form-data; boundary=x'],
  ])('when the body is %s, then 415 UNSUPPORTED_MEDIA_TYPE', async (type) => {
    const h = await ready();
    const res = await request(testApp(h.actor, { routers: [echo] }).app)
      .post('/echo')
      .set('Content-Type', type)
      .send('a=1');
    expectProblem(res, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('when the JSON charset is not utf-8, then 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const h = await ready();
    const res = await request(testApp(h.actor, { routers: [echo] }).app)
      .post('/echo')
      .set('Content-Type', 'application/json; charset=latin1')
      .send('{"a":1}');
    expectProblem(res, 'UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('request bodies a hostile client sends', () => {
  const echo = Router();
  echo.post('/echo', (req, res) => {
    res.json({ got: req.body as unknown });
  });
  /** POSTs the bytes as they are (supertest would JSON-encode a Buffer). */
  const post = async (
    body: string | Buffer,
    headers: Record<string, string> = {},
  ): Promise<request.Response> => {
    const h = await ready();
    const { app } = testApp(h.actor, { routers: [echo] });
    const server = app.listen(0, '127.0.0.1');
    try {
      await new Promise((resolve) => server.once('listening', resolve));
      let call = request(server).post('/echo').set('Content-Type', 'application/json');
      for (const [name, value] of Object.entries(headers)) call = call.set(name, value);
      const bytes = typeof body === 'string' ? Buffer.from(body) : body;
      return await call
        .set('Content-Length', String(bytes.length))
        .serialize((raw: unknown) => raw as string)
        .send(bytes as never);
    } finally {
      server.close();
    }
  };

  it('when a member appears twice, then 400 MALFORMED_JSON naming it (JSON.parse would keep the last)', async () => {
    const res = await post('{"items":[{"sku":"A","quantity":1,"sku":"B"}]}');
    expect(expectProblem(res, 'MALFORMED_JSON').detail).toContain('"sku" appears more than once');
  });

  it('when the body has invalid UTF-8, then 400 MALFORMED_JSON (never silently replaced by U+FFFD)', async () => {
    const res = await post(
      Buffer.concat([Buffer.from('{"s":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]),
    );
    expect(expectProblem(res, 'MALFORMED_JSON').detail).toBe(
      'The request body is not valid UTF-8.',
    );
  });

  it('when the body is valid UTF-8 with a BOM, multi-byte text and escapes, then the handler gets the text', async () => {
    const res = await post(Buffer.from('\ufeff{"s":"é😀\\u00e9"}', 'utf8'));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ got: { s: 'é😀é' } });
  });

  it('when the body is JSON but not an object or array, then 400 MALFORMED_JSON', async () => {
    expectProblem(await post('"just a string"'), 'MALFORMED_JSON');
  });

  it('when the parser fails, then the detail does not quote the body', async () => {
    const res = await post('{"secret-ish": tru');
    expect(expectProblem(res, 'MALFORMED_JSON').detail).toBe('The request body is not valid JSON.');
  });

  it.each(['gzip', 'deflate', 'br'])(
    'when the body is %s-encoded, then 415 UNSUPPORTED_MEDIA_TYPE (no decompression)',
    async (encoding) => {
      expectProblem(
        await post('{"a":1}', { 'Content-Encoding': encoding }),
        'UNSUPPORTED_MEDIA_TYPE',
      );
    },
  );

  it('when the body has a transfer coding other than chunked (gzip, chunked), then 415 UNSUPPORTED_MEDIA_TYPE (Node would hand it through undecoded)', async () => {
    const h = await ready();
    const { app } = testApp(h.actor, { routers: [echo] });
    const server = app.listen(0, '127.0.0.1');
    try {
      await new Promise((resolve) => server.once('listening', resolve));
      const { port } = server.address() as AddressInfo;
      const answer = await rawRequest(
        port,
        Buffer.from(
          'POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n' +
            'Transfer-Encoding: gzip, chunked\r\n\r\n7\r\n{"a":1}\r\n0\r\n\r\n',
        ),
      );
      expect(answer.status).toBe(415);
      expect(JSON.parse(answer.body)).toMatchObject({
        code: 'UNSUPPORTED_MEDIA_TYPE',
        detail: 'The only Transfer-Encoding accepted is chunked.',
      });
    } finally {
      server.close();
    }
  });

  it('when a chunked body grows past BODY_LIMIT_BYTES, then 413 PAYLOAD_TOO_LARGE and the connection closes', async () => {
    const h = await ready();
    const { app } = testApp(h.actor, { routers: [echo], env: { BODY_LIMIT_BYTES: '1024' } });
    const server = app.listen(0, '127.0.0.1');
    try {
      await new Promise((resolve) => server.once('listening', resolve));
      const { port } = server.address() as AddressInfo;
      const status = await new Promise<{ status?: number; connection?: string }>((resolve) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/echo',
            headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
          },
          (res) => {
            res.resume();
            resolve({ status: res.statusCode, connection: res.headers.connection });
          },
        );
        req.on('error', () => resolve({}));
        for (let i = 0; i < 4; i += 1) req.write(`{"s":"${'x'.repeat(500)}"}`);
      });
      expect(status).toEqual({ status: 413, connection: 'close' });
    } finally {
      server.close();
    }
  });
});

describe('methods', () => {
  it('when a probe path is called with another method, then 405 METHOD_NOT_ALLOWED with Allow: GET, HEAD', async () => {
    const h = await ready();
    const { app } = testApp(h.actor);
    for (const path of ['/health', '/livez', '/ready', '/readyz']) {
      const res = await request(app).post(path).send({});
      expectProblem(res, 'METHOD_NOT_ALLOWED');
      expect(res.headers.allow).toBe('GET, HEAD');
    }
  });

  it('when OPTIONS names a route, then 204 with its methods in Allow and no body; an unknown path is 404 problem+json', async () => {
    const h = await ready();
    const router = Router();
    router.get('/things/:id', (_req, res) => {
      res.json({});
    });
    const { app } = testApp(h.actor, { routers: [router] });
    const known = await request(app).options('/things/7');
    expect(known.status).toBe(204);
    expect(known.headers.allow).toBe('GET, HEAD, OPTIONS');
    expect(known.text).toBe('');
    expect((await request(app).options('/health')).headers.allow).toBe('GET, HEAD, OPTIONS');
    expectProblem(await request(app).options('/nowhere'), 'ROUTE_NOT_FOUND');
  });

  it('when a path is long or holds markup, then the 404 detail shows it cut to 64 characters and percent-encoded', async () => {
    const h = await ready();
    const res = await request(testApp(h.actor).app).get(`/<script>${'a'.repeat(16_000)}`);
    const body = expectProblem(res, 'ROUTE_NOT_FOUND');
    expect(body.detail).toMatch(
      /^No route for GET \/%3Cscript%3Ea+\.\.\. \(path cut to 64 of \d+ characters\)\.$/,
    );
    expect(body.detail.length).toBeLessThan(200);
  });
});

describe('response headers', () => {
  it('when anything is answered, then X-Content-Type-Options is nosniff; errors are never cached', async () => {
    const h = await ready();
    const { app } = testApp(h.actor);
    const probe = await request(app).get('/health');
    expect(probe.headers['x-content-type-options']).toBe('nosniff');
    const missing = await request(app).get('/missing');
    expect(missing.headers['x-content-type-options']).toBe('nosniff');
    expect(missing.headers['cache-control']).toBe('no-store');
  });
});

describe('methods (routes)', () => {
  it('when a path exists with other methods, then 405 METHOD_NOT_ALLOWED with Allow', async () => {
    const h = await ready();
    const router = Router();
    router.get('/things/:id', (_req, res) => {
      res.json({});
    });
    const res = await request(testApp(h.actor, { routers: [router] }).app).delete('/things/7');
    expectProblem(res, 'METHOD_NOT_ALLOWED');
    expect(res.headers.allow).toBe('GET, HEAD');
  });
});

describe('rate limit', () => {
  /** The edge on a ready machine, with one route GET /r answering 200. */
  async function appWithRoute(env: Record<string, string>) {
    const h = await ready();
    const router = Router();
    router.get('/r', (_req, res) => {
      res.json({ ok: true });
    });
    return testApp(h.actor, { routers: [router], env }).app;
  }

  /** A RateLimit or RateLimit-Policy header, parsed as an RFC 9651 structured-field list. */
  function parsedRateLimit(header: unknown): { name: unknown; params: Record<string, unknown> } {
    const list = parseList(String(header));
    expect(list).toHaveLength(1);
    const [item] = list;
    const [name, params] = item as [unknown, Map<string, unknown>];
    return { name, params: Object.fromEntries(params) };
  }

  it("when a client exceeds RATE_LIMIT_MAX in the window, then 429 RATE_LIMITED with Retry-After and the current draft's structured RateLimit headers, and it recovers after the window", async () => {
    const app = await appWithRoute({ RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '1000' });
    for (let i = 0; i < 3; i += 1) {
      const ok = await request(app).get('/r');
      expect(ok.status).toBe(200);
      expect(parsedRateLimit(ok.headers['ratelimit-policy'])).toEqual({
        name: 'default',
        params: { q: 3, w: 1 },
      });
      expect(parsedRateLimit(ok.headers.ratelimit)).toEqual({
        name: 'default',
        params: { r: 2 - i, t: expect.any(Number) as unknown },
      });
    }
    const limited = await request(app).get('/r');
    expectProblem(limited, 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const { params } = parsedRateLimit(limited.headers.ratelimit);
    expect(params.r).toBe(0);
    expect(params.t).toBeGreaterThanOrEqual(0);
    expect(params.t).toBeLessThanOrEqual(1);
    await delay(1100);
    expect((await request(app).get('/r')).status).toBe(200);
  });

  it('when a client keeps going over its limit, then its 429s are one http.rate_limited line per window with the count, not an access log line each, and the metric counts every one', async () => {
    const h = await ready();
    const router = Router();
    router.get('/r', (_req, res) => {
      res.json({ ok: true });
    });
    const { app, log, telemetry } = testApp(h.actor, {
      routers: [router],
      env: { RATE_LIMIT_MAX: '2' },
    });
    for (let i = 0; i < 2 + 50; i += 1) await request(app).get('/r');
    const events = log.records().map((r) => r.event);
    expect(events.filter((e) => e === 'http.request')).toHaveLength(2);
    const summaries = log.records().filter((r) => r.event === 'http.rate_limited');
    // The first 429 is reported at once; the other 49 wait for the end of the window.
    expect(summaries).toEqual([
      expect.objectContaining({
        level: 'warn',
        error_code: 'RATE_LIMITED',
        rate_limited: 1,
        last_method: 'GET',
        last_path: '/r',
        window_ms: RATE_LIMITED_LOG_WINDOW_MS,
      }),
    ]);
    expect(summaries[0]).not.toHaveProperty('request_id');
    const metrics = (
      await request((req: http.IncomingMessage, res: http.ServerResponse) =>
        telemetry.serveMetrics(req, res),
      ).get('/metrics')
    ).text;
    expect(metrics).toMatch(/ops_errors_total\{[^}]*error_code="RATE_LIMITED"[^}]*\} 50/);
  });

  it('when no proxy is trusted, then X-Forwarded-For does not change the client: every request counts against the TCP peer', async () => {
    const app = await appWithRoute({ RATE_LIMIT_MAX: '2', TRUST_PROXY_HOPS: '0' });
    const server = app.listen(0, '127.0.0.1');
    try {
      const agent = request(server);
      expect((await agent.get('/r').set('X-Forwarded-For', '203.0.113.1')).status).toBe(200);
      expect((await agent.get('/r').set('X-Forwarded-For', '203.0.113.2')).status).toBe(200);
      expectProblem(await agent.get('/r').set('X-Forwarded-For', '203.0.113.3'), 'RATE_LIMITED');
    } finally {
      server.close();
    }
  });

  it('when one proxy hop is trusted, then each forwarded client has its own budget (IPv6 clients by /56)', async () => {
    const app = await appWithRoute({ RATE_LIMIT_MAX: '1', TRUST_PROXY_HOPS: '1' });
    const from = (client: string): request.Test =>
      request(app).get('/r').set('X-Forwarded-For', client);
    expect((await from('203.0.113.1')).status).toBe(200);
    expectProblem(await from('203.0.113.1'), 'RATE_LIMITED');
    expect((await from('203.0.113.2')).status).toBe(200);
    expect((await from('2001:db8:1:100::1')).status).toBe(200);
    // The same /56 as the address above: the same client.
    expectProblem(await from('2001:db8:1:1ff::2'), 'RATE_LIMITED');
    expect((await from('2001:db8:1:200::1')).status).toBe(200);
  });

  it('when probes are called often, then they are never rate limited', async () => {
    const h = await ready();
    const { app } = testApp(h.actor, { env: { RATE_LIMIT_MAX: '1' } });
    for (let i = 0; i < 5; i += 1) expect((await request(app).get('/ready')).status).toBe(200);
  });
});

describe('load shedding', () => {
  it('when MAX_CONCURRENT_REQUESTS handlers are running, then new ones get 503 OVERLOADED, and once they finish requests pass again', async () => {
    const h = await ready();
    const release: (() => void)[] = [];
    const router = Router();
    router.get('/hold', (_req, res) => {
      release.push(() => res.json({ held: true }));
    });
    router.get('/quick', (_req, res) => {
      res.json({ quick: true });
    });
    const { app, tracker } = testApp(h.actor, {
      routers: [router],
      env: { MAX_CONCURRENT_REQUESTS: '2' },
    });
    const server = app.listen(0);
    try {
      const agent = request(server);
      const held = [agent.get('/hold').then((r) => r), agent.get('/hold').then((r) => r)];
      while (tracker.inFlight < 2) await delay(5);
      expectProblem(await agent.get('/quick'), 'OVERLOADED');
      release.forEach((fn) => fn());
      expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
      expect((await agent.get('/quick')).status).toBe(200);
    } finally {
      server.close();
    }
  });

  it('when clients are still trickling their bodies, then they hold no handler slot: other requests are served', async () => {
    const h = await ready();
    const router = Router();
    router.post('/echo', (req, res) => {
      res.json({ got: req.body as unknown });
    });
    router.get('/quick', (_req, res) => {
      res.json({ quick: true });
    });
    const { app, tracker } = testApp(h.actor, {
      routers: [router],
      env: { MAX_CONCURRENT_REQUESTS: '2' },
    });
    const server = app.listen(0, '127.0.0.1');
    const slow: http.ClientRequest[] = [];
    try {
      await new Promise((resolve) => server.once('listening', resolve));
      const { port } = server.address() as AddressInfo;
      for (let i = 0; i < 5; i += 1) {
        const req = http.request({
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/echo',
          headers: { 'Content-Type': 'application/json', 'Content-Length': '100' },
        });
        req.on('error', () => undefined);
        req.write('{"a":"');
        slow.push(req);
      }
      while (tracker.inFlight < 5) await delay(5);
      expect(tracker.handling).toBe(0);
      const agent = request(server);
      expect((await agent.get('/quick')).status).toBe(200);
      expect((await agent.get('/quick')).status).toBe(200);
      expect(tracker.inFlight).toBe(5);
    } finally {
      for (const req of slow) req.destroy();
      server.close();
    }
  });

  it('when the event loop is late beyond SHED_EVENT_LOOP_DELAY_MS, then new requests get 503 OVERLOADED until it recovers', async () => {
    const h = await ready();
    const { app, telemetry } = testApp(h.actor, { env: { SHED_EVENT_LOOP_DELAY_MS: '100' } });
    const lateBy = jest.spyOn(telemetry.eventLoop, 'p99Ms');
    lateBy.mockReturnValue(350);
    expectProblem(await request(app).get('/anything'), 'OVERLOADED');
    lateBy.mockReturnValue(5);
    expect((await request(app).get('/anything')).status).toBe(404);
  });
});

describe('request deadline', () => {
  it('when the client goes away before the answer, then the request signal fires with the reason', async () => {
    const h = await ready();
    let signal: CancelSignal | undefined;
    const router = Router();
    router.get('/slow', (_req, res) => {
      signal = requestSignal(res);
    });
    const { app, tracker } = testApp(h.actor, { routers: [router] });
    const server = app.listen(0, '127.0.0.1');
    try {
      await new Promise((resolve) => server.once('listening', resolve));
      const { port } = server.address() as AddressInfo;
      const client = http.get({ host: '127.0.0.1', port, path: '/slow' });
      client.on('error', () => undefined);
      while (signal === undefined) await new Promise((resolve) => setImmediate(resolve));
      expect(signal.aborted).toBe(false);
      client.destroy();
      while (tracker.inFlight > 0) await delay(5);
      expect(signal.aborted).toBe(true);
      expect((signal.reason as Error).message).toBe('the connection closed before the answer');
    } finally {
      server.close();
    }
  });

  it('when the answer is sent, then the request signal never fires', async () => {
    const h = await ready();
    let signal: CancelSignal | undefined;
    const router = Router();
    router.get('/quick', (_req, res) => {
      signal = requestSignal(res);
      res.json({ ok: true });
    });
    const { app, tracker } = testApp(h.actor, { routers: [router] });
    expect((await request(app).get('/quick')).status).toBe(200);
    expect(tracker.inFlight).toBe(0);
    expect(signal?.aborted).toBe(false);
  });

  it('when a handler outlives REQUEST_TIMEOUT_MS, then its AbortSignal fires and the client gets 503 REQUEST_TIMEOUT', async () => {
    const h = await ready();
    let abortedWith: unknown;
    const router = Router();
    router.get('/slow', (_req, res) => {
      const signal = tracker.signalOf((res.locals as RequestLocals).tracked);
      signal.addEventListener('abort', () => {
        abortedWith = signal.reason;
      });
    });
    const { app, tracker } = testApp(h.actor, {
      routers: [router],
      env: { REQUEST_TIMEOUT_MS: '100' },
    });
    const started = Date.now();
    const res = await request(app).get('/slow');
    expectProblem(res, 'REQUEST_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(abortedWith).toBeInstanceOf(AppError);
    expect(tracker.inFlight).toBe(0);
  });

  it("when draining and a request's deadline would outlive the drain budget (from the machine's clock), then 503 SHUTTING_DOWN at once; one that fits is served", async () => {
    // One request still in flight keeps the machine in the drain.
    const h = harness({ inFlight: 1 });
    await toReady(h);
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    // The harness's delay (500 ms) passes, intake stops: the drain deadline is 2 s from then.
    while (drainDeadlineOf(h.context()) === undefined) {
      await delay(20);
    }
    const handler = jest.fn((_req: unknown, res: { json(body: unknown): void }) => {
      res.json({ ok: true });
    });
    const router = Router();
    router.get('/work', handler);
    const tooLong = await request(
      testApp(h.actor, { routers: [router], env: { REQUEST_TIMEOUT_MS: '3000' } }).app,
    ).get('/work');
    expectProblem(tooLong, 'SHUTTING_DOWN');
    expect(tooLong.headers.connection).toBe('close');
    expect(handler).not.toHaveBeenCalled();
    const fits = await request(
      testApp(h.actor, { routers: [router], env: { REQUEST_TIMEOUT_MS: '1000' } }).app,
    ).get('/work');
    expect(fits.status).toBe(200);
    expect(fits.headers.connection).toBe('close');
  });
});
