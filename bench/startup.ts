// `npm run bench -- startup`: how long the real service (`node dist/main.js`) takes from its spawn
// to the first 200 of GET /ready on PostgreSQL, and where that time goes (method and figures:
// bench/README.md). Goal (issue 16): <= 350 ms, median of the restarts.
//
// One database of its own (bench-db.ts), created empty: the first run applies the migrations
// ("first start, empty database", reported apart); every later run is a restart on the migrated
// database, which the goal is about. Each run spawns the service with a production environment
// (APP_ENV=production, JSON logs at info, DATABASE_URL, NATS_URL, REDIS_URL, an OTLP endpoint that
// answers, AUTH_MODE=jwt with the first key set fetched from an AUTH_JWKS_URL served here), polls
// GET /ready on the main listener every POLL_MS on a fresh connection from the spawn on, then
// sends SIGTERM and checks the exit code is 0.
// Per run: spawn -> the first 200 of /ready; and from the `ts` of the service's own log lines
// (wall clock, the same as the spawn's): spawn -> first log line, -> db.connected,
// -> db.migrations_applied, -> service.ready. And node's own boot: `node -e 0`, timed alike.
// Knobs: BENCH_STARTUP_RUNS (7: one first start, then restarts), BENCH_STARTUP_ENV (extra
// "NAME=value" settings for the service, e.g. "NATS_URL= REDIS_URL=" to start without them),
// BENCH_STARTUP_NODE_OPTIONS (extra node flags for the service, e.g.
// "--cpu-prof --cpu-prof-dir=/tmp/prof"), BENCH_STARTUP_ENTRY (another build's main.js to start
// instead of this one's dist/main.js, e.g. an older commit's, for a before/after on the same
// machine; it runs from its own package folder), BENCH_DATABASE_ADMIN_URL, BENCH_STARTUP_NATS_URL
// (nats://127.0.0.1:4222), BENCH_STARTUP_REDIS_URL (redis://127.0.0.1:6379).
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEV_AUDIENCE, DEV_ISSUER, DEV_JWKS_FILE, DEV_TENANT_CLAIM } from '../scripts/dev-token';
import { packageRoot } from '../src/config/load-config';
import { ADMIN_URL, type BenchDatabase, createBenchDatabase, DB_TIMEOUT_MS } from './bench-db';
import {
  envSettingsFromEnv,
  errorText,
  fixed,
  intFromEnv,
  markdownTable,
  median,
  track,
  within,
} from './harness';
import { type BenchReceiver, startReceiver } from './receiver';

const RUNS = intFromEnv('BENCH_STARTUP_RUNS', 7);
const GOAL_MS = 350;
const POLL_MS = 5;
const PROBE_TIMEOUT_MS = 1_000;
const READY_TIMEOUT_MS = 20_000;
const EXIT_TIMEOUT_MS = 10_000;
const NODE_BOOT_RUNS = 7;
const HOST = '127.0.0.1';
const NATS_URL = process.env.BENCH_STARTUP_NATS_URL ?? 'nats://127.0.0.1:4222';
const REDIS_URL = process.env.BENCH_STARTUP_REDIS_URL ?? 'redis://127.0.0.1:6379';
const ENTRY = path.resolve(
  process.env.BENCH_STARTUP_ENTRY ?? path.join(packageRoot(), 'dist/main.js'),
);
/** The log events whose time since the spawn each run reports (the first line is the first). */
const MILESTONES = ['db.connected', 'db.migrations_applied', 'service.ready'] as const;

type Milestone = 'first log line' | (typeof MILESTONES)[number];

interface StartupRun {
  /** Spawn -> the first 200 of GET /ready. */
  readonly readyMs: number;
  /** CPU (user + system) of the service's main thread when /ready first answered 200 (Linux). */
  readonly cpuMs: number | undefined;
  /** Spawn -> each milestone, from the `ts` of the service's log lines. */
  readonly milestones: Partial<Record<Milestone, number>>;
  /** service.ready's own startup_ms (from the runtime's start, after config and imports). */
  readonly startupMs: number | undefined;
  readonly migrationsApplied: number | undefined;
  readonly exitCode: number | string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = http.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The development key set (deploy/auth/), served as an identity provider's JWKS URL would be. */
async function startJwksServer(): Promise<{ url: string; close(): Promise<void> }> {
  const body = readFileSync(path.join(packageRoot(), DEV_JWKS_FILE));
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${HOST}:${port}/.well-known/jwks.json`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Surroundings {
  readonly database: BenchDatabase;
  readonly otlpEndpoint: string;
  readonly jwksUrl: string;
}

/**
 * A production start (deploy/k8s/configmap.yaml and secret.yaml): APP_ENV=production, JWTs with a
 * JWKS URL, an OTLP collector, PostgreSQL, NATS and Redis. Two differences, both outside startup:
 * the listeners are on loopback and free ports, and SHUTDOWN_DELAY_MS is 0 (no load balancer
 * routes here, so each run's SIGTERM ends it at once).
 */
function serviceEnv(around: Surroundings, port: number, opsPort: number): NodeJS.ProcessEnv {
  return {
    // Nothing inherited but PATH: a developer's settings must not leak in.
    PATH: process.env.PATH,
    APP_ENV: 'production',
    HOST,
    PORT: String(port),
    OPS_HOST: HOST,
    OPS_PORT: String(opsPort),
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
    OTEL_SERVICE_NAME: 'ops-service',
    OTEL_EXPORTER_OTLP_ENDPOINT: around.otlpEndpoint,
    AUTH_MODE: 'jwt',
    AUTH_JWKS_URL: around.jwksUrl,
    AUTH_ISSUER: DEV_ISSUER,
    AUTH_AUDIENCE: DEV_AUDIENCE,
    AUTH_TENANT_CLAIM: DEV_TENANT_CLAIM,
    DATABASE_URL: around.database.url,
    NATS_URL,
    REDIS_URL,
    SHUTDOWN_DELAY_MS: '0',
    ...envSettingsFromEnv('BENCH_STARTUP_ENV'),
  };
}

/** One GET /ready on a fresh connection: its status, or 0 without an answer. */
function probeReady(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: HOST, port, path: '/ready', agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', () => resolve(0));
    req.setTimeout(PROBE_TIMEOUT_MS, () => req.destroy());
  });
}

/** The service's log lines as they arrive on its stdout. */
function collectLines(child: ChildProcess): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const part of parts) {
      try {
        lines.push(JSON.parse(part) as Record<string, unknown>);
      } catch {
        lines.push({ event: 'not-json', text: part });
      }
    }
  });
  return lines;
}

function exited(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode ?? child.signalCode ?? 'unknown');
      return;
    }
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
}

/**
 * utime + stime of `pid`'s main thread (the one that loads modules and runs JavaScript; not V8's
 * or libuv's helper threads) from /proc, in clock ticks of 10 ms; undefined off Linux.
 */
function cpuMsOf(pid: number | undefined): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    // The fields after the command name (which may hold spaces) in parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

function milestonesOf(
  lines: readonly Record<string, unknown>[],
  spawnedAt: number,
): StartupRun['milestones'] {
  const at = (line: Record<string, unknown> | undefined): number | undefined =>
    typeof line?.ts === 'string' ? Date.parse(line.ts) - spawnedAt : undefined;
  const out: Partial<Record<Milestone, number>> = { 'first log line': at(lines[0]) };
  for (const event of MILESTONES) out[event] = at(lines.find((line) => line.event === event));
  return out;
}

async function runOnce(around: Surroundings): Promise<StartupRun> {
  const [port, opsPort] = [await freePort(), await freePort()];
  const execArgv = (process.env.BENCH_STARTUP_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
  const spawnedAt = Date.now();
  const startedAt = performance.now();
  const child = track(
    spawn(process.execPath, [...execArgv, ENTRY], {
      cwd: path.dirname(path.dirname(ENTRY)),
      env: serviceEnv(around, port, opsPort),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const exit = exited(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  const lines = collectLines(child);
  try {
    let readyMs: number | undefined;
    let cpuMs: number | undefined;
    let gone = false;
    void exit.then(() => {
      gone = true;
    });
    while (readyMs === undefined) {
      if (gone) throw new Error(`the service exited before /ready answered 200: ${stderr}`);
      if (performance.now() - startedAt > READY_TIMEOUT_MS) {
        throw new Error(`GET /ready did not answer 200 within ${READY_TIMEOUT_MS} ms`);
      }
      const status = await probeReady(port);
      if (status === 200) {
        readyMs = performance.now() - startedAt;
        cpuMs = cpuMsOf(child.pid);
      } else await sleep(POLL_MS);
    }
    // The ready line may still be on its way through the pipe.
    const readyLine = async (): Promise<Record<string, unknown> | undefined> => {
      for (let i = 0; i < 100; i += 1) {
        const found = lines.find((line) => line.event === 'service.ready');
        if (found !== undefined) return found;
        await sleep(10);
      }
      return undefined;
    };
    const ready = await readyLine();
    const migrations = lines.find((line) => line.event === 'db.migrations_applied');
    child.kill('SIGTERM');
    const exitCode = await within(exit, EXIT_TIMEOUT_MS, 'exit after SIGTERM');
    return {
      readyMs,
      cpuMs,
      milestones: milestonesOf(lines, spawnedAt),
      startupMs: typeof ready?.startup_ms === 'number' ? ready.startup_ms : undefined,
      migrationsApplied: typeof migrations?.count === 'number' ? migrations.count : undefined,
      exitCode,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** `node -e 0`, spawned and waited for as the service is: node's own share of every start. */
async function nodeBootMs(): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < NODE_BOOT_RUNS; i += 1) {
    const startedAt = performance.now();
    await exited(track(spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' })));
    times.push(performance.now() - startedAt);
  }
  return times;
}

const ms = (value: number | undefined): string => (value === undefined ? 'n/a' : fixed(value, 0));

function spread(values: readonly number[]): string {
  if (values.length === 0) return 'n/a';
  return `${ms(median(values))} (${ms(Math.min(...values))}-${ms(Math.max(...values))})`;
}

function defined(values: readonly (number | undefined)[]): number[] {
  return values.filter((value): value is number => value !== undefined);
}

function report(first: StartupRun | undefined, restarts: readonly StartupRun[], boot: number[]) {
  const rows: string[][] = [];
  const row = (label: string, runs: readonly StartupRun[], goal: boolean): void => {
    if (runs.length === 0) return;
    const ready = runs.map((run) => run.readyMs);
    const at = (name: Milestone): string =>
      spread(defined(runs.map((run) => run.milestones[name])));
    const holds = median(ready) <= GOAL_MS ? 'HOLDS' : 'MISSED';
    rows.push([
      label,
      String(runs.length),
      spread(ready),
      goal ? `<= ${GOAL_MS}` : '',
      goal ? holds : '',
      at('first log line'),
      at('db.connected'),
      at('db.migrations_applied'),
      at('service.ready'),
      spread(defined(runs.map((run) => run.startupMs))),
      spread(defined(runs.map((run) => run.cpuMs))),
    ]);
  };
  row('first start, empty database', first === undefined ? [] : [first], false);
  row('restart, migrated database', restarts, true);
  console.log(
    markdownTable(
      [
        'scenario',
        'runs',
        'spawn -> /ready 200 ms',
        'goal ms',
        'goal',
        'first log line ms',
        'db.connected ms',
        'db.migrations_applied ms',
        'service.ready ms',
        'startup_ms (runtime)',
        'main thread CPU ms at ready',
      ],
      rows,
    ),
  );
  console.log('');
  console.log(
    `- node's own boot (\`node -e 0\`, spawn to exit, ${boot.length} runs): ${spread(boot)} ms`,
  );
  const all = [...(first === undefined ? [] : [first]), ...restarts];
  console.log(`- spawn -> /ready per run: ${all.map((run) => ms(run.readyMs)).join(', ')} ms`);
  console.log(
    `- migrations applied per run: ${all.map((run) => String(run.migrationsApplied ?? 'n/a')).join(', ')}`,
  );
  console.log(`- exit codes after SIGTERM: ${all.map((run) => String(run.exitCode)).join(', ')}`);
}

async function withSurroundings<T>(
  onDatabase: (database: BenchDatabase | undefined) => void,
  work: (around: Surroundings) => Promise<T>,
): Promise<T> {
  const database = await within(createBenchDatabase(ADMIN_URL), DB_TIMEOUT_MS, 'CREATE DATABASE');
  onDatabase(database);
  let receiver: BenchReceiver | undefined;
  let jwks: Awaited<ReturnType<typeof startJwksServer>> | undefined;
  try {
    receiver = await startReceiver();
    jwks = await startJwksServer();
    return await work({ database, otlpEndpoint: receiver.endpoint, jwksUrl: jwks.url });
  } finally {
    await jwks?.close();
    await receiver?.close();
    await within(database.drop(), DB_TIMEOUT_MS, 'DROP DATABASE');
    onDatabase(undefined);
  }
}

/** `onDatabase` learns the bench database while it exists (the orchestrator drops it on abort). */
export async function runStartup(
  onDatabase: (database: BenchDatabase | undefined) => void,
): Promise<number> {
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  console.log(
    `node ${process.version} | ${cpu} | ${os.cpus().length} cores | ${new Date().toISOString()} | ` +
      `${RUNS} starts of ${ENTRY} (APP_ENV=production, PostgreSQL, NATS, Redis, OTLP, JWKS URL), ` +
      `/ready polled every ${POLL_MS} ms`,
  );
  console.log('');
  const boot = await nodeBootMs();
  const problems: string[] = [];
  const runs = await withSurroundings(onDatabase, async (around) => {
    const done: StartupRun[] = [];
    for (let i = 0; i < RUNS; i += 1) {
      try {
        done.push(await runOnce(around));
      } catch (error) {
        problems.push(`run ${i + 1}: ${errorText(error)}`);
      }
    }
    return done;
  });
  const [first, ...restarts] = runs;
  if (first !== undefined && (first.migrationsApplied ?? 0) === 0) {
    problems.push('the first start applied no migrations: the database was not empty');
  }
  for (const [i, run] of restarts.entries()) {
    if (run.migrationsApplied !== 0) problems.push(`restart ${i + 1} applied migrations`);
  }
  for (const [i, run] of runs.entries()) {
    if (run.exitCode !== 0) problems.push(`run ${i + 1} exited ${String(run.exitCode)}, not 0`);
  }
  report(first, restarts, boot);
  for (const problem of problems) console.log(`- PROBLEM: ${problem}`);
  return problems.length === 0 ? 0 : 1;
}
