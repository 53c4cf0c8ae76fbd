// Authentication as an operator runs it: the real service on PostgreSQL with AUTH_MODE=jwt and
// a local identity provider's JWKS URL. Not ready before the first key set; refusals are 401/403
// with the RFC 6750 challenge and nothing a client could learn from; the reason is in the access
// log and the metric; tenants never see each other's orders or Idempotency-Keys; the rate limit
// is per tenant; tokens never reach a log line; losing the identity provider later changes
// nothing while the cached keys are valid.
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { parsePrometheusText } from '../helpers/prometheus-text';
import { MAIN, type Started, startService } from '../helpers/service-process';
import { orderBody } from '../orders/support/orders-client';
import { createTestDatabase, type TestDatabase } from '../orders/support/test-database';
import { startJwksServer, type JwksServer } from './support/jwks-server';
import {
  AUDIENCE,
  bearer,
  claims,
  ISSUER,
  jwksOf,
  makeKey,
  nowSeconds,
  sign,
  type TestKey,
} from './support/tokens';

jest.setTimeout(30_000);

let database: TestDatabase;
let idp: JwksServer;
let key: TestKey;
let service: Started;

function authEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: database.url,
    AUTH_MODE: 'jwt',
    AUTH_JWKS_URL: idp.url,
    AUTH_ISSUER: ISSUER,
    AUTH_AUDIENCE: AUDIENCE,
    AUTH_JWKS_REFRESH_MS: '300',
    RATE_LIMIT_MAX: '1000',
    ...extra,
  };
}

beforeAll(async () => {
  database = await createTestDatabase();
  key = await makeKey('ES256', 'k1');
  idp = await startJwksServer(jwksOf(key));
  service = await startService(authEnv(), { script: MAIN });
});
afterAll(async () => {
  service?.service.kill('SIGKILL');
  await idp?.stop();
  await database?.drop();
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

async function call(
  method: 'GET' | 'POST',
  path: string,
  options: { token?: string; key?: string; body?: unknown } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = bearer(options.token);
  if (options.key !== undefined) headers['idempotency-key'] = options.key;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${service.port}${path}`, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

const tokenFor = (tenant: string, scope = 'orders:read orders:write', extra = {}) =>
  sign(key, claims({ tenant_id: tenant, scope, ...extra }));

async function metric(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${service.opsPort}/metrics`)).text();
  return parsePrometheusText(text).find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

it('when the service starts with AUTH_MODE=jwt, then it loaded the identity provider keys before service.ready', () => {
  const events = service.service.events();
  expect(events.indexOf('auth.keys_loaded')).toBeGreaterThanOrEqual(0);
  expect(events.indexOf('auth.keys_loaded')).toBeLessThan(events.indexOf('service.ready'));
  expect(service.service.lines.find((l) => l.event === 'auth.keys_loaded')).toMatchObject({
    source: 'url',
    kids: ['k1'],
  });
  expect(events).not.toContain('auth.disabled');
});

it('when a call has no token, then 401 UNAUTHENTICATED with a challenge and no error attribute', async () => {
  const res = await call('GET', `/v1/orders/${randomUUID()}`);
  expect(res.status).toBe(401);
  expect(res.body.code).toBe('UNAUTHENTICATED');
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ops-service"');
});

it.each([
  ['expired', { exp: nowSeconds() - 3_600 }],
  ['wrong_audience', { aud: 'someone-else' }],
  ['wrong_issuer', { iss: 'https://evil.example/' }],
])(
  'when the token is refused as %s, then the client gets invalid_token and no detail, and the reason is in the access log and the metric',
  async (reason, overrides) => {
    const token = await sign(key, claims(overrides));
    const res = await call('GET', `/v1/orders/${randomUUID()}`, { token });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      'Bearer realm="ops-service", error="invalid_token"',
    );
    expect(JSON.stringify(res.body)).not.toMatch(/expired|audience|issuer|exp|aud|iss/i);
    const requestId = res.body.request_id;
    const line = await waitForLine((l) => l.event === 'http.request' && l.request_id === requestId);
    expect(line).toMatchObject({
      status: 401,
      auth_failure: reason,
      error_code: 'UNAUTHENTICATED',
      level: 'warn',
    });
    expect(await metric('ops_auth_failures_total', { reason })).toBeGreaterThanOrEqual(1);
  },
);

it('when a path is spelled another way Express still routes (case, trailing slash), then the same token and scope rules apply', async () => {
  const noToken = await call('GET', `/V1/Orders/${randomUUID()}`);
  expect(noToken.status).toBe(401);
  const readOnly = await tokenFor('acme', 'orders:read');
  for (const path of ['/v1/orders/', '/V1/ORDERS']) {
    const res = await call('POST', path, { token: readOnly, key: randomUUID(), body: orderBody() });
    expect({ path, status: res.status, code: res.body.code }).toEqual({
      path,
      status: 403,
      code: 'INSUFFICIENT_SCOPE',
    });
  }
  // And an unknown route tells an unauthenticated caller nothing: 401, not 404.
  expect((await call('GET', '/internal/anything')).status).toBe(401);
});

it('when the token lacks the scope, then 403 INSUFFICIENT_SCOPE naming the scope it needs', async () => {
  const token = await tokenFor('acme', 'orders:read');
  const res = await call('POST', '/v1/orders', { token, key: randomUUID(), body: orderBody() });
  expect(res.status).toBe(403);
  expect(res.body.code).toBe('INSUFFICIENT_SCOPE');
  expect(res.headers.get('www-authenticate')).toBe(
    'Bearer realm="ops-service", error="insufficient_scope", scope="orders:write"',
  );
});

it('when another tenant asks for an order, then it is 404 ORDER_NOT_FOUND, and the same Idempotency-Key in two tenants makes two orders', async () => {
  const acme = await tokenFor('acme');
  const globex = await tokenFor('globex');
  const idempotencyKey = randomUUID();
  const created = await call('POST', '/v1/orders', {
    token: acme,
    key: idempotencyKey,
    body: orderBody('customer-acme'),
  });
  expect(created.status).toBe(201);
  const id = String(created.body.id);

  expect((await call('GET', `/v1/orders/${id}`, { token: acme })).status).toBe(200);
  const foreign = await call('GET', `/v1/orders/${id}`, { token: globex });
  expect(foreign.status).toBe(404);
  expect(foreign.body.code).toBe('ORDER_NOT_FOUND');

  const other = await call('POST', '/v1/orders', {
    token: globex,
    key: idempotencyKey,
    body: orderBody('customer-globex'),
  });
  expect(other.status).toBe(201);
  expect(other.headers.get('idempotent-replayed')).toBeNull();
  expect(other.body.id).not.toBe(id);
  const replay = await call('POST', '/v1/orders', {
    token: acme,
    key: idempotencyKey,
    body: orderBody('customer-acme'),
  });
  expect(replay.headers.get('idempotent-replayed')).toBe('true');
  expect(replay.body.id).toBe(id);
  const rows = await database.query<{ tenant_id: string }>(
    'SELECT tenant_id FROM orders WHERE id = ANY($1::uuid[]) ORDER BY tenant_id',
    [[id, String(other.body.id)]],
  );
  expect(rows.map((r) => r.tenant_id)).toEqual(['acme', 'globex']);
});

it('when tokens were sent, then no log line contains one', async () => {
  const token = await tokenFor('acme');
  await call('GET', `/v1/orders/${randomUUID()}`, { token });
  await call('GET', `/v1/orders/${randomUUID()}`, { token: `${token}x` });
  await delay(100);
  const signature = token.split('.')[2] ?? '';
  const everything = JSON.stringify(service.service.lines) + service.service.rawStdout.join('\n');
  expect(signature.length).toBeGreaterThan(20);
  expect(everything).not.toContain(signature);
  const line = service.service.lines.find((l) => l.tenant === 'acme');
  expect(line).toMatchObject({ tenant: 'acme' });
  expect(String(line?.subject_hash)).toMatch(/^[0-9a-f]{16}$/);
  expect(everything).not.toContain('user-42');
});

it('when the identity provider goes away after startup, then known keys keep working and the service stays ready', async () => {
  await idp.stop();
  await waitForLine((l) => l.event === 'auth.jwks_refresh_failed');
  const token = await tokenFor('acme');
  expect((await call('GET', `/v1/orders/${randomUUID()}`, { token })).status).toBe(404);
  expect((await fetch(`http://127.0.0.1:${service.port}/ready`)).status).toBe(200);
});

async function waitForLine(
  match: (line: Record<string, unknown>) => boolean,
  timeoutMs = 5_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = service.service.lines.find(match);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('no such log line');
    await delay(20);
  }
}

describe('a second service on the same database', () => {
  let other: Started | undefined;
  let slowIdp: JwksServer | undefined;
  afterEach(async () => {
    other?.service.kill('SIGKILL');
    other = undefined;
    await slowIdp?.stop();
  });

  it('when the identity provider does not answer at start, then the service is not ready until it does', async () => {
    slowIdp = await startJwksServer(jwksOf(key));
    slowIdp.mode = 'fail';
    const starting = startService(
      authEnv({ AUTH_JWKS_URL: slowIdp.url, AUTH_JWKS_TIMEOUT_MS: '500' }),
      { script: MAIN, readyTimeoutMs: 10_000 },
    );
    await delay(1_500);
    expect(slowIdp.hits).toBeGreaterThanOrEqual(2);
    slowIdp.mode = 'serve';
    other = await starting;
    const events = other.service.events();
    expect(events).toContain('auth.jwks_unavailable');
    expect(events.indexOf('auth.keys_loaded')).toBeLessThan(events.indexOf('service.ready'));
  });

  it('when one tenant exhausts the rate limit, then another tenant behind the same address still gets through', async () => {
    slowIdp = await startJwksServer(jwksOf(key));
    other = await startService(authEnv({ AUTH_JWKS_URL: slowIdp.url, RATE_LIMIT_MAX: '2' }), {
      script: MAIN,
    });
    const port = other.port;
    const get = async (token: string): Promise<number> =>
      (
        await fetch(`http://127.0.0.1:${port}/v1/orders/${randomUUID()}`, {
          headers: { authorization: bearer(token) },
        })
      ).status;
    const acme = await tokenFor('acme');
    const globex = await tokenFor('globex');
    expect([await get(acme), await get(acme), await get(acme)]).toEqual([404, 404, 429]);
    expect(await get(globex)).toBe(404);
  });
});
