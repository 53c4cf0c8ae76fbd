// npm run --silent token -- --tenant acme --scope "orders:read orders:write" [--sub alice] [--ttl 3600]
// Prints a bearer token for the LOCAL STACK ONLY (docker-compose.yml): an ES256 JWT signed with
// the development key in deploy/auth/dev-signing-key.jwk, whose public half is the JWKS the
// compose service reads (AUTH_JWKS_FILE). Nothing reachable may trust that key: it is in the
// repository for anyone to read (deploy/auth/README.md).
//
// The token goes to stdout, alone on its line (TOKEN=$(npm run --silent token -- ...)); what it
// says goes to stderr. Exit code 2 for bad arguments, 1 when the key cannot be read or used.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { JWK } from 'jose' with { 'resolution-mode': 'import' };
import { loadJose } from '../src/auth/jose-loader';
import { packageRoot } from '../src/config/load-config';

/** What the compose service checks (AUTH_ISSUER, AUTH_AUDIENCE, AUTH_TENANT_CLAIM). */
export const DEV_ISSUER = 'http://localhost/dev-issuer';
export const DEV_AUDIENCE = 'ops-service';
export const DEV_TENANT_CLAIM = 'tenant_id';
export const DEV_ALG = 'ES256';
/** The repository's development key pair (deploy/auth/README.md). */
export const DEV_SIGNING_KEY_FILE = 'deploy/auth/dev-signing-key.jwk';
export const DEV_JWKS_FILE = 'deploy/auth/dev-jwks.json';

export const DEFAULT_SUBJECT = 'dev-user';
export const DEFAULT_TTL_SECONDS = 3600;
/** A leaked development token stops working within a day at most. */
export const MAX_TTL_SECONDS = 86_400;

/** The tenant ids the service accepts (src/auth/verifier.ts refuses any other as no_tenant). */
const TENANT = /^[A-Za-z0-9._:-]{1,64}$/;
/** RFC 6750 3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export interface DevTokenOptions {
  /** The tenant claim's value. */
  readonly tenant: string;
  /** Space-separated scopes (orders:read, orders:write). */
  readonly scopes: readonly string[];
  /** The `sub` claim. */
  readonly subject: string;
  /** Seconds from now to `exp`. */
  readonly ttlSeconds: number;
}

export interface SignOptions {
  /** The private JWK to sign with; default deploy/auth/dev-signing-key.jwk in the package. */
  readonly keyFile?: string;
  /** The clock, in epoch seconds (tests). */
  readonly now?: number;
}

export interface DevToken {
  readonly token: string;
  readonly kid: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** Bad command-line arguments: the message says which and how to fix it. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const USAGE = [
  'usage: npm run --silent token -- --tenant <id> --scope "<scopes>" [--sub <subject>] [--ttl <seconds>]',
  '',
  "  --tenant  the caller's tenant (tenant_id claim): 1-64 of A-Z a-z 0-9 . _ : -",
  '  --scope   space-separated scopes, e.g. "orders:read orders:write"',
  `  --sub     the subject (sub claim); default ${DEFAULT_SUBJECT}`,
  `  --ttl     seconds the token lives, 1-${MAX_TTL_SECONDS}; default ${DEFAULT_TTL_SECONDS}`,
  '',
  `Signs with ${DEV_SIGNING_KEY_FILE}: accepted by the local stack (docker compose) only.`,
].join('\n');

const FLAGS = ['tenant', 'scope', 'sub', 'ttl'] as const;
type Flag = (typeof FLAGS)[number];

function isFlag(name: string): name is Flag {
  return (FLAGS as readonly string[]).includes(name);
}

/**
 * Reads `--tenant`, `--scope`, `--sub`, `--ttl` (each once, as `--name value` or `--name=value`).
 * Returns undefined for --help / -h; throws a UsageError for anything else that is wrong.
 */
export function parseArgs(argv: readonly string[]): DevTokenOptions | undefined {
  if (argv.includes('--help') || argv.includes('-h')) return undefined;
  const given = new Map<Flag, string>();
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] ?? '';
    const match = /^--([a-z]+)(?:=(.*))?$/s.exec(arg);
    if (match === null) {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(arg)}: every value follows its flag`,
      );
    }
    const name = match[1] ?? '';
    if (!isFlag(name)) {
      throw new UsageError(
        `unknown option --${name} (known: ${FLAGS.map((f) => `--${f}`).join(', ')})`,
      );
    }
    if (given.has(name)) throw new UsageError(`--${name} is given twice`);
    let value = match[2];
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        throw new UsageError(`--${name} needs a value`);
      }
      value = next;
      i += 1;
    }
    given.set(name, value);
  }

  const tenant = given.get('tenant');
  if (tenant === undefined) throw new UsageError('--tenant is required (the tenant_id claim)');
  if (!TENANT.test(tenant)) {
    throw new UsageError(
      `--tenant ${JSON.stringify(tenant)}: 1 to 64 characters of A-Z a-z 0-9 . _ : - (the service refuses any other tenant)`,
    );
  }

  const scope = given.get('scope');
  if (scope === undefined) {
    throw new UsageError('--scope is required, e.g. --scope "orders:read orders:write"');
  }
  const scopes = scope.split(/\s+/).filter((s) => s !== '');
  if (scopes.length === 0) throw new UsageError('--scope is empty: name at least one scope');
  for (const each of scopes) {
    if (!SCOPE_TOKEN.test(each)) {
      throw new UsageError(
        `--scope ${JSON.stringify(each)}: a scope is printable ASCII without spaces, " or \\`,
      );
    }
  }

  const subject = given.get('sub') ?? DEFAULT_SUBJECT;
  if (subject.trim() === '') throw new UsageError('--sub is empty');

  const ttlText = given.get('ttl');
  let ttlSeconds = DEFAULT_TTL_SECONDS;
  if (ttlText !== undefined) {
    if (!/^\d+$/.test(ttlText)) {
      throw new UsageError(`--ttl ${JSON.stringify(ttlText)}: a whole number of seconds`);
    }
    ttlSeconds = Number(ttlText);
    if (ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS) {
      throw new UsageError(`--ttl ${ttlText}: between 1 and ${MAX_TTL_SECONDS} seconds (one day)`);
    }
  }

  return { tenant, scopes: [...new Set(scopes)], subject, ttlSeconds };
}

/** The development private key: a P-256 JWK with `d` and a kid; throws saying what is wrong. */
function readSigningKey(file: string): JWK & { kid: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(
      `cannot read the development signing key ${file} (${code}): deploy/auth/README.md says how to make one`,
      { cause: error },
    );
  }
  let jwk: unknown;
  try {
    jwk = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not JSON: expected one private JWK`, { cause: error });
  }
  const key = (typeof jwk === 'object' && jwk !== null ? jwk : {}) as Record<string, unknown>;
  if (key.kty !== 'EC' || key.crv !== 'P-256' || typeof key.d !== 'string') {
    throw new Error(`${file} is not a private EC P-256 JWK (kty EC, crv P-256, with d) for ES256`);
  }
  if (typeof key.kid !== 'string' || key.kid === '') {
    throw new Error(`${file} has no kid: the token must name the key of ${DEV_JWKS_FILE}`);
  }
  return key as JWK & { kid: string };
}

/** A signed ES256 JWT for the local stack, with the claims its config checks. */
export async function signDevToken(
  options: DevTokenOptions,
  sign: SignOptions = {},
): Promise<DevToken> {
  const jose = await loadJose();
  const file = sign.keyFile ?? path.join(packageRoot(), DEV_SIGNING_KEY_FILE);
  const jwk = readSigningKey(file);
  const key = await jose.importJWK(jwk, DEV_ALG);
  const issuedAt = sign.now ?? Math.floor(Date.now() / 1000);
  const expiresAt = issuedAt + options.ttlSeconds;
  const token = await new jose.SignJWT({
    [DEV_TENANT_CLAIM]: options.tenant,
    scope: options.scopes.join(' '),
  })
    .setProtectedHeader({ alg: DEV_ALG, typ: 'JWT', kid: jwk.kid })
    .setIssuer(DEV_ISSUER)
    .setAudience(DEV_AUDIENCE)
    .setSubject(options.subject)
    .setIssuedAt(issuedAt)
    .setExpirationTime(expiresAt)
    .setJti(randomUUID())
    .sign(key);
  return { token, kid: jwk.kid, issuedAt, expiresAt };
}

async function main(argv: readonly string[]): Promise<number> {
  let options: DevTokenOptions | undefined;
  try {
    options = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`dev-token: ${error.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const { token, kid, expiresAt } = await signDevToken(options);
  process.stdout.write(`${token}\n`);
  process.stderr.write(
    `dev-token: ${DEV_ALG} (kid ${kid}) for sub ${options.subject}, tenant ${options.tenant}, scope "${options.scopes.join(' ')}", expires ${new Date(expiresAt * 1000).toISOString()}; the local stack only\n`,
  );
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(
        `dev-token: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
