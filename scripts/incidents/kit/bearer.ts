// A stand-in identity provider for the incident drills: production takes only bearer JWTs
// (CONTRACT.md section 4), so a drill makes an ES256 key pair, publishes its public half as a JWK
// Set file for AUTH_JWKS_FILE, and signs one token for its clients (a tenant, both order scopes,
// an hour to live). Plain node:crypto: nothing here depends on the service's own auth code.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { TempDir } from './temp-dir';

const ISSUER = 'https://idp.incident-drill.test/';
const AUDIENCE = 'ops-service';

export interface Bearer {
  /** The service's settings for it: AUTH_MODE, AUTH_JWKS_FILE, AUTH_ISSUER, AUTH_AUDIENCE. */
  readonly env: Readonly<Record<string, string>>;
  /** `Authorization: Bearer <token>`, for every /v1 request. */
  readonly headers: Readonly<Record<string, string>>;
}

const base64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export function createBearer(dir: TempDir, tenant = 'incident-drill'): Bearer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomBytes(6).toString('hex');
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };
  const jwksFile = dir.write('jwks.json', { keys: [jwk] });
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid }));
  const payload = base64url(
    JSON.stringify({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'incident-drill-client',
      tenant_id: tenant,
      scope: 'orders:write orders:read',
      iat: now,
      exp: now + 3600,
    }),
  );
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return {
    env: {
      AUTH_MODE: 'jwt',
      AUTH_JWKS_FILE: jwksFile,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    },
    headers: { authorization: `Bearer ${header}.${payload}.${base64url(signature)}` },
  };
}
