// The main listener's connection cap (MAX_CONNECTIONS). Without one, ~20,400 idle connections
// used up the process's file descriptors and /health failed for everyone, with no log line or
// metric (issue #11). Past the cap Node closes each new connection at once ('drop'); the refusals
// are counted and logged, at most one line per window, and the descriptors kept in reserve leave
// the ops listener, the database pool and the logs working.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createLogWindow } from '../telemetry/log-window';
import type { Logger } from '../telemetry/logger';
import type { ServiceMetrics } from '../telemetry/metrics';

/** Descriptors left for everything but the main listener's connections. */
export const RESERVED_DESCRIPTORS = 256;
export const REFUSAL_LOG_WINDOW_MS = 10_000;

/** This process's soft open-files limit (Linux /proc); undefined when unknown or unlimited. */
export function openFilesLimit(
  read: () => string = () => readFileSync('/proc/self/limits', 'utf8'),
): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(read());
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/** The cap in force: the configured one, lowered to fit under the open-files limit. */
export function connectionCap(configured: number, limit: number | undefined): number {
  if (limit === undefined) return configured;
  return Math.max(1, Math.min(configured, limit - RESERVED_DESCRIPTORS));
}

/** Applies the cap to `server`; returns the cap in force. */
export function capConnections(
  server: Server,
  configured: number,
  context: { logger: Logger; metrics: ServiceMetrics; limit?: number | undefined },
): number {
  const { logger, metrics } = context;
  const limit = context.limit ?? openFilesLimit();
  const cap = connectionCap(configured, limit);
  if (cap < configured) {
    logger.warn('http.connection_cap_lowered', {
      max_connections: configured,
      effective_max_connections: cap,
      open_files_limit: limit,
      reserved_descriptors: RESERVED_DESCRIPTORS,
    });
  }
  server.maxConnections = cap;

  const refusals = createLogWindow<string | undefined>(
    REFUSAL_LOG_WINDOW_MS,
    (refused, lastRemote) => {
      logger.warn('http.connections_refused', {
        refused,
        max_connections: cap,
        last_remote_address: lastRemote,
        window_ms: REFUSAL_LOG_WINDOW_MS,
      });
    },
  );
  server.on('drop', (data?: { remoteAddress?: string }) => {
    metrics.countRefusedConnection();
    refusals.note(data?.remoteAddress);
  });
  return cap;
}
