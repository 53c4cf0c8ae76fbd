// Every path from `starting` to `stopped`, generated from the machine itself with @xstate/graph
// rather than listed by hand, checked against the invariants of the operational contract.
import { getShortestPaths, getSimplePaths } from '@xstate/graph';
import type { AnyEventObject, SnapshotFrom } from 'xstate';
import {
  type LifecycleEvent,
  lifecycleMachine,
  readinessOf,
  statePath,
} from '../../machines/lifecycle.machine';
import { describeEvent } from '../../machines/lifecycle.diagram';

const INPUT = {
  budgets: {
    startupTimeoutMs: 1,
    delayMs: 1,
    drainTimeoutMs: 1,
    closeTimeoutMs: 1,
    flushTimeoutMs: 1,
  },
  essentialDependencies: ['database'],
};

// The events of startup and shutdown, including what invoked actors and delays produce. Simple
// paths (no state visited twice) over these are every distinct way from starting to stopped.
const LIFECYCLE_EVENTS: AnyEventObject[] = [
  {
    type: 'xstate.done.actor.startup',
    output: { bind: '127.0.0.1:8080', opsBind: '127.0.0.1:9464' },
  },
  {
    type: 'xstate.error.actor.startup',
    error: Object.assign(new Error('in use'), { errorCode: 'PORT_IN_USE' }),
  },
  { type: 'xstate.after.STARTUP_TIMEOUT.lifecycle.starting' },
  { type: 'SIGNAL', signal: 'SIGTERM' },
  { type: 'CRASH', error: new Error('crash') },
  { type: 'xstate.after.SHUTDOWN_DELAY.lifecycle.draining.delaying' },
  { type: 'xstate.done.actor.stopIntake' },
  { type: 'xstate.error.actor.stopIntake', error: new Error('close failed') },
  { type: 'IN_FLIGHT_ZERO' },
  { type: 'WORKERS_STOPPED' },
  { type: 'xstate.after.DRAIN_TIMEOUT.lifecycle.draining.drain' },
  { type: 'xstate.done.actor.closeResources' },
  { type: 'xstate.error.actor.closeResources', error: new Error('close failed') },
  { type: 'xstate.after.CLOSE_TIMEOUT.lifecycle.draining.closing' },
  { type: 'xstate.done.actor.flushTelemetry', output: { status: 'ok' } },
  { type: 'xstate.error.actor.flushTelemetry', error: new Error('export failed') },
  { type: 'xstate.after.FLUSH_TIMEOUT.lifecycle.flushing' },
];
// Dependency flaps multiply the simple paths without adding
// endings; the shortest path to every reachable state covers them.
const ALL_EVENTS: AnyEventObject[] = [
  ...LIFECYCLE_EVENTS,
  { type: 'DEPENDENCY_DOWN', name: 'database', reason: 'refused' },
  { type: 'DEPENDENCY_UP', name: 'database' },
];

// Events that end in exit code 1 by the contract.
const FAILURES = new Set([
  'xstate.error.actor.startup',
  'xstate.after.STARTUP_TIMEOUT.lifecycle.starting',
  'CRASH',
  'xstate.after.DRAIN_TIMEOUT.lifecycle.draining.drain',
]);

type Snapshot = SnapshotFrom<typeof lifecycleMachine>;

/**
 * Only the events that can really occur in a state: an actor's done/error event while that actor
 * is invoked, a delay's event while its state is active, and every external event.
 */
function possibleIn(events: readonly AnyEventObject[]) {
  // The graph also drives XState's internal events (actor done/error, delays), which the
  // machine's public event union does not name: hence the cast.
  return (snapshot: Snapshot): LifecycleEvent[] =>
    events.filter((event) => {
      const actor = /^xstate\.(done|error)\.actor\.(.+)$/.exec(event.type);
      if (actor?.[2] !== undefined) return actor[2] in snapshot.children;
      const delay = /^xstate\.after\.[^.]+\.lifecycle\.(.+)$/.exec(event.type);
      if (delay?.[1] !== undefined)
        return `${statePath(snapshot.value)}.`.startsWith(`${delay[1]}.`);
      return true;
    }) as unknown as LifecycleEvent[];
}

// A state is its value and context, without the clock: every timestamp differs, and counting
// each as a new state would make every path unique.
const serializeState = (snapshot: Snapshot): string =>
  JSON.stringify({ value: snapshot.value, context: { ...snapshot.context, clock: undefined } });

const simplePaths = getSimplePaths(lifecycleMachine, {
  events: possibleIn(LIFECYCLE_EVENTS),
  input: INPUT,
  serializeState,
});
const shortestPaths = getShortestPaths(lifecycleMachine, {
  events: possibleIn(ALL_EVENTS),
  input: INPUT,
  serializeState,
});
const paths = [...simplePaths, ...shortestPaths];
const toStopped = paths.filter((path) => path.state.value === 'stopped');

function describePath(path: (typeof paths)[number]): string {
  return (
    path.steps
      .map((step) => `${statePath(step.state.value)} --${describeEvent(step.event.type)}-->`)
      .join(' ') + ' stopped'
  );
}

describe('every path from starting to stopped (generated)', () => {
  it('when the paths are generated, then there are many and each ends in the final state', () => {
    expect(simplePaths.filter((path) => path.state.value === 'stopped').length).toBeGreaterThan(
      100,
    );
    for (const path of toStopped) expect(path.state.status).toBe('done');
  });

  it('when any path reaches stopped, then it went through closing and flushing: resources are closed and telemetry flushed on every path', () => {
    const skipped = toStopped
      .filter((path) => {
        const visited = path.steps.map((step) => statePath(step.state.value));
        return !visited.includes('flushing') || !visited.includes('draining.closing');
      })
      .map(describePath);
    expect(skipped).toEqual([]);
  });

  it('when a path has a startup failure, crash, drain timeout or second signal, then its exit code is 1, otherwise 0', () => {
    const wrong = toStopped
      .filter((path) => {
        const types = path.steps.map((step) => step.event.type);
        const signals = types.filter((type) => type === 'SIGNAL').length;
        const failed = types.some((type) => FAILURES.has(type)) || signals > 1;
        return path.state.context.exitCode !== (failed ? 1 : 0);
      })
      .map(describePath);
    expect(wrong).toEqual([]);
  });

  it('when shutdown has begun on a path, then readiness never reports ready again', () => {
    const readyAgain: string[] = [];
    for (const path of paths) {
      let shuttingDown = false;
      for (const step of path.steps) {
        if (shuttingDown && readinessOf(step.state) === 'ready')
          readyAgain.push(describePath(path));
        if (step.event.type === 'SIGNAL' || step.event.type === 'CRASH') shuttingDown = true;
      }
      if (shuttingDown && readinessOf(path.state) === 'ready') readyAgain.push(describePath(path));
    }
    expect(readyAgain).toEqual([]);
  });

  it('when the paths are taken together, then they use every transition of the chart', () => {
    const used = new Set<string>();
    for (const path of paths) {
      let from = 'starting';
      for (const step of path.steps.slice(1)) {
        used.add(`${from} ${step.event.type}`);
        from = statePath(step.state.value);
      }
    }
    const declared = new Set<string>();
    const walk = (node: typeof lifecycleMachine.root): void => {
      for (const child of Object.values(node.states)) {
        for (const [eventType, transitions] of child.transitions) {
          if (transitions.some((t) => t.target !== undefined))
            declared.add(`${child.key} ${eventType}`);
        }
        walk(child);
      }
    };
    walk(lifecycleMachine.root);
    const usedByState = [...used].map((entry) => {
      const [from = '', type = ''] = entry.split(' ');
      return { node: from, type };
    });
    for (const entry of declared) {
      const [key = '', type = ''] = entry.split(' ');
      const covered = usedByState.some(
        ({ node, type: used }) => used === type && node.split('.').includes(key),
      );
      expect({ transition: entry, covered }).toEqual({ transition: entry, covered: true });
    }
  });
});
