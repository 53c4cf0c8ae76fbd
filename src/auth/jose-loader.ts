// jose 6 is ESM-only and this service compiles to CommonJS. Under `module: node16` TypeScript
// refuses a static import of an ES module from CommonJS (TS1479), so jose is loaded the way the
// service loads its other ESM-only packages (@statelyai/inspect, PGlite): one dynamic import(),
// shared by every caller. The types come from a type-only import with its resolution mode.
//
// The service itself needs three functions (importing keys, verifying a token, reading its
// header): `loadJoseVerify` imports only their subpath modules, a third of jose's files, which
// shortens startup (the first key set is imported before the service is ready). The module
// instances are the ones jose's index re-exports, so both loaders share them.
import type * as Jose from 'jose' with { 'resolution-mode': 'import' };

export type JoseModule = typeof Jose;

/** What the service's verifier and key sources use of jose. */
export type JoseVerify = Pick<JoseModule, 'importJWK' | 'jwtVerify' | 'decodeProtectedHeader'>;

let loading: Promise<JoseModule> | undefined;
let loadingVerify: Promise<JoseVerify> | undefined;

/** The jose module, imported once; later calls get the same settled promise. */
export function loadJose(): Promise<JoseModule> {
  loading ??= import('jose');
  return loading;
}

/** importJWK, jwtVerify and decodeProtectedHeader, imported once from their own modules. */
export function loadJoseVerify(): Promise<JoseVerify> {
  loadingVerify ??= Promise.all([
    import('jose/key/import'),
    import('jose/jwt/verify'),
    import('jose/decode/protected_header'),
  ]).then(([key, jwt, header]) => ({
    importJWK: key.importJWK,
    jwtVerify: jwt.jwtVerify,
    decodeProtectedHeader: header.decodeProtectedHeader,
  }));
  return loadingVerify;
}
