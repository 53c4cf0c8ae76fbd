// Spawns the real, built service (`node dist/main.js` or a test entry point) as a child process
// and reads its structured log lines, for whole-process tests, shutdown drills and the incident
// drills (`npm run incident`). Shared by jest (from scripts/) and the compiled script (from
// dist/scripts/), so the repository root is found from package.json, not from this file's depth.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { packageRoot } from '../../../src/config/load-config';

export const ROOT = packageRoot();
/** The production entry point, `node dist/main.js`. */
export const MAIN = path.join(ROOT, 'dist', 'main.js');
/** The real runtime with the orders module plus test-only routes (test/fixtures/drill-service.ts). */
export const DRILL_SERVICE = path.join(ROOT, 'dist-test', 'test', 'fixtures', 'drill-service.js');

export type LogLine = Record<string, unknown> & { event: string; ts: string; level: string };

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Parsed JSON log lines so far, in order. */
  readonly lines: LogLine[];
  /** Raw stdout lines that were not JSON (pretty format, or anything unexpected). */
  readonly rawStdout: string[];
  stderr(): string;
  /** Resolves with the first line of `event` (already written or still to come). */
  waitForEvent(event: string, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (or 128 + signal number when killed by a signal). */
  exited(timeoutMs?: number): Promise<number>;
  events(): string[];
  kill(signal: NodeJS.Signals): void;
}

export interface SpawnOptions {
  readonly env?: Record<string, string | undefined>;
  readonly script?: string;
  readonly args?: readonly string[];
  /** Node's own options, before the script (V8 flags, which NODE_OPTIONS does not take). */
  readonly nodeArgs?: readonly string[];
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** A minimal environment: nothing from the test runner's shell leaks into the service's config. */
export function baseEnv(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    APP_ENV: 'test',
  };
}

export function spawnService(options: SpawnOptions = {}): ServiceProcess {
  const env: Record<string, string> = { ...baseEnv() };
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), options.script ?? MAIN, ...(options.args ?? [])],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: LogLine[] = [];
  const rawStdout: string[] = [];
  let stderr = '';
  let pending = '';
  const waiters: { event: string; resolve: (line: LogLine) => void }[] = [];

  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    pending += chunk;
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
      let parsed: LogLine | undefined;
      try {
        parsed = JSON.parse(text) as LogLine;
      } catch {
        rawStdout.push(text);
        continue;
      }
      lines.push(parsed);
      for (const waiter of waiters.filter((w) => w.event === parsed.event)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(parsed);
      }
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });

  const exit = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve(code ?? 128 + (signal === null ? 0 : (SIGNAL_NUMBERS[signal] ?? 0)));
    });
  });

  const describe = (): string =>
    `events so far: ${lines.map((l) => l.event).join(', ') || '(none)'}; stderr: ${stderr.slice(-2000) || '(empty)'}`;

  return {
    child,
    pid: child.pid ?? -1,
    lines,
    rawStdout,
    stderr: () => stderr,
    events: () => lines.map((line) => line.event),
    kill: (signal) => {
      child.kill(signal);
    },
    waitForEvent(event, timeoutMs = 10_000) {
      const seen = lines.find((line) => line.event === event);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<LogLine>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`no ${event} within ${timeoutMs} ms; ${describe()}`));
        }, timeoutMs);
        const onExit = (): void => {
          // Give the stdout pipe a moment to deliver the last lines before giving up.
          setTimeout(() => {
            const late = lines.find((line) => line.event === event);
            clearTimeout(timer);
            if (late !== undefined) resolve(late);
            else reject(new Error(`the process exited without ${event}; ${describe()}`));
          }, 50);
        };
        child.once('exit', onExit);
        waiters.push({
          event,
          resolve: (line) => {
            clearTimeout(timer);
            child.off('exit', onExit);
            resolve(line);
          },
        });
      });
    },
    exited(timeoutMs = 15_000) {
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`the process did not exit within ${timeoutMs} ms; ${describe()}`));
        }, timeoutMs);
        void exit.then((code) => {
          clearTimeout(timer);
          // Let the last buffered stdout lines arrive.
          setImmediate(() => resolve(code));
        });
      });
    },
  };
}

export interface Started {
  readonly service: ServiceProcess;
  readonly port: number;
  readonly opsPort: number;
}

function portOf(bind: unknown): number {
  const match = /:(\d+)$/.exec(String(bind));
  if (match?.[1] === undefined) throw new Error(`no port in bind ${String(bind)}`);
  return Number(match[1]);
}

/**
 * The one way tests start the service as a child process and wait until it is ready: the drill
 * entry point by default (the real runtime and orders module, plus test-only routes), `MAIN` for
 * the production one. Tests of a process that must not become ready use `spawnService`.
 */
export async function startService(
  env: Record<string, string> = {},
  options: { script?: string; readyTimeoutMs?: number; nodeArgs?: readonly string[] } = {},
): Promise<Started> {
  const service = spawnService({
    script: options.script ?? DRILL_SERVICE,
    ...(options.nodeArgs === undefined ? {} : { nodeArgs: options.nodeArgs }),
    env: { LOG_LEVEL: 'info', ...env },
  });
  let ready: LogLine;
  try {
    ready = await service.waitForEvent('service.ready', options.readyTimeoutMs ?? 10_000);
  } catch (error) {
    // Never ready: no caller holds the process, so it must not outlive the test.
    service.kill('SIGKILL');
    throw error;
  }
  return { service, port: portOf(ready.bind), opsPort: portOf(ready.ops_bind) };
}
