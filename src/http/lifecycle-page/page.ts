// The live lifecycle page of the ops listener (issue #14): GET / and GET /lifecycle/view.
// The chart is drawn from the machine definition (chart.ts), and the page follows the actor as it
// moves through Server-Sent Events (GET /lifecycle/stream): one event on connect, one after every
// transition (pushed by the lifecycle history, not polled), and one a second for the counts that
// change without a transition (in-flight requests, outbox backlog, budgets left). Everything the
// page loads is served here: no CDN, it works with no internet.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ServerResponse } from 'node:http';
import { type Request, type Response, Router } from 'express';
import type { ChartGraph } from '../../../machines/lifecycle.diagram';
import { renderChart } from './chart';

export interface LifecyclePageDeps {
  readonly graph: ChartGraph;
  /** The /lifecycle document as it is now. */
  readonly view: () => object;
  /** Calls `listener` on each transition of the machine (for the life of the process). */
  readonly onTransition: (listener: (to: string) => void) => void;
  /** The service's name and version, for the page title. */
  readonly title: string;
}

export interface LifecyclePage {
  readonly router: Router;
  /** The last event to every open stream (the process is about to exit), then ends them. */
  announceExit(exitCode: number): void;
}

/** Streams open at once; more get 503 (the ops listener is private, a handful of viewers). */
export const MAX_STREAMS = 32;
const TICK_MS = 1_000;

// Next to this module: src/ under ts-jest, dist/src/ from tsc, dist/ in the bundled entry point
// (scripts/bundle.js copies the folder there).
const CLIENT_DIR = path.join(__dirname, 'client');
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function asset(name: string): string {
  return readFileSync(path.join(CLIENT_DIR, name), 'utf8');
}

function html(title: string, chart: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}: lifecycle</title>
<link rel="stylesheet" href="/lifecycle/assets/page.css">
<script defer src="/lifecycle/assets/page.js"></script>
</head>
<body data-state="" data-connection="connecting">
<header>
  <h1>${title}</h1>
  <p class="badge" id="state" aria-live="polite">connecting</p>
  <p class="readiness" id="readiness"></p>
  <p class="connection" id="connection">connecting to the live stream</p>
</header>
<main>
  <section class="chart-panel" aria-label="Lifecycle statechart">${chart}</section>
  <section class="panels">
    <div class="panel" id="readiness-panel"><h2>Readiness</h2><p id="readiness-detail"></p><ul id="reasons"></ul></div>
    <div class="panel"><h2>Work</h2><dl>
      <dt>in flight</dt><dd id="in-flight">-</dd>
      <dt>outbox backlog</dt><dd id="outbox-backlog">-</dd>
      <dt>since (UTC)</dt><dd id="since">-</dd>
      <dt>exit code</dt><dd id="exit-code">-</dd>
    </dl></div>
    <div class="panel"><h2>Dependencies</h2><table><thead><tr><th>name</th><th>status</th><th>breaker</th><th>reason</th></tr></thead><tbody id="dependencies"></tbody></table></div>
    <div class="panel shutdown" id="shutdown-panel" hidden><h2>Shutdown</h2><table><thead><tr><th>step</th><th>budget</th><th>left</th></tr></thead><tbody id="budgets"></tbody></table><h3>Still running</h3><pre id="pending"></pre></div>
    <div class="panel history"><h2>Transitions</h2><table><thead><tr><th>at (UTC)</th><th>from</th><th>to</th><th>cause</th></tr></thead><tbody id="history"></tbody></table></div>
  </section>
</main>
</body>
</html>
`;
}

function send(res: ServerResponse, event: string, data: object): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

export function lifecyclePage(deps: LifecyclePageDeps): LifecyclePage {
  const router = Router();
  const streams = new Set<ServerResponse>();
  let page: Promise<string> | undefined;
  let ticker: NodeJS.Timeout | undefined;
  // Read once: the files ship with the service (dist/src/http/lifecycle-page/client).
  const assets: Record<string, { type: string; body: string }> = {
    'page.js': { type: 'text/javascript; charset=utf-8', body: asset('page.js') },
    'page.css': { type: 'text/css; charset=utf-8', body: asset('page.css') },
  };

  const broadcast = (state?: string): void => {
    if (streams.size === 0) return;
    const view = { ...deps.view(), ...(state === undefined ? {} : { state }) };
    const event = { ...view, now: new Date().toISOString() };
    for (const res of streams) send(res, 'lifecycle', event);
  };
  // Every transition is pushed as it happens, even when the next one follows in the same turn
  // (draining.delaying -> draining.drain.closingIntake -> ...): the page shows each state.
  deps.onTransition((to) => broadcast(to));

  const servePage = (_req: Request, res: Response): void => {
    page ??= renderChart(deps.graph).then((chart) => html(deps.title, chart));
    page.then(
      (body) => {
        res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
        res.setHeader('Cache-Control', 'no-store');
        res.type('html').send(body);
      },
      (error: unknown) => {
        page = undefined;
        res
          .status(500)
          .type('text')
          .send(`the chart could not be drawn: ${String(error)}`);
      },
    );
  };
  router.get(['/', '/lifecycle/view'], servePage);
  // Browsers ask for it; an empty answer keeps their consoles (and the browser test) clean.
  router.get('/favicon.ico', (_req, res) => {
    res.status(204).end();
  });

  router.get('/lifecycle/assets/:name', (req, res, next) => {
    const found = assets[req.params.name];
    if (found === undefined) {
      next();
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.type(found.type).send(found.body);
  });

  router.get('/lifecycle/stream', (req, res) => {
    if (streams.size >= MAX_STREAMS) {
      res.status(503).setHeader('Retry-After', '5');
      res.type('text').send(`at most ${MAX_STREAMS} live streams at once`);
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      // Proxies in between must not buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 1000\n\n');
    streams.add(res);
    send(res, 'lifecycle', { ...deps.view(), now: new Date().toISOString() });
    ticker ??= setInterval(() => broadcast(), TICK_MS).unref();
    req.on('close', () => {
      streams.delete(res);
      if (streams.size === 0 && ticker !== undefined) {
        clearInterval(ticker);
        ticker = undefined;
      }
    });
  });

  return {
    router,
    announceExit(exitCode) {
      for (const res of streams) {
        send(res, 'exit', { state: 'stopped', exit_code: exitCode, now: new Date().toISOString() });
        res.end();
      }
      streams.clear();
      if (ticker !== undefined) clearInterval(ticker);
    },
  };
}
