// Stopping the background workers during the drain: each finishes its current unit and
// checkpoints. They stop side by side; the ones not yet stopped are part of "what is still
// running" (shutdown.pending_work).
import type { Worker } from '../contracts';
import type { Logger } from '../telemetry/logger';

export interface WorkerStopper {
  /** Stops every worker; resolves when all have stopped or failed to (never rejects). */
  stopAll(): Promise<void>;
  /** The workers not stopped yet. */
  pending(): string[];
  /** Tells every worker still running to give up its current unit (the drain was cut short). */
  abortAll(): void;
}

export function createWorkerStopper(workers: readonly Worker[], logger: Logger): WorkerStopper {
  const stopped = new Set<Worker>();
  let stopping: Promise<void> | undefined;
  const stopOne = async (worker: Worker): Promise<void> => {
    try {
      await worker.stop();
    } catch (error) {
      logger.error('worker.stop_failed', {
        error_code: 'WORKER_STOP_FAILED',
        error_category: 'unexpected',
        worker: worker.name,
        error,
      });
    } finally {
      stopped.add(worker);
    }
  };
  return {
    stopAll() {
      stopping ??= Promise.all(workers.map(stopOne)).then(() => undefined);
      return stopping;
    },
    pending: () => workers.filter((worker) => !stopped.has(worker)).map((worker) => worker.name),
    abortAll() {
      for (const worker of workers) if (!stopped.has(worker)) worker.abort?.();
    },
  };
}
