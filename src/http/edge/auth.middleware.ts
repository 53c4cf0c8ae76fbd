// Who may call (issue #15): every request to the API carries a bearer JWT (RFC 6750), verified
// against the identity provider's keys (src/auth). A refusal is 401 UNAUTHENTICATED or 403
// INSUFFICIENT_SCOPE with the RFC 6750 challenge; why a token was refused goes to the access log
// (`auth_failure`) and ops_auth_failures_total, never to the client. Tokens are never logged.
// With AUTH_MODE=off (development and test only) nothing is checked: every call is the
// anonymous caller of the default tenant (src/http/caller.ts).
import { createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Verdict } from '../../auth/verifier';
import { wwwAuthenticate } from '../../auth/verifier';
import type { ServiceMetrics } from '../../telemetry/metrics';
import { currentScope } from '../../telemetry/request-scope';
import { setCaller } from '../caller';
import type { Reply } from '../problem-reply';

export interface TokenVerifier {
  verify(authorization: string | undefined): Promise<Verdict>;
}

/**
 * The scope an operation needs; undefined where none does (an unknown route answers 404). The
 * path is compared as Express routes it: case-insensitive, a trailing slash ignored, so
 * `POST /V1/Orders/` needs orders:write like `POST /v1/orders`.
 */
export function requiredScope(method: string, path: string): string | undefined {
  const routed = path.toLowerCase().replace(/\/+$/, '');
  if (routed === '/v1/orders' && method === 'POST') return 'orders:write';
  if (routed.startsWith('/v1/orders/') && (method === 'GET' || method === 'HEAD'))
    return 'orders:read';
  return undefined;
}

/** What the access log and the span say about the caller: the subject only as a short hash. */
export function subjectHash(subject: string): string {
  return createHash('sha256').update(subject).digest('hex').slice(0, 16);
}

interface AuthLocals {
  authFailure?: string;
}

export function authenticate(
  verifier: TokenVerifier | undefined,
  metrics: Pick<ServiceMetrics, 'countAuthFailure'>,
  reply: Reply,
): RequestHandler {
  if (verifier === undefined) return (_req, _res, next) => next();
  const refuse = (res: Response, verdict: Verdict & { ok: false }): void => {
    (res.locals as AuthLocals).authFailure = verdict.reason;
    metrics.countAuthFailure(verdict.reason);
    res.setHeader('WWW-Authenticate', wwwAuthenticate(verdict));
    reply(
      res,
      'UNAUTHENTICATED',
      verdict.tokenSent
        ? 'The bearer token is not valid for this service.'
        : 'This call needs a bearer token: Authorization: Bearer <token>.',
    );
  };
  // Every request that reaches this step needs a token (the probes answered before it): no
  // spelling of a path (`/V1/...`, a trailing slash) that Express would still route gets around it.
  return (req: Request, res: Response, next) => {
    verifier.verify(req.headers.authorization).then(
      (verdict) => {
        if (!verdict.ok) {
          refuse(res, verdict);
          return;
        }
        const caller = { subject: verdict.subject, tenant: verdict.tenant, scopes: verdict.scopes };
        setCaller(res, caller);
        currentScope()?.span?.setAttributes({
          'tenant.id': caller.tenant,
          'enduser.pseudo.id': subjectHash(caller.subject),
        });
        const scope = requiredScope(req.method, req.path);
        if (scope !== undefined && !caller.scopes.has(scope)) {
          (res.locals as AuthLocals).authFailure = 'insufficient_scope';
          metrics.countAuthFailure('insufficient_scope');
          res.setHeader('WWW-Authenticate', wwwAuthenticate({ insufficientScope: scope }));
          reply(res, 'INSUFFICIENT_SCOPE', `This call needs the scope ${scope}.`);
          return;
        }
        next();
      },
      (error: unknown) => next(error),
    );
  };
}

/** The refusal reason of this request, for its access log line. */
export function authFailureOf(res: Response): string | undefined {
  return (res.locals as AuthLocals).authFailure;
}
