// The lifecycle's log lines (the contract's events), as the machine's named actions. Every time
// comes from the machine's clock; every count from the tracker, the workers and the resources at
// the moment the line is written. These lines are the lifecycle's, never a request's: the runtime
// runs the actor outside any request scope.
import type { LifecycleContext } from '../../machines/lifecycle.machine';
import type { BuildInfo } from '../build-info';
import {
  categoryOf,
  isErrorCode,
  type KnownCode,
  OPERATIONAL_CATALOGUE,
} from '../errors/catalogue';
import type { LoadedConfig } from '../config/load-config';
import type { RequestTracker } from '../http/request-tracker';
import type { Logger } from '../telemetry/logger';
import type { Telemetry } from '../telemetry/telemetry';
import type { PendingWork } from './pending-work';

export interface LifecycleLogDeps {
  readonly logger: Logger;
  readonly loaded: LoadedConfig;
  readonly build: BuildInfo;
  readonly startedAt: Date;
  readonly tracker: RequestTracker;
  readonly telemetry: Pick<Telemetry, 'lastFlush' | 'exportCounts'>;
  readonly pendingWork: () => PendingWork;
  /** The main listener's connection cap in force. */
  readonly maxConnections: () => number;
  /** Where rate limit counts live: `off`, `memory` (this process) or `redis` (every replica). */
  readonly rateLimitCounting: 'off' | 'memory' | 'redis';
}

type Action = (args: { context: LifecycleContext }) => void;

/** A failure's code as declared in the catalogue; STARTUP_FAILED for anything undeclared. */
function knownCode(code: string | undefined): KnownCode {
  return code !== undefined && (isErrorCode(code) || code in OPERATIONAL_CATALOGUE)
    ? (code as KnownCode)
    : 'STARTUP_FAILED';
}

const since = (at: number | undefined): number => (at === undefined ? 0 : Date.now() - at);

export function lifecycleLogActions(deps: LifecycleLogDeps) {
  const { logger, loaded, build, tracker } = deps;
  const { config } = loaded;
  const actions = {
    logServiceStart: () => {
      logger.info('service.start', {
        version: build.version,
        env: config.env,
        bind: `${config.http.host}:${config.http.port}`,
        ops_bind: `${config.ops.host}:${config.ops.port}`,
        config_hash: loaded.hash,
      });
    },
    logServiceReady: ({ context }) => {
      logger.info('service.ready', {
        ready: true,
        startup_ms: Date.now() - deps.startedAt.getTime(),
        bind: context.bind,
        ops_bind: context.opsBind,
        max_connections: deps.maxConnections(),
        rate_limit: deps.rateLimitCounting,
      });
    },
    logStartFailed: ({ context }) => {
      const code = knownCode(context.failure?.errorCode);
      const category = categoryOf(code);
      logger[category === 'unexpected' ? 'error' : 'warn']('service.start_failed', {
        error_code: code,
        error_category: category,
        reason: context.failure?.reason ?? 'unknown',
      });
    },
    logShutdownBegin: ({ context }) => {
      logger.info('shutdown.begin', {
        signal: context.signal ?? null,
        cause: context.stopReason,
        in_flight: tracker.inFlight,
        delay_ms: context.budgets.delayMs,
        drain_timeout_ms: context.budgets.drainTimeoutMs,
      });
    },
    logIntakeStopped: ({ context }) => {
      logger.info('shutdown.intake_stopped', {
        in_flight: tracker.inFlight,
        since_shutdown_ms: since(context.clock.shutdownStartedAt),
      });
    },
    logDrainComplete: ({ context }) => {
      logger.info('shutdown.drain_complete', {
        in_flight: 0,
        drain_ms: since(context.clock.intakeStoppedAt ?? Date.now()),
      });
    },
    logDrainTimeout: ({ context }) => {
      const inFlight = tracker.inFlight;
      logger.warn('shutdown.drain_timeout', {
        in_flight: inFlight,
        aborted: inFlight,
        cause: context.drainOutcome === 'skipped' ? 'second_signal' : 'drain_timeout',
        drain_ms: since(context.clock.intakeStoppedAt),
      });
    },
    logPendingWork: ({ context }) => {
      logger.warn('shutdown.pending_work', {
        cause: context.drainOutcome === 'skipped' ? 'second_signal' : 'drain_timeout',
        ...deps.pendingWork(),
      });
    },
    logCloseTimeout: ({ context }) => {
      logger.warn('shutdown.close_timeout', {
        close_ms: since(context.clock.closeStartedAt),
        close_timeout_ms: context.budgets.closeTimeoutMs,
        resources: deps.pendingWork().resources,
      });
    },
    logTelemetryFlush: ({ context }) => {
      const status = context.flushStatus ?? 'error';
      const report = deps.telemetry.lastFlush();
      const counts = deps.telemetry.exportCounts();
      // The machine's own deadline cut the flush short: every span still waiting is lost.
      const spansDropped = report?.spansDropped ?? (counts === undefined ? 0 : counts.pending);
      logger[status === 'ok' ? 'info' : 'warn']('telemetry.flush', {
        status,
        flush_ms: since(context.clock.flushStartedAt),
        spans_dropped: spansDropped,
        spans_dropped_total:
          report?.spansDroppedTotal ??
          (counts === undefined ? 0 : counts.failed + counts.timedOut + counts.pending),
        ...(report?.reason === undefined ? {} : { reason: report.reason }),
        ...(status === 'ok'
          ? {}
          : { error_code: 'TELEMETRY_FLUSH_FAILED', error_category: 'expected' }),
      });
    },
  } satisfies Record<string, Action>;
  return actions;
}
