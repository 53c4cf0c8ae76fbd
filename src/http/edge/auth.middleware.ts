// Who may call (issue #15): every request to /v1/... carries a bearer JWT (RFC 6750), verified
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

const PROTECTED_PREFIX = '/v1/';

/** The scope an operation needs; undefined where none does (an unknown route answers 404). */
export function requiredScope(method: string, path: string): string | undefined {
  if (path === '/v1/orders' && method === 'POST') return 'orders:write';
  if (path.startsWith('/v1/orders/') && (method === 'GET' || method === 'HEAD'))
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
  return (req: Request, res: Response, next) => {
    if (!req.path.startsWith(PROTECTED_PREFIX)) {
      next();
      return;
    }
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
