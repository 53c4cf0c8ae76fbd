// The lifecycle's history for /lifecycle and the `lifecycle.transition` log: every change of the
// machine's state with its cause and time. Fed by XState's inspection API, so it is derived from
// the machine, never kept alongside it.
import type { InspectionEvent } from 'xstate';
import { statePath } from '../../machines/lifecycle.machine';
import type { TransitionRecord } from '../http/lifecycle-view';

const MAX_RECORDS = 100;

export interface LifecycleHistory {
  readonly records: () => readonly TransitionRecord[];
  /** An XState inspector: pass to createActor(machine, { inspect }). */
  readonly inspect: (event: InspectionEvent) => void;
}

export function createLifecycleHistory(
  onTransition: (record: TransitionRecord) => void,
): LifecycleHistory {
  const records: TransitionRecord[] = [];
  let current: string | undefined;
  return {
    records: () => records,
    inspect(event) {
      if (event.type !== '@xstate.snapshot' || event.actorRef.sessionId !== event.rootId) return;
      const to = statePath((event.snapshot as { value?: unknown }).value);
      if (to === current || to === '') return;
      const record: TransitionRecord = {
        from: current ?? '(none)',
        to,
        cause: event.event.type,
        at: new Date().toISOString(),
      };
      current = to;
      records.push(record);
      if (records.length > MAX_RECORDS) records.shift();
      onTransition(record);
    },
  };
}
