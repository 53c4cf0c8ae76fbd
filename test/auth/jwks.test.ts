// The key sources (issue #15): a JWK Set file, checked entry by entry, and a JWKS URL served by a
// local identity provider that counts its hits: caching, rotation, the refresh cooldown, the
// provider going away or never answering.
import {
  createJwksFileSource,
  createJwksUrlSource,
  type JwksError,
  type JwksUrlOptions,
  type KeySource,
  type KeysLoaded,
} from '../../src/auth/jwks';
import { createVerifier, type Verifier } from '../../src/auth/verifier';
import { tempDir, type TempDir } from '../helpers/temp-dir';
import { type JwksServer, startJwksServer } from './support/jwks-server';
import {
  AUDIENCE,
  bearer,
  claims,
  ISSUER,
  joseForTests,
  jwksOf,
  makeKey,
  sign,
  type TestKey,
  waitFor,
} from './support/tokens';

let dir: TempDir;
let rsa: TestKey;
let ec: TestKey;
let ed: TestKey;
const servers: JwksServer[] = [];
const sources: KeySource[] = [];

beforeAll(async () => {
  dir = tempDir('ops-auth-jwks-');
  [rsa, ec, ed] = await Promise.all([
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
    makeKey('EdDSA', 'ed-1'),
  ]);
});

afterAll(async () => {
  for (const source of sources) source.close();
  await Promise.all(servers.map((server) => server.stop()));
  dir.remove();
});

async function provider(body: unknown): Promise<JwksServer> {
  const server = await startJwksServer(body);
  servers.push(server);
  return server;
}

interface Observed {
  readonly source: KeySource;
  readonly errors: JwksError[];
  readonly loads: KeysLoaded[];
}

function urlSource(server: JwksServer, options: Partial<JwksUrlOptions> = {}): Observed {
  const errors: JwksError[] = [];
  const loads: KeysLoaded[] = [];
  const source = createJwksUrlSource({
    url: server.url,
    timeoutMs: 2_000,
    cooldownMs: 60_000,
    refreshMs: 0,
    onRefreshError: (error) => errors.push(error),
    onKeysLoaded: (loaded) => loads.push(loaded),
    ...options,
  });
  sources.push(source);
  return { source, errors, loads };
}

function verifierOver(source: KeySource): Verifier {
  return createVerifier({ keys: source, issuer: ISSUER, audience: AUDIENCE, clockToleranceMs: 0 });
}

async function reasonOf(verifier: Verifier, token: string): Promise<string> {
  const verdict = await verifier.verify(bearer(token));
  return verdict.ok ? 'ok' : verdict.reason;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('JWKS file', () => {
  it('when the file holds valid public keys, then load resolves and each key is imported once, by kid', async () => {
    const source = createJwksFileSource({ path: dir.write('good.json', jwksOf(rsa, ec, ed)) });
    await source.load();
    expect(source.status()).toMatchObject({
      loaded: true,
      kids: ['rsa-1', 'ec-1', 'ed-1'],
      keyCount: 3,
      lastError: undefined,
    });
    const first = await source.keyFor('ec-1', 'ES256');
    const again = await source.keyFor('ec-1', 'ES256');
    // The same CryptoKey object: cached, not imported per lookup.
    expect(first.found && again.found && first.key === again.key).toBe(true);
    expect(await source.keyFor('nope', 'ES256')).toEqual({ found: false, reason: 'unknown_kid' });
    expect(await source.keyFor('ec-1', 'RS256')).toEqual({
      found: false,
      reason: 'unsupported_alg',
    });
    expect(await source.keyFor('ec-1', 'HS256')).toEqual({
      found: false,
      reason: 'unsupported_alg',
    });
  });

  it('when JWKs carry no alg, then each key serves the allowed algorithms its type fits', async () => {
    const bare = [rsa, ec, ed].map(({ jwk }) => ({ ...jwk, alg: undefined, use: undefined }));
    const source = createJwksFileSource({ path: dir.write('bare.json', { keys: bare }) });
    await source.load();
    const verifier = verifierOver(source);
    for (const key of [rsa, ec, ed]) expect(await reasonOf(verifier, await sign(key))).toBe('ok');
  });

  it('when a key is for an algorithm added to the allow-list, then it loads', async () => {
    const jose = await joseForTests();
    const { publicKey } = await jose.generateKeyPair('ES384');
    const p384 = { ...(await jose.exportJWK(publicKey)), kid: 'ec-384' };
    const path = dir.write('p384.json', { keys: [p384] });
    await expect(createJwksFileSource({ path }).load()).rejects.toThrow(
      /fits no allowed algorithm/,
    );
    const source = createJwksFileSource({ path, algorithms: ['ES384'] });
    await source.load();
    expect(source.status().kids).toEqual(['ec-384']);
  });

  it('when the file is not a usable JWK Set, then load rejects with a message naming the file and the problem', async () => {
    const jose = await joseForTests();
    const extractable = await jose.generateKeyPair('RS256', { extractable: true });
    const rsaPrivate = { ...(await jose.exportJWK(extractable.privateKey)), kid: 'leaked' };
    const { publicKey: p384 } = await jose.generateKeyPair('ES384');
    const cases: [string, unknown, RegExp][] = [
      ['not-json.json', '{"keys": [', /is not valid JSON/],
      ['no-keys.json', { kty: 'RSA' }, /expected a JSON object with a "keys" array/],
      ['array.json', [rsa.jwk], /expected a JSON object with a "keys" array/],
      ['empty.json', { keys: [] }, /holds no key/],
      [
        'oct.json',
        { keys: [rsa.jwk, { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0', alg: 'HS256' }] },
        /key #2 \(kid "hmac"\) is a symmetric key \(kty "oct"\)/,
      ],
      [
        'hs-alg.json',
        { keys: [{ ...rsa.jwk, alg: 'HS256' }] },
        /key #1 \(kid "rsa-1"\) has alg "HS256", which is not allowed \(allowed: RS256, ES256, EdDSA\)/,
      ],
      [
        'rs512.json',
        { keys: [{ ...rsa.jwk, alg: 'RS512' }] },
        /key #1 \(kid "rsa-1"\) has alg "RS512", which is not allowed/,
      ],
      ['private.json', { keys: [rsaPrivate] }, /key #1 \(kid "leaked"\) holds private key members/],
      ['enc.json', { keys: [{ ...ec.jwk, use: 'enc' }] }, /has use "enc", not "sig"/],
      ['ops.json', { keys: [{ ...ec.jwk, key_ops: ['encrypt'] }] }, /key_ops without "verify"/],
      [
        'p384.json',
        { keys: [{ ...(await jose.exportJWK(p384)), kid: 'p384' }] },
        /kid "p384"\) \(kty "EC", crv "P-384"\) fits no allowed algorithm/,
      ],
      ['kty.json', { keys: [{ kty: 'XYZ', kid: 'odd' }] }, /has kty "XYZ", not a signing key type/],
      ['dup.json', { keys: [rsa.jwk, rsa.jwk] }, /key #2 \(kid "rsa-1"\) repeats the kid/],
      [
        'broken.json',
        { keys: [{ ...ec.jwk, x: 'AAAA' }] },
        /key #1 \(kid "ec-1"\) is not a valid EC key/,
      ],
      ['kid.json', { keys: [{ ...ec.jwk, kid: 7 }] }, /has a kid that is not a non-empty string/],
    ];
    for (const [name, content, problem] of cases) {
      const path = dir.write(name, content);
      const source = createJwksFileSource({ path });
      const failure = source.load();
      await expect(failure).rejects.toThrow(problem);
      await expect(failure).rejects.toThrow(`JWKS file ${path}: `);
      await expect(failure).rejects.toMatchObject({ name: 'JwksError' });
      expect(source.status()).toMatchObject({ loaded: false, keyCount: 0 });
    }
  });

  it('when the file does not exist, then load rejects naming the path and ENOENT', async () => {
    const path = `${dir.path}/missing.json`;
    await expect(createJwksFileSource({ path }).load()).rejects.toThrow(
      new RegExp(`JWKS file ${path}: cannot be read: .*ENOENT`),
    );
  });

  it('when the source is told an allow-list with a symmetric algorithm, then it is not created', () => {
    expect(() => createJwksFileSource({ path: 'x', algorithms: ['HS256'] })).toThrow(
      /"HS256" is not allowed/,
    );
  });
});

describe('JWKS URL', () => {
  it('when the first set is loaded, then load resolves after one fetch and lookups of known kids fetch nothing more', async () => {
    const server = await provider(jwksOf(rsa, ec, ed));
    const { source, loads } = urlSource(server);
    expect(source.status().loaded).toBe(false);
    await Promise.all([source.load(), source.load(), source.load()]);
    expect(server.hits).toBe(1);
    expect(loads).toEqual([
      { trigger: 'load', kids: ['rsa-1', 'ec-1', 'ed-1'], keyCount: 3, rejected: [] },
    ]);

    const verifier = verifierOver(source);
    const tokens = await Promise.all([rsa, ec, ed].map((key) => sign(key)));
    for (let round = 0; round < 50; round += 1) {
      for (const token of tokens) expect(await reasonOf(verifier, token)).toBe('ok');
    }
    const a = await source.keyFor('rsa-1', 'RS256');
    const b = await source.keyFor('rsa-1', 'RS256');
    expect(a.found && b.found && a.key === b.key).toBe(true);
    await source.load();
    expect(server.hits).toBe(1);
  });

  it('when the provider also publishes entries that cannot verify, then they are left out and reported, and the rest load', async () => {
    const server = await provider({
      keys: [
        { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' },
        { ...ec.jwk, kid: 'enc-1', use: 'enc' },
        rsa.jwk,
      ],
    });
    const { source, loads } = urlSource(server);
    await source.load();
    expect(source.status().kids).toEqual(['rsa-1']);
    expect(loads[0]?.rejected).toEqual([
      expect.stringMatching(/key #1 \(kid "hmac"\) is a symmetric key/),
      expect.stringMatching(/key #2 \(kid "enc-1"\) has use "enc"/),
    ]);
  });

  it('when the provider rotates keys, then a token with the new kid causes one refetch and passes, and old tokens pass until the old key is gone from a refreshed set', async () => {
    const next = await makeKey('ES256', 'ec-2');
    const server = await provider(jwksOf(rsa));
    const { source, loads } = urlSource(server, { cooldownMs: 100, refreshMs: 400 });
    await source.load();
    const verifier = verifierOver(source);
    const oldToken = await sign(rsa);
    const oldKey = await source.keyFor('rsa-1', 'RS256');
    expect(await reasonOf(verifier, oldToken)).toBe('ok');

    // The provider starts publishing the new key next to the old one.
    server.body = jwksOf(rsa, next);
    await sleep(150);
    const before = server.hits;
    const newToken = await sign(next);
    expect(await reasonOf(verifier, newToken)).toBe('ok');
    expect(server.hits).toBe(before + 1);
    expect(loads.at(-1)).toMatchObject({ trigger: 'unknown_kid', kids: ['rsa-1', 'ec-2'] });
    // Both keep passing without more fetches; the old key was not imported again.
    for (let n = 0; n < 20; n += 1) {
      expect(await reasonOf(verifier, oldToken)).toBe('ok');
      expect(await reasonOf(verifier, newToken)).toBe('ok');
    }
    expect(server.hits).toBe(before + 1);
    const kept = await source.keyFor('rsa-1', 'RS256');
    expect(oldKey.found && kept.found && oldKey.key === kept.key).toBe(true);

    // The old key is withdrawn: old tokens pass until the background refresh sees it gone.
    server.body = jwksOf(next);
    const refreshes = loads.length;
    expect(await reasonOf(verifier, oldToken)).toBe('ok');
    await waitFor('a background refresh', () => loads.length > refreshes, 3_000);
    expect(loads.at(-1)).toMatchObject({ trigger: 'interval', kids: ['ec-2'] });
    expect(await reasonOf(verifier, oldToken)).toBe('unknown_kid');
    expect(await reasonOf(verifier, newToken)).toBe('ok');
  });

  it('when many tokens name unknown kids, then the set is fetched at most once per cooldown', async () => {
    const server = await provider(jwksOf(rsa));
    const { source } = urlSource(server, { cooldownMs: 1_000 });
    const verifier = verifierOver(source);
    await source.load();
    expect(server.hits).toBe(1);
    const forged = await Promise.all(
      Array.from({ length: 30 }, (_, n) => sign(rsa, claims(), { kid: `made-up-${n}` })),
    );

    // Within the cooldown of the first load: refused without a fetch.
    const early = await Promise.all(forged.map((token) => reasonOf(verifier, token)));
    expect(new Set(early)).toEqual(new Set(['unknown_kid']));
    expect(server.hits).toBe(1);

    // After it: one fetch, shared by concurrent lookups, then none for the rest of the cooldown.
    await sleep(1_050);
    const burst = await Promise.all(forged.map((token) => reasonOf(verifier, token)));
    for (const token of forged) expect(await reasonOf(verifier, token)).toBe('unknown_kid');
    expect(new Set(burst)).toEqual(new Set(['unknown_kid']));
    expect(server.hits).toBe(2);

    await sleep(1_050);
    expect(await reasonOf(verifier, forged[0] as string)).toBe('unknown_kid');
    expect(await reasonOf(verifier, forged[1] as string)).toBe('unknown_kid');
    expect(server.hits).toBe(3);
    // Known kids never cost a fetch.
    expect(await reasonOf(verifier, await sign(rsa))).toBe('ok');
    expect(server.hits).toBe(3);
  });

  it('when a token has no kid, then no refetch is made for it', async () => {
    const server = await provider(jwksOf(rsa, await makeKey('RS256', 'rsa-2')));
    const { source } = urlSource(server, { cooldownMs: 0 });
    await source.load();
    const verifier = verifierOver(source);
    expect(await reasonOf(verifier, await sign(rsa, claims(), { kid: undefined }))).toBe(
      'unknown_kid',
    );
    expect(server.hits).toBe(1);
  });

  it('when the provider goes away after the first load, then known kids keep verifying, every failed refetch is reported, and the source stays loaded', async () => {
    const server = await provider(jwksOf(rsa, ec));
    const { source, errors } = urlSource(server, { cooldownMs: 100, refreshMs: 200 });
    await source.load();
    const verifier = verifierOver(source);
    const tokens = [await sign(rsa), await sign(ec)];

    await server.stop();
    await waitFor('two failed background refreshes', () => errors.length >= 2, 3_000);
    for (const token of tokens) expect(await reasonOf(verifier, token)).toBe('ok');
    expect(errors[0]?.message).toMatch(
      new RegExp(
        `^JWKS http://127\\.0\\.0\\.1:\\d+/\\.well-known/jwks\\.json: cannot be fetched: .*ECONNREFUSED`,
      ),
    );
    expect(errors[0]?.name).toBe('JwksError');

    // An unknown kid tries once more (the cooldown has passed), fails, is reported and refused.
    await sleep(120);
    const reported = errors.length;
    expect(await reasonOf(verifier, await sign(rsa, claims(), { kid: 'rsa-9' }))).toBe(
      'unknown_kid',
    );
    expect(errors.length).toBeGreaterThan(reported);
    expect(source.status()).toMatchObject({
      loaded: true,
      kids: ['rsa-1', 'ec-1'],
      lastError: expect.stringMatching(/cannot be fetched/) as unknown,
    });
    for (const token of tokens) expect(await reasonOf(verifier, token)).toBe('ok');
  });

  it('when the provider answers 500 or garbage on a refresh, then the cached keys stay in service and the failure is reported', async () => {
    const server = await provider(jwksOf(ed));
    const { source, errors } = urlSource(server, { refreshMs: 100 });
    await source.load();
    const verifier = verifierOver(source);
    server.mode = 'fail';
    await waitFor('a failed refresh', () => errors.length >= 1, 3_000);
    expect(errors[0]?.message).toMatch(/: answered HTTP 500$/);
    server.mode = 'serve';
    server.body = { keys: [{ kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' }] };
    await waitFor('a refused set', () => errors.some((e) => /no usable/.test(e.message)), 3_000);
    expect(await reasonOf(verifier, await sign(ed))).toBe('ok');
    // Recovery: the next good set clears the error.
    server.body = jwksOf(ed);
    await waitFor('recovery', () => source.status().lastError === undefined, 3_000);
  });

  it('when the provider never answers, then load rejects after the fetch timeout with a clear message', async () => {
    const server = await provider(jwksOf(rsa));
    server.mode = 'hang';
    const { source, errors } = urlSource(server, { timeoutMs: 300 });
    const started = Date.now();
    await expect(source.load()).rejects.toThrow(
      /^JWKS http:\/\/127\.0\.0\.1:\d+\/\.well-known\/jwks\.json: no answer within 300 ms \(timed out\)$/,
    );
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(2_000);
    expect(server.hits).toBe(1);
    // A failed first load rejects its caller; it is not reported as a refresh error too.
    expect(errors).toEqual([]);
    expect(source.status()).toMatchObject({
      loaded: false,
      lastError: expect.any(String) as unknown,
    });

    // Once the provider answers, the next load (a startup check retrying) succeeds.
    server.mode = 'serve';
    await source.load();
    expect(source.status().loaded).toBe(true);
  });

  it('when the provider is down at start, answers 500, garbage, or too much, then load says so', async () => {
    const down = await provider(jwksOf(rsa));
    await down.stop();
    await expect(urlSource(down).source.load()).rejects.toThrow(
      /cannot be fetched: .*ECONNREFUSED/,
    );

    const failing = await provider(jwksOf(rsa));
    failing.mode = 'fail';
    await expect(urlSource(failing).source.load()).rejects.toThrow(/: answered HTTP 500$/);

    const garbage = await provider('<html>login</html>');
    await expect(urlSource(garbage).source.load()).rejects.toThrow(/: is not valid JSON: /);

    const huge = await provider(jwksOf(rsa, ec, ed));
    await expect(urlSource(huge, { maxBytes: 100 }).source.load()).rejects.toThrow(
      /: the response is larger than 100 bytes$/,
    );

    const symmetric = await provider({ keys: [{ kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' }] });
    await expect(urlSource(symmetric).source.load()).rejects.toThrow(
      /holds no usable signing key \(key #1 \(kid "hmac"\) is a symmetric key/,
    );
  });

  it('when startup gives up waiting, then load rejects with the signal reason', async () => {
    const server = await provider(jwksOf(rsa));
    server.mode = 'hang';
    const { source } = urlSource(server, { timeoutMs: 5_000 });
    const giveUp = new AbortController();
    const waiting = source.load(giveUp.signal);
    giveUp.abort(new Error('startup abandoned'));
    await expect(waiting).rejects.toThrow('startup abandoned');
    source.close();
  });

  it('when the source is closed, then the background refresh stops and its timer never held the process', async () => {
    const server = await provider(jwksOf(rsa));
    const { source } = urlSource(server, { refreshMs: 100 });
    const refTimers = (): number =>
      process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    const before = refTimers();
    await source.load();
    // The refresh timer is unref'd: no more ref'd timers than before it started.
    expect(refTimers()).toBeLessThanOrEqual(before);
    await waitFor('refreshes', () => server.hits >= 3, 3_000);
    source.close();
    source.close();
    const hits = server.hits;
    await sleep(300);
    expect(server.hits).toBe(hits);
  });

  it('when the URL or the allow-list is not usable, then the source is not created', () => {
    const options = { timeoutMs: 1_000, cooldownMs: 1_000, refreshMs: 0 };
    expect(() => createJwksUrlSource({ ...options, url: 'not a url' })).toThrow(/not a valid URL/);
    expect(() => createJwksUrlSource({ ...options, url: 'ftp://idp.example/jwks' })).toThrow(
      /must be http:\/\/ or https:\/\//,
    );
    expect(() =>
      createJwksUrlSource({ ...options, url: 'https://idp.example/jwks', timeoutMs: 0 }),
    ).toThrow(/timeout/);
    expect(() =>
      createJwksUrlSource({ ...options, url: 'https://idp.example/jwks', algorithms: ['none'] }),
    ).toThrow(/"none" is not allowed/);
  });
});
