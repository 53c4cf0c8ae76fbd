// `npm run build && node dist/bench/auth-verify.js`: what bearer-token verification costs per
// request (issue #15), printed as a markdown table of microseconds per verify() call, one row per
// algorithm. In process, no HTTP: the verifier of src/auth over a JWK Set file, keys imported once
// and cached (the warm path every request after the first takes); each call parses the header,
// looks the key up and checks the signature and the claims, as a request does.
// Method: keys generated at start; one token per algorithm; BENCH_AUTH_WARMUP calls of each row
// first, then BENCH_AUTH_ROUNDS rounds of BENCH_AUTH_N sequential calls per row, the rows in the
// listed order in odd rounds and reversed in even ones; each figure is the median over the rounds
// (wall-clock min and max beside it). CPU is the process's (user + system, every thread: jose
// verifies with WebCrypto, which runs on the libuv pool). Three RS256 reference rows: jose's
// jwtVerify alone (what verify() adds to it), importJWK on every call (what caching the imported
// key saves), and Node's synchronous crypto.verify of the signature alone (the floor).
// Knobs (environment): BENCH_AUTH_N (5000), BENCH_AUTH_ROUNDS (5), BENCH_AUTH_WARMUP (1000).
import { KeyObject, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadJose } from '../src/auth/jose-loader';
import { createJwksFileSource } from '../src/auth/jwks';
import { createVerifier } from '../src/auth/verifier';
import { fixed, intFromEnv, markdownTable, median } from './harness';

const N = intFromEnv('BENCH_AUTH_N', 5_000);
const ROUNDS = intFromEnv('BENCH_AUTH_ROUNDS', 5);
const WARMUP = intFromEnv('BENCH_AUTH_WARMUP', 1_000);
const ISSUER = 'https://idp.bench.invalid/';
const AUDIENCE = 'ops-service';
const ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;

type Call = () => Promise<unknown>;

interface Sample {
  /** Wall-clock microseconds per call. */
  readonly wall: number;
  /** Process CPU (user + system, all threads: WebCrypto runs on the libuv pool) per call. */
  readonly cpu: number;
}

/** Per-call cost over `n` sequential calls. */
async function measure(call: Call, n: number): Promise<Sample> {
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i += 1) await call();
  const wall = Number(process.hrtime.bigint() - started) / 1_000 / n;
  const cpu = process.cpuUsage(cpuBefore);
  return { wall, cpu: (cpu.user + cpu.system) / n };
}

async function main(): Promise<void> {
  const jose = await loadJose();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ops-bench-auth-'));
  try {
    const keys = await Promise.all(
      ALGORITHMS.map(async (alg) => {
        const pair = await jose.generateKeyPair(alg);
        const jwk = { ...(await jose.exportJWK(pair.publicKey)), kid: `bench-${alg}`, alg };
        return { alg, jwk, privateKey: pair.privateKey };
      }),
    );
    const file = path.join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: keys.map(({ jwk }) => jwk) }));
    const source = createJwksFileSource({ path: file });
    await source.load();
    const verifier = createVerifier({
      keys: source,
      issuer: ISSUER,
      audience: AUDIENCE,
      clockToleranceMs: 0,
    });

    const now = Math.floor(Date.now() / 1000);
    const cases = await Promise.all(
      keys.map(async ({ alg, jwk, privateKey }) => {
        const token = await new jose.SignJWT({
          iss: ISSUER,
          aud: AUDIENCE,
          sub: 'bench-user',
          tenant_id: 'bench-tenant',
          scope: 'orders:read orders:write',
          iat: now,
          exp: now + 3_600,
        })
          .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
          .sign(privateKey);
        const header = `Bearer ${token}`;
        const call: Call = async () => {
          const verdict = await verifier.verify(header);
          if (!verdict.ok)
            throw new Error(`${alg}: the bench token was refused (${verdict.reason})`);
        };
        return { label: `verify(), ${alg}`, call, token, jwk };
      }),
    );
    const rsa = cases[0];
    if (rsa === undefined) throw new Error('no RS256 case');
    // References, RS256 only: what verify() adds to jose, what caching the imported key saves,
    // and the floor (Node's synchronous crypto.verify, no WebCrypto, no claims).
    const cachedKey = await source.keyFor(rsa.jwk.kid, 'RS256');
    if (!cachedKey.found) throw new Error('the RS256 key is not loaded');
    const [head, body, signature] = rsa.token.split('.');
    const signed = Buffer.from(`${head}.${body}`);
    const signatureBytes = Buffer.from(signature ?? '', 'base64url');
    const keyObject = KeyObject.from(cachedKey.key);
    const references = [
      {
        label: 'ref: jose.jwtVerify alone, RS256',
        call: () =>
          jose.jwtVerify(rsa.token, cachedKey.key, { issuer: ISSUER, audience: AUDIENCE }),
      },
      {
        label: 'ref: importJWK on every call, RS256',
        call: async () => {
          const key = await jose.importJWK(rsa.jwk, 'RS256');
          await jose.jwtVerify(rsa.token, key, { issuer: ISSUER, audience: AUDIENCE });
        },
      },
      {
        label: 'ref: node:crypto.verify (sync), RS256',
        call: () => {
          if (!verify('sha256', signed, keyObject, signatureBytes))
            throw new Error('bad signature');
          return Promise.resolve();
        },
      },
    ];
    const all = [...cases, ...references];

    for (const { call } of all) await measure(call, WARMUP);
    const results = new Map<string, Sample[]>(all.map(({ label }) => [label, []]));
    for (let round = 1; round <= ROUNDS; round += 1) {
      const order = round % 2 === 1 ? all : [...all].reverse();
      for (const { label, call } of order) results.get(label)?.push(await measure(call, N));
    }

    const lines = all.map(({ label }) => {
      const rounds = results.get(label) ?? [];
      const wall = rounds.map((sample) => sample.wall);
      const cpu = median(rounds.map((sample) => sample.cpu));
      return [
        label,
        fixed(median(wall), 1),
        fixed(Math.min(...wall), 1),
        fixed(Math.max(...wall), 1),
        fixed(cpu, 1),
        fixed(1_000_000 / cpu, 0),
      ];
    });
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    console.log(
      `Bearer-token verification, in process: Node ${process.version}, ${cpu} (${os.availableParallelism()} cores), N=${N} sequential calls per round, median of ${ROUNDS} rounds.\n`,
    );
    console.log(
      markdownTable(
        ['call', 'µs per call', 'min', 'max', 'CPU µs per call', 'calls per CPU second'],
        lines,
      ),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
