// What the bench entry points share (run.ts, rate-limit.ts): environment knobs, child processes
// that never outlive the orchestrator, deadlines, starting and stopping a server child, one run of
// the load generator (load.ts) and what it measured, and the markdown table.
import { type ChildProcess, fork } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import {
  type CpuReport,
  isListeningMessage,
  isLoadResult,
  type LoadJob,
  type LoadResult,
} from './protocol';

/** For a server child to report its port (and for /ready to answer 200, when waited for). */
export const START_TIMEOUT_MS = 20_000;
/** For a server child to exit after SIGTERM, before SIGKILL. */
const STOP_TIMEOUT_MS = 8_000;

/** What one load run measured: the server's CPU per request, throughput, latency, RSS. */
export interface Measured {
  readonly cpuMicrosPerRequest: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly rssMb: number;
}

export function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

/** `name`'s value, "NAME=value NAME=value", as settings (`NAME=` sets NAME empty). */
export function envSettingsFromEnv(name: string): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const pair of (process.env[name] ?? '').split(/\s+/).filter(Boolean)) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`${name}: "${pair}" is not NAME=value`);
    settings[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return settings;
}

// ---------------------------------------------------------------------------------------------
// Child processes: tracked, so that none outlives the bench whatever happens.

const children = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function killAll(): void {
  for (const child of children) child.kill('SIGKILL');
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves with `work`, or rejects after `ms` (the timer never holds the process). */
export function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// The server's stdout: a pipe that is read and thrown away, as a container runtime reads a
// container's log stream. Only lines, and warn/error lines, are counted (for the notes).

const NEEDLES = [Buffer.from('"level":"warn"'), Buffer.from('"level":"error"')];
const LONGEST_NEEDLE = Math.max(...NEEDLES.map((needle) => needle.length));

export class LogPipe {
  lines = 0;
  warnOrError = 0;
  private tail = Buffer.alloc(0);

  take(chunk: Buffer): void {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) this.lines += 1;
    const text = this.tail.length === 0 ? chunk : Buffer.concat([this.tail, chunk]);
    for (const needle of NEEDLES) {
      for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + 1)) {
        this.warnOrError += 1;
      }
    }
    // Shorter than a needle: a match split across two chunks is found once, never twice.
    this.tail = Buffer.from(text.subarray(Math.max(0, text.length - LONGEST_NEEDLE + 1)));
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

export interface RunningServer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly logs: LogPipe;
  stderr(): string;
}

function serverExecArgv(): string[] {
  return (process.env.BENCH_SERVER_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
}

export interface ServerSpec {
  readonly entry: string;
  readonly env: NodeJS.ProcessEnv;
  readonly args?: readonly string[];
  /** Wait for GET /ready to answer 200 (the service) after it reports its port. */
  readonly waitReady: boolean;
  /** Node flags of this server, after BENCH_SERVER_NODE_OPTIONS'. */
  readonly execArgv?: readonly string[];
}

export async function startServer(spec: ServerSpec): Promise<RunningServer> {
  const child = track(
    fork(path.join(__dirname, spec.entry), [...(spec.args ?? [])], {
      env: spec.env,
      execArgv: [...serverExecArgv(), ...(spec.execArgv ?? [])],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    }),
  );
  const logs = new LogPipe();
  child.stdout?.on('data', (chunk: Buffer) => logs.take(chunk));
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });

  const listening = new Promise<number>((resolve, reject) => {
    child.on('message', (message: unknown) => {
      if (isListeningMessage(message)) resolve(message.port);
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`${spec.entry} exited (${code ?? signal}) at startup: ${stderr}`)),
    );
  });
  try {
    const port = await within(listening, START_TIMEOUT_MS, `${spec.entry} listening`);
    if (spec.waitReady) await waitReady(port, START_TIMEOUT_MS);
    return { child, port, logs, stderr: () => stderr };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

/** One GET on a fresh connection (agent: false), closed after the answer. */
function probe(port: number, urlPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.setTimeout(2_000, () => req.destroy(new Error('probe timeout')));
  });
}

async function waitReady(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let status = 0;
  while (Date.now() < deadline) {
    status = await probe(port, '/ready').catch(() => 0);
    if (status === 200) return;
    await pause(50);
  }
  throw new Error(`GET /ready answered ${status}, not 200, for ${timeoutMs} ms`);
}

/** SIGTERM (the runtime's graceful path: delay, drain, flush), SIGKILL after STOP_TIMEOUT_MS. */
export async function stopServer(server: RunningServer): Promise<void> {
  if (hasExited(server.child)) return;
  const exited = new Promise<void>((resolve) => server.child.once('exit', () => resolve()));
  server.child.kill('SIGTERM');
  try {
    await within(exited, STOP_TIMEOUT_MS, 'server stop');
  } catch {
    server.child.kill('SIGKILL');
    await exited;
  }
}

// ---------------------------------------------------------------------------------------------
// Load

export function runLoad(job: LoadJob): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = track(
      fork(path.join(__dirname, 'load.js'), [JSON.stringify(job)], {
        env: { PATH: process.env.PATH },
        execArgv: [],
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      }),
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    let result: LoadResult | undefined;
    // The load generator stops itself at job.timeoutMs; this is the backstop.
    const timer = setTimeout(() => child.kill('SIGKILL'), job.timeoutMs + 5_000);
    child.on('message', (message: unknown) => {
      if (isLoadResult(message)) result = message;
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (result !== undefined) resolve(result);
      else
        reject(new Error(`load generator exited (${code ?? signal}) without a result: ${stderr}`));
    });
  });
}

const cpuMicros = (report: CpuReport): number => report.userMicros + report.systemMicros;

/** Every measured response must have `status`; anything else is a PROBLEM. */
export function checkStatuses(
  what: string,
  result: LoadResult,
  status: number,
  problems: string[],
): void {
  const ok = result.statuses[String(status)] ?? 0;
  if (ok !== result.count || result.errors > 0) {
    problems.push(
      `${what}: ${ok}/${result.count} answered ${status} ` +
        `(statuses ${JSON.stringify(result.statuses)}, ${result.errors} without a response)`,
    );
  }
}

export function measuredOf(result: LoadResult): Measured {
  return {
    cpuMicrosPerRequest: (cpuMicros(result.after) - cpuMicros(result.before)) / result.count,
    requestsPerSecond: result.count / (result.elapsedMs / 1000),
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    rssMb: result.after.rssBytes / (1024 * 1024),
  };
}

// ---------------------------------------------------------------------------------------------
// Figures and output

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? Number.NaN) + (sorted[middle] ?? Number.NaN)) / 2;
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** The first two columns left-aligned, the others (numbers) right-aligned. */
export function markdownTable(header: readonly string[], lines: readonly string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((cells) => (cells[column] ?? '').length)),
  );
  const render = (cells: readonly string[]): string =>
    `| ${cells
      .map((cell, column) => {
        const width = widths[column] ?? 0;
        return column < 2 ? cell.padEnd(width) : cell.padStart(width);
      })
      .join(' | ')} |`;
  const rule = `|${widths.map((width, column) => (column < 2 ? `-${'-'.repeat(width)}-` : `-${'-'.repeat(width)}:`)).join('|')}|`;
  return [render(header), rule, ...lines.map(render)].join('\n');
}

/**
 * Runs a bench entry point: every child is killed at exit, SIGINT/SIGTERM end the run through
 * `abort` (which cleans up what the entry made, then exits), and an overall deadline backs up the
 * per-step ones. `main` gets the deadline's cancel, for a sub-command with its own (the drill).
 */
export function runBenchEntry(
  main: (cancelDeadline: () => void) => Promise<number>,
  options: { readonly totalTimeoutMs: number; readonly abort: (code: number) => void },
): void {
  const { totalTimeoutMs, abort } = options;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => abort(130));
  }
  const overall = setTimeout(() => {
    console.error(`bench: still running after ${totalTimeoutMs} ms, stopping everything`);
    abort(1);
  }, totalTimeoutMs);
  main(() => clearTimeout(overall)).then(
    (code) => {
      clearTimeout(overall);
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error);
      abort(1);
    },
  );
}
