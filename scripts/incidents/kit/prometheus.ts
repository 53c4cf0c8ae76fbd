// A real Prometheus (Debian's `prometheus` package) as a child process, with the repository's
// scrape config pointed at one running service and its rule files, and a few calls of its HTTP
// API. Used by the scrape test (test/deploy/prometheus-scrape.process.test.ts) and by the
// incident drills, which report which alerts of deploy/prometheus/rules went pending or fired.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { freePort } from './ports';
import { ROOT } from './service-process';
import type { TempDir } from './temp-dir';

export const PROMETHEUS_CONFIG = path.join(ROOT, 'deploy', 'prometheus', 'prometheus.yml');
/** The scrape job of the repository's config, and the `job` label of every series. */
export const JOB = 'ops-service';

type Dict = Record<string, unknown>;

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The repository's config for a drill or a test: 1 s intervals, the ops-service job pointed at `target`,
 * rule_files made absolute (they are relative to the repository's config file).
 */
export function testConfig(target: string): string {
  const config: unknown = parseYaml(readFileSync(PROMETHEUS_CONFIG, 'utf8'));
  if (!isDict(config)) throw new Error(`${PROMETHEUS_CONFIG}: not a mapping`);
  const jobs = Array.isArray(config.scrape_configs) ? (config.scrape_configs as unknown[]) : [];
  const job = jobs.find((j): j is Dict => isDict(j) && j.job_name === JOB);
  if (job === undefined) throw new Error(`${PROMETHEUS_CONFIG}: no scrape job ${JOB}`);
  const ruleFiles = Array.isArray(config.rule_files) ? (config.rule_files as unknown[]) : [];
  return stringifyYaml({
    ...config,
    global: {
      ...(isDict(config.global) ? config.global : {}),
      scrape_interval: '1s',
      evaluation_interval: '1s',
    },
    rule_files: ruleFiles.map((file) =>
      path.resolve(path.dirname(PROMETHEUS_CONFIG), String(file)),
    ),
    scrape_configs: [{ ...job, static_configs: [{ targets: [target] }] }],
  });
}

// ---------------------------------------------------------------------------------------------
// Prometheus as a child process, and its HTTP API

export interface Prometheus {
  readonly port: number;
  readonly output: () => string;
  stop(): Promise<void>;
}

export async function startPrometheus(dir: TempDir, config: string): Promise<Prometheus> {
  const port = await freePort();
  let output = '';
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${dir.write('prometheus.yml', config)}`,
      `--storage.tsdb.path=${path.join(dir.path, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (error) => {
      output += `cannot run prometheus (Debian package prometheus; .ci/run installs it): ${error.message}\n`;
      resolve();
    });
  });
  const prometheus: Prometheus = {
    port,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  const deadline = Date.now() + 15_000;
  while ((await httpGet(port, '/-/ready').catch(() => undefined))?.status !== 200) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await prometheus.stop();
      throw new Error(`prometheus did not become ready:\n${output}`);
    }
    await delay(100);
  }
  return prometheus;
}

export function httpGet(
  port: number,
  pathAndQuery: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: pathAndQuery }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .once('error', reject);
  });
}

export interface ApiAnswer<T> {
  readonly status: string;
  readonly data: T;
  readonly error?: string;
}

export async function api<T>(
  port: number,
  endpoint: string,
  params: Record<string, string> = {},
): Promise<T> {
  const query = new URLSearchParams(params).toString();
  const res = await httpGet(port, `/api/v1/${endpoint}${query === '' ? '' : `?${query}`}`);
  const answer = JSON.parse(res.body) as ApiAnswer<T>;
  if (answer.status !== 'success') throw new Error(`${endpoint}: ${res.body}`);
  return answer.data;
}

export type Labels = Readonly<Record<string, string>>;
export interface VectorSample {
  readonly metric: Labels;
  readonly value: [number, string];
}
export interface Alert {
  readonly labels: Labels;
  readonly state: string;
}
export interface RuleInfo {
  readonly name: string;
  readonly type: 'alerting' | 'recording';
  readonly health: string;
  readonly lastError?: string;
}

export const query = (port: number, promql: string): Promise<VectorSample[]> =>
  api<{ result: VectorSample[] }>(port, 'query', { query: promql }).then((d) => d.result);

export const series = (port: number, match: string): Promise<Labels[]> =>
  api<Labels[]>(port, 'series', { 'match[]': match });

/** Polls until `check` returns something other than undefined; the error says what was last seen. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last error: ${String(last)}`,
      );
    }
    await delay(100);
  }
}

export const has = (labels: Labels, wanted: Labels): boolean =>
  Object.entries(wanted).every(([key, value]) => labels[key] === value);
