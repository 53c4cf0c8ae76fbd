// Closing the resources after the drain and before the telemetry flush (issue #12: they used to
// close all at once inside the flush, so a hung one ate the flush budget and was reported as a
// telemetry timeout). One at a time, in the order the modules declared them, each within its own
// budget, each logged: `resource.closed` or `resource.close_timeout` (with `close_ms`), or
// `resource.close_failed`. A resource that timed out is left behind; the next one still closes.
import { setTimeout as sleep } from 'node:timers/promises';
import { type Resource, ResourceCloseTimeout } from '../contracts';
import type { Logger } from '../telemetry/logger';

export type ResourceState = 'open' | 'closing' | 'closed' | 'close_timeout' | 'close_failed';

export interface ResourceCloser {
  /** Closes every resource in order; never rejects. */
  closeAll(): Promise<void>;
  /** The resources not closed (yet, or ever: timed out or failed). */
  pending(): string[];
  states(): Readonly<Record<string, ResourceState>>;
}

/** Each resource's budget: its own, or an equal share of the step's. */
export function budgetOf(resource: Resource, stepBudgetMs: number, count: number): number {
  return resource.closeTimeoutMs ?? Math.max(1, Math.floor(stepBudgetMs / Math.max(1, count)));
}

export function createResourceCloser(
  resources: readonly Resource[],
  options: { logger: Logger; stepBudgetMs: number },
): ResourceCloser {
  const { logger, stepBudgetMs } = options;
  const states = new Map<Resource, ResourceState>(resources.map((r) => [r, 'open']));
  let closing: Promise<void> | undefined;

  const closeOne = async (resource: Resource): Promise<void> => {
    const budgetMs = budgetOf(resource, stepBudgetMs, resources.length);
    const startedAt = performance.now();
    const closeMs = (): number => Math.round(performance.now() - startedAt);
    states.set(resource, 'closing');
    const timer = new AbortController();
    const outcome = await Promise.race([
      resource.close().then(
        () => ({ kind: 'closed' as const }),
        (error: unknown) =>
          error instanceof ResourceCloseTimeout
            ? { kind: 'timeout' as const, reason: error.message }
            : { kind: 'failed' as const, error },
      ),
      sleep(budgetMs, undefined, { signal: timer.signal, ref: false }).then(
        () => ({ kind: 'timeout' as const, reason: undefined }),
        () => ({ kind: 'timeout' as const, reason: undefined }),
      ),
    ]);
    timer.abort();
    if (outcome.kind === 'closed') {
      states.set(resource, 'closed');
      logger.info('resource.closed', { resource: resource.name, close_ms: closeMs() });
    } else if (outcome.kind === 'timeout') {
      states.set(resource, 'close_timeout');
      logger.warn('resource.close_timeout', {
        resource: resource.name,
        close_ms: closeMs(),
        budget_ms: budgetMs,
        ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
        error_code: 'RESOURCE_CLOSE_TIMEOUT',
        error_category: 'expected',
      });
    } else {
      states.set(resource, 'close_failed');
      logger.error('resource.close_failed', {
        resource: resource.name,
        close_ms: closeMs(),
        error_code: 'RESOURCE_CLOSE_FAILED',
        error_category: 'unexpected',
        error: outcome.error,
      });
    }
  };

  return {
    closeAll() {
      closing ??= (async () => {
        for (const resource of resources) await closeOne(resource);
      })();
      return closing;
    },
    pending: () => resources.filter((r) => states.get(r) !== 'closed').map((r) => r.name),
    states: () => Object.fromEntries(resources.map((r) => [r.name, states.get(r) ?? 'open'])),
  };
}
