// A whole-process fuzz run of the orders API: the real service on a real PostgreSQL database
// takes a few thousand seeded requests over raw sockets (valid orders, mutated orders, mutated
// headers, every method on every path, garbage) and answers each one completely, as a success or
// as catalogue problem+json, never 5xx; every valid order is stored once, the database breaker
// never opens, and the process stays healthy and exits cleanly.
import { gzipSync } from 'node:zlib';
import { ERROR_CATALOGUE, isErrorCode } from '../../../src/errors/catalogue';
import { seeded } from '../../drills/drill-kit';
import { parsePrometheusText } from '../../helpers/prometheus-text';
import { parseResponse, type RawResponse, rawRequest } from '../../helpers/raw-http';
import { getPath, orderBody, postOrder, readiness } from '../support/orders-client';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startService } from '../../helpers/service-process';

jest.setTimeout(120_000);

const SEED = 20_260_612;
const CASES = 3_500;
const WORKERS = 16;
const BODY_LIMIT = 65_536;
const PROBLEM_JSON = 'application/problem+json; charset=utf-8';
/** A request with a Content-Length over the limit must be refused before its body arrives. */
const AT_ONCE_MS = 3_000;
const OVER_LIMIT = 'header: Content-Length over limit, no body';

/** Case kinds whose target answer is being fixed: each must be answered, and never with 5xx. */
const WATCHED_KINDS = [
  'body: duplicate members',
  'body: invalid utf-8',
  'body: NUL escape',
  'body: control char escape',
  'body: lone surrogate escape',
  'header: Idempotency-Key twice',
  OVER_LIMIT,
  'header: Content-Encoding',
  'header: charset not utf-8',
  'header: Expect bogus',
  'header: no Host',
  'method: CONNECT',
  'method: OPTIONS',
] as const;

/**
 * Case kinds every request of which is invalid: whatever the code, the answer is a 4xx (an order
 * must never be created from them).
 */
const REFUSED_KINDS: ReadonlySet<string> = new Set([
  'body: NUL escape',
  'body: NUL raw byte',
  'body: control char escape',
  'body: control char raw byte',
  'body: lone surrogate escape',
  'body: duplicate members',
  'body: invalid utf-8',
  'body: truncated JSON',
  'body: deep nesting',
  'body: unknown members',
  'body: empty',
  'body: not an object',
  'header: Idempotency-Key missing',
  'header: Idempotency-Key empty',
  'header: Idempotency-Key oversized',
  'header: Idempotency-Key non-ASCII',
  'header: Idempotency-Key twice',
  'header: charset not utf-8',
  'header: Content-Encoding',
  'header: Transfer-Encoding malformed',
  'header: Transfer-Encoding gzip, chunked',
  OVER_LIMIT,
  'header: Expect bogus',
  'header: no Host',
  'garbage: random bytes',
]);

type Header = readonly [name: string, value: string];

interface Case {
  /** Its position in the seeded sequence (the same on every run). */
  readonly index: number;
  /** The group, for the summary and the per-kind checks. */
  readonly kind: string;
  readonly method: string;
  readonly request: Buffer;
  /** The Idempotency-Key the server reads, if it creates an order (undefined: none sent). */
  readonly key?: string | undefined;
  /** POST to exactly /v1/orders: a success must be 201. */
  readonly isOrderPost: boolean;
  /** A valid order with a fresh key: must be created (201). */
  readonly mustCreate: boolean;
}

interface Result {
  readonly item: Case;
  readonly response: RawResponse;
  readonly ms: number;
}

// ---------------------------------------------------------------------------------------------
// Request building.

const EMPTY = Buffer.alloc(0);
const METHODS_WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);

interface Shape {
  /** Send `Host: 127.0.0.1` (default true). */
  readonly host?: boolean;
  /** Add a Content-Length matching the body (default true). */
  readonly contentLength?: boolean;
  readonly version?: string;
}

/** One HTTP/1.1 request, headers written as latin1 (each char one byte), Connection: close. */
function http(
  method: string,
  target: string,
  headers: readonly Header[],
  body: Buffer = EMPTY,
  shape: Shape = {},
): Buffer {
  const lines = [`${method} ${target} ${shape.version ?? 'HTTP/1.1'}`];
  if (shape.host !== false) lines.push('Host: 127.0.0.1');
  lines.push('Connection: close');
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  if (shape.contentLength !== false && (body.length > 0 || METHODS_WITH_BODY.has(method)))
    lines.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

/** The UTF-8 bytes of `text`, as a latin1 string (to put them in a header as they are). */
function utf8Bytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

function chunked(body: Buffer, pieces: number): Buffer {
  const size = Math.max(1, Math.ceil(body.length / pieces));
  const parts: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) {
    const piece = body.subarray(at, at + size);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// The seeded case generator.

type Order = ReturnType<typeof orderBody>;

const MARK = 'ZQXMARKZQX';

function makeCases(count: number): Case[] {
  const random = seeded(SEED);
  const int = (n: number): number => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  let keys = 0;
  const freshKey = (): string => `fuzz-${SEED}-${String((keys += 1)).padStart(5, '0')}`;
  const hex = (n: number): string => Array.from({ length: n }, () => int(16).toString(16)).join('');
  const uuid = (): string => `${hex(8)}-${hex(4)}-4${hex(3)}-8${hex(3)}-${hex(12)}`;

  const order = (): Order => {
    const body = orderBody(
      pick(['customer-', 'Zoë ', 'клиент-', 'c😀-', 'ACME Corp. #'] as const) + String(int(10_000)),
      1 + int(5),
    );
    body.currency = pick(['EUR', 'USD', 'JPY', 'CHF', 'GBP', 'XOF'] as const);
    for (const item of body.items) {
      item.sku = `SKU-${int(100_000)}`;
      item.quantity = 1 + int(1000);
      item.unit_price_cents = int(1_000_000);
    }
    return body;
  };
  /** The JSON of `order` with the string `MARK` replaced by raw bytes. */
  const withRaw = (text: string, bytes: Buffer): Buffer => {
    const [before = '', after = ''] = text.split(MARK);
    return Buffer.concat([Buffer.from(before), bytes, Buffer.from(after)]);
  };
  /** An order whose customer_id or one sku (chosen at random) is `value`. */
  const orderWithText = (value: string): Order => {
    const body = order();
    const item = body.items[int(body.items.length)];
    if (item !== undefined && random() < 0.5) item.sku = value;
    else body.customer_id = value;
    return body;
  };
  const json: Header = ['Content-Type', 'application/json'];

  let index = 0;
  const post = (
    kind: string,
    body: Buffer | string,
    options: {
      headers?: readonly Header[];
      /** Replaces the default Content-Type and Idempotency-Key headers. */
      replace?: boolean;
      key?: string | undefined;
      shape?: Shape;
      mustCreate?: boolean;
    } = {},
  ): Case => {
    const key = 'key' in options ? options.key : freshKey();
    const headers: Header[] = options.replace
      ? []
      : [json, ...(key === undefined ? [] : [['Idempotency-Key', key] as const])];
    const payload = typeof body === 'string' ? Buffer.from(body) : body;
    return {
      index: index++,
      kind,
      method: 'POST',
      request: http(
        'POST',
        '/v1/orders',
        [...headers, ...(options.headers ?? [])],
        payload,
        options.shape,
      ),
      key,
      isOrderPost: true,
      mustCreate: options.mustCreate === true,
    };
  };
  const other = (kind: string, method: string, request: Buffer, key?: string): Case => ({
    index: index++,
    kind,
    method,
    request,
    key,
    isOrderPost: false,
    mustCreate: false,
  });
  const text = (body: unknown): string => JSON.stringify(body);

  const generators: { weight: number; make: () => Case }[] = [
    // Valid orders.
    { weight: 14, make: () => post('valid order', text(order()), { mustCreate: true }) },

    // Mutated bodies.
    {
      weight: 2,
      make: () => post('body: NUL escape', text(orderWithText(`a\u0000b${int(100)}`))),
    },
    {
      weight: 1,
      make: () => {
        const raw = withRaw(text(orderWithText(`a${MARK}b`)), Buffer.from([0]));
        return post('body: NUL raw byte', raw);
      },
    },
    {
      weight: 2,
      make: () => {
        const control = String.fromCharCode(pick([1, 7, 8, 9, 10, 13, 27, 31, 127]));
        return post('body: control char escape', text(orderWithText(`x${control}y`)));
      },
    },
    {
      weight: 1,
      make: () => {
        const raw = withRaw(text(orderWithText(`a${MARK}b`)), Buffer.from([pick([1, 9, 10, 31])]));
        return post('body: control char raw byte', raw);
      },
    },
    {
      weight: 2,
      make: () => {
        const lone = pick(['\ud800', '\udfff', '\udbff', '\udc00']);
        return post('body: lone surrogate escape', text(orderWithText(`s${lone}${int(10)}`)));
      },
    },
    {
      weight: 2,
      make: () => {
        const length = pick([65, 101, 1_000, 60_000, 70_000, 140_000]);
        return post('body: very long string', text(orderWithText('L'.repeat(length))));
      },
    },
    {
      weight: 2,
      make: () => {
        const body = order() as unknown as Record<string, unknown>;
        const wrong = pick([null, true, 0, 42, '42', [], {}, [1, 2], -1, 'EUR']);
        const member = pick(['customer_id', 'currency', 'items', 'item', 'sku', 'quantity']);
        const item = (body.items as Record<string, unknown>[])[0] as Record<string, unknown>;
        if (member === 'item') (body.items as unknown[])[0] = wrong;
        else if (member === 'sku' || member === 'quantity') item[member] = wrong;
        else body[member] = wrong;
        return post('body: wrong type', text(body));
      },
    },
    {
      weight: 2,
      make: () => {
        const body = order() as unknown as Record<string, unknown>;
        const count = pick([1, 3, 20, 21, 100, 1_000, 4_000]);
        const target =
          random() < 0.7 ? body : ((body.items as Record<string, unknown>[])[0] ?? body);
        for (let i = 0; i < count; i += 1) target[`u${i}`] = i;
        return post('body: unknown members', text(body));
      },
    },
    {
      weight: 2,
      make: () => {
        const body = order();
        const plain = text(body);
        const variants = [
          plain.replace('{', '{"customer_id":"dup",'),
          plain.replace('{', `{"currency":"${body.currency}",`),
          plain.replace('{', '{"items":[],'),
          plain.replace('{"sku"', '{"sku":"first","sku"'),
          plain.replace('"quantity"', '"quantity":1,"quantity"'),
        ];
        return post('body: duplicate members', pick(variants));
      },
    },
    {
      weight: 2,
      make: () => {
        const depth = pick([10, 100, 1_000, 10_000, 30_000]);
        const nested = '['.repeat(depth) + ']'.repeat(depth);
        const body =
          random() < 0.5
            ? `{"customer_id":"c","currency":"EUR","items":${nested}}`
            : `{"customer_id":"c","currency":"EUR","items":[{"sku":${nested},"quantity":1,"unit_price_cents":1}]}`;
        return post('body: deep nesting', body);
      },
    },
    {
      weight: 2,
      make: () => {
        const number = pick([
          '1e400',
          '-1e400',
          '-0',
          '1.5',
          '1e21',
          '9007199254740993',
          '0.0000001',
          '1E2',
          '100e-2',
          '-1',
          '00',
          '0x10',
          'NaN',
          'Infinity',
        ]);
        const body = order();
        const member = pick(['quantity', 'unit_price_cents']);
        const raw = text(body).replace(new RegExp(`"${member}":\\d+`), `"${member}":${number}`);
        return post('body: odd number', raw);
      },
    },
    {
      weight: 2,
      make: () => {
        const bytes = pick([
          [0xc3, 0x28],
          [0xff],
          [0xfe, 0xff],
          [0xed, 0xa0, 0x80],
          [0xc0, 0xaf],
          [0xe2, 0x82],
          [0xf8, 0x88, 0x80, 0x80, 0x80],
          [0x80],
        ]);
        const raw = withRaw(text(orderWithText(`u${MARK}v`)), Buffer.from(bytes));
        return post('body: invalid utf-8', raw);
      },
    },
    {
      weight: 1,
      make: () =>
        post(
          'body: BOM',
          Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text(order()))]),
        ),
    },
    {
      weight: 2,
      make: () => {
        const whole = text(order());
        return post('body: truncated JSON', whole.slice(0, 1 + int(whole.length - 1)));
      },
    },
    {
      weight: 1,
      make: () =>
        pick([
          () => post('body: empty', ''),
          () => post('body: empty', '', { shape: { contentLength: false } }),
          () => post('body: not an object', pick(['null', '""', '[]', '42', 'true', '[{}]'])),
        ])(),
    },

    // Mutated headers (on a valid order).
    {
      weight: 3,
      make: () => {
        const body = text(order());
        return pick([
          () => post('header: Idempotency-Key missing', body, { key: undefined }),
          () => post('header: Idempotency-Key empty', body, { key: '' }),
          () => post('header: Idempotency-Key oversized', body, { key: 'k'.repeat(300) }),
          () =>
            post('header: Idempotency-Key non-ASCII', body, { key: utf8Bytes(`clé-${int(1e6)}`) }),
          () => post('header: Idempotency-Key non-ASCII', body, { key: `\u00e9${int(1e6)}` }),
          () => post('header: Idempotency-Key non-ASCII', body, { key: `a\u007fb${int(1e6)}` }),
          () => {
            // A structured-field string: the server reads the key inside the quotes.
            const key = freshKey();
            return post('header: Idempotency-Key quoted', body, {
              replace: true,
              key,
              headers: [json, ['Idempotency-Key', `"${key}"`]],
              mustCreate: true,
            });
          },
        ])();
      },
    },
    {
      weight: 2,
      make: () => {
        const first = freshKey();
        const second = random() < 0.5 ? first : freshKey();
        return post('header: Idempotency-Key twice', text(order()), {
          replace: true,
          // Node joins repeated unknown headers with ", ": what the server reads if it accepts.
          key: `${first}, ${second}`,
          headers: [json, ['Idempotency-Key', first], ['Idempotency-Key', second]],
        });
      },
    },
    {
      weight: 2,
      make: () => {
        const type = pick([
          undefined,
          'text/plain',
          'application/xml',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          '',
          'application/json;;;',
          'application/jsonx',
        ]);
        const key = freshKey();
        return post('header: Content-Type wrong or missing', text(order()), {
          replace: true,
          key,
          headers: [
            ...(type === undefined ? [] : [['Content-Type', type] as const]),
            ['Idempotency-Key', key],
          ],
        });
      },
    },
    {
      weight: 2,
      make: () => {
        const charset = pick(['latin1', 'iso-8859-1', 'utf-16', 'us-ascii', 'bogus']);
        const key = freshKey();
        return post('header: charset not utf-8', text(order()), {
          replace: true,
          key,
          headers: [
            ['Content-Type', `application/json; charset=${charset}`],
            ['Idempotency-Key', key],
          ],
        });
      },
    },
    {
      weight: 2,
      make: () => {
        const plain = Buffer.from(text(order()));
        const [encoding, body] = pick([
          ['gzip', gzipSync(plain)],
          ['gzip', plain],
          ['deflate', plain],
          ['br', plain],
          ['x-unknown', plain],
          ['gzip, identity', gzipSync(plain)],
        ] as const);
        return post('header: Content-Encoding', body, {
          headers: [['Content-Encoding', encoding]],
        });
      },
    },
    {
      weight: 1,
      make: () => {
        const body = Buffer.from(text(order()));
        const second = random() < 0.5 ? body.length : body.length + 5;
        return post('header: duplicate Content-Length', body, {
          headers: [
            ['Content-Length', String(body.length)],
            ['Content-Length', String(second)],
          ],
          shape: { contentLength: false },
        });
      },
    },
    {
      weight: 2,
      make: () => {
        const body = Buffer.from(text(order()));
        return pick([
          () =>
            post('header: Transfer-Encoding chunked', chunked(body, 1 + int(6)), {
              headers: [['Transfer-Encoding', 'chunked']],
              shape: { contentLength: false },
              mustCreate: true,
            }),
          () =>
            post(
              'header: Transfer-Encoding malformed',
              Buffer.from(`zz\r\n${body.toString()}\r\n0\r\n\r\n`),
              {
                headers: [['Transfer-Encoding', 'chunked']],
                shape: { contentLength: false },
              },
            ),
          () =>
            post('header: Transfer-Encoding malformed', chunked(body, 2), {
              headers: [
                ['Transfer-Encoding', 'chunked'],
                ['Content-Length', String(body.length)],
              ],
              shape: { contentLength: false },
            }),
          () =>
            // A transfer coding the server does not apply: the body is not gzip at all.
            post('header: Transfer-Encoding gzip, chunked', chunked(body, 3), {
              headers: [['Transfer-Encoding', 'gzip, chunked']],
              shape: { contentLength: false },
            }),
        ])();
      },
    },
    {
      weight: 2,
      make: () => {
        const length = pick([BODY_LIMIT + 1, 100_000, 10_000_000, 2 ** 40]);
        return post(OVER_LIMIT, EMPTY, {
          headers: [['Content-Length', String(length)]],
          shape: { contentLength: false },
        });
      },
    },
    {
      weight: 2,
      make: () =>
        post('header: Expect bogus', text(order()), {
          headers: [['Expect', pick(['bogus', '200-ok', 'x'.repeat(50)])]],
        }),
    },
    {
      weight: 1,
      make: () =>
        post('header: Expect 100-continue', text(order()), {
          headers: [['Expect', '100-continue']],
          mustCreate: true,
        }),
    },
    {
      weight: 2,
      make: () =>
        pick([
          () => post('header: no Host', text(order()), { shape: { host: false } }),
          () => other('header: no Host', 'GET', http('GET', '/health', [], EMPTY, { host: false })),
          () =>
            other(
              'header: HTTP/1.0 without Host',
              'GET',
              http('GET', '/health', [], EMPTY, { host: false, version: 'HTTP/1.0' }),
            ),
        ])(),
    },
    {
      weight: 2,
      make: () => {
        const junk = pick([
          'r'.repeat(200 + int(5_000)),
          '<script>alert(1)</script>',
          utf8Bytes('id-é-😀'),
          '',
          '\u00ff\u00fe',
          '../../etc/passwd',
        ]);
        return random() < 0.5
          ? post('header: X-Request-Id junk', text(order()), {
              headers: [['X-Request-Id', junk]],
              mustCreate: true,
            })
          : other(
              'header: X-Request-Id junk',
              'GET',
              http('GET', '/health', [['X-Request-Id', junk]]),
            );
      },
    },
    {
      weight: 2,
      make: () => {
        const junk = pick([
          'garbage',
          '',
          `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01`,
          `ff-${hex(32)}-${hex(16)}-01`,
          `00-${hex(32)}-${hex(16)}-01-extra`,
          `00-${hex(31)}z-${hex(16)}-01`,
          `00-${hex(32).toUpperCase()}-${hex(16)}-01`,
          `00-${hex(32)}-${hex(16)}-${'f'.repeat(500)}`,
          utf8Bytes('00-é'),
        ]);
        return post('header: traceparent junk', text(order()), {
          headers: [
            ['traceparent', junk],
            ['tracestate', pick(['', 'a=b', '=,=,=', 'x'.repeat(600)])],
          ],
          // Tracing headers are advisory: junk in them never costs the client its order.
          mustCreate: true,
        });
      },
    },

    // Methods and paths.
    {
      weight: 10,
      make: () => {
        const method = pick(['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'TRACE', 'POST']);
        const path = pick([
          '/v1/orders',
          `/v1/orders/${uuid()}`,
          '/v1/orders/%00',
          '/v1/orders/%ZZ',
          '/v1/orders/%E0%A4%A',
          '/v1/orders/..%2F..%2Fetc%2Fpasswd',
          `/v1/orders/${'x'.repeat(2_000)}`,
          "/v1/orders/1'%20OR%20'1'='1",
          '/v1/orders/',
          '/v1/orders?x=%ZZ',
          '/V1/ORDERS',
          '//v1//orders',
          '/health',
          '/ready',
          '/health?verbose=%00',
          `/${'a/'.repeat(int(40))}%${int(99)}`,
          '/metrics',
          '/drill/nope',
        ]);
        const body = METHODS_WITH_BODY.has(method) ? Buffer.from(text(order())) : EMPTY;
        const kind = `method: ${method}`;
        if (method === 'POST' && path === '/v1/orders')
          return post(kind, body, { mustCreate: true });
        if (body.length === 0) return other(kind, method, http(method, path, []));
        // Routing ignores case, a trailing slash and the query: some of these create orders.
        const key = freshKey();
        const headers: Header[] = [json, ['Idempotency-Key', key]];
        return other(kind, method, http(method, path, headers, body), key);
      },
    },
    {
      weight: 2,
      make: () => {
        const path = pick([
          '/v1/orders',
          `/v1/orders/${uuid()}`,
          '/health',
          '/ready',
          '/nope',
          '*',
        ]);
        return other('method: OPTIONS', 'OPTIONS', http('OPTIONS', path, []));
      },
    },
    {
      weight: 2,
      make: () => {
        const target = pick(['127.0.0.1:443', 'example.com:80', '/v1/orders', '/health']);
        return other('method: CONNECT', 'CONNECT', http('CONNECT', target, []));
      },
    },

    // Garbage.
    {
      weight: 3,
      make: () => {
        // The first byte is never a token character nor CR/LF, so the parser fails at once
        // (a request that looks unfinished would wait for the headers timeout instead).
        const first = pick([0x00, 0x01, 0x07, 0x1b, 0x7f, 0x80, 0xc3, 0xff]);
        const bytes = Array.from({ length: int(400) }, () => int(256));
        return other(
          'garbage: random bytes',
          '?',
          Buffer.concat([Buffer.from([first, ...bytes]), Buffer.from('\r\n\r\n')]),
        );
      },
    },
    {
      weight: 3,
      make: () => {
        const line = pick([
          'GET /health HTTP/9.9',
          'GET /health HTTP/1.1 extra',
          'GET  /health HTTP/1.1',
          'GET /he alth HTTP/1.1',
          'get /health HTTP/1.1',
          'G@T /health HTTP/1.1',
          'GET /health',
          'GET /health HTTP/1.1\r\nHost : x',
          'GET /health HTTP/1.1\r\nHost: x\r\nNo-Colon-Header',
          'GET /health HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b',
          'GET /health HTTP/1.1\r\nHost: x\r\nX-Bad\u0000: a',
          'POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: -1',
          'POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 1x',
          'POST /v1/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity',
          '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003',
          'PRI * HTTP/2.0\r\n\r\nSM',
        ]);
        return other('garbage: malformed request', '?', Buffer.from(`${line}\r\n\r\n`, 'latin1'));
      },
    },
  ];

  const total = generators.reduce((sum, g) => sum + g.weight, 0);
  const draw = (): Case => {
    let at = random() * total;
    for (const generator of generators) {
      at -= generator.weight;
      if (at < 0) return generator.make();
    }
    return (generators[0] as (typeof generators)[number]).make();
  };
  return Array.from({ length: count }, draw);
}

// ---------------------------------------------------------------------------------------------
// Reading answers.

/** The final response: interim 1xx answers (100 Continue) are skipped. */
function finalOf(response: RawResponse): RawResponse {
  let current = response;
  while (current.status >= 100 && current.status < 200) {
    current = parseResponse(Buffer.from(current.body, 'utf8'), current.error);
  }
  return current;
}

/** The body of a chunked answer; undefined when the framing is broken. */
function dechunk(body: string): string | undefined {
  const raw = Buffer.from(body, 'utf8');
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const end = raw.indexOf('\r\n', at);
    if (end < 0) return undefined;
    const size = Number.parseInt(raw.subarray(at, end).toString('latin1'), 16);
    if (Number.isNaN(size)) return undefined;
    if (size === 0) return Buffer.concat(parts).toString('utf8');
    parts.push(raw.subarray(end + 2, end + 2 + size));
    at = end + 2 + size + 2;
  }
}

function bodyOf(response: RawResponse): string | undefined {
  return response.headers['transfer-encoding'] === 'chunked'
    ? dechunk(response.body)
    : response.body;
}

function parsed(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** What the answer was, for the summary: a status for successes, a code for problems. */
function outcomeOf(item: Case, response: RawResponse): string {
  if (response.status === 0) return 'no response';
  if (response.status < 400) return String(response.status);
  const body = parsed(bodyOf(response) ?? '') as { code?: unknown } | undefined;
  if (typeof body?.code === 'string') return body.code;
  return item.method === 'HEAD' ? `${response.status} (HEAD)` : `${response.status} (no problem)`;
}

/** Why the answer is wrong, or undefined when it is a complete success or catalogue problem. */
function problemIn(item: Case, response: RawResponse): string | undefined {
  if (response.status === 0) return `no response (${response.error ?? 'closed'})`;
  const type = response.headers['content-type'] ?? '';
  const body = bodyOf(response);
  if (body === undefined) return 'broken chunked framing';
  const head = item.method === 'HEAD';
  if (head && body !== '') return 'HEAD answered with a body';
  const length = response.headers['content-length'];
  if (!head && length !== undefined && Buffer.byteLength(body) !== Number(length))
    return `incomplete body: ${Buffer.byteLength(body)} of ${length} bytes`;
  if (response.status >= 500) return `${response.status} ${outcomeOf(item, response)}`;
  if (response.status >= 200 && response.status < 300) {
    if (response.status === 204) return body === '' ? undefined : '204 with a body';
    if (!type.startsWith('application/json'))
      return `success ${response.status} without JSON: ${type || 'no Content-Type'}`;
    if (!head && parsed(body) === undefined) return `success ${response.status}: body not JSON`;
    if (item.isOrderPost && response.status !== 201)
      return `order answered ${response.status}, not 201`;
    return undefined;
  }
  if (response.status < 400) return `unexpected status ${response.status}`;
  if (type !== PROBLEM_JSON)
    return `error ${response.status} without problem+json: ${type || 'no Content-Type'}`;
  if (head) return undefined;
  const problem = parsed(body) as { code?: unknown; status?: unknown } | undefined;
  if (problem === undefined) return `error ${response.status}: body not JSON`;
  if (!isErrorCode(problem.code)) return `unknown code ${String(problem.code)}`;
  if (problem.code === 'INTERNAL') return 'code INTERNAL';
  if (
    ERROR_CATALOGUE[problem.code].status !== response.status ||
    problem.status !== response.status
  )
    return `status mismatch: ${response.status} for ${problem.code} (body says ${String(problem.status)})`;
  if (/\n\s+at /.test(body) || /\bat .+\.[jt]s:\d+/.test(body))
    return 'a stack trace reached the client';
  return undefined;
}

/** The case number and a printable excerpt of its request (bytes as latin1), for failures. */
function excerpt(item: Case): string {
  const text = item.request.toString('latin1');
  return `#${item.index} ${JSON.stringify(text.length > 240 ? `${text.slice(0, 240)}...` : text)}`;
}

function summaryTable(results: readonly Result[]): string {
  const counts = new Map<string, Map<string, number>>();
  for (const { item, response } of results) {
    const byOutcome = counts.get(item.kind) ?? new Map<string, number>();
    const outcome = outcomeOf(item, response);
    byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
    counts.set(item.kind, byOutcome);
  }
  const rows = [...counts.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([kind, byOutcome]) =>
      [...byOutcome.entries()]
        .sort(([, a], [, b]) => b - a)
        .map(([outcome, n]) => `${kind.padEnd(45)} ${outcome.padEnd(28)} ${String(n).padStart(5)}`),
    );
  return [`${'kind'.padEnd(45)} ${'answer'.padEnd(28)} ${'count'.padStart(5)}`, ...rows].join('\n');
}

// ---------------------------------------------------------------------------------------------

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

describe('orders API fuzzing, whole process', () => {
  it('when thousands of seeded valid and hostile requests arrive, then each is answered completely (success or catalogue problem+json, never 5xx), every valid order is stored once, the breaker stays closed and the process stays healthy', async () => {
    // Arrange
    const { service, port, opsPort } = await startService({
      DATABASE_URL: database.url,
      RATE_LIMIT_MAX: '0',
      MAX_CONCURRENT_REQUESTS: '1000',
      SHED_EVENT_LOOP_DELAY_MS: '0',
      BODY_LIMIT_BYTES: String(BODY_LIMIT),
    });
    try {
      const cases = makeCases(CASES);

      // Act
      const results: Result[] = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < cases.length) {
          const item = cases[next++] as Case;
          const startedAt = Date.now();
          // Bounded: a request over the body limit must be refused long before this.
          const timeoutMs = item.kind === OVER_LIMIT ? AT_ONCE_MS + 1_000 : 8_000;
          const response = finalOf(await rawRequest(port, item.request, timeoutMs));
          results.push({ item, response, ms: Date.now() - startedAt });
        }
      };
      await Promise.all(Array.from({ length: WORKERS }, worker));

      // Assert: every answer, grouped by kind and problem (one example each).
      const failures: string[] = [];
      const grouped = new Map<string, { count: number; example: string }>();
      const fail = (group: string, example: string): void => {
        const seen = grouped.get(group);
        if (seen === undefined) grouped.set(group, { count: 1, example });
        else seen.count += 1;
      };
      const created = new Set<string>();
      for (const { item, response, ms } of results) {
        const problem = problemIn(item, response);
        if (problem !== undefined) fail(`${item.kind}: ${problem}`, excerpt(item));
        if (item.mustCreate && response.status !== 201)
          fail(
            `${item.kind}: valid order not created (${outcomeOf(item, response)})`,
            excerpt(item),
          );
        if (REFUSED_KINDS.has(item.kind) && response.status >= 200 && response.status < 400)
          fail(`${item.kind}: accepted (${response.status}), not refused`, excerpt(item));
        if (item.kind === OVER_LIMIT && ms > AT_ONCE_MS)
          fail(
            `${item.kind}: not answered at once (over ${AT_ONCE_MS} ms)`,
            `${ms} ms: ${excerpt(item)}`,
          );
        if (response.status === 201) {
          if (item.key === undefined)
            fail(`${item.kind}: 201 without an Idempotency-Key`, excerpt(item));
          else created.add(item.key);
        }
      }
      for (const kind of WATCHED_KINDS) {
        const answers = results.filter((r) => r.item.kind === kind);
        if (!answers.some((r) => r.response.status !== 0))
          failures.push(`${kind}: no case of this kind was answered (${answers.length} sent)`);
        if (answers.some((r) => r.response.status >= 500)) failures.push(`${kind}: answered 5xx`);
      }

      // Assert: the database holds exactly the orders that were answered 201.
      const rows = await database.query<{ idempotency_key: string | null }>(
        'SELECT idempotency_key FROM orders',
      );
      const stored = new Set(rows.map((row) => row.idempotency_key ?? '(null)'));
      if (rows.length !== created.size)
        failures.push(
          `orders table has ${rows.length} rows; ${created.size} distinct keys got 201`,
        );
      const missing = [...created].filter((key) => !stored.has(key));
      const unexpected = [...stored].filter((key) => !created.has(key));
      if (missing.length > 0)
        failures.push(`201 but not stored: ${missing.slice(0, 5).join(', ')}`);
      if (unexpected.length > 0)
        failures.push(`stored without a 201: ${unexpected.slice(0, 5).join(', ')}`);

      // Assert: the breaker never opened, the process never crashed, it is still ready.
      for (const event of [
        'breaker.open',
        'db.unavailable',
        'process.crash',
        'http.unhandled_error',
      ]) {
        const lines = service.lines.filter((line) => line.event === event);
        if (lines.length > 0)
          failures.push(
            `log event ${event} x${lines.length}: ${JSON.stringify(lines[0]).slice(0, 300)}`,
          );
      }
      if (service.child.exitCode !== null || service.child.signalCode !== null)
        failures.push(`the service exited (${service.child.exitCode ?? service.child.signalCode})`);
      const ready = await readiness(port);
      if (ready.status !== 200) failures.push(`GET /ready answered ${ready.status ?? 'nothing'}`);
      const metrics = await getPath(opsPort, '/metrics');
      const closed = parsePrometheusText(metrics.text ?? '').find(
        (s) =>
          s.name === 'ops_circuit_breaker_state' &&
          s.labels.dependency === 'database' &&
          s.labels.state === 'closed',
      );
      if (closed?.value !== 1)
        failures.push(
          `ops_circuit_breaker_state{dependency="database",state="closed"} is ${closed?.value ?? 'absent'}`,
        );
      const fresh = await postOrder(port, `fuzz-after-${SEED}`, orderBody());
      if (fresh.status !== 201)
        failures.push(`a fresh valid order afterwards got ${fresh.status ?? fresh.error}`);
      const health = await getPath(port, '/health');
      if (health.status !== 200)
        failures.push(`GET /health afterwards answered ${health.status ?? health.error}`);

      failures.push(
        ...[...grouped.entries()]
          .sort(([, a], [, b]) => b.count - a.count)
          .map(([group, { count, example }]) => `${group} (x${count}, e.g. ${example})`),
      );
      console.log(
        `orders fuzz: ${results.length} requests, ${created.size} orders created\n${summaryTable(results)}` +
          (failures.length > 0 ? `\n\nfailures (${failures.length}):\n${failures.join('\n')}` : ''),
      );
      expect(failures.slice(0, 10)).toEqual([]);
    } finally {
      service.kill('SIGTERM');
      expect(await service.exited()).toBe(0);
    }
  });
});
