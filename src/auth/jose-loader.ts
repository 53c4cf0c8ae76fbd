// jose 6 is ESM-only and this service compiles to CommonJS. Under `module: node16` TypeScript
// refuses a static import of an ES module from CommonJS (TS1479), so jose is loaded the way the
// service loads its other ESM-only packages (@statelyai/inspect, PGlite): one dynamic import(),
// shared by every caller. The types come from a type-only import with its resolution mode.
import type * as Jose from 'jose' with { 'resolution-mode': 'import' };

export type JoseModule = typeof Jose;

let loading: Promise<JoseModule> | undefined;

/** The jose module, imported once; later calls get the same settled promise. */
export function loadJose(): Promise<JoseModule> {
  loading ??= import('jose');
  return loading;
}
