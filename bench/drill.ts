// `npm run bench -- drill`: the shutdown drill against ops-service and its peers, in one run on
// this machine (method and figures: bench/README.md, bench/results/shutdown-drill.md).
// Every server serves the same route (GET /drill/work, 50 ms, 1 KiB of JSON; drill-protocol.ts):
//   ops-service      the real runtime, SHUTDOWN_DELAY_MS=500 (drill-ops-service.ts)
//   the peers        plain Express 5, Express + server.close(), @godaddy/terminus, http-terminator,
//                    lightship, Fastify + close-with-grace (drill-peers.ts)
// One run: start the server, keep 64 keep-alive connections busy (each loop sends its next request
// as soon as the previous one is answered, with a unique X-Request-Id), SIGTERM after 1 s of load,
// then account for every request and time the exit. Two client models:
//   lb     a load balancer: readiness polled every 100 ms on a fresh connection; the first failed
//          poll after the signal (not 200, or no answer) stops every client from sending anything
//          new. A server without readiness gets the model's best effort: clients stop 500 ms after
//          the signal (the delay the others get).
//   blind  clients keep sending on their keep-alive connections (a new connection when the server
//          said `Connection: close`, as Node's http.Agent does) until their first error, for at
//          most 3 s after the signal.
// In both models a client loop stops at its first error (a load balancer's passive health check).
// Once a loop has stopped, its idle keep-alive connection stays open, as in a load balancer's
// connection pool, until the server closes it or the server exits (BENCH_DRILL_IDLE=close: the
// clients close them as soon as every loop has stopped, as the test drill does).
// Every request ops-service drops is listed with what the client saw, whether the service logged it
// (X-Request-Id in its access log) and, from an observer in drill-ops-service.ts that changes
// nothing the service does, what happened to its connection (accepted or not, destroyed by which
// close call).
// Knobs: BENCH_DRILL_RUNS (3), BENCH_DRILL_SERVERS (comma-separated ids, all by default),
// BENCH_DRILL_MODELS ("lb,blind"), BENCH_DRILL_IDLE ("keep"), BENCH_DRILL_TRACE ("1"; "0": no
// observer), BENCH_DRILL_WRITE ("1": write bench/results/shutdown-drill.{md,json,png}; "0": print
// only).
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { packageRoot } from '../src/config/load-config';
import {
  DRILL_PATH,
  DRILL_ROUTE_MS,
  type DrillListening,
  isDrillListening,
  type Peer,
} from './drill-protocol';
import { errorText, intFromEnv, markdownTable, median, within } from './harness';

const CONNECTIONS = 64;
/** Load before SIGTERM: every connection is open and busy. */
const LOAD_BEFORE_SIGNAL_MS = 1_000;
/** The delay every server that has one gets (SHUTDOWN_DELAY_MS, beforeShutdown, shutdownDelay). */
const DELAY_MS = 500;
const POLL_MS = 100;
const PROBE_TIMEOUT_MS = 1_000;
/** Blind clients stop sending new requests this long after the signal, whatever happens. */
const BLIND_CAP_MS = 3_000;
/** After the signal: then SIGKILL, and the run's exit is "killed". */
const EXIT_WAIT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 20_000;
/** ops-service's goal (issue 16): exit within delay + longest request + 100 ms. */
const EXIT_GOAL_MS = DELAY_MS + DRILL_ROUTE_MS + 100;
const TOTAL_TIMEOUT_MS = 1_200_000;
const HOST = '127.0.0.1';
/** What the clients do with idle keep-alive connections once they stop (see the top). */
const BENCH_IDLE = process.env.BENCH_DRILL_IDLE === 'close' ? 'close' : 'keep';
/** ops-service's connection observer (drill-ops-service.ts), on unless BENCH_DRILL_TRACE=0. */
const TRACE = process.env.BENCH_DRILL_TRACE !== '0';

type Model = 'lb' | 'blind';
const MODEL_LABEL: Record<Model, string> = { lb: 'load balancer', blind: 'blind' };

interface ServerDef {
  readonly id: 'ops-service' | Peer;
  readonly label: string;
  readonly entry: 'drill-ops-service.js' | 'drill-peers.js';
  /** npm packages whose installed versions go into the label. */
  readonly packages: readonly string[];
  readonly setup: string;
}

const SERVERS: readonly ServerDef[] = [
  {
    id: 'ops-service',
    label: 'ops-service',
    entry: 'drill-ops-service.js',
    packages: ['express'],
    setup:
      'the real runtime, APP_ENV=development (the default budgets) with SHUTDOWN_DELAY_MS=500; readiness GET /ready',
  },
  {
    id: 'express',
    label: 'Express, no handling',
    entry: 'drill-peers.js',
    packages: ['express'],
    setup: 'no SIGTERM handler (the default action ends the process); no readiness',
  },
  {
    id: 'express-close',
    label: 'Express + server.close()',
    entry: 'drill-peers.js',
    packages: ['express'],
    setup: 'server.close() on SIGTERM, the process ends when nothing is left open; no readiness',
  },
  {
    id: 'terminus',
    label: '@godaddy/terminus',
    entry: 'drill-peers.js',
    packages: ['@godaddy/terminus', 'express'],
    setup: 'healthChecks /ready, beforeShutdown sleeps 500 ms, useExit0, timeout 1000 (default)',
  },
  {
    id: 'http-terminator',
    label: 'http-terminator',
    entry: 'drill-peers.js',
    packages: ['http-terminator', 'express'],
    setup: 'terminate() on SIGTERM (no delay, no readiness in the library)',
  },
  {
    id: 'lightship',
    label: 'lightship',
    entry: 'drill-peers.js',
    packages: ['lightship', 'express'],
    setup: 'shutdownDelay 500, handler server.close(); readiness /ready on its own listener',
  },
  {
    id: 'fastify-cwg',
    label: 'Fastify + close-with-grace',
    entry: 'drill-peers.js',
    packages: ['fastify', 'close-with-grace'],
    setup: 'README example: await app.close() (delay = 10 s deadline, default); no readiness',
  },
];

// ---------------------------------------------------------------------------------------------
// Child processes: tracked, so that none outlives the drill.

const children = new Set<ChildProcess>();

function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

interface ServiceLine {
  readonly event: string;
  readonly ts: string;
  readonly [key: string]: unknown;
}

interface Started {
  readonly child: ChildProcess;
  readonly listening: DrillListening;
  /** ops-service: its JSON log lines but the access log; request id -> status from the access log. */
  readonly lines: ServiceLine[];
  readonly accessLog: Map<string, string>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  stderr(): string;
}

function startChild(server: ServerDef): Promise<Started> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (server.id === 'ops-service') {
    Object.assign(env, {
      // The schema's budgets (drain 20 s, handler deadline 10 s, flush 3 s, hard stop 30 s): test's
      // config/test.json shortens the drain to 5 s, under the 10 s handler deadline, and the drain
      // gate then answers 503 to every request that arrives during the drain.
      APP_ENV: 'development',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      HOST,
      PORT: '0',
      OPS_HOST: HOST,
      OPS_PORT: '0',
      // One client address sends ~1,000 requests a second here: never a 429.
      RATE_LIMIT_MAX: '1000000',
      SHUTDOWN_DELAY_MS: String(DELAY_MS),
    });
    if (TRACE) env.BENCH_DRILL_TRACE = '1';
  }
  const child = fork(
    path.join(__dirname, server.entry),
    server.entry === 'drill-peers.js' ? [server.id] : [],
    { env, execArgv: [], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
  );
  children.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>(
    (resolve) => {
      child.once('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal, at: performance.now() });
      });
    },
  );
  const lines: ServiceLine[] = [];
  const accessLog = new Map<string, string>();
  let pending = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    if (server.id !== 'ops-service') return;
    pending += chunk;
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      try {
        const line = JSON.parse(text) as ServiceLine;
        if (line.event === 'http.request') {
          if (typeof line.request_id === 'string' && typeof line.status === 'number') {
            const code = typeof line.error_code === 'string' ? ` ${line.error_code}` : '';
            accessLog.set(line.request_id, `${line.status}${code}`);
          }
        } else lines.push(line);
      } catch {
        // not a JSON line: nothing to learn from it here
      }
    }
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const listening = new Promise<DrillListening>((resolve, reject) => {
    child.on('message', (message: unknown) => {
      if (isDrillListening(message)) resolve(message);
    });
    void exited.then(({ code, signal }) =>
      reject(new Error(`${server.entry} ${server.id} exited (${code ?? signal}): ${stderr}`)),
    );
  });
  return within(listening, START_TIMEOUT_MS, `${server.id} listening`).then(
    (message) => ({ child, listening: message, lines, accessLog, exited, stderr: () => stderr }),
    (error: unknown) => {
      child.kill('SIGKILL');
      throw error;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Requests

/** One request of the load, as the client saw it. Times are ms after the signal (negative before). */
interface Attempt {
  readonly id: string;
  readonly loop: number;
  readonly sentMs: number;
  readonly doneMs: number;
  /** On a keep-alive connection that had already carried a request (http.ClientRequest.reusedSocket). */
  readonly reused: boolean;
  /** The TCP connection was established (always, for a reused one): the request went out. */
  readonly connected: boolean;
  /** A fresh connection: when it was established. */
  readonly connectedMs?: number;
  /** The client's port of the connection (the server sees it as the remote port). */
  readonly localPort?: number;
  /** A complete response: its status. */
  readonly status?: number;
  readonly connectionHeader?: string;
  /** No complete response: why (an errno code, `incomplete body`, `timeout`). */
  readonly error?: string;
}

let clock0 = 0;
const now = (): number => performance.now() - clock0;

function send(port: number, agent: http.Agent, id: string, loop: number): Promise<Attempt> {
  const sentMs = now();
  return new Promise((resolve) => {
    let reused = false;
    let connected = false;
    let connectedMs: number | undefined;
    let localPort: number | undefined;
    let settled = false;
    const settle = (outcome: Partial<Attempt>): void => {
      if (settled) return;
      settled = true;
      resolve({
        id,
        loop,
        sentMs,
        doneMs: now(),
        reused,
        connected,
        ...(connectedMs === undefined ? {} : { connectedMs }),
        ...(localPort === undefined ? {} : { localPort }),
        ...outcome,
      });
    };
    const req = http.get(
      {
        host: HOST,
        port,
        path: `${DRILL_PATH}?ms=${DRILL_ROUTE_MS}`,
        agent,
        headers: { 'x-request-id': id },
      },
      (res) => {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        const broken = (): void =>
          settle({ status: res.statusCode ?? 0, error: 'incomplete body' });
        res.once('error', broken);
        res.once('aborted', broken);
        res.once('end', () => {
          const expected = Number(res.headers['content-length']);
          if (!Number.isNaN(expected) && bytes !== expected) {
            broken();
            return;
          }
          settle({
            status: res.statusCode ?? 0,
            ...(res.headers.connection === undefined
              ? {}
              : { connectionHeader: res.headers.connection }),
          });
        });
      },
    );
    req.once('socket', (socket) => {
      reused = req.reusedSocket;
      if (reused || !socket.connecting) {
        connected = true;
        localPort = socket.localPort;
        return;
      }
      socket.once('connect', () => {
        connected = true;
        connectedMs = now();
        localPort = socket.localPort;
      });
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => {
      req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' }));
    });
    req.once('error', (error: NodeJS.ErrnoException) => {
      settle({ error: error.code ?? error.message });
    });
  });
}

/** One readiness poll on a fresh connection: the status, 0 for no answer. */
function probe(port: number, urlPath: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: HOST, port, path: urlPath, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', () => resolve(0));
    });
    req.setTimeout(PROBE_TIMEOUT_MS, () => req.destroy(new Error('probe timeout')));
    req.once('error', () => resolve(0));
  });
}

// ---------------------------------------------------------------------------------------------
// One run

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE']);

interface DropDetail {
  readonly id: string;
  readonly reused: boolean;
  readonly error: string;
  readonly sentMs: number;
  readonly failedMs: number;
  readonly connectedMs?: number;
  /** ops-service: the status (and error code) its access log gave this request id; null: none. */
  readonly logged?: string | null;
  readonly localPort?: number;
  /** ops-service with BENCH_DRILL_TRACE=1: what the service did with the connection. */
  readonly cause?: string;
}

interface RunResult {
  readonly server: ServerDef['id'];
  readonly model: Model;
  readonly round: number;
  readonly sent: number;
  readonly ok: number;
  readonly s503: number;
  readonly otherStatus: number;
  /** Requests that never went out: the connection was refused (or failed before it was made). */
  readonly refused: number;
  readonly dropped: number;
  readonly resetsFresh: number;
  readonly resetsReused: number;
  readonly exitCode: number | null;
  readonly exitSignal: string | null;
  readonly killed: boolean;
  readonly exitMs: number;
  /** When the clients were told to stop sending (lb: readiness failed or the fallback; blind: cap). */
  readonly stopMs?: number;
  readonly stopReason: string;
  readonly lastAnsweredMs?: number;
  readonly errorCodes: Record<string, number>;
  readonly drops: readonly DropDetail[];
  /** ops-service: requests answered with another status than 200 (503 while stopping), one each. */
  readonly notServed: readonly (Omit<DropDetail, 'error'> & { status: number })[];
  /** ops-service: the lifecycle's own times, ms after the signal (from its log lines). */
  readonly service?: { intakeStopMs?: number; drainCompleteMs?: number; exitLoggedMs?: number };
}

async function runOnce(server: ServerDef, model: Model, round: number): Promise<RunResult> {
  const started = await startChild(server);
  const { child, listening } = started;
  const readiness = listening.readiness;
  // Ready before the load starts: the readiness endpoint answers 200.
  if (readiness !== undefined) {
    const deadline = performance.now() + START_TIMEOUT_MS;
    while ((await probe(readiness.port, readiness.path)) !== 200) {
      if (performance.now() > deadline) throw new Error(`${server.id}: never ready`);
      await sleep(50);
    }
  }

  clock0 = performance.now() + LOAD_BEFORE_SIGNAL_MS;
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: CONNECTIONS,
    maxFreeSockets: CONNECTIONS,
  });
  const attempts: Attempt[] = [];
  let signalled = false;
  let stopMs: number | undefined;
  let stopReason = 'not stopped';
  const stop = (reason: string): void => {
    if (stopMs !== undefined) return;
    stopMs = now();
    stopReason = reason;
  };
  let exitedAt: number | undefined;
  void started.exited.then(({ at }) => {
    exitedAt = at - clock0;
  });

  const prefix = `${server.id}-${model}-r${round}`;
  const loop = async (index: number): Promise<void> => {
    for (let seq = 0; stopMs === undefined; seq += 1) {
      const attempt = await send(listening.port, agent, `${prefix}-c${index}-${seq}`, index);
      attempts.push(attempt);
      if (attempt.error !== undefined) return;
    }
  };
  const loops = Promise.all(Array.from({ length: CONNECTIONS }, (_, index) => loop(index)));

  const poller = (async () => {
    if (model !== 'lb' || readiness === undefined) return;
    while (stopMs === undefined && exitedAt === undefined) {
      const polledAt = now();
      const status = await probe(readiness.port, readiness.path);
      if (signalled && status !== 200) {
        stop(status === 0 ? 'readiness: no answer' : `readiness: ${status}`);
        return;
      }
      await sleep(Math.max(0, POLL_MS - (now() - polledAt)));
    }
  })();

  await sleep(Math.max(0, -now()));
  signalled = true;
  const signalWall = Date.now();
  child.kill('SIGTERM');
  // Every time of the run is reported relative to this moment.
  const signalMs = now();
  const fallback =
    model === 'blind'
      ? setTimeout(() => stop(`blind cap ${BLIND_CAP_MS} ms`), BLIND_CAP_MS)
      : readiness === undefined
        ? setTimeout(() => stop(`no readiness: after the delay (${DELAY_MS} ms)`), DELAY_MS)
        : undefined;

  await loops;
  await poller;
  clearTimeout(fallback);
  if (BENCH_IDLE === 'close') agent.destroy();
  const exitDeadline = setTimeout(() => child.kill('SIGKILL'), Math.max(0, EXIT_WAIT_MS - now()));
  const exit = await started.exited;
  clearTimeout(exitDeadline);
  agent.destroy();
  // The last stdout lines.
  await sleep(20);

  return summarize(server, model, round, attempts, started, {
    exit,
    signalMs,
    signalWall,
    stopMs,
    stopReason,
  });
}

/**
 * With BENCH_DRILL_TRACE=1, what ops-service did with the connection on client port `port` (the
 * drill.trace lines of drill-ops-service.ts); undefined without a trace.
 */
function traceCause(
  lines: readonly ServiceLine[],
  port: number | undefined,
  signalWall: number,
): string | undefined {
  const traces = lines.filter((l) => l.event === 'drill.trace');
  if (traces.length === 0 || port === undefined) return undefined;
  const ms = (line: ServiceLine): string => `${(Number(line.at) - signalWall).toFixed(1)} ms`;
  for (const line of traces) {
    if (line.kind !== 'close_idle' && line.kind !== 'close_all') continue;
    const destroyed = (
      line.destroyed as { port: number; requests: number; bytes_read: number }[]
    ).find((d) => d.port === port);
    if (destroyed !== undefined) {
      return (
        `accepted, ${destroyed.requests} request(s) parsed, ${destroyed.bytes_read} bytes read; ` +
        `destroyed by ${line.kind === 'close_idle' ? 'closeIdleConnections()' : 'closeAllConnections()'} at ${ms(line)}`
      );
    }
  }
  const closed = (
    (traces.find((l) => l.kind === 'closed_after_signal')?.connections ?? []) as {
      port: number;
      requests: number;
      bytes_read: number;
      closed_ms_after_signal: number;
    }[]
  ).find((c) => c.port === port);
  if (closed !== undefined) {
    return (
      `accepted, ${closed.requests} request(s) parsed, ${closed.bytes_read} bytes read; ` +
      `closed at ${closed.closed_ms_after_signal} ms (not by closeIdleConnections() or closeAllConnections())`
    );
  }
  const accepted = traces.find((l) => l.kind === 'accepted_after_signal');
  const listenerClose = traces.find((l) => l.kind === 'listener_close');
  const known = (
    (accepted?.connections ?? []) as { port: number; accepted_ms_after_signal: number }[]
  ).find((c) => c.port === port);
  if (known !== undefined) {
    return `accepted at ${known.accepted_ms_after_signal} ms, not destroyed by the runtime's close calls`;
  }
  return (
    'never accepted by the service: still in the listen backlog when the listener closed' +
    (listenerClose === undefined ? '' : ` at ${ms(listenerClose)}`)
  );
}

function summarize(
  server: ServerDef,
  model: Model,
  round: number,
  attempts: readonly Attempt[],
  started: Started,
  at: {
    exit: { code: number | null; signal: NodeJS.Signals | null; at: number };
    /** On the run's clock (`now()`): the moment SIGTERM was sent. */
    signalMs: number;
    signalWall: number;
    stopMs: number | undefined;
    stopReason: string;
  },
): RunResult {
  const errorCodes: Record<string, number> = {};
  const drops: DropDetail[] = [];
  const notServed: RunResult['notServed'][number][] = [];
  let ok = 0;
  let s503 = 0;
  let otherStatus = 0;
  let refused = 0;
  let resetsFresh = 0;
  let resetsReused = 0;
  let lastAnsweredMs: number | undefined;
  const rel = (ms: number): number => ms - at.signalMs;
  for (const attempt of attempts) {
    if (attempt.error === undefined && attempt.status !== undefined) {
      lastAnsweredMs = Math.max(lastAnsweredMs ?? -Infinity, rel(attempt.doneMs));
      if (attempt.status === 200) ok += 1;
      else if (attempt.status === 503) s503 += 1;
      else otherStatus += 1;
      if (attempt.status !== 200 && server.id === 'ops-service') {
        notServed.push({
          id: attempt.id,
          status: attempt.status,
          reused: attempt.reused,
          sentMs: rel(attempt.sentMs),
          failedMs: rel(attempt.doneMs),
          ...(attempt.connectedMs === undefined ? {} : { connectedMs: rel(attempt.connectedMs) }),
          logged: started.accessLog.get(attempt.id) ?? null,
        });
      }
      continue;
    }
    const error = attempt.error ?? 'no status';
    errorCodes[error] = (errorCodes[error] ?? 0) + 1;
    if (!attempt.connected) {
      refused += 1;
      continue;
    }
    if (RESET_CODES.has(error)) {
      if (attempt.reused) resetsReused += 1;
      else resetsFresh += 1;
    }
    const logged = started.accessLog.get(attempt.id);
    const cause = traceCause(started.lines, attempt.localPort, at.signalWall);
    drops.push({
      id: attempt.id,
      reused: attempt.reused,
      error,
      sentMs: rel(attempt.sentMs),
      failedMs: rel(attempt.doneMs),
      ...(attempt.connectedMs === undefined ? {} : { connectedMs: rel(attempt.connectedMs) }),
      ...(server.id === 'ops-service' ? { logged: logged ?? null } : {}),
      ...(attempt.localPort === undefined ? {} : { localPort: attempt.localPort }),
      ...(cause === undefined ? {} : { cause }),
    });
  }
  const lineMs = (event: string): number | undefined => {
    const line = started.lines.find((l) => l.event === event);
    return line === undefined ? undefined : Date.parse(line.ts) - at.signalWall;
  };
  const service =
    server.id === 'ops-service'
      ? {
          intakeStopMs: lineMs('shutdown.intake_stopped'),
          drainCompleteMs: lineMs('shutdown.drain_complete'),
          exitLoggedMs: lineMs('service.exit'),
        }
      : undefined;
  return {
    server: server.id,
    model,
    round,
    sent: attempts.length - refused,
    ok,
    s503,
    otherStatus,
    refused,
    dropped: drops.length,
    resetsFresh,
    resetsReused,
    exitCode: at.exit.code,
    exitSignal: at.exit.signal,
    killed: at.exit.signal === 'SIGKILL',
    exitMs: rel(at.exit.at - clock0),
    ...(at.stopMs === undefined ? {} : { stopMs: rel(at.stopMs) }),
    stopReason: at.stopReason,
    ...(lastAnsweredMs === undefined ? {} : { lastAnsweredMs }),
    errorCodes,
    drops,
    notServed,
    ...(service === undefined ? {} : { service }),
  };
}

// ---------------------------------------------------------------------------------------------
// Figures

function spread(values: readonly number[], digits = 0): string {
  const m = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  const f = (v: number): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
  return min === max ? f(m) : `${f(m)} (${f(min)}–${f(max)})`;
}

function exitLabel(run: RunResult): string {
  if (run.killed) return 'SIGKILL (hung)';
  if (run.exitSignal !== null) return run.exitSignal;
  return String(run.exitCode);
}

function exitCodes(runs: readonly RunResult[]): string {
  const counts = new Map<string, number>();
  for (const run of runs) counts.set(exitLabel(run), (counts.get(exitLabel(run)) ?? 0) + 1);
  if (counts.size === 1) return [...counts.keys()][0] ?? '';
  return [...counts.entries()].map(([label, n]) => `${label} ×${n}`).join(', ');
}

export interface DrillAggregate {
  readonly server: string;
  readonly label: string;
  readonly model: Model;
  readonly runs: number;
  readonly sent: readonly number[];
  readonly dropped: readonly number[];
  readonly resetsFresh: readonly number[];
  readonly resetsReused: readonly number[];
  readonly s503: readonly number[];
  readonly refused: readonly number[];
  readonly exitMs: readonly number[];
  readonly exitCodes: string;
}

function aggregate(results: readonly RunResult[], labels: Map<string, string>): DrillAggregate[] {
  const out: DrillAggregate[] = [];
  for (const server of SERVERS) {
    for (const model of ['lb', 'blind'] as const) {
      const runs = results.filter((r) => r.server === server.id && r.model === model);
      if (runs.length === 0) continue;
      out.push({
        server: server.id,
        label: labels.get(server.id) ?? server.label,
        model,
        runs: runs.length,
        sent: runs.map((r) => r.sent),
        dropped: runs.map((r) => r.dropped),
        resetsFresh: runs.map((r) => r.resetsFresh),
        resetsReused: runs.map((r) => r.resetsReused),
        s503: runs.map((r) => r.s503),
        refused: runs.map((r) => r.refused),
        exitMs: runs.map((r) => r.exitMs),
        exitCodes: exitCodes(runs),
      });
    }
  }
  return out;
}

function table(rows: readonly DrillAggregate[]): string {
  return markdownTable(
    [
      'server',
      'model',
      'requests',
      'dropped',
      'resets, fresh conn.',
      'resets, reused conn.',
      '503s',
      'refused (not sent)',
      'exit code',
      'time to exit ms',
    ],
    rows.map((row) => [
      row.label,
      MODEL_LABEL[row.model],
      spread(row.sent),
      spread(row.dropped),
      spread(row.resetsFresh),
      spread(row.resetsReused),
      spread(row.s503),
      spread(row.refused),
      row.exitCodes,
      spread(row.exitMs),
    ]),
  );
}

function goals(results: readonly RunResult[]): string[] {
  const out = [
    `Goal (issue 16) for ops-service: 0 dropped in both models in every run, and an exit (code 0) ` +
      `within delay + longest request + 100 ms = ${EXIT_GOAL_MS} ms:`,
  ];
  for (const model of ['lb', 'blind'] as const) {
    const runs = results.filter((r) => r.server === 'ops-service' && r.model === model);
    if (runs.length === 0) continue;
    const dropped = runs.map((r) => r.dropped);
    const exits = runs.map((r) => r.exitMs);
    const holds =
      dropped.every((d) => d === 0) &&
      exits.every((ms) => ms <= EXIT_GOAL_MS) &&
      runs.every((r) => r.exitCode === 0);
    out.push(
      `- ${MODEL_LABEL[model]}: dropped ${dropped.join(', ')}; exit ${exits
        .map((ms) => ms.toFixed(0))
        .join(', ')} ms, code ${runs.map(exitLabel).join(', ')} -> ${holds ? 'HOLDS' : 'MISSED'}`,
    );
  }
  return out;
}

/**
 * Every request ops-service dropped, one line each: what the client saw, what the service logged
 * and did with its connection; then the requests it answered with another status than 200.
 */
function serviceDrops(results: readonly RunResult[]): string[] {
  const out: string[] = [];
  const service = results.filter((r) => r.server === 'ops-service');
  for (const run of service.filter((r) => r.dropped > 0 || r.notServed.length > 0)) {
    const s = run.service;
    out.push(
      `- ${MODEL_LABEL[run.model]}, round ${run.round}: ${run.dropped} dropped, ` +
        `${run.notServed.length} not served; intake stopped at ${s?.intakeStopMs ?? '?'} ms, ` +
        `drain complete at ${s?.drainCompleteMs ?? '?'} ms, exit at ${run.exitMs.toFixed(0)} ms`,
    );
    for (const drop of run.drops) {
      out.push(
        `  - ${drop.id}: ${drop.reused ? 'reused' : 'fresh'} connection` +
          (drop.connectedMs === undefined ? '' : ` (connected at ${drop.connectedMs.toFixed(1)})`) +
          `, sent at ${drop.sentMs.toFixed(1)}, ${drop.error} at ${drop.failedMs.toFixed(1)}; ` +
          `service access log: ${drop.logged === null || drop.logged === undefined ? 'none' : drop.logged}` +
          (drop.cause === undefined ? '' : `; ${drop.cause}`),
      );
    }
    for (const answer of run.notServed) {
      out.push(
        `  - ${answer.id}: answered ${answer.status} at ${answer.failedMs.toFixed(1)} on a ` +
          `${answer.reused ? 'reused' : 'fresh'} connection` +
          (answer.connectedMs === undefined
            ? ''
            : ` (connected at ${answer.connectedMs.toFixed(1)})`) +
          `, sent at ${answer.sentMs.toFixed(1)}; service access log: ${answer.logged ?? 'none'}`,
      );
    }
  }
  return out;
}

function perRun(results: readonly RunResult[]): string {
  return markdownTable(
    [
      'server',
      'model',
      'round',
      'requests',
      'ok',
      'dropped',
      'fresh',
      'reused',
      '503',
      'refused',
      'clients stopped ms',
      'exit ms',
      'exit',
      'why they stopped / errors',
    ],
    results.map((r) => [
      r.server,
      r.model,
      String(r.round),
      String(r.sent),
      String(r.ok),
      String(r.dropped),
      String(r.resetsFresh),
      String(r.resetsReused),
      String(r.s503),
      String(r.refused),
      r.stopMs === undefined ? '-' : r.stopMs.toFixed(0),
      r.exitMs.toFixed(0),
      exitLabel(r),
      `${r.stopReason}; ${
        Object.entries(r.errorCodes)
          .map(([code, n]) => `${code} ${n}`)
          .join(', ') || 'no errors'
      }`,
    ]),
  );
}

function versionOf(name: string): string {
  try {
    const file = path.join(packageRoot(), 'node_modules', name, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? '?';
  } catch {
    return '?';
  }
}

function labelsWithVersions(): Map<string, string> {
  const labels = new Map<string, string>();
  for (const server of SERVERS) {
    const versions = server.packages.map((name) => `${name} ${versionOf(name)}`).join(', ');
    labels.set(server.id, `${server.label} (${versions})`);
  }
  return labels;
}

function selected<T extends string>(raw: string | undefined, all: readonly T[]): T[] {
  if (raw === undefined || raw.trim() === '') return [...all];
  const wanted = raw.split(',').map((s) => s.trim());
  const unknown = wanted.filter((w) => !all.includes(w as T));
  if (unknown.length > 0)
    throw new Error(`unknown: ${unknown.join(', ')} (known: ${all.join(', ')})`);
  return all.filter((item) => wanted.includes(item));
}

// ---------------------------------------------------------------------------------------------

export async function runDrill(): Promise<number> {
  const overall = setTimeout(() => {
    console.error(`bench drill: still running after ${TOTAL_TIMEOUT_MS} ms, stopping everything`);
    killChildren();
    process.exit(1);
  }, TOTAL_TIMEOUT_MS);
  overall.unref();
  process.on('exit', killChildren);

  const runs = intFromEnv('BENCH_DRILL_RUNS', 3);
  const servers = selected(
    process.env.BENCH_DRILL_SERVERS,
    SERVERS.map((s) => s.id),
  ).map((id) => SERVERS.find((s) => s.id === id) as ServerDef);
  const models = selected<Model>(process.env.BENCH_DRILL_MODELS, ['lb', 'blind']);
  const write = process.env.BENCH_DRILL_WRITE !== '0';
  const startedAt = performance.now();
  const date = new Date();
  const cpu = (os.cpus()[0]?.model ?? 'unknown CPU').trim();
  const machine =
    `node ${process.version} | ${cpu} | ${os.cpus().length} cores | load average ` +
    `${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at the start | ${date.toISOString()}`;
  console.log(machine);
  console.log(
    `shutdown drill: ${CONNECTIONS} busy keep-alive connections, GET ${DRILL_PATH} (${DRILL_ROUTE_MS} ms), ` +
      `SIGTERM after ${LOAD_BEFORE_SIGNAL_MS} ms of load; ${runs} runs per server and model ` +
      `(server order reversed every other round); idle connections: ${BENCH_IDLE}`,
  );
  console.log('');

  const labels = labelsWithVersions();
  const results: RunResult[] = [];
  const problems: string[] = [];
  for (let round = 1; round <= runs; round += 1) {
    const order = round % 2 === 1 ? servers : [...servers].reverse();
    for (const server of order) {
      for (const model of round % 2 === 1 ? models : [...models].reverse()) {
        try {
          const result = await runOnce(server, model, round);
          results.push(result);
          console.log(
            `round ${round} ${server.id} ${model}: ${result.sent} requests, ${result.dropped} dropped ` +
              `(${result.resetsFresh} fresh, ${result.resetsReused} reused), ${result.s503} 503, ` +
              `${result.refused} refused, exit ${exitLabel(result)} at ${result.exitMs.toFixed(0)} ms`,
          );
        } catch (error) {
          problems.push(`round ${round} ${server.id} ${model}: ${errorText(error)}`);
          console.log(`round ${round} ${server.id} ${model}: PROBLEM ${errorText(error)}`);
          killChildren();
        }
      }
    }
  }
  console.log('');
  const rows = aggregate(results, labels);
  const main = table(rows);
  console.log(main);
  console.log('');
  const goalLines = goals(results);
  console.log(goalLines.join('\n'));
  const dropLines = serviceDrops(results);
  if (dropLines.length > 0) {
    console.log('');
    console.log('ops-service drops (times in ms after the signal):');
    console.log(dropLines.join('\n'));
  }
  for (const problem of problems) console.log(`- PROBLEM: ${problem}`);
  const seconds = (performance.now() - startedAt) / 1000;
  console.log(`- drill run: ${seconds.toFixed(1)} s`);

  if (write) {
    const command = [
      ...['BENCH_DRILL_RUNS', 'BENCH_DRILL_SERVERS', 'BENCH_DRILL_MODELS', 'BENCH_DRILL_IDLE']
        .filter((name) => (process.env[name] ?? '') !== '')
        .map((name) => `${name}=${process.env[name]}`),
      'npm run bench -- drill',
    ].join(' ');
    const { writeDrillResults } = await import('./drill-report.js');
    await writeDrillResults({
      machine,
      command,
      seconds,
      idle: BENCH_IDLE,
      runs,
      exitGoalMs: EXIT_GOAL_MS,
      table: main,
      goals: goalLines,
      serviceDrops: dropLines,
      perRun: perRun(results),
      problems,
      rows,
      results,
      setups: servers.map((s) => ({ label: labels.get(s.id) ?? s.label, setup: s.setup })),
    });
  }
  clearTimeout(overall);
  return problems.length === 0 ? 0 : 1;
}

export type { RunResult, DropDetail, Model };
