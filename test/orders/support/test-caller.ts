// A stand-in for the authentication step in the in-process API tests (issue #15): the caller's
// tenant comes from a test-only header, set with setCaller before the orders routes, as the real
// middleware will from a verified token. Without the header the request is the anonymous caller of
// the default tenant (callerOf). Mounted only by tests (startInProcess `before`), never by the
// service.
import { type Request, type Response, type NextFunction, Router } from 'express';
import { setCaller } from '../../../src/http/caller';

export const TEST_TENANT_HEADER = 'X-Test-Tenant';

export function testCallerRouter(): Router {
  const router = Router();
  router.use((req: Request, res: Response, next: NextFunction) => {
    const tenant = req.get(TEST_TENANT_HEADER);
    if (tenant !== undefined) {
      setCaller(res, {
        subject: `test-${tenant}`,
        tenant,
        scopes: new Set(['orders:read', 'orders:write']),
      });
    }
    next();
  });
  return router;
}
