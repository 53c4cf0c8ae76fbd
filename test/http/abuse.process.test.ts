// Bad input never crashes the process: a seeded random-input run of thousands of requests, and
// slow clients cut off by the server's own timeouts. Whole process, raw sockets.
import net from 'node:net';
import { ERROR_CATALOGUE, isErrorCode } from '../../src/errors/catalogue';
import { get, seeded } from '../drills/drill-kit';
import { type RawResponse, rawRequest, parseResponse } from '../helpers/raw-http';
import { startService } from '../helpers/service-process';

jest.setTimeout(60_000);

type Case = { name: string; request: Buffer };

function http(
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer = Buffer.alloc(0),
): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  for (const [key, value] of Object.entries(headers)) lines.push(`${key}: ${value}`);
  if (body.length > 0 || method === 'POST') lines.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

/** Seeded generator of hostile requests; every case must be answered well-formed. */
function makeCases(count: number, bodyLimit: number): Case[] {
  const random = seeded(20261121);
  const int = (n: number): number => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  const json = { 'Content-Type': 'application/json' };
  const generators: (() => Case)[] = [
    () => ({
      name: 'valid json',
      request: http(
        'POST',
        '/drill/echo',
        json,
        Buffer.from(JSON.stringify({ a: int(1000), b: 'x'.repeat(int(200)) })),
      ),
    }),
    () => {
      const text = JSON.stringify({ order: { items: [1, 2, 3], note: 'ok' } });
      return {
        name: 'truncated json',
        request: http('POST', '/drill/echo', json, Buffer.from(text.slice(0, int(text.length)))),
      };
    },
    () => ({
      name: 'random bytes as json',
      request: http(
        'POST',
        '/drill/echo',
        json,
        Buffer.from(Array.from({ length: 1 + int(500) }, () => int(256))),
      ),
    }),
    () => {
      const depth = pick([10, 1_000, 10_000, 50_000]);
      return {
        name: `nesting ${depth}`,
        request: http(
          'POST',
          '/drill/echo',
          json,
          Buffer.from('['.repeat(depth) + ']'.repeat(depth)),
        ),
      };
    },
    () => ({
      name: 'huge string',
      request: http(
        'POST',
        '/drill/echo',
        json,
        Buffer.from(JSON.stringify({ s: 'y'.repeat(int(bodyLimit * 2)) })),
      ),
    }),
    () => ({
      name: 'invalid utf-8 in a string',
      request: http(
        'POST',
        '/drill/echo',
        json,
        Buffer.concat([
          Buffer.from('{"s":"'),
          Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xa0, 0xa1]),
          Buffer.from('"}'),
        ]),
      ),
    }),
    () => ({
      name: 'oversized x-request-id',
      request: http('GET', '/drill/work?ms=0', { 'X-Request-Id': 'r'.repeat(int(8000) + 200) }),
    }),
    () => ({
      name: 'odd x-request-id',
      request: http('GET', '/drill/work?ms=0', { 'X-Request-Id': '<script>alert(1)</script>' }),
    }),
    () => ({
      name: 'odd headers',
      request: http('GET', '/health', {
        'X-Weird': '\u00ff\u00fe latin1 bytes',
        'Accept-Encoding': 'zstd, *;q=0',
        Range: 'bytes=-1',
      }),
    }),
    () => ({
      name: 'wrong media type',
      request: http(
        'POST',
        '/drill/echo',
        {
          'Content-Type': pick([
            'text/plain',
            'application/xml',
            '',
            'application/json; charset=utf-16',
          ]),
        },
        Buffer.from('{"a":1}'),
      ),
    }),
    () => ({
      name: 'unknown route',
      request: http(
        pick(['GET', 'POST', 'DELETE', 'PATCH']),
        `/${'a/'.repeat(int(50))}%${int(99)}`,
        {},
      ),
    }),
    () => ({ name: 'bad percent-encoding', request: http('GET', '/v1/orders/%E0%A4%A', {}) }),
    () => ({
      name: 'garbage request line',
      request: Buffer.from(`${'\u0000\u0001GARBAGE '.repeat(1 + int(5))}\r\n\r\n`, 'latin1'),
    }),
    () => ({
      name: 'header overflow',
      request: http('GET', '/health', { 'X-Big': 'z'.repeat(20_000 + int(20_000)) }),
    }),
    () => ({
      name: 'content-length lies',
      request: Buffer.concat([
        http('POST', '/drill/echo', { ...json, 'Content-Length': '10' }).subarray(0, -4),
        Buffer.from('\r\n\r\n{"a"'),
      ]),
    }),
  ];
  return Array.from({ length: count }, () => pick(generators)());
}

/** A response is fine when it is a JSON success or a catalogue problem with the right status. */
function problemIn(response: RawResponse): string | undefined {
  if (response.status === 0) return `no response (${response.error ?? 'closed'})`;
  const type = response.headers['content-type'] ?? '';
  if (response.status < 400) {
    if (!type.startsWith('application/json')) return `success without JSON: ${type}`;
    JSON.parse(response.body);
    return undefined;
  }
  if (type !== 'application/problem+json; charset=utf-8')
    return `error ${response.status} without problem+json: ${type}`;
  const body = JSON.parse(response.body) as {
    code?: unknown;
    status?: unknown;
    type?: unknown;
    title?: unknown;
  };
  if (!isErrorCode(body.code)) return `unknown code ${String(body.code)}`;
  if (ERROR_CATALOGUE[body.code].status !== response.status || body.status !== response.status)
    return `status mismatch for ${body.code}`;
  if (/\n\s+at /.test(response.body)) return 'a stack trace reached the client';
  return undefined;
}

describe('hostile input', () => {
  it('when thousands of seeded random bad requests arrive, then every answer is well-formed problem+json or success, and the process stays healthy', async () => {
    const { service, port } = await startService({
      BODY_LIMIT_BYTES: '65536',
      RATE_LIMIT_MAX: '0',
      MAX_CONCURRENT_REQUESTS: '1000',
      SHED_EVENT_LOOP_DELAY_MS: '0',
    });
    try {
      const cases = makeCases(2_000, 65_536);
      const failures: string[] = [];
      const seen = new Map<string, number>();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < cases.length) {
          const item = cases[next++] as Case;
          const response = await rawRequest(port, item.request);
          const problem = problemIn(response);
          if (problem !== undefined) failures.push(`${item.name}: ${problem}`);
          const code =
            response.status < 400
              ? String(response.status)
              : String((JSON.parse(response.body || '{}') as { code?: string }).code);
          seen.set(`${item.name} -> ${code}`, (seen.get(`${item.name} -> ${code}`) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));

      expect(failures.slice(0, 10)).toEqual([]);
      const outcomes = [...seen.keys()].join('\n');
      for (const expected of [
        'MALFORMED_JSON',
        'PAYLOAD_TOO_LARGE',
        'UNSUPPORTED_MEDIA_TYPE',
        'MALFORMED_REQUEST',
        'HEADERS_TOO_LARGE',
        'ROUTE_NOT_FOUND',
      ]) {
        expect(outcomes).toContain(expected);
      }
      const health = await get(port, '/health', false);
      expect(health.ok).toBe(true);
      expect(service.child.exitCode).toBeNull();
      expect(service.events()).not.toContain('process.crash');
      expect(service.lines.filter((l) => l.event === 'http.unhandled_error')).toEqual([]);
    } finally {
      service.kill('SIGTERM');
      expect(await service.exited()).toBe(0);
    }
  });
});

describe('slow clients', () => {
  function trickle(
    port: number,
    head: string,
    drip: string,
    everyMs: number,
  ): Promise<{ response: RawResponse; afterMs: number }> {
    return new Promise((resolve) => {
      const started = Date.now();
      const socket = net.connect({ port, host: '127.0.0.1' });
      const chunks: Buffer[] = [];
      const timer = setInterval(() => {
        if (socket.writable) socket.write(drip);
      }, everyMs);
      const done = (): void => {
        clearInterval(timer);
        socket.destroy();
        resolve({ response: parseResponse(Buffer.concat(chunks)), afterMs: Date.now() - started });
      };
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.once('close', done);
      socket.once('error', () => undefined);
      socket.write(head);
    });
  }

  it('when a client trickles its headers byte by byte, then it is cut off after HTTP_HEADERS_TIMEOUT_MS with 408 CLIENT_TIMEOUT', async () => {
    const { service, port } = await startService({
      HTTP_HEADERS_TIMEOUT_MS: '500',
      HTTP_BODY_TIMEOUT_MS: '1000',
      HTTP_REQUEST_TIMEOUT_MS: '5000',
    });
    try {
      const { response, afterMs } = await trickle(
        port,
        'GET /health HTTP/1.1\r\nHost: x\r\n',
        'X',
        50,
      );
      expect(response.status).toBe(408);
      expect(JSON.parse(response.body)).toMatchObject({ code: 'CLIENT_TIMEOUT', status: 408 });
      expect(afterMs).toBeGreaterThanOrEqual(450);
      expect(afterMs).toBeLessThan(2_500);
      expect((await get(port, '/health', false)).ok).toBe(true);
    } finally {
      service.kill('SIGTERM');
      await service.exited();
    }
  });

  it('when a client trickles its body, then it is cut off after HTTP_BODY_TIMEOUT_MS with 408 CLIENT_TIMEOUT and the connection closes', async () => {
    const { service, port } = await startService({
      HTTP_HEADERS_TIMEOUT_MS: '500',
      HTTP_BODY_TIMEOUT_MS: '1000',
      HTTP_REQUEST_TIMEOUT_MS: '5000',
    });
    try {
      const head =
        'POST /drill/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"a":"';
      const { response, afterMs } = await trickle(port, head, 'b', 50);
      expect(afterMs).toBeGreaterThanOrEqual(900);
      expect(afterMs).toBeLessThan(2_500);
      expect(response.status).toBe(408);
      expect(JSON.parse(response.body)).toMatchObject({ code: 'CLIENT_TIMEOUT', status: 408 });
      expect(response.headers.connection).toBe('close');
      expect(service.child.exitCode).toBeNull();
    } finally {
      service.kill('SIGTERM');
      await service.exited();
    }
  });
});
