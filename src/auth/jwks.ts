// Where the keys that verify bearer tokens come from (issue #15): a JWK Set (RFC 7517) read from a
// file (AUTH_JWKS_FILE) or fetched from the identity provider (AUTH_JWKS_URL).
//
// Each key is imported once, with jose's importJWK, when its set is loaded, and kept by `kid` as a
// CryptoKey for every allowed algorithm it fits: a request looks its key up in a Map and never
// imports anything. A refreshed set that still holds a key (same members) keeps its CryptoKey.
// Verdicts are never cached; only keys are.
//
// Entries that cannot verify an allowed signature are refused: symmetric keys (kty "oct": an HMAC
// "verified" with a published key proves nothing), entries holding private members, entries for
// encryption (`use` other than "sig"), and entries whose `alg` is not on the allow-list. From a
// file, which the operator writes, any such entry fails the load with a message naming it. From a
// URL, which the identity provider writes, such entries are left out and reported (providers
// publish encryption keys next to signing keys); a set with no usable key fails either way.
//
// URL mode: every fetch has its own deadline (`timeoutMs`). The set is refetched in the
// background every `refreshMs` (an unref'd timer), and when a token names a `kid` the cached set
// lacks (the provider rotated its keys), but never more than once per `cooldownMs`, so tokens
// with made-up kids cannot turn into a flood of fetches; concurrent lookups share one fetch. A
// failed refetch keeps the cached keys in service and is reported through `onRefreshError`: the
// service stays ready while the provider is away (issue #15, Readiness).
import { readFile } from 'node:fs/promises';
import type { CryptoKey, JWK } from 'jose' with { 'resolution-mode': 'import' };
import { allowList, isSupportedAlgorithm, keyFits, type SigningAlgorithm } from './algorithms';
import { loadJoseVerify } from './jose-loader';

/** A key set that cannot be loaded, or an entry in it that cannot be used; says which and why. */
export class JwksError extends Error {
  override readonly name = 'JwksError';
}

export type KeyLookup =
  | { readonly found: true; readonly key: CryptoKey }
  | { readonly found: false; readonly reason: 'unknown_kid' | 'unsupported_alg' };

export interface KeySourceStatus {
  /** Whether a key set has been loaded (it stays loaded while refetches fail). */
  readonly loaded: boolean;
  /** The `kid`s of the keys in service (keys without a kid are counted in `keyCount` only). */
  readonly kids: readonly string[];
  readonly keyCount: number;
  /** When the set in service was loaded (epoch ms). */
  readonly loadedAt: number | undefined;
  /** Why the last fetch failed, while no fetch has succeeded since. */
  readonly lastError: string | undefined;
}

export interface KeySource {
  /**
   * Resolves once a key set is loaded (at once if one is); rejects with a JwksError saying what
   * is wrong. One attempt: a startup check that wants to wait for the provider calls it again.
   * `signal` stops the wait (the fetch itself is bounded by its own timeout).
   */
  load(signal?: AbortSignal): Promise<void>;
  /**
   * The imported key for a token's `kid` and `alg`. A token without a kid gets the one key that
   * fits its alg, if exactly one does. Never rejects.
   */
  keyFor(kid: string | undefined, alg: string): Promise<KeyLookup>;
  status(): KeySourceStatus;
  /** Stops the background refresh and any fetch in flight; idempotent. */
  close(): void;
}

export type FetchTrigger = 'load' | 'unknown_kid' | 'interval';

/** A key set put in service. */
export interface KeysLoaded {
  readonly trigger: FetchTrigger;
  readonly kids: readonly string[];
  readonly keyCount: number;
  /** Entries left out, each with the reason (URL mode; a file with any fails instead). */
  readonly rejected: readonly string[];
}

export interface JwksFileOptions {
  readonly path: string;
  /** Allowed algorithms; default RS256, ES256, EdDSA. */
  readonly algorithms?: readonly string[];
}

export interface JwksUrlOptions {
  /** http:// or https:// */
  readonly url: string;
  /** Deadline of one fetch, headers and body. */
  readonly timeoutMs: number;
  /** Least time from the start of the last fetch (of any kind) to one caused by an unknown kid. */
  readonly cooldownMs: number;
  /** Background refresh period once loaded; 0 turns it off. */
  readonly refreshMs: number;
  /** Allowed algorithms; default RS256, ES256, EdDSA. */
  readonly algorithms?: readonly string[];
  /** Largest response accepted; default 1 MiB. */
  readonly maxBytes?: number;
  /**
   * A fetch other than a failing load() failed; the keys in service, if any, stay in service.
   * Callbacks must not throw (one that does has its error rethrown as uncaught). A fetch caused
   * by an unknown kid runs in the async context of the request that caused it.
   */
  readonly onRefreshError?: (error: JwksError) => void;
  /** A fetched set was put in service. */
  readonly onKeysLoaded?: (loaded: KeysLoaded) => void;
}

const DEFAULT_MAX_BYTES = 1_048_576;
/** Members only a private JWK has (RFC 7518 6.2.2, 6.3.2, RFC 8037 2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const NOT_FOUND: KeyLookup = Object.freeze({ found: false, reason: 'unknown_kid' });
const WRONG_ALG: KeyLookup = Object.freeze({ found: false, reason: 'unsupported_alg' });

interface KeyEntry {
  readonly kid: string | undefined;
  /** The JWK's members, canonical: a refreshed set reuses the entry when they are unchanged. */
  readonly fingerprint: string;
  readonly byAlg: ReadonlyMap<SigningAlgorithm, CryptoKey>;
}

/** One loaded JWK Set: imported keys by kid. Immutable; a refresh replaces it whole. */
class KeySet {
  private readonly byKid = new Map<string, KeyEntry>();

  constructor(
    readonly entries: readonly KeyEntry[],
    readonly loadedAt: number,
  ) {
    for (const entry of entries) if (entry.kid !== undefined) this.byKid.set(entry.kid, entry);
  }

  get kids(): string[] {
    return [...this.byKid.keys()];
  }

  lookup(kid: string | undefined, alg: string): KeyLookup {
    if (!isSupportedAlgorithm(alg)) return WRONG_ALG;
    if (kid !== undefined) {
      const entry = this.byKid.get(kid);
      if (entry === undefined) return NOT_FOUND;
      const key = entry.byAlg.get(alg);
      // The kid is known but its key is for another algorithm (an RSA key named in an ES256
      // token): refused as the algorithm, and no refetch.
      return key === undefined ? WRONG_ALG : { found: true, key };
    }
    // No kid: only when exactly one key fits, never "try them all".
    let match: CryptoKey | undefined;
    for (const entry of this.entries) {
      const key = entry.byAlg.get(alg);
      if (key === undefined) continue;
      if (match !== undefined) return NOT_FOUND;
      match = key;
    }
    return match === undefined ? NOT_FOUND : { found: true, key: match };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function quoted(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}...` : text);
}

function messageOf(value: unknown): string | undefined {
  // Duck-typed: errors made by fetch() or jose may come from another realm (a VM context).
  const message: unknown =
    typeof value === 'object' && value !== null
      ? (value as { message?: unknown }).message
      : undefined;
  return typeof message === 'string' ? message : undefined;
}

function errorText(error: unknown): string {
  const message = messageOf(error) ?? String(error);
  // fetch() says "fetch failed" and keeps the reason (connect ECONNREFUSED ...) in its cause.
  const cause = messageOf((error as { cause?: unknown } | null)?.cause);
  return cause === undefined ? message : `${message}: ${cause}`;
}

function fingerprintOf(jwk: Record<string, unknown>): string {
  return JSON.stringify(jwk, Object.keys(jwk).sort());
}

interface Parsed {
  readonly set: KeySet;
  readonly rejected: readonly string[];
}

/**
 * Checks and imports a JWK Set. Throws when the document is not a JWK Set; entries that cannot be
 * used are listed in `rejected`. Entries unchanged since `previous` keep their imported keys.
 */
async function parseJwks(
  document: unknown,
  algorithms: readonly SigningAlgorithm[],
  previous: KeySet | undefined,
): Promise<Parsed> {
  if (!isObject(document) || !Array.isArray(document.keys)) {
    throw new JwksError('expected a JSON object with a "keys" array (a JWK Set, RFC 7517)');
  }
  const jose = await loadJoseVerify();
  const known = new Map(previous?.entries.map((entry) => [entry.fingerprint, entry]));
  const entries: KeyEntry[] = [];
  const rejected: string[] = [];
  const kids = new Set<string>();

  for (const [index, jwk] of (document.keys as unknown[]).entries()) {
    const kid = isObject(jwk) ? jwk.kid : undefined;
    const name = `key #${index + 1}${typeof kid === 'string' ? ` (kid ${quoted(kid)})` : ''}`;
    const refuse = (why: string): void => {
      rejected.push(`${name} ${why}`);
    };
    if (!isObject(jwk)) {
      refuse('is not a JSON object');
      continue;
    }
    const { kty, crv, alg, use } = jwk;
    const keyOps = jwk.key_ops;
    if (kid !== undefined && (typeof kid !== 'string' || kid === '')) {
      refuse('has a kid that is not a non-empty string');
      continue;
    }
    if (kty === 'oct') {
      refuse('is a symmetric key (kty "oct"): only public keys of asymmetric algorithms verify');
      continue;
    }
    if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') {
      refuse(`has kty ${quoted(kty)}, not a signing key type (RSA, EC or OKP)`);
      continue;
    }
    if (PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member))) {
      refuse('holds private key members: publish only the public key');
      continue;
    }
    if (use !== undefined && use !== 'sig') {
      refuse(`has use ${quoted(use)}, not "sig"`);
      continue;
    }
    if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes('verify'))) {
      refuse('has key_ops without "verify"');
      continue;
    }
    if (alg !== undefined && !(isSupportedAlgorithm(alg) && algorithms.includes(alg))) {
      refuse(`has alg ${quoted(alg)}, which is not allowed (allowed: ${algorithms.join(', ')})`);
      continue;
    }
    const fits = (alg === undefined ? algorithms : [alg]).filter((a) => keyFits(a, kty, crv));
    if (fits.length === 0) {
      refuse(
        `(kty ${quoted(kty)}${crv === undefined ? '' : `, crv ${quoted(crv)}`}) fits no allowed algorithm (${algorithms.join(', ')})`,
      );
      continue;
    }
    if (typeof kid === 'string' && kids.has(kid)) {
      refuse('repeats the kid of an earlier key');
      continue;
    }

    const fingerprint = fingerprintOf(jwk);
    const reused = known.get(fingerprint);
    if (reused !== undefined) {
      entries.push(reused);
    } else {
      const byAlg = new Map<SigningAlgorithm, CryptoKey>();
      try {
        for (const each of fits) {
          const key = await jose.importJWK({ ...(jwk as JWK), alg: each }, each);
          // Only "oct" keys import as bytes, and those were refused above.
          if (ArrayBuffer.isView(key)) throw new Error('imported as a secret');
          byAlg.set(each, key);
        }
      } catch (error) {
        refuse(`is not a valid ${String(kty)} key: ${errorText(error)}`);
        continue;
      }
      entries.push({ kid: typeof kid === 'string' ? kid : undefined, fingerprint, byAlg });
    }
    if (typeof kid === 'string') kids.add(kid);
  }
  return { set: new KeySet(entries, Date.now()), rejected };
}

function statusOf(set: KeySet | undefined, lastError: string | undefined): KeySourceStatus {
  return {
    loaded: set !== undefined,
    kids: set?.kids ?? [],
    keyCount: set?.entries.length ?? 0,
    loadedAt: set?.loadedAt,
    lastError,
  };
}

/** Waits for `work`, or rejects with the signal's reason when it aborts first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    void work.finally(() => signal.removeEventListener('abort', onAbort)).then(resolve, reject);
  });
}

/** A JWK Set file, read and checked on load; any unusable entry fails the load. */
export function createJwksFileSource(options: JwksFileOptions): KeySource {
  const algorithms = allowList(options.algorithms);
  const where = `JWKS file ${options.path}`;
  let set: KeySet | undefined;
  let loading: Promise<void> | undefined;
  let lastError: string | undefined;

  async function read(signal: AbortSignal | undefined): Promise<void> {
    let text: string;
    try {
      text = await readFile(options.path, { encoding: 'utf8', signal });
    } catch (error) {
      throw new JwksError(`${where}: cannot be read: ${errorText(error)}`, { cause: error });
    }
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (error) {
      throw new JwksError(`${where}: is not valid JSON: ${errorText(error)}`, { cause: error });
    }
    let parsed: Parsed;
    try {
      parsed = await parseJwks(document, algorithms, undefined);
    } catch (error) {
      throw new JwksError(`${where}: ${errorText(error)}`, { cause: error });
    }
    if (parsed.rejected.length > 0) throw new JwksError(`${where}: ${parsed.rejected.join('; ')}`);
    if (parsed.set.entries.length === 0) throw new JwksError(`${where}: holds no key`);
    set = parsed.set;
  }

  return {
    load(signal) {
      if (set !== undefined) return Promise.resolve();
      loading ??= read(signal).then(
        () => {
          lastError = undefined;
        },
        (error: unknown) => {
          loading = undefined;
          lastError = errorText(error);
          throw error;
        },
      );
      return untilAborted(loading, signal);
    },
    keyFor(kid, alg) {
      return Promise.resolve(set?.lookup(kid, alg) ?? NOT_FOUND);
    },
    status: () => statusOf(set, lastError),
    close() {},
  };
}

/** The URL in messages: no credentials, no query. */
function shownUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

async function readBody(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new JwksError(`the response is larger than ${maxBytes} bytes`);
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new JwksError(`the response is larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Runs a caller's callback (a log line, a metric). One that throws must not turn a good key set
 * into a failed fetch, nor a failed fetch into an unhandled rejection: its error is rethrown on
 * its own turn of the event loop, where the process's uncaught-exception handling sees it.
 */
function report(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

class UrlKeySource implements KeySource {
  private readonly url: URL;
  private readonly where: string;
  private readonly algorithms: readonly SigningAlgorithm[];
  private readonly closing = new AbortController();
  private set: KeySet | undefined;
  private inflight: Promise<void> | undefined;
  /** When the last fetch started; the unknown-kid cooldown counts from here. */
  private lastFetchAt = Number.NEGATIVE_INFINITY;
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: JwksUrlOptions) {
    this.algorithms = allowList(options.algorithms);
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (error) {
      throw new JwksError('the JWKS URL is not a valid URL', { cause: error });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new JwksError(`the JWKS URL must be http:// or https://, not ${url.protocol}//`);
    }
    if (!(options.timeoutMs > 0)) throw new JwksError('the JWKS fetch timeout must be above 0');
    this.url = url;
    this.where = `JWKS ${shownUrl(url)}`;
  }

  load(signal?: AbortSignal): Promise<void> {
    if (this.set !== undefined) return Promise.resolve();
    if (this.closing.signal.aborted) return Promise.reject(new JwksError(`${this.where}: closed`));
    return untilAborted(this.refetch('load'), signal);
  }

  async keyFor(kid: string | undefined, alg: string): Promise<KeyLookup> {
    const found = this.set?.lookup(kid, alg) ?? NOT_FOUND;
    if (found.found || found.reason !== 'unknown_kid' || kid === undefined) return found;
    // A kid the cached set lacks: the provider may have rotated its keys. Join the fetch in
    // flight, or start one if the cooldown allows; otherwise refuse without a fetch.
    const cooling = Date.now() - this.lastFetchAt < this.options.cooldownMs;
    if (this.closing.signal.aborted || (this.inflight === undefined && cooling)) return found;
    await this.refetch('unknown_kid').catch(() => undefined);
    return this.set?.lookup(kid, alg) ?? NOT_FOUND;
  }

  status(): KeySourceStatus {
    return statusOf(this.set, this.lastError);
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.closing.signal.aborted) this.closing.abort(new JwksError(`${this.where}: closed`));
  }

  /** One fetch at a time: callers while one is in flight share it. */
  private refetch(trigger: FetchTrigger): Promise<void> {
    if (this.inflight !== undefined) return this.inflight;
    this.lastFetchAt = Date.now();
    const attempt = this.fetchSet().then(
      ({ set, rejected }) => {
        this.set = set;
        this.lastError = undefined;
        this.startRefreshing();
        const { onKeysLoaded } = this.options;
        if (onKeysLoaded !== undefined) {
          report(() =>
            onKeysLoaded({ trigger, kids: set.kids, keyCount: set.entries.length, rejected }),
          );
        }
      },
      (error: unknown) => {
        const failure =
          error instanceof JwksError ? error : new JwksError(errorText(error), { cause: error });
        this.lastError = failure.message;
        // A first load that fails rejects its caller; any other failure is reported here, and
        // the keys in service (if any) stay in service.
        const { onRefreshError } = this.options;
        if (trigger !== 'load' && !this.closing.signal.aborted && onRefreshError !== undefined) {
          report(() => onRefreshError(failure));
        }
        throw failure;
      },
    );
    const shared = attempt.finally(() => {
      this.inflight = undefined;
    });
    this.inflight = shared;
    return shared;
  }

  private async fetchSet(): Promise<Parsed> {
    const { timeoutMs } = this.options;
    const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(timeoutMs)]);
    let document: unknown;
    try {
      const response = await fetch(this.url, {
        signal,
        headers: { accept: 'application/jwk-set+json, application/json' },
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new JwksError(`answered HTTP ${response.status}`);
      }
      const text = await readBody(response, this.options.maxBytes ?? DEFAULT_MAX_BYTES);
      try {
        document = JSON.parse(text);
      } catch (error) {
        throw new JwksError(`is not valid JSON: ${errorText(error)}`, { cause: error });
      }
    } catch (error) {
      if (this.closing.signal.aborted) throw new JwksError(`${this.where}: closed`);
      if (signal.aborted) {
        throw new JwksError(`${this.where}: no answer within ${timeoutMs} ms (timed out)`, {
          cause: error,
        });
      }
      const why =
        error instanceof JwksError ? error.message : `cannot be fetched: ${errorText(error)}`;
      throw new JwksError(`${this.where}: ${why}`, { cause: error });
    }
    let parsed: Parsed;
    try {
      parsed = await parseJwks(document, this.algorithms, this.set);
    } catch (error) {
      throw new JwksError(`${this.where}: ${errorText(error)}`, { cause: error });
    }
    if (parsed.set.entries.length === 0) {
      const why = parsed.rejected.length > 0 ? ` (${parsed.rejected.join('; ')})` : '';
      throw new JwksError(`${this.where}: holds no usable signing key${why}`);
    }
    return parsed;
  }

  private startRefreshing(): void {
    const { refreshMs } = this.options;
    if (this.timer !== undefined || refreshMs <= 0 || this.closing.signal.aborted) return;
    // Failures are reported by refetch(); the timer never holds the process open.
    this.timer = setInterval(() => {
      this.refetch('interval').catch(() => undefined);
    }, refreshMs);
    this.timer.unref();
  }
}

/** A JWK Set fetched from the identity provider, cached, and refreshed (see the top of the file). */
export function createJwksUrlSource(options: JwksUrlOptions): KeySource {
  return new UrlKeySource(options);
}
