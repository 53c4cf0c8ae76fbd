// Who is calling, as the authentication step established it (issue #15). Route handlers read
// it with callerOf(res); with AUTH_MODE=off every request is the anonymous caller of the
// default tenant, so data written before authentication existed stays reachable.
import type { Response } from 'express';

/** The tenant of rows written before tenants existed, and of every call with AUTH_MODE=off. */
export const DEFAULT_TENANT = 'default';

export interface Caller {
  /** The token's `sub`; `anonymous` when authentication is off. */
  readonly subject: string;
  /** The tenant every order and Idempotency-Key of this call belongs to. */
  readonly tenant: string;
  readonly scopes: ReadonlySet<string>;
}

export const ANONYMOUS: Caller = {
  subject: 'anonymous',
  tenant: DEFAULT_TENANT,
  scopes: new Set(['orders:read', 'orders:write']),
};

interface CallerLocals {
  caller?: Caller;
}

/** Sets the caller for this request (the authentication step). */
export function setCaller(res: Response, caller: Caller): void {
  (res.locals as CallerLocals).caller = caller;
}

/** The caller of this request: the anonymous default-tenant caller when none was set. */
export function callerOf(res: Response): Caller {
  return (res.locals as CallerLocals).caller ?? ANONYMOUS;
}

/** The caller a token established, or undefined (authentication off, or not a /v1 call). */
export function authenticatedCaller(res: Response): Caller | undefined {
  return (res.locals as CallerLocals).caller;
}
