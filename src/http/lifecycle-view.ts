// What the request path may know of the lifecycle: the current snapshot, read-only.
import type { SnapshotFrom } from 'xstate';
import type { LifecycleMachine } from '../../machines/lifecycle.machine';

export type LifecycleSnapshot = SnapshotFrom<LifecycleMachine>;

export interface LifecycleView {
  getSnapshot(): LifecycleSnapshot;
}

/** One change of the machine's state, for /lifecycle and the `lifecycle.transition` log. */
export interface TransitionRecord {
  readonly from: string;
  readonly to: string;
  readonly cause: string;
  readonly at: string;
}
