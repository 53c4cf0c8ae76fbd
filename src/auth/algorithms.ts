// The JWS algorithms a bearer token may be signed with: asymmetric ones only (issue #15). A
// symmetric algorithm (HS256, ...) would let anyone holding the published key mint tokens, which
// is the classic "HMAC with the RSA public key as the secret" attack; `none` has no signature.

/** The key a JWS algorithm verifies with: its JWK `kty`, and `crv` for curves (RFC 7518, 8037). */
const KEY_OF_ALGORITHM = {
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519' },
} as const satisfies Record<string, { readonly kty: string; readonly crv?: string }>;

export type SigningAlgorithm = keyof typeof KEY_OF_ALGORITHM;

/** Every algorithm an allow-list may name. */
export const SUPPORTED_ALGORITHMS = Object.freeze(
  Object.keys(KEY_OF_ALGORITHM) as SigningAlgorithm[],
);

/** The default allow-list. */
export const DEFAULT_ALGORITHMS: readonly SigningAlgorithm[] = Object.freeze([
  'RS256',
  'ES256',
  'EdDSA',
]);

export function isSupportedAlgorithm(alg: unknown): alg is SigningAlgorithm {
  return typeof alg === 'string' && Object.hasOwn(KEY_OF_ALGORITHM, alg);
}

/**
 * Checks an allow-list once, at construction: it must be non-empty and name only asymmetric
 * algorithms this module knows. Throws a message naming the offending entry.
 */
export function allowList(algorithms: readonly string[] | undefined): readonly SigningAlgorithm[] {
  const list = algorithms ?? DEFAULT_ALGORITHMS;
  if (list.length === 0) throw new Error('the algorithm allow-list is empty');
  for (const alg of list) {
    if (!isSupportedAlgorithm(alg)) {
      throw new Error(
        `algorithm ${JSON.stringify(alg)} is not allowed: only asymmetric ones (${SUPPORTED_ALGORITHMS.join(', ')})`,
      );
    }
  }
  return Object.freeze([...new Set(list)] as SigningAlgorithm[]);
}

/** Whether a JWK of this `kty` (and `crv`) can verify signatures made with `alg`. */
export function keyFits(alg: SigningAlgorithm, kty: unknown, crv: unknown): boolean {
  const wanted: { readonly kty: string; readonly crv?: string } = KEY_OF_ALGORITHM[alg];
  return wanted.kty === kty && (wanted.crv === undefined || wanted.crv === crv);
}
