// The local stack's tokens (scripts/dev-token.ts) against the local stack's own settings: the
// token the script signs with deploy/auth/dev-signing-key.jwk must pass the service's verifier
// (src/auth) loaded the way the compose service loads it: the key set file docker-compose.yml
// mounts for AUTH_JWKS_FILE, and the issuer, audience, tenant claim and algorithms the real config
// loader reads from the compose environment. Also the script's argument parsing and errors.
// jose is ESM-only: run with `npm test -- test/deploy` or
// `NODE_OPTIONS=--experimental-vm-modules npx jest test/deploy`.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  DEFAULT_SUBJECT,
  DEFAULT_TTL_SECONDS,
  DEV_AUDIENCE,
  DEV_ISSUER,
  DEV_JWKS_FILE,
  DEV_SIGNING_KEY_FILE,
  DEV_TENANT_CLAIM,
  type DevTokenOptions,
  UsageError,
  parseArgs,
  signDevToken,
} from '../../scripts/dev-token';
import { createJwksFileSource } from '../../src/auth/jwks';
import { type Verifier, createVerifier } from '../../src/auth/verifier';
import { type AppConfig, loadConfig } from '../../src/config/load-config';
import { joseForTests, nowSeconds } from '../auth/support/tokens';
import { dict, list, scalar, stringMap } from './narrow';

const ROOT = path.resolve(__dirname, '..', '..');
const SERVICE = 'ops-service';

interface ComposeAuth {
  /** The ops-service environment in docker-compose.yml. */
  readonly env: Readonly<Record<string, string>>;
  /** The configuration the real loader makes of it. */
  readonly auth: AppConfig['auth'];
  /** The repository file mounted where AUTH_JWKS_FILE points. */
  readonly jwksFile: string;
}

/** ops-service's auth settings as docker compose runs it, and the key set file it mounts. */
function composeAuth(): ComposeAuth {
  const compose = dict(
    parseYaml(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')),
    'docker-compose.yml',
  );
  const spec = dict(dict(compose.services, 'services')[SERVICE], `services.${SERVICE}`);
  const env = stringMap(spec.environment, `${SERVICE}.environment`);
  const loaded = loadConfig({ env, configDir: path.join(ROOT, 'config') });
  if (!loaded.ok) {
    throw new Error(`the compose environment does not load: ${JSON.stringify(loaded.problems)}`);
  }
  const { auth } = loaded.config;
  const mount = list(spec.volumes, `${SERVICE}.volumes`)
    .map((v) => scalar(v, `${SERVICE}.volumes[]`).split(':'))
    .find(([, target]) => target === auth.jwksFile);
  if (mount?.[0] === undefined) {
    throw new Error(`${SERVICE} mounts no file at AUTH_JWKS_FILE ${auth.jwksFile}`);
  }
  return { env, auth, jwksFile: path.resolve(ROOT, mount[0]) };
}

const ACME: DevTokenOptions = {
  tenant: 'acme',
  scopes: ['orders:read', 'orders:write'],
  subject: 'alice',
  ttlSeconds: 3600,
};

let compose: ComposeAuth;
let verifier: Verifier;

beforeAll(async () => {
  await joseForTests(); // says how to run these tests when jose cannot load
  compose = composeAuth();
  const algorithms = compose.auth.algorithms.split(',').map((alg) => alg.trim());
  const keys = createJwksFileSource({ path: compose.jwksFile, algorithms });
  await keys.load();
  verifier = createVerifier({
    keys,
    issuer: compose.auth.issuer,
    audience: compose.auth.audience,
    clockToleranceMs: compose.auth.clockToleranceMs,
    algorithms,
    tenantClaim: compose.auth.tenantClaim,
  });
});

describe('a token from the dev-token script passes the local stack', () => {
  test('when compose configures auth, then it is jwt with the key set and the claims the script signs', () => {
    expect(compose.auth.mode).toBe('jwt');
    expect(compose.auth.jwksUrl).toBe('');
    expect(path.relative(ROOT, compose.jwksFile).split(path.sep).join('/')).toBe(DEV_JWKS_FILE);
    expect(compose.auth.issuer).toBe(DEV_ISSUER);
    expect(compose.auth.audience).toBe(DEV_AUDIENCE);
    expect(compose.auth.tenantClaim).toBe(DEV_TENANT_CLAIM);
  });

  test('when the script signs for a tenant and scopes, then the service verifier accepts the caller', async () => {
    const { token } = await signDevToken(ACME);
    const verdict = await verifier.verify(`Bearer ${token}`);
    expect(verdict).toEqual({
      ok: true,
      subject: 'alice',
      tenant: 'acme',
      scopes: new Set(['orders:read', 'orders:write']),
    });
  });

  test('when the token is decoded, then it is ES256 with kid local-dev-1 and the expected claims', async () => {
    const jose = await joseForTests();
    const now = nowSeconds();
    const { token, kid, issuedAt, expiresAt } = await signDevToken(
      { ...ACME, ttlSeconds: 600 },
      { now },
    );
    expect(kid).toBe('local-dev-1');
    expect(jose.decodeProtectedHeader(token)).toEqual({
      alg: 'ES256',
      typ: 'JWT',
      kid: 'local-dev-1',
    });
    const claims = jose.decodeJwt(token);
    expect(claims).toMatchObject({
      iss: 'http://localhost/dev-issuer',
      aud: 'ops-service',
      sub: 'alice',
      tenant_id: 'acme',
      scope: 'orders:read orders:write',
      iat: now,
      exp: now + 600,
    });
    expect(typeof claims.jti).toBe('string');
    expect([issuedAt, expiresAt]).toEqual([now, now + 600]);
  });

  test('when only one scope is asked for, then the caller holds only that one', async () => {
    const { token } = await signDevToken({ ...ACME, scopes: ['orders:read'] });
    const verdict = await verifier.verify(`Bearer ${token}`);
    expect(verdict.ok && [...verdict.scopes]).toEqual(['orders:read']);
  });

  test('when the token has expired, then the local stack refuses it as expired', async () => {
    const { token } = await signDevToken({ ...ACME, ttlSeconds: 60 }, { now: nowSeconds() - 3600 });
    expect(await verifier.verify(`Bearer ${token}`)).toMatchObject({
      ok: false,
      reason: 'expired',
    });
  });

  test('when the key file is missing or public, then signing fails saying so', async () => {
    await expect(
      signDevToken(ACME, { keyFile: path.join(ROOT, 'deploy/auth/nope.jwk') }),
    ).rejects.toThrow(
      /cannot read the development signing key .*nope\.jwk.*deploy\/auth\/README\.md/,
    );
    await expect(signDevToken(ACME, { keyFile: path.join(ROOT, DEV_JWKS_FILE) })).rejects.toThrow(
      /is not a private EC P-256 JWK/,
    );
  });

  test('when the repository keys are read, then the published set is public and the signing key private', () => {
    const published = JSON.parse(readFileSync(path.join(ROOT, DEV_JWKS_FILE), 'utf8')) as {
      keys: Record<string, unknown>[];
    };
    const signing = JSON.parse(
      readFileSync(path.join(ROOT, DEV_SIGNING_KEY_FILE), 'utf8'),
    ) as Record<string, unknown>;
    expect(published.keys).toHaveLength(1);
    const [key] = published.keys;
    expect(key).toEqual({
      kty: 'EC',
      crv: 'P-256',
      x: signing.x,
      y: signing.y,
      kid: 'local-dev-1',
      alg: 'ES256',
      use: 'sig',
    });
    expect(typeof signing.d).toBe('string');
  });
});

describe('the dev-token script reads its arguments', () => {
  const usage = (argv: string[]): string => {
    try {
      parseArgs(argv);
    } catch (error) {
      if (error instanceof UsageError) return error.message;
      throw error;
    }
    throw new Error(`no usage error for ${JSON.stringify(argv)}`);
  };

  test('when tenant, scope, sub and ttl are given, then they are the token options', () => {
    expect(
      parseArgs([
        '--tenant',
        'acme',
        '--scope',
        'orders:read  orders:write',
        '--sub',
        'alice',
        '--ttl',
        '60',
      ]),
    ).toEqual({
      tenant: 'acme',
      scopes: ['orders:read', 'orders:write'],
      subject: 'alice',
      ttlSeconds: 60,
    });
    expect(parseArgs(['--tenant=acme', '--scope=orders:read'])).toEqual({
      tenant: 'acme',
      scopes: ['orders:read'],
      subject: DEFAULT_SUBJECT,
      ttlSeconds: DEFAULT_TTL_SECONDS,
    });
  });

  test('when help is asked for, then there are no options (the script prints its usage)', () => {
    expect(parseArgs(['--help'])).toBeUndefined();
    expect(parseArgs(['--tenant', 'acme', '-h'])).toBeUndefined();
  });

  test('when an argument is wrong, then the error says which and how', () => {
    expect(usage([])).toMatch(/--tenant is required/);
    expect(usage(['--tenant', 'acme'])).toMatch(/--scope is required/);
    expect(usage(['--tenant', 'acme', '--scope', '  '])).toMatch(/--scope is empty/);
    expect(usage(['--tenant', 'a cme', '--scope', 'x'])).toMatch(/--tenant "a cme": 1 to 64/);
    expect(usage(['--tenant', 'x'.repeat(65), '--scope', 'x'])).toMatch(/1 to 64/);
    expect(usage(['--tenant', 'acme', '--scope', 'orders:"read"'])).toMatch(/printable ASCII/);
    expect(usage(['--tenant', 'acme', '--scope', 'x', '--ttl', '1h'])).toMatch(/whole number/);
    expect(usage(['--tenant', 'acme', '--scope', 'x', '--ttl', '0'])).toMatch(
      /between 1 and 86400/,
    );
    expect(usage(['--tenant', 'acme', '--scope', 'x', '--ttl', '86401'])).toMatch(/between 1/);
    expect(usage(['--tenant', 'acme', '--scope', 'x', '--sub', ''])).toMatch(/--sub is empty/);
    expect(usage(['--tenant', '--scope', 'x'])).toMatch(/--tenant needs a value/);
    expect(usage(['--tenant', 'acme', '--tenant', 'other'])).toMatch(/--tenant is given twice/);
    expect(usage(['--tenant', 'acme', '--scopes', 'x'])).toMatch(/unknown option --scopes/);
    expect(usage(['acme'])).toMatch(/unexpected argument "acme"/);
  });
});
