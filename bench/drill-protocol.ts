// What the shutdown drill's processes say to each other (`npm run bench -- drill`, bench/drill.ts):
// every server under test (drill-ops-service.ts, drill-peers.ts) serves the same route and tells
// the orchestrator its port, and its readiness endpoint if it has one, over the IPC channel of
// child_process.fork. After that message the server unrefs the channel, so that the channel never
// keeps a process alive that would otherwise exit by itself after SIGTERM: what a server does
// after the signal is its own shutdown handling, nothing of the bench's.
/** The route every server serves: answers after `ms` (50 by default) with DRILL_BODY_BYTES of payload. */
export const DRILL_PATH = '/drill/work';
export const DRILL_ROUTE_MS = 50;
export const DRILL_BODY_BYTES = 1024;

/** The body of DRILL_PATH, the same on every server. */
export function drillBody(ms: number): { ms: number; payload: string } {
  return { ms, payload: 'x'.repeat(DRILL_BODY_BYTES) };
}

/** `?ms=N` (bounded to 10 s), DRILL_ROUTE_MS when absent or not a number. */
export function drillMs(query: unknown): number {
  const raw = isRecord(query) ? query.ms : undefined;
  const value = typeof raw === 'string' ? Number(raw) : DRILL_ROUTE_MS;
  return Number.isFinite(value) && value >= 0 ? Math.min(value, 10_000) : DRILL_ROUTE_MS;
}

/** The peers drill-peers.ts serves, by its argv[2]. */
export const PEERS = [
  'express',
  'express-close',
  'terminus',
  'http-terminator',
  'lightship',
  'fastify-cwg',
] as const;
export type Peer = (typeof PEERS)[number];

/** Server -> orchestrator, once the server accepts connections (and says it is ready). */
export interface DrillListening {
  readonly type: 'drill-listening';
  readonly port: number;
  /** Where a load balancer would poll readiness (`port` may be a separate listener); absent: none. */
  readonly readiness?: { readonly port: number; readonly path: string };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

export function isDrillListening(value: unknown): value is DrillListening {
  if (!isRecord(value) || value.type !== 'drill-listening' || typeof value.port !== 'number') {
    return false;
  }
  const readiness = value.readiness;
  return (
    readiness === undefined ||
    (isRecord(readiness) &&
      typeof readiness.port === 'number' &&
      typeof readiness.path === 'string')
  );
}

/**
 * Sends the listening message, then unrefs the IPC channel (see above). The channel still
 * reports the orchestrator going away: `onParentGone` runs then.
 */
export function announceDrill(message: DrillListening, onParentGone: () => void): void {
  if (process.send === undefined) {
    throw new Error('bench: drill servers are started by bench/drill.ts (child_process.fork)');
  }
  process.on('disconnect', onParentGone);
  process.send(message, undefined, undefined, () => {
    process.channel?.unref();
  });
}
