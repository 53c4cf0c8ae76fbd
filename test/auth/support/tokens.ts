// Keys and tokens for the auth tests: key pairs generated here (never checked in), JWK Sets built
// from their public halves, tokens signed with jose or, for the forgeries, put together by hand.
import type { CryptoKey, JWK, JWTPayload } from 'jose' with { 'resolution-mode': 'import' };
import { type JoseModule, loadJose } from '../../../src/auth/jose-loader';

export const ISSUER = 'https://idp.example.test/';
export const AUDIENCE = 'ops-service';

export type TestAlg = 'RS256' | 'ES256' | 'EdDSA';

export interface TestKey {
  readonly alg: TestAlg;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** The public JWK as a provider publishes it: kid, alg, use "sig". */
  readonly jwk: JWK;
}

/** jose, or an error saying how to run these tests: jose is ESM-only, as PGlite is. */
export async function joseForTests(): Promise<JoseModule> {
  try {
    return await loadJose();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (!message.includes('--experimental-vm-modules')) throw error;
    throw new Error(
      'jose (ESM-only) loads only when jest runs under `node --experimental-vm-modules`: run the tests with `npm test -- test/auth` or `NODE_OPTIONS=--experimental-vm-modules npx jest test/auth`',
      { cause: error },
    );
  }
}

export async function makeKey(alg: TestAlg, kid: string): Promise<TestKey> {
  const jose = await joseForTests();
  const { privateKey, publicKey } = await jose.generateKeyPair(alg);
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, jwk };
}

export function jwksOf(...keys: readonly TestKey[]): { keys: JWK[] } {
  return { keys: keys.map((key) => key.jwk) };
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Claims that pass: our issuer and audience, a subject, a tenant, five minutes to live. */
export function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const now = nowSeconds();
  const base: Record<string, unknown> = {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: 'user-42',
    tenant_id: 'acme',
    scope: 'orders:read orders:write',
    iat: now,
    exp: now + 300,
  };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[name];
    else base[name] = value;
  }
  return base;
}

/** A token signed by `key`; `header` overrides the protected header (kid: undefined drops it). */
export async function sign(
  key: TestKey,
  payload: JWTPayload = claims(),
  header: { kid?: string | undefined; alg?: string } = {},
): Promise<string> {
  const jose = await joseForTests();
  const protectedHeader: { alg: string; kid?: string; typ: string } = {
    alg: header.alg ?? key.alg,
    typ: 'JWT',
  };
  const kid = 'kid' in header ? header.kid : key.kid;
  if (kid !== undefined) protectedHeader.kid = kid;
  return new jose.SignJWT(payload).setProtectedHeader(protectedHeader).sign(key.privateKey);
}

export function base64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString(
    'base64url',
  );
}

export function bearer(token: string): string {
  return `Bearer ${token}`;
}

/** Polls `check` until it is true, or fails after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
