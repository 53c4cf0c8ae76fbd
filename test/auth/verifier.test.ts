// The bearer-token verifier (issue #15) against keys generated here and a JWK Set in a temp file:
// what passes, every refusal and its reason, scopes, and the RFC 6750 challenge.
import { loadJoseVerify } from '../../src/auth/jose-loader';
import { createJwksFileSource, type KeySource } from '../../src/auth/jwks';
import {
  AUTH_FAILURE_REASONS,
  createVerifier,
  hasScope,
  type Verdict,
  type Verifier,
  wwwAuthenticate,
} from '../../src/auth/verifier';
import { tempDir, type TempDir } from '../helpers/temp-dir';
import {
  AUDIENCE,
  base64url,
  bearer,
  claims,
  ISSUER,
  joseForTests,
  jwksOf,
  makeKey,
  nowSeconds,
  sign,
  type TestKey,
} from './support/tokens';

let dir: TempDir;
let rsa: TestKey;
let ec: TestKey;
let ed: TestKey;
/** Same kid as `rsa`, another key pair: what an attacker holds. */
let impostor: TestKey;
let source: KeySource;
let verifier: Verifier;
/** Every verdict the tests saw, with the token that produced it. */
const seen: { token: string; verdict: Verdict }[] = [];

async function verifierFor(
  keys: readonly TestKey[],
  options: { tenantClaim?: string; clockToleranceMs?: number } = {},
): Promise<Verifier> {
  const file = dir.write(`jwks-${Math.random().toString(36).slice(2)}.json`, jwksOf(...keys));
  const keySource = createJwksFileSource({ path: file });
  await keySource.load();
  return createVerifier({
    keys: keySource,
    issuer: ISSUER,
    audience: AUDIENCE,
    clockToleranceMs: options.clockToleranceMs ?? 5_000,
    ...(options.tenantClaim === undefined ? {} : { tenantClaim: options.tenantClaim }),
  });
}

/** Verifies `token` (as a Bearer header) with the shared verifier, and records the verdict. */
async function check(token: string, using: Verifier = verifier): Promise<Verdict> {
  const verdict = await using.verify(bearer(token));
  seen.push({ token, verdict });
  return verdict;
}

async function reasonFor(token: string, using?: Verifier): Promise<string> {
  const verdict = await check(token, using);
  return verdict.ok ? 'ok' : verdict.reason;
}

beforeAll(async () => {
  dir = tempDir('ops-auth-verifier-');
  [rsa, ec, ed] = await Promise.all([
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
    makeKey('EdDSA', 'ed-1'),
  ]);
  impostor = await makeKey('RS256', 'rsa-1');
  source = createJwksFileSource({ path: dir.write('jwks.json', jwksOf(rsa, ec, ed)) });
  await source.load();
  verifier = createVerifier({
    keys: source,
    issuer: ISSUER,
    audience: AUDIENCE,
    clockToleranceMs: 5_000,
  });
});

afterAll(() => {
  dir.remove();
});

describe('tokens that pass', () => {
  it.each(['RS256', 'ES256', 'EdDSA'])(
    'when a valid %s token is sent, then the verdict names its subject, tenant and scopes',
    async (alg) => {
      const key = [rsa, ec, ed].find((each) => each.alg === alg) as TestKey;
      const verdict = await check(await sign(key));
      expect(verdict).toEqual({
        ok: true,
        subject: 'user-42',
        tenant: 'acme',
        scopes: new Set(['orders:read', 'orders:write']),
      });
    },
  );

  it('when the scheme is written in another case, then the token is still read (RFC 9110: case-insensitive)', async () => {
    const token = await sign(rsa);
    for (const scheme of ['bearer', 'BEARER', 'bEaReR']) {
      expect((await verifier.verify(`${scheme} ${token}`)).ok).toBe(true);
    }
  });

  it('when the tenant claim is configured, then the tenant comes from that claim', async () => {
    const custom = await verifierFor([rsa], { tenantClaim: 'org' });
    const verdict = await check(
      await sign(rsa, claims({ org: 'globex', tenant_id: undefined })),
      custom,
    );
    expect(verdict).toMatchObject({ ok: true, tenant: 'globex' });
    expect(await reasonFor(await sign(rsa), custom)).toBe('no_tenant');
  });

  it('when aud is an array holding our audience, then the token passes', async () => {
    const token = await sign(ec, claims({ aud: ['another-api', AUDIENCE] }));
    expect((await check(token)).ok).toBe(true);
  });
});

describe('the Authorization header', () => {
  it.each([[undefined], ['']])(
    'when no Authorization header is sent (%p), then the reason is missing and no token was sent',
    async (header) => {
      expect(await verifier.verify(header)).toEqual({
        ok: false,
        reason: 'missing',
        tokenSent: false,
      });
    },
  );

  it.each(['Basic dXNlcjpwYXNz', 'Basic x', 'Digest username="a"', 'Token abc', 'Bearerabc'])(
    'when another scheme is used (%p), then it is malformed and counts as no token sent',
    async (header) => {
      expect(await verifier.verify(header)).toEqual({
        ok: false,
        reason: 'malformed',
        tokenSent: false,
      });
    },
  );

  it('when the Bearer credentials are not one token68 after one space, then it is malformed', async () => {
    const token = await sign(rsa);
    const headers = [
      'Bearer',
      'Bearer ',
      'Bearer a b',
      `Bearer  ${token}`,
      `Bearer ${token} `,
      `Bearer\t${token}`,
      `Bearer ${token},x`,
      `Bearer "${token}"`,
      `Bearer ${token}=x`,
      'Bearer not-a-jwt',
      'Bearer a.b',
      'Bearer a.b.c.d',
      'Bearer @@@.@@@.@@@',
    ];
    for (const header of headers) {
      expect([header, await verifier.verify(header)]).toEqual([
        header,
        { ok: false, reason: 'malformed', tokenSent: true },
      ]);
    }
  });

  it('when the token is three parts that do not decode to a JOSE header, then it is malformed', async () => {
    const payload = base64url(claims());
    expect(await reasonFor(`aaaa.${payload}.bbbb`)).toBe('malformed');
    expect(await reasonFor(`${base64url('[1,2]')}.${payload}.bbbb`)).toBe('malformed');
    expect(await reasonFor(`${base64url({ kid: 'rsa-1' })}.${payload}.bbbb`)).toBe('malformed');
    expect(await reasonFor(`${base64url({ alg: 'RS256', kid: 7 })}.${payload}.bbbb`)).toBe(
      'malformed',
    );
  });
});

describe('refusals', () => {
  it('when the token says alg "none" (in any spelling, with or without a signature), then the algorithm is refused', async () => {
    const payload = base64url(claims());
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const unsigned = `${base64url({ alg, typ: 'JWT', kid: 'rsa-1' })}.${payload}.`;
      expect(await reasonFor(unsigned)).toBe('unsupported_alg');
      const noKid = `${base64url({ alg, typ: 'JWT' })}.${payload}.`;
      expect(await reasonFor(noKid)).toBe('unsupported_alg');
    }
    // Even with a real RS256 signature stuck on the end.
    const [, , signature] = (await sign(rsa)).split('.');
    const glued = `${base64url({ alg: 'none', kid: 'rsa-1' })}.${payload}.${signature}`;
    expect(await reasonFor(glued)).toBe('unsupported_alg');
  });

  it("when a token is HMAC-signed with the RSA public key's bytes as the secret, then the algorithm is refused", async () => {
    const jose = await joseForTests();
    const pem = await jose.exportSPKI(rsa.publicKey);
    const secrets = [
      new TextEncoder().encode(pem),
      new TextEncoder().encode(`${pem.trim()}`),
      new TextEncoder().encode(JSON.stringify(rsa.jwk)),
    ];
    for (const secret of secrets) {
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        const forged = await new jose.SignJWT(claims())
          .setProtectedHeader({ alg, kid: 'rsa-1' })
          .sign(secret);
        expect(await reasonFor(forged)).toBe('unsupported_alg');
      }
    }
  });

  it('when an allow-list names a symmetric or unknown algorithm, then the verifier is not created', () => {
    for (const algorithms of [['HS256'], ['RS256', 'none'], ['RS256', 'HS512'], []]) {
      expect(() =>
        createVerifier({
          keys: source,
          issuer: ISSUER,
          audience: AUDIENCE,
          clockToleranceMs: 0,
          algorithms,
        }),
      ).toThrow(/algorithm/);
    }
  });

  it('when an allowed algorithm is not on this allow-list, then it is refused before any key is looked up', async () => {
    const rsaOnly = createVerifier({
      keys: source,
      issuer: ISSUER,
      audience: AUDIENCE,
      clockToleranceMs: 0,
      algorithms: ['RS256'],
    });
    expect(await reasonFor(await sign(ec), rsaOnly)).toBe('unsupported_alg');
    expect(await reasonFor(await sign(rsa), rsaOnly)).toBe('ok');
  });

  it('when the payload is altered after signing, then the signature is bad', async () => {
    const [header, , signature] = (await sign(rsa)).split('.');
    for (const change of [
      { tenant_id: 'globex' },
      { sub: 'admin' },
      { scope: 'orders:read orders:write orders:admin' },
      { exp: nowSeconds() + 86_400 },
    ]) {
      const tampered = `${header}.${base64url(claims(change))}.${signature}`;
      expect(await reasonFor(tampered)).toBe('bad_signature');
    }
    // A byte of the signature flipped.
    const token = await sign(ec);
    const flipped = `${token.slice(0, -2)}${token.endsWith('A') ? 'B' : 'A'}${token.slice(-1)}`;
    expect(await reasonFor(flipped)).toBe('bad_signature');
  });

  it('when a token is signed by another key under a known kid, then the signature is bad', async () => {
    expect(await reasonFor(await sign(impostor))).toBe('bad_signature');
  });

  it('when a token names a kid the key set does not hold, then the kid is unknown', async () => {
    expect(await reasonFor(await sign(rsa, claims(), { kid: 'rsa-2' }))).toBe('unknown_kid');
    expect(await reasonFor(await sign(ec, claims(), { kid: 'x'.repeat(300) }))).toBe('unknown_kid');
  });

  it("when a token names one key's kid with another key type's algorithm, then the algorithm is refused", async () => {
    // Signed with the EC key, but claiming the RSA key's kid.
    expect(await reasonFor(await sign(ec, claims(), { kid: 'rsa-1' }))).toBe('unsupported_alg');
  });

  it('when a token has no kid, then it verifies only if exactly one key fits its algorithm', async () => {
    // One RSA key in the set: it is the one.
    expect(await reasonFor(await sign(rsa, claims(), { kid: undefined }))).toBe('ok');
    // Two RSA keys: no guessing, even though one of them would verify.
    const other = await makeKey('RS256', 'rsa-2');
    const two = await verifierFor([rsa, other, ec]);
    expect(await reasonFor(await sign(rsa, claims(), { kid: undefined }), two)).toBe('unknown_kid');
    expect(await reasonFor(await sign(rsa), two)).toBe('ok');
  });

  it('when exp has passed by more than the clock tolerance, then the token is expired; within it, it passes', async () => {
    const now = nowSeconds();
    expect(await reasonFor(await sign(rsa, claims({ iat: now - 600, exp: now - 60 })))).toBe(
      'expired',
    );
    expect(await reasonFor(await sign(ed, claims({ iat: now - 600, exp: now - 2 })))).toBe('ok');
    const strict = await verifierFor([rsa], { clockToleranceMs: 0 });
    expect(await reasonFor(await sign(rsa, claims({ exp: now - 2 })), strict)).toBe('expired');
  });

  it('when nbf is ahead by more than the clock tolerance, then the token is not yet valid; within it, it passes', async () => {
    const now = nowSeconds();
    expect(await reasonFor(await sign(ec, claims({ nbf: now + 60 })))).toBe('not_yet_valid');
    expect(await reasonFor(await sign(ec, claims({ nbf: now + 2 })))).toBe('ok');
  });

  it('when the token has no exp, or exp/nbf are not numbers, then it is malformed', async () => {
    expect(await reasonFor(await sign(rsa, claims({ exp: undefined })))).toBe('malformed');
    expect(await reasonFor(await sign(rsa, claims({ exp: 'tomorrow' })))).toBe('malformed');
    expect(await reasonFor(await sign(rsa, claims({ nbf: 'now' })))).toBe('malformed');
  });

  it('when iss is another issuer or absent, then the issuer is wrong', async () => {
    expect(await reasonFor(await sign(rsa, claims({ iss: 'https://evil.example/' })))).toBe(
      'wrong_issuer',
    );
    expect(await reasonFor(await sign(rsa, claims({ iss: `${ISSUER}x` })))).toBe('wrong_issuer');
    expect(await reasonFor(await sign(rsa, claims({ iss: undefined })))).toBe('wrong_issuer');
  });

  it('when aud is another audience or absent, then the audience is wrong', async () => {
    expect(await reasonFor(await sign(ec, claims({ aud: 'billing-service' })))).toBe(
      'wrong_audience',
    );
    expect(await reasonFor(await sign(ec, claims({ aud: ['a', 'b'] })))).toBe('wrong_audience');
    expect(await reasonFor(await sign(ec, claims({ aud: undefined })))).toBe('wrong_audience');
  });

  it('when the tenant claim is absent or not 1-64 characters of [A-Za-z0-9._:-], then there is no tenant', async () => {
    for (const tenant of [undefined, '', 'a b', 'x'.repeat(65), 'acme/other', 'é', 42, ['acme']]) {
      expect([tenant, await reasonFor(await sign(rsa, claims({ tenant_id: tenant })))]).toEqual([
        tenant,
        'no_tenant',
      ]);
    }
    for (const tenant of ['a', 'x'.repeat(64), 'eu-1:acme.corp_2']) {
      expect(await check(await sign(rsa, claims({ tenant_id: tenant })))).toMatchObject({
        ok: true,
        tenant,
      });
    }
  });

  it('when sub is absent, empty or not a string, then there is no subject', async () => {
    for (const sub of [undefined, '', 42]) {
      expect(await reasonFor(await sign(ed, claims({ sub })))).toBe('no_subject');
    }
  });
});

describe('scopes', () => {
  it('when scopes come as a space-separated scope claim, then each is a scope', async () => {
    const verdict = await check(await sign(rsa, claims({ scope: ' orders:read  orders:write ' })));
    expect(verdict.ok && [...verdict.scopes].sort()).toEqual(['orders:read', 'orders:write']);
    expect(hasScope(verdict, 'orders:write')).toBe(true);
    expect(hasScope(verdict, 'orders')).toBe(false);
  });

  it('when scopes come as an scp array (or string), then each entry is a scope', async () => {
    const array = await check(
      await sign(ec, claims({ scope: undefined, scp: ['orders:read', 42, 'orders:write'] })),
    );
    expect(array.ok && [...array.scopes].sort()).toEqual(['orders:read', 'orders:write']);
    const text = await check(await sign(ec, claims({ scope: undefined, scp: 'orders:read' })));
    expect(hasScope(text, 'orders:read')).toBe(true);
  });

  it('when both claims are present, then the scopes are their union; with neither, there are none', async () => {
    const both = await check(
      await sign(ed, claims({ scope: 'orders:read', scp: ['orders:write'] })),
    );
    expect(both.ok && [...both.scopes].sort()).toEqual(['orders:read', 'orders:write']);
    const none = await check(await sign(ed, claims({ scope: undefined })));
    expect(none).toMatchObject({ ok: true, scopes: new Set() });
    expect(hasScope(none, 'orders:read')).toBe(false);
  });

  it('when the verdict is a refusal, then it holds no scope', async () => {
    const refused = await check(await sign(impostor));
    expect(hasScope(refused, 'orders:read')).toBe(false);
  });
});

describe('the challenge (RFC 6750 3)', () => {
  it('when no token was sent, then the challenge has no error attribute', async () => {
    const verdict = await verifier.verify(undefined);
    if (verdict.ok) throw new Error('no header cannot pass');
    expect(wwwAuthenticate(verdict)).toBe('Bearer realm="ops-service"');
    expect(wwwAuthenticate({ ok: false, reason: 'malformed', tokenSent: false })).toBe(
      'Bearer realm="ops-service"',
    );
  });

  it('when a token did not pass, then the challenge says invalid_token and nothing of why', () => {
    for (const reason of AUTH_FAILURE_REASONS) {
      expect(wwwAuthenticate({ ok: false, reason, tokenSent: true })).toBe(
        'Bearer realm="ops-service", error="invalid_token"',
      );
    }
  });

  it('when a scope is missing, then the challenge says insufficient_scope and names it', () => {
    expect(wwwAuthenticate({ insufficientScope: 'orders:write' })).toBe(
      'Bearer realm="ops-service", error="insufficient_scope", scope="orders:write"',
    );
    expect(wwwAuthenticate({ insufficientScope: 'orders:read' }, 'orders')).toBe(
      'Bearer realm="orders", error="insufficient_scope", scope="orders:read"',
    );
    expect(() => wwwAuthenticate({ insufficientScope: 'a"b' })).toThrow(/scope/);
    expect(() => wwwAuthenticate({ insufficientScope: '' })).toThrow(/scope/);
  });
});

describe('what a verdict carries', () => {
  it('when any token is refused, then the verdict is only ok, reason and tokenSent, never token text', () => {
    const refusals = seen.filter(({ verdict }) => !verdict.ok);
    expect(refusals.length).toBeGreaterThan(40);
    for (const { token, verdict } of refusals) {
      expect(Object.keys(verdict).sort()).toEqual(['ok', 'reason', 'tokenSent']);
      const text = JSON.stringify(verdict);
      for (const part of token.split('.').filter((each) => each.length > 3)) {
        expect(text).not.toContain(part);
      }
    }
  });

  it('when the tests above ran, then every reason but missing came from a token (the set is closed and reachable)', () => {
    const reasons = new Set(seen.map(({ verdict }) => (verdict.ok ? 'ok' : verdict.reason)));
    for (const reason of AUTH_FAILURE_REASONS) {
      if (reason !== 'missing') expect([reason, reasons.has(reason)]).toEqual([reason, true]);
    }
  });
});

describe("the service's part of jose", () => {
  it('when loaded from its subpath modules, then it is the very importJWK, jwtVerify and decodeProtectedHeader of jose itself', async () => {
    const jose = await joseForTests();
    const part = await loadJoseVerify();
    expect(part.importJWK).toBe(jose.importJWK);
    expect(part.jwtVerify).toBe(jose.jwtVerify);
    expect(part.decodeProtectedHeader).toBe(jose.decodeProtectedHeader);
    expect(await loadJoseVerify()).toBe(part);
  });
});
