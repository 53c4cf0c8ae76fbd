// What the request path may know of the lifecycle: the current snapshot, read-only.
import type { SnapshotFrom } from 'xstate';
import type { LifecycleMachine } from '../../machines/lifecycle.machine';

export type LifecycleSnapshot = SnapshotFrom<LifecycleMachine>;

export interface LifecycleView {
  getSnapshot(): LifecycleSnapshot;
  /** When the drain budget runs out (epoch ms), once intake has stopped; undefined before. */
  drainDeadline?(): number | undefined;
}
