// Who is calling: the bearer token of a request (RFC 6750) checked against the identity provider's
// keys (issue #15). The answer is a verdict, never an exception: either the caller (subject,
// tenant, scopes) or one reason from a closed set, small enough to be a metric label. Neither the
// verdict nor anything else here carries the token's text or a claim the caller made up.
//
// Order of the checks: the header's shape; the token's algorithm against the allow-list (before
// any key is touched: `none` and HS256 "signed" with the public key stop here); the key for its
// kid; the signature, then iss, aud, exp and nbf (jose's jwtVerify, with the clock tolerance);
// then the subject and the tenant. A token without `exp` is refused as malformed: a bearer token
// that never expires cannot be taken back.
import type { JWTPayload, ProtectedHeaderParameters } from 'jose' with {
  'resolution-mode': 'import',
};
import { allowList } from './algorithms';
import type { KeySource } from './jwks';
import { loadJoseVerify } from './jose-loader';

/** Why a request is not authenticated: a closed set, used as a metric label. */
export const AUTH_FAILURE_REASONS = [
  'missing',
  'malformed',
  'unsupported_alg',
  'unknown_kid',
  'bad_signature',
  'expired',
  'not_yet_valid',
  'wrong_issuer',
  'wrong_audience',
  'no_tenant',
  'no_subject',
] as const;

export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

export interface Authenticated {
  readonly ok: true;
  /** The `sub` claim. */
  readonly subject: string;
  /** The tenant claim (AUTH_TENANT_CLAIM). */
  readonly tenant: string;
  /** From `scope` (space-separated) and `scp` (an array, or a space-separated string). */
  readonly scopes: ReadonlySet<string>;
}

export interface Refused {
  readonly ok: false;
  readonly reason: AuthFailureReason;
  /** Whether the request carried a bearer token at all (RFC 6750 3.1: no error attribute if not). */
  readonly tokenSent: boolean;
}

export type Verdict = Authenticated | Refused;

export interface VerifierOptions {
  readonly keys: Pick<KeySource, 'keyFor'>;
  /** The `iss` every token must carry (AUTH_ISSUER). */
  readonly issuer: string;
  /** An `aud` every token must carry (AUTH_AUDIENCE). */
  readonly audience: string;
  /** Leeway for `exp` and `nbf` against clocks that disagree (AUTH_CLOCK_TOLERANCE_MS). */
  readonly clockToleranceMs: number;
  /** Allowed algorithms, asymmetric only; default RS256, ES256, EdDSA. */
  readonly algorithms?: readonly string[];
  /** The claim naming the tenant; default `tenant_id`. */
  readonly tenantClaim?: string;
}

export interface Verifier {
  /** Checks an Authorization header value; never rejects. */
  verify(authorization: string | undefined): Promise<Verdict>;
}

export const DEFAULT_TENANT_CLAIM = 'tenant_id';
export const DEFAULT_REALM = 'ops-service';

/** `Bearer`, one space, a b64token (RFC 6750 2.1); the scheme is case-insensitive (RFC 9110 11.1). */
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;
/** A JWS in compact form: three base64url parts (the signature is empty only for alg "none"). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const TENANT = /^[A-Za-z0-9._:-]{1,64}$/;

const refusals = new Map<string, Refused>(
  AUTH_FAILURE_REASONS.flatMap((reason) =>
    [true, false].map((tokenSent): [string, Refused] => [
      `${reason}/${tokenSent}`,
      Object.freeze({ ok: false, reason, tokenSent }),
    ]),
  ),
);

/** The same frozen object for every refusal of one kind. */
function refused(reason: AuthFailureReason, tokenSent = true): Refused {
  return refusals.get(`${reason}/${tokenSent}`) as Refused;
}

/** Maps jose's errors (by their stable `code`) to a reason; anything unrecognised is malformed. */
function reasonOf(error: unknown): AuthFailureReason {
  const { code, claim, reason } = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    claim?: unknown;
    reason?: unknown;
  };
  switch (code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad_signature';
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'unsupported_alg';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (claim === 'iss') return 'wrong_issuer';
      if (claim === 'aud') return 'wrong_audience';
      if (claim === 'nbf' && reason === 'check_failed') return 'not_yet_valid';
      return 'malformed';
    default:
      return 'malformed';
  }
}

function scopesOf(payload: JWTPayload): Set<string> {
  const scopes = new Set<string>();
  const add = (value: unknown): void => {
    if (typeof value !== 'string') return;
    for (const scope of value.split(' ')) if (scope !== '') scopes.add(scope);
  };
  add(payload.scope);
  const { scp } = payload;
  if (Array.isArray(scp)) for (const each of scp as unknown[]) add(each);
  else add(scp);
  return scopes;
}

export function createVerifier(options: VerifierOptions): Verifier {
  const algorithms: readonly string[] = allowList(options.algorithms);
  const tenantClaim = options.tenantClaim ?? DEFAULT_TENANT_CLAIM;
  const { keys, issuer, audience, clockToleranceMs } = options;
  if (issuer === '') throw new Error('the verifier needs an issuer');
  if (audience === '') throw new Error('the verifier needs an audience');
  if (tenantClaim === '') throw new Error('the tenant claim name is empty');
  if (!(Number.isFinite(clockToleranceMs) && clockToleranceMs >= 0)) {
    throw new Error('the clock tolerance must be a finite number of milliseconds, 0 or more');
  }
  const clockTolerance = clockToleranceMs / 1000;

  async function verify(authorization: string | undefined): Promise<Verdict> {
    if (authorization === undefined || authorization === '') return refused('missing', false);
    const bearer = BEARER.exec(authorization);
    if (bearer === null) {
      // Another scheme (Basic ...) sent no bearer token; "Bearer" with no or a bad token did.
      return refused('malformed', /^bearer(\s|$)/i.test(authorization));
    }
    const token = bearer[1] ?? '';
    if (!COMPACT_JWS.test(token)) return refused('malformed');

    const jose = await loadJoseVerify();
    let header: ProtectedHeaderParameters;
    try {
      header = jose.decodeProtectedHeader(token);
    } catch {
      return refused('malformed');
    }
    const { alg, kid } = header;
    if (typeof alg !== 'string') return refused('malformed');
    if (!algorithms.includes(alg)) return refused('unsupported_alg');
    if (kid !== undefined && typeof kid !== 'string') return refused('malformed');

    const found = await keys.keyFor(kid, alg);
    if (!found.found) return refused(found.reason);

    let payload: JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, found.key, {
        algorithms: [alg],
        issuer,
        audience,
        clockTolerance,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      return refused(reasonOf(error));
    }

    const subject = payload.sub;
    if (typeof subject !== 'string' || subject === '') return refused('no_subject');
    const tenant = payload[tenantClaim];
    if (typeof tenant !== 'string' || !TENANT.test(tenant)) return refused('no_tenant');
    return { ok: true, subject, tenant, scopes: scopesOf(payload) };
  }

  return { verify };
}

/** Whether an authenticated caller holds `scope`. */
export function hasScope(verdict: Verdict, scope: string): boolean {
  return verdict.ok && verdict.scopes.has(scope);
}

/** A 403 for lack of this scope (or space-separated scopes). */
export interface InsufficientScope {
  readonly insufficientScope: string;
}

/** RFC 6750 3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), space-separated. */
const SCOPE_LIST = /^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/;
const REALM = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * The WWW-Authenticate value for a refusal (RFC 6750 3): no error attribute when no token was
 * sent, `error="invalid_token"` for a token that did not pass, `error="insufficient_scope"` with
 * the scope needed. The reason stays out of it: it is for logs and metrics.
 */
export function wwwAuthenticate(
  challenge: Refused | InsufficientScope,
  realm: string = DEFAULT_REALM,
): string {
  if (!REALM.test(realm)) throw new Error('the realm must be printable ASCII without " or \\');
  const base = `Bearer realm="${realm}"`;
  if ('insufficientScope' in challenge) {
    const scope = challenge.insufficientScope;
    if (!SCOPE_LIST.test(scope)) throw new Error(`not a valid scope: ${JSON.stringify(scope)}`);
    return `${base}, error="insufficient_scope", scope="${scope}"`;
  }
  return challenge.tokenSent ? `${base}, error="invalid_token"` : base;
}
