// A real HAProxy (Debian's haproxy 2.6 at /usr/sbin/haproxy, or HAPROXY_BIN) as a child process,
// running the reference configuration deploy/haproxy/haproxy.cfg unchanged: the addresses come
// from the environment (LB_BIND, REPLICA_1..3, HAPROXY_STATS_SOCKET). Server states are read from
// the runtime API socket (`show stat`), the way an operator would with socat.
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { ROOT } from './service-process';

export const HAPROXY_BIN = process.env.HAPROXY_BIN ?? '/usr/sbin/haproxy';
export const HAPROXY_CONFIG = path.join(ROOT, 'deploy', 'haproxy', 'haproxy.cfg');
/** The backend of the reference configuration and its servers, in REPLICA_n order. */
export const HAPROXY_BACKEND = 'ops_service';
export const HAPROXY_SERVERS = ['r1', 'r2', 'r3'] as const;
export type ServerName = (typeof HAPROXY_SERVERS)[number];

/** One row of `show stat` (the CSV of the runtime API), by column name. */
export type StatRow = Record<string, string>;

export interface ServerState {
  readonly name: string;
  /** `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (coming up), `MAINT`, `NOLB`, ... */
  readonly status: string;
  /** The last check's status, e.g. `L7OK`, `L7STS` (wrong status), `L4CON` (refused). */
  readonly checkStatus: string;
  /** Times HAProxy picked this server (lbtot). */
  readonly picked: number;
  /** Connection errors (econ) and response errors (eresp) toward this server. */
  readonly connectionErrors: number;
  readonly responseErrors: number;
  /** UP -> DOWN transitions so far (chkdown). */
  readonly downs: number;
}

export interface Haproxy {
  readonly child: ChildProcess;
  /** The frontend's port on 127.0.0.1. */
  readonly port: number;
  readonly socketPath: string;
  /** What HAProxy wrote (its log: server state changes, failed requests), stdout and stderr. */
  output(): string;
  /** A runtime API command; resolves with its answer. */
  command(line: string): Promise<string>;
  stat(): Promise<StatRow[]>;
  servers(): Promise<ServerState[]>;
  /**
   * Polls `show stat` until `server`'s status satisfies `wanted`; resolves with the state and how
   * long it took. Rejects after `timeoutMs` with what was seen last.
   */
  waitForServer(
    server: string,
    wanted: (status: string) => boolean,
    timeoutMs?: number,
  ): Promise<{ state: ServerState; ms: number }>;
  /** Stops HAProxy (SIGTERM, SIGKILL after 2 s); resolves with its exit code. Idempotent. */
  stop(): Promise<number | null>;
}

export interface HaproxyOptions {
  /** `address:port` of the replicas' main listeners, REPLICA_1..REPLICA_n in order. */
  readonly replicas: readonly string[];
  /** Port for LB_BIND on 127.0.0.1. */
  readonly port: number;
  readonly config?: string;
  readonly readyTimeoutMs?: number;
}

/** Throws a clear error when the HAProxy binary is missing. */
export function assertHaproxyInstalled(bin = HAPROXY_BIN): void {
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(
      `HAProxy is not installed at ${bin}: these drills need a real HAProxy 2.6 or later ` +
        `(Debian/Ubuntu: apt-get install haproxy), or set HAPROXY_BIN to its path`,
    );
  }
}

/** Parses the `show stat` CSV: a `# pxname,svname,...` header line, then one line per row. */
export function parseStat(csv: string): StatRow[] {
  const lines = csv.split('\n').filter((line) => line.trim() !== '');
  const header = lines.shift();
  if (header === undefined || !header.startsWith('# ')) {
    throw new Error(`unexpected show stat answer: ${csv.slice(0, 200)}`);
  }
  const columns = header.slice(2).split(',');
  return lines.map((line) => {
    const cells = line.split(',');
    return Object.fromEntries(columns.map((column, index) => [column, cells[index] ?? '']));
  });
}

function stateOf(row: StatRow): ServerState {
  const number = (column: string): number => Number(row[column] ?? '') || 0;
  return {
    name: row.svname ?? '',
    status: row.status ?? '',
    checkStatus: row.check_status ?? '',
    picked: number('lbtot'),
    connectionErrors: number('econ'),
    responseErrors: number('eresp'),
    downs: number('chkdown'),
  };
}

function ask(socketPath: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let answer = '';
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.end(`${line}\n`));
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.once('error', reject);
    socket.once('close', () => resolve(answer));
  });
}

export async function startHaproxy(options: HaproxyOptions): Promise<Haproxy> {
  assertHaproxyInstalled();
  const socketPath = path.join(os.tmpdir(), `haproxy-${randomBytes(4).toString('hex')}.sock`);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    LB_BIND: `127.0.0.1:${options.port}`,
    HAPROXY_STATS_SOCKET: socketPath,
  };
  options.replicas.forEach((address, index) => {
    env[`REPLICA_${index + 1}`] = address;
  });
  const child = spawn(HAPROXY_BIN, ['-db', '-f', options.config ?? HAPROXY_CONFIG], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk: string) => {
    output += chunk;
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal === null ? null : 128);
      resolve(exitCode);
    });
    // Could not be started at all (no exit event follows).
    child.once('error', (error) => {
      output += `\nspawn error: ${error.message}`;
      exitCode = null;
      resolve(exitCode);
    });
  });

  const command = (line: string): Promise<string> => ask(socketPath, line);
  const stat = async (): Promise<StatRow[]> => parseStat(await command('show stat'));
  const servers = async (): Promise<ServerState[]> =>
    (await stat())
      .filter(
        (row) =>
          row.pxname === HAPROXY_BACKEND && !['BACKEND', 'FRONTEND'].includes(row.svname ?? ''),
      )
      .map(stateOf);

  let stopping: Promise<number | null> | undefined;
  const stop = (): Promise<number | null> => {
    stopping ??= (async () => {
      if (exitCode === undefined) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 2_000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(socketPath, { force: true });
      return exitCode ?? null;
    })();
    return stopping;
  };

  // Answering on the runtime API with its frontend OPEN (listening), or a clear failure. (No
  // probe connection to the frontend: HAProxy would log it as a bad request.)
  const deadline = Date.now() + (options.readyTimeoutMs ?? 5_000);
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`haproxy exited with code ${String(exitCode)} at startup:\n${output}`);
    }
    const rows = await stat().catch(() => []);
    if (rows.some((row) => row.svname === 'FRONTEND' && row.status === 'OPEN')) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`haproxy did not listen on 127.0.0.1:${options.port} in time:\n${output}`);
    }
    await delay(20);
  }

  return {
    child,
    port: options.port,
    socketPath,
    output: () => output,
    command,
    stat,
    servers,
    async waitForServer(server, wanted, timeoutMs = 10_000) {
      const startedAt = Date.now();
      let last: ServerState | undefined;
      for (;;) {
        last = (await servers()).find((state) => state.name === server);
        if (last !== undefined && wanted(last.status)) {
          return { state: last, ms: Date.now() - startedAt };
        }
        if (Date.now() - startedAt > timeoutMs) {
          throw new Error(
            `haproxy server ${server} not in the wanted state within ${timeoutMs} ms; last: ` +
              `${JSON.stringify(last)}; haproxy log:\n${output.slice(-3000)}`,
          );
        }
        await delay(25);
      }
    },
    stop,
  };
}
