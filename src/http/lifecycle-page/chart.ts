// The lifecycle chart as SVG, laid out from the machine's own graph (machines/lifecycle.diagram.ts
// toGraph) by ELK's layered algorithm (elkjs, pure JavaScript, run here on the server): nested
// states are boxes inside their parent, every transition is an arrow with its events. Each state
// is a <g data-state="draining.drain.waiting">; the page's script highlights the active one.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api';
import type { ChartGraph, ChartState } from '../../../machines/lifecycle.diagram';

// Text metrics for the layout: 12 px system sans-serif is ~7 px per character on average.
const STATE_FONT_PX = 13;
const LABEL_FONT_PX = 11;
const CHAR_PX = 7.2;
const LABEL_CHAR_PX = 6.2;
const LEAF_HEIGHT = 34;
const LEAF_PADDING_X = 18;
const TITLE_HEIGHT = 24;
const INITIAL_RADIUS = 6;

const resolveModule = createRequire(__filename);

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

const initialId = (parent: string | undefined): string => `__initial:${parent ?? ''}`;

function nodeOf(state: ChartState, children: ElkNode[]): ElkNode {
  if (!state.compound) {
    return {
      id: state.id,
      width: Math.round(state.key.length * CHAR_PX + 2 * LEAF_PADDING_X),
      height: LEAF_HEIGHT,
    };
  }
  return {
    id: state.id,
    labels: [{ text: state.key, width: state.key.length * CHAR_PX, height: TITLE_HEIGHT }],
    layoutOptions: { 'elk.padding': `[top=${TITLE_HEIGHT + 8},left=14,bottom=14,right=14]` },
    children,
  };
}

/** The ELK graph: states nested as the machine nests them, one pseudo-state per initial arrow. */
function elkGraphOf(graph: ChartGraph): ElkNode {
  const childrenOf = (parent: string | undefined): ElkNode[] => {
    const nodes = graph.states
      .filter((state) => state.parent === parent)
      .map((state) => nodeOf(state, childrenOf(state.id)));
    const hasInitial =
      parent === undefined ? graph.initial : graph.states.find((s) => s.id === parent)?.initial;
    if (hasInitial !== undefined) {
      nodes.unshift({
        id: initialId(parent),
        width: 2 * INITIAL_RADIUS,
        height: 2 * INITIAL_RADIUS,
      });
    }
    return nodes;
  };
  const initialEdges: ElkExtendedEdge[] = [undefined, ...graph.states.map((s) => s.id)].flatMap(
    (parent) => {
      const target =
        parent === undefined ? graph.initial : graph.states.find((s) => s.id === parent)?.initial;
      return target === undefined
        ? []
        : [{ id: `init:${parent ?? ''}`, sources: [initialId(parent)], targets: [target] }];
    },
  );
  const edges: ElkExtendedEdge[] = graph.edges.map((edge, index) => {
    const text = edge.labels.join(', ');
    return {
      id: `edge:${index}`,
      sources: [edge.from],
      targets: [edge.to],
      labels: [{ text, width: Math.round(text.length * LABEL_CHAR_PX), height: LABEL_FONT_PX + 4 }],
    };
  });
  return {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'DOWN',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.json.edgeCoords': 'ROOT',
      'elk.json.shapeCoords': 'ROOT',
      'elk.edgeRouting': 'ORTHOGONAL',
      'elk.layered.spacing.nodeNodeBetweenLayers': '40',
      'elk.spacing.edgeLabel': '4',
      'elk.padding': '[top=12,left=12,bottom=12,right=12]',
    },
    children: childrenOf(undefined),
    edges: [...initialEdges, ...edges],
  };
}

function svgOf(graph: ChartGraph, laid: ElkNode): string {
  const byId = new Map(graph.states.map((state) => [state.id, state]));
  const parts: string[] = [];
  const drawNode = (node: ElkNode): void => {
    const { x = 0, y = 0, width = 0, height = 0 } = node;
    if (node.id.startsWith('__initial:')) {
      parts.push(
        `<circle class="initial" cx="${x + INITIAL_RADIUS}" cy="${y + INITIAL_RADIUS}" r="${INITIAL_RADIUS}"/>`,
      );
      return;
    }
    const state = byId.get(node.id);
    if (state === undefined) return;
    const kind = state.compound ? 'compound' : state.final ? 'leaf final' : 'leaf';
    parts.push(`<g class="state ${kind}" data-state="${escape(state.id)}">`);
    parts.push(
      `<rect x="${x}" y="${y}" width="${width}" height="${height}" rx="${state.compound ? 10 : 16}"/>`,
    );
    if (state.final) {
      parts.push(
        `<rect class="inner" x="${x + 3}" y="${y + 3}" width="${width - 6}" height="${height - 6}" rx="13"/>`,
      );
    }
    const textY = state.compound
      ? y + TITLE_HEIGHT / 2 + 6
      : y + height / 2 + STATE_FONT_PX / 2 - 2;
    const textX = state.compound ? x + 12 : x + width / 2;
    parts.push(
      `<text x="${textX}" y="${textY}"${state.compound ? '' : ' text-anchor="middle"'}>${escape(state.key)}</text>`,
    );
    parts.push('</g>');
    for (const child of node.children ?? []) drawNode(child);
  };
  for (const child of laid.children ?? []) drawNode(child);
  for (const edge of laid.edges ?? []) {
    for (const section of edge.sections ?? []) {
      const points = [section.startPoint, ...(section.bendPoints ?? []), section.endPoint];
      const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x} ${p.y}`).join(' ');
      parts.push(`<path class="edge" d="${d}" marker-end="url(#arrow)"/>`);
    }
    for (const label of edge.labels ?? []) {
      parts.push(
        `<text class="edge-label" x="${label.x ?? 0}" y="${(label.y ?? 0) + LABEL_FONT_PX}">${escape(label.text ?? '')}</text>`,
      );
    }
  }
  const width = Math.ceil(laid.width ?? 0);
  const height = Math.ceil(laid.height ?? 0);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="The lifecycle statechart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z"/></marker></defs>',
    ...parts,
    '</svg>',
  ].join('\n');
}

// The layout runs in a worker thread, never on the service's event loop: loading ELK and laying
// the chart out the first time takes ~0.5 s of CPU, which on the main thread would stall every
// request for that long and trip load shedding (the browser test caught exactly that).
const LAYOUT_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const ELK = require(workerData.elkPath);
new ELK().layout(workerData.graph).then(
  (laid) => parentPort.postMessage({ laid }),
  (error) => parentPort.postMessage({ error: String(error) }),
);
`;

function layoutOffThread(graph: ElkNode): Promise<ElkNode> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(LAYOUT_WORKER, {
      eval: true,
      workerData: { graph, elkPath: resolveModule.resolve('elkjs/lib/elk.bundled.js') },
    });
    // A layout in progress never holds the process open (shutdown does not wait for it).
    worker.unref();
    worker.once('message', (message: { laid?: ElkNode; error?: string }) => {
      void worker.terminate();
      if (message.laid !== undefined) resolve(message.laid);
      else reject(new Error(`the chart layout failed: ${message.error ?? 'no result'}`));
    });
    worker.once('error', reject);
  });
}

/** Lays the graph out (off the event loop) and draws it. */
export async function renderChart(graph: ChartGraph): Promise<string> {
  return svgOf(graph, await layoutOffThread(elkGraphOf(graph)));
}
