// The drill service (the real runtime with the orders module, compiled to dist-test/) as a child
// process, for whole-process tests: crash, dependency loss, PGlite, shutdown drills.
import { startDrillService, type Started } from '../../drills/drill-kit';
import { getPath } from './orders-client';

export async function startOrdersService(
  env: Record<string, string>,
  readyTimeoutMs?: number,
): Promise<Started> {
  return startDrillService({ RATE_LIMIT_MAX: '0', ...env }, readyTimeoutMs);
}

export async function readiness(
  port: number,
): Promise<{ status?: number; body?: Record<string, unknown> }> {
  const res = await getPath(port, '/ready');
  return {
    ...(res.status === undefined ? {} : { status: res.status }),
    ...(res.json ? { body: res.json } : {}),
  };
}
