// Hostile clients against the real service on the real PostgreSQL (issue #11): each case is one
// way any client could take the service down or make it say something false, run as an attacker
// would (raw sockets, a real process) and checked from the outside: the answers, the access log,
// the metrics and readiness.
import { setTimeout as delay } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { ERROR_CATALOGUE, isErrorCode } from '../../src/errors/catalogue';
import { parsePrometheusText, type Sample } from '../helpers/prometheus-text';
import { parseResponse, rawRequest, type RawResponse } from '../helpers/raw-http';
import { getPath, orderBody, postOrder } from '../orders/support/orders-client';
import { createTestDatabase, type TestDatabase } from '../orders/support/test-database';
import { startService, type Started } from '../helpers/service-process';

jest.setTimeout(60_000);

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

async function start(env: Record<string, string> = {}): Promise<Started> {
  return startService({ DATABASE_URL: database.url, RATE_LIMIT_MAX: '0', ...env });
}

async function stop(started: Started): Promise<void> {
  started.service.kill('SIGTERM');
  expect(await started.service.exited()).toBe(0);
}

function text(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

async function metrics(opsPort: number): Promise<Sample[]> {
  return parsePrometheusText(await text(opsPort, '/metrics'));
}

function sampleValue(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return found?.value ?? 0;
}

function orderRequest(body: string, headers: string[] = []): Buffer {
  return Buffer.from(
    [
      'POST /v1/orders HTTP/1.1',
      'Host: 127.0.0.1',
      'Connection: close',
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      ...headers,
      '',
      body,
    ].join('\r\n'),
  );
}

function expectProblem(response: RawResponse, code: string): Record<string, unknown> {
  expect(response.status).toBe(isErrorCode(code) ? ERROR_CATALOGUE[code].status : -1);
  expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
  expect(response.headers['x-content-type-options']).toBe('nosniff');
  const body = JSON.parse(response.body) as Record<string, unknown>;
  expect(body).toMatchObject({ code, status: response.status });
  expect(typeof body.request_id).toBe('string');
  expect(body.trace_id).toMatch(/^[0-9a-f]{32}$/);
  return body;
}

/** Opens a request and sends its body one byte every `everyMs` until the server answers. */
function trickle(
  port: number,
  head: string,
  everyMs: number,
  headerLines: string[] = [],
): Promise<{ response: RawResponse; afterMs: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    const pending = [...headerLines];
    const timer = setInterval(() => {
      if (!socket.writable) return;
      const line = pending.shift();
      socket.write(line === undefined ? 'x' : line);
    }, everyMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', () => undefined);
    socket.once('close', () => {
      clearInterval(timer);
      resolve({ response: parseResponse(Buffer.concat(chunks)), afterMs: Date.now() - started });
    });
    socket.write(head);
  });
}

describe('a client sending text PostgreSQL cannot store', () => {
  it('when bad orders (NUL, lone surrogate) arrive beside valid ones, then each is 400 VALIDATION_FAILED naming the field, every valid order is created, and the breaker and readiness never move', async () => {
    const started = await start();
    const { port, opsPort, service } = started;
    try {
      const bad = [
        '{"customer_id":"a\\u0000b","currency":"EUR","items":[{"sku":"S","quantity":1,"unit_price_cents":1}]}',
        '{"customer_id":"c","currency":"EUR","items":[{"sku":"\\ud800","quantity":1,"unit_price_cents":1}]}',
      ];
      const statuses: number[] = [];
      for (let round = 0; round < 10; round += 1) {
        for (const [index, body] of bad.entries()) {
          const answer = await rawRequest(
            port,
            orderRequest(body, [`Idempotency-Key: bad-${round}-${index}`]),
          );
          const problem = expectProblem(answer, 'VALIDATION_FAILED');
          expect(problem.errors).toEqual([
            expect.objectContaining({ field: index === 0 ? 'customer_id' : 'items[0].sku' }),
          ]);
        }
        for (let i = 0; i < 3; i += 1) {
          statuses.push(
            (await postOrder(port, `good-${round}-${i}-${randomUUID()}`, orderBody())).status ?? 0,
          );
        }
      }
      expect(statuses).toEqual(Array(30).fill(201));
      expect((await getPath(port, '/ready')).status).toBe(200);
      const samples = await metrics(opsPort);
      expect(
        sampleValue(samples, 'ops_circuit_breaker_state', {
          dependency: 'database',
          state: 'closed',
        }),
      ).toBe(1);
      expect(service.events()).not.toContain('breaker.open');
      expect(service.events()).not.toContain('db.unavailable');
      expect(service.events()).not.toContain('http.unhandled_error');
    } finally {
      await stop(started);
    }
  });
});

describe('slow uploads', () => {
  it('when more clients trickle bodies than there are handler slots, then valid orders are still served, and each trickler gets 408 CLIENT_TIMEOUT after HTTP_BODY_TIMEOUT_MS, logged and counted as 408', async () => {
    const started = await start({ MAX_CONCURRENT_REQUESTS: '5', HTTP_BODY_TIMEOUT_MS: '1500' });
    const { port, opsPort, service } = started;
    try {
      const head =
        'POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Idempotency-Key: slow\r\nContent-Length: 100000\r\n\r\n{"customer_id":"';
      const tricklers = Array.from({ length: 10 }, () => trickle(port, head, 100));
      await delay(300);
      const served: number[] = [];
      for (let i = 0; i < 8; i += 1) {
        served.push((await postOrder(port, `during-${randomUUID()}`, orderBody())).status ?? 0);
      }
      expect(served).toEqual(Array(8).fill(201));

      const cut = await Promise.all(tricklers);
      for (const { response, afterMs } of cut) {
        expect(expectProblem(response, 'CLIENT_TIMEOUT').detail).toBe(
          'The request body did not arrive within 1500 ms.',
        );
        expect(afterMs).toBeGreaterThanOrEqual(1_400);
        expect(afterMs).toBeLessThan(3_000);
      }
      await delay(200);
      const logged = service.lines.filter((l) => l.event === 'http.request' && l.status === 408);
      expect(logged).toHaveLength(10);
      for (const line of logged) expect(line).toMatchObject({ error_code: 'CLIENT_TIMEOUT' });
      const samples = await metrics(opsPort);
      expect(sampleValue(samples, 'ops_errors_total', { error_code: 'CLIENT_TIMEOUT' })).toBe(10);
      expect(sampleValue(samples, 'ops_errors_total', { error_code: 'MALFORMED_REQUEST' })).toBe(0);
    } finally {
      await stop(started);
    }
  });

  it('when the whole-request timeout cuts off a request the app is already serving, then the client, the access log and the metrics all say 408 CLIENT_TIMEOUT, once', async () => {
    const started = await start({
      HTTP_HEADERS_TIMEOUT_MS: '2500',
      HTTP_REQUEST_TIMEOUT_MS: '3000',
      HTTP_BODY_TIMEOUT_MS: '2900',
    });
    const { port, opsPort, service } = started;
    try {
      // Headers over ~2 s, then the body: HTTP_REQUEST_TIMEOUT_MS passes before the body timeout.
      const lines = Array.from({ length: 20 }, (_, i) => `X-Slow-${i}: ${i}\r\n`);
      const { response } = await trickle(
        port,
        'POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: s\r\nContent-Length: 1000\r\n',
        100,
        [...lines, '\r\n'],
      );
      expectProblem(response, 'CLIENT_TIMEOUT');
      await delay(200);
      const logged = service.lines.filter((l) => l.event === 'http.request');
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({ status: 408, error_code: 'CLIENT_TIMEOUT' });
      const samples = await metrics(opsPort);
      expect(sampleValue(samples, 'ops_errors_total', { error_code: 'CLIENT_TIMEOUT' })).toBe(1);
      expect(sampleValue(samples, 'ops_errors_total', { error_code: 'MALFORMED_REQUEST' })).toBe(0);
    } finally {
      await stop(started);
    }
  });
});

describe('too many connections', () => {
  it('when more connections are opened than MAX_CONNECTIONS, then the extra ones are closed at once, counted and logged, the ops listener still answers, and the main listener serves again once they go', async () => {
    const started = await start({ MAX_CONNECTIONS: '20' });
    const { port, opsPort, service } = started;
    const sockets: net.Socket[] = [];
    try {
      const ready = await service.waitForEvent('service.ready');
      expect(ready.max_connections).toBe(20);
      let closedByServer = 0;
      for (let i = 0; i < 35; i += 1) {
        const socket = net.connect({ port, host: '127.0.0.1' });
        socket.on('error', () => undefined);
        socket.on('close', () => (closedByServer += 1));
        sockets.push(socket);
      }
      await delay(500);
      expect(closedByServer).toBe(15);
      const samples = await metrics(opsPort);
      expect(sampleValue(samples, 'ops_http_connections_refused_total', {})).toBe(15);
      const lifecycle = JSON.parse(await text(opsPort, '/lifecycle')) as { state: string };
      expect(lifecycle.state).toBe('ready.serving');
      const refused = await service.waitForEvent('http.connections_refused');
      expect(refused).toMatchObject({ level: 'warn', max_connections: 20 });
      expect(refused.refused).toBeGreaterThanOrEqual(1);

      for (const socket of sockets) socket.destroy();
      await delay(200);
      expect((await getPath(port, '/health')).status).toBe(200);
    } finally {
      for (const socket of sockets) socket.destroy();
      await stop(started);
    }
  });
});

describe('oversized bodies', () => {
  it('when Content-Length says more than BODY_LIMIT_BYTES, then 413 PAYLOAD_TOO_LARGE comes at once without the body, and the connection closes', async () => {
    const started = await start();
    try {
      const begun = Date.now();
      const answer = await rawRequest(
        started.port,
        Buffer.from(
          'POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: big\r\nContent-Length: 300000\r\n\r\n',
        ),
      );
      expectProblem(answer, 'PAYLOAD_TOO_LARGE');
      expect(answer.headers.connection).toBe('close');
      expect(answer.error).toBeUndefined();
      expect(Date.now() - begun).toBeLessThan(1_000);
    } finally {
      await stop(started);
    }
  });

  it('when a client declares 100 MB and keeps sending, then the 413 comes before the body, and the server stops reading', async () => {
    const started = await start();
    try {
      const result = await new Promise<{ response: string; sent: number; ms: number }>(
        (resolve) => {
          const begun = Date.now();
          const socket = net.connect({ port: started.port, host: '127.0.0.1' });
          let response = '';
          let sent = 0;
          const chunk = Buffer.alloc(64 * 1024, 0x61);
          const pump = (): void => {
            while (socket.writable && sent < 100_000_000) {
              sent += chunk.length;
              if (!socket.write(chunk)) {
                socket.once('drain', pump);
                return;
              }
            }
          };
          socket.on('data', (data: Buffer) => (response += data.toString('utf8')));
          socket.once('error', () => undefined);
          socket.once('close', () => resolve({ response, sent, ms: Date.now() - begun }));
          socket.write(
            'POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: huge\r\nContent-Length: 100000000\r\n\r\n',
          );
          pump();
        },
      );
      expect(result.response).toMatch(/^HTTP\/1\.1 413 /);
      expect(result.response).toContain('"code":"PAYLOAD_TOO_LARGE"');
      expect(result.sent).toBeLessThan(100_000_000);
      expect(result.ms).toBeLessThan(5_000);
    } finally {
      await stop(started);
    }
  });
});

describe('answers Node would write bare', () => {
  it('when a request has no Host, a bogus Expect, or is CONNECT, OPTIONS or POST /health, then the answer is problem+json with a catalogue code (or 204 with Allow for OPTIONS)', async () => {
    const started = await start();
    const { port, opsPort } = started;
    try {
      const send = (raw: string): Promise<RawResponse> => rawRequest(port, Buffer.from(raw));
      expectProblem(
        await send('GET /health HTTP/1.1\r\nConnection: close\r\n\r\n'),
        'MALFORMED_REQUEST',
      );
      expectProblem(
        await send('GET /v1/orders/x HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\n\r\n'),
        'EXPECTATION_FAILED',
      );
      expectProblem(
        await send('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'),
        'METHOD_NOT_ALLOWED',
      );
      const health = await send(
        'POST /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
      );
      expectProblem(health, 'METHOD_NOT_ALLOWED');
      expect(health.headers.allow).toBe('GET, HEAD');
      const options = await send(
        'OPTIONS /v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      );
      expect(options.status).toBe(204);
      expect(options.headers.allow).toBe('POST, OPTIONS');
      expect(options.body).toBe('');
      // An HTTP/1.0 request may omit Host.
      const old = await send('GET /health HTTP/1.0\r\n\r\n');
      expect(old.status).toBe(200);

      const opsMissing = await rawRequest(
        opsPort,
        Buffer.from('GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      );
      expectProblem(opsMissing, 'ROUTE_NOT_FOUND');
      const opsMethod = await rawRequest(
        opsPort,
        Buffer.from('DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      );
      expectProblem(opsMethod, 'METHOD_NOT_ALLOWED');
      expectProblem(await rawRequest(opsPort, Buffer.from('GARBAGE\r\n\r\n')), 'MALFORMED_REQUEST');
    } finally {
      await stop(started);
    }
  });

  it('when the same Idempotency-Key header comes twice, then 400 VALIDATION_FAILED (never one joined key), and an order answer is never cached', async () => {
    const started = await start();
    try {
      const body = JSON.stringify(orderBody());
      const twice = await rawRequest(
        started.port,
        orderRequest(body, ['Idempotency-Key: k1', 'Idempotency-Key: k2']),
      );
      expect(expectProblem(twice, 'VALIDATION_FAILED').errors).toEqual([
        {
          field: 'Idempotency-Key',
          message: 'must be sent once; the request carries it more than once',
        },
      ]);
      const created = await rawRequest(
        started.port,
        orderRequest(body, [`Idempotency-Key: once-${randomUUID()}`]),
      );
      expect(created.status).toBe(201);
      expect(created.headers['cache-control']).toBe('no-store');
      expect(created.headers['x-content-type-options']).toBe('nosniff');
    } finally {
      await stop(started);
    }
  });
});
