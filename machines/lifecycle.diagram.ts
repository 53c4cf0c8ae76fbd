// Renders a state machine as a Mermaid state diagram, from the machine definition itself, so the
// picture in the README cannot drift from the code (`npm run lifecycle:diagram`).
import type { AnyStateMachine, AnyStateNode } from 'xstate';

interface TransitionLike {
  readonly eventType: string;
  readonly target?: readonly AnyStateNode[] | undefined;
  readonly guard?: unknown;
}

/** `xstate.done.actor.startup` -> `startup done`; `xstate.after.X.lifecycle.y` -> `after X`. */
export function describeEvent(eventType: string): string {
  const done = /^xstate\.done\.actor\.(.+)$/.exec(eventType);
  if (done) return `${done[1]} done`;
  const error = /^xstate\.error\.actor\.(.+)$/.exec(eventType);
  if (error) return `${error[1]} failed`;
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1]}`;
  return eventType === '' ? 'always' : eventType;
}

function guardName(guard: unknown): string | undefined {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) {
    return String(guard.type);
  }
  return undefined;
}

function transitionsOf(node: AnyStateNode): TransitionLike[] {
  const list: TransitionLike[] = [];
  for (const transitions of node.transitions.values()) list.push(...transitions);
  list.push(...(node.always ?? []));
  return list;
}

export function toMermaid(machine: AnyStateMachine): string {
  const lines = ['stateDiagram-v2'];
  const walk = (node: AnyStateNode, indent: string): void => {
    const children = Object.values(node.states) as AnyStateNode[];
    if (children.length === 0) return;
    const initial = node.initial?.target?.[0];
    if (initial !== undefined) lines.push(`${indent}[*] --> ${initial.key}`);
    for (const child of children) {
      if (Object.keys(child.states).length > 0) {
        lines.push(`${indent}state ${child.key} {`);
        walk(child, `${indent}  `);
        lines.push(`${indent}}`);
      }
      for (const transition of transitionsOf(child)) {
        for (const target of transition.target ?? []) {
          const guard = guardName(transition.guard);
          const label = describeEvent(transition.eventType) + (guard ? ` [${guard}]` : '');
          lines.push(`${indent}${child.key} --> ${target.key}: ${label}`);
        }
      }
      if (child.type === 'final') lines.push(`${indent}${child.key} --> [*]`);
    }
  };
  walk(machine.root, '  ');
  return lines.join('\n');
}

/** A state of the chart: `id` is its path below the root (`draining.drain.waiting`). */
export interface ChartState {
  readonly id: string;
  readonly key: string;
  readonly parent: string | undefined;
  readonly compound: boolean;
  readonly final: boolean;
  /** The child entered first, for compound states. */
  readonly initial: string | undefined;
}

/** Every transition from one state to another, its events merged into one list of labels. */
export interface ChartEdge {
  readonly from: string;
  readonly to: string;
  readonly labels: readonly string[];
}

export interface ChartGraph {
  readonly initial: string | undefined;
  readonly states: readonly ChartState[];
  readonly edges: readonly ChartEdge[];
}

/** The machine as a graph (for drawing it live on the ops listener's lifecycle page). */
export function toGraph(machine: AnyStateMachine): ChartGraph {
  const root = machine.root as AnyStateNode;
  const pathOf = (node: AnyStateNode): string => node.path.join('.');
  const states: ChartState[] = [];
  const edges = new Map<string, { from: string; to: string; labels: string[] }>();
  const walk = (node: AnyStateNode, parent: string | undefined): void => {
    const children = Object.values(node.states) as AnyStateNode[];
    const id = pathOf(node);
    const initial = node.initial?.target?.[0];
    states.push({
      id,
      key: node.key,
      parent,
      compound: children.length > 0,
      final: node.type === 'final',
      initial: initial === undefined ? undefined : pathOf(initial),
    });
    for (const transition of transitionsOf(node)) {
      for (const target of transition.target ?? []) {
        const guard = guardName(transition.guard);
        const label = describeEvent(transition.eventType) + (guard ? ` [${guard}]` : '');
        const key = `${id}->${pathOf(target)}`;
        const edge = edges.get(key) ?? { from: id, to: pathOf(target), labels: [] };
        if (!edge.labels.includes(label)) edge.labels.push(label);
        edges.set(key, edge);
      }
    }
    for (const child of children) walk(child, id);
  };
  for (const child of Object.values(root.states) as AnyStateNode[]) walk(child, undefined);
  const initial = root.initial?.target?.[0];
  return {
    initial: initial === undefined ? undefined : pathOf(initial),
    states,
    edges: [...edges.values()],
  };
}
