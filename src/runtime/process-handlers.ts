// Process-level events become lifecycle events. The handler keeps no flags of its own: whether a
// signal is the first or the second is for the machine to decide.
import type { Actor } from 'xstate';
import type { LifecycleMachine } from '../../machines/lifecycle.machine';
import { outsideRequest } from '../telemetry/request-scope';
import type { Logger } from '../telemetry/logger';

export function installProcessHandlers(actor: Actor<LifecycleMachine>, logger: Logger): () => void {
  const onSignal = (signal: 'SIGTERM' | 'SIGINT'): void => {
    outsideRequest(() => actor.send({ type: 'SIGNAL', signal }));
  };
  const onCrash = (origin: 'uncaughtException' | 'unhandledRejection') => (error: unknown) => {
    logger.error('process.crash', {
      error_code: 'PROCESS_CRASH',
      error_category: 'unexpected',
      origin,
      error,
    });
    // The crash line keeps the request it happened in; the shutdown it starts does not.
    outsideRequest(() => actor.send({ type: 'CRASH', error }));
  };
  const onException = onCrash('uncaughtException');
  const onRejection = onCrash('unhandledRejection');
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
