// The ops listener's lifecycle page over HTTP (the browser test watches it live): the chart is
// the machine's own graph, nothing is loaded from elsewhere, and the stream pushes each
// transition as it happens.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { toGraph } from '../../machines/lifecycle.diagram';
import { lifecycleMachine, statePath } from '../../machines/lifecycle.machine';
import { buildInfo } from '../../src/build-info';
import { MAX_STREAMS } from '../../src/http/lifecycle-page/page';
import { createOpsApp, type OpsApp } from '../../src/http/ops-app';
import { RequestTracker } from '../../src/http/request-tracker';
import { harness, type Harness, toReady } from '../helpers/lifecycle-harness';

function opsApp(h: Harness): { ops: OpsApp; transition: (to: string) => void } {
  const listeners: ((to: string) => void)[] = [];
  const ops = createOpsApp({
    lifecycle: h.actor,
    tracker: new RequestTracker(),
    history: () => [],
    build: buildInfo(),
    configHash: 'test',
    startedAt: new Date(),
    serveMetrics: (_req, res) => res.end(),
    readings: () => ({ breakers: { database: 'closed' }, outboxBacklog: 3 }),
    onTransition: (listener) => listeners.push(listener),
  });
  return { ops, transition: (to) => listeners.forEach((listener) => listener(to)) };
}

/** Reads server-sent events from a real connection until `count` have arrived. */
function readEvents(
  port: number,
  count: number,
): { events: Promise<{ event: string; data: Record<string, unknown> }[]>; close(): void } {
  let req: http.ClientRequest | undefined;
  const events = new Promise<{ event: string; data: Record<string, unknown> }[]>(
    (resolve, reject) => {
      const found: { event: string; data: Record<string, unknown> }[] = [];
      req = http.get({ port, host: '127.0.0.1', path: '/lifecycle/stream' }, (res) => {
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let end = buffer.indexOf('\n\n');
          while (end >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf('\n\n');
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event !== undefined && data !== undefined)
              found.push({ event, data: JSON.parse(data) as Record<string, unknown> });
            if (found.length >= count) resolve(found);
          }
        });
        res.on('end', () => resolve(found));
      });
      req.on('error', reject);
    },
  );
  return { events, close: () => req?.destroy() };
}

it('when the page is asked for on the ops listener, then it draws every state of the machine, nested as in the machine, with every transition', async () => {
  const h = harness();
  await toReady(h);
  const { ops } = opsApp(h);

  for (const path of ['/', '/lifecycle/view']) {
    const res = await request(ops.app).get(path).expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
  }
  const html = (await request(ops.app).get('/')).text;
  const graph = toGraph(lifecycleMachine);
  const drawn = [...html.matchAll(/data-state="([^"]+)"/g)].map((m) => m[1]);
  expect(drawn.sort()).toEqual(graph.states.map((s) => s.id).sort());
  expect(drawn).toEqual(expect.arrayContaining(['ready.serving', 'draining.drain.waiting']));
  // One arrow per (from, to) pair and one per initial state, every event named on some label.
  const arrows = html.match(/<path class="edge"/g) ?? [];
  const initials = graph.states.filter((s) => s.initial !== undefined).length + 1;
  expect(arrows.length).toBeGreaterThanOrEqual(graph.edges.length + initials);
  for (const label of graph.edges.flatMap((e) => e.labels)) expect(html).toContain(label);
  // Every script, style and font comes from the service: no absolute URL outside the SVG namespace.
  const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  expect(urls).toEqual(['/lifecycle/assets/page.css', '/lifecycle/assets/page.js']);
  for (const url of urls) {
    const asset = await request(ops.app)
      .get(url as string)
      .expect(200);
    expect(asset.text).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
  }
  await request(ops.app).get('/lifecycle/assets/other.js').expect(404);
});

it('when a viewer follows the stream, then it gets the state at once and every transition as it happens, and the exit last', async () => {
  const h = harness();
  await toReady(h);
  const { ops, transition } = opsApp(h);
  const server = http.createServer(ops.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const stream = readEvents(port, 4);
    // The first event is the state now; then two transitions in one turn arrive as two events.
    await new Promise((resolve) => setTimeout(resolve, 100));
    h.send({ type: 'SIGNAL', signal: 'SIGTERM' });
    transition(statePath(h.actor.getSnapshot().value));
    transition('draining.drain.closingIntake');
    ops.announceExit(0);
    const events = await stream.events;

    expect(events.map((e) => [e.event, e.data.state])).toEqual([
      ['lifecycle', 'ready.serving'],
      ['lifecycle', 'draining.delaying'],
      ['lifecycle', 'draining.drain.closingIntake'],
      ['exit', 'stopped'],
    ]);
    expect(events[0]?.data).toMatchObject({
      readiness: 'ready',
      breakers: { database: 'closed' },
      outbox_backlog: 3,
    });
    expect(events[1]?.data.shutdown).toMatchObject({ budgets_ms: { delay: 500 } });
    expect(events[3]?.data).toMatchObject({ exit_code: 0 });
  } finally {
    server.closeAllConnections();
    server.close();
    h.actor.stop();
  }
});

it(`when ${MAX_STREAMS} viewers are following, then one more gets 503 and the others keep their streams`, async () => {
  const h = harness();
  await toReady(h);
  const { ops } = opsApp(h);
  const server = http.createServer(ops.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const streams = Array.from({ length: MAX_STREAMS }, () => readEvents(port, 1));
  try {
    await Promise.all(streams.map((s) => s.events));
    const extra = await fetch(`http://127.0.0.1:${port}/lifecycle/stream`);
    expect(extra.status).toBe(503);
    expect(extra.headers.get('retry-after')).toBe('5');
  } finally {
    for (const stream of streams) stream.close();
    server.closeAllConnections();
    server.close();
    h.actor.stop();
  }
});
