// `npm run bench -- profile`: where the CPU of one GET /bench/noop goes, layer by layer, for the
// baseline (p) and ops-service (b), (c) and (d) (method: bench/README.md#profile-cpu-per-layer).
// Per scenario, one server:
//   1. warm-up, then the measured load without a profiler: CPU µs/req from process.cpuUsage(), as
//      in the main table;
//   2. the same load again under `perf record -e cpu-clock -g` (Linux perf, on-CPU samples only,
//      kernel included; node runs with --perf-basic-prof so JIT frames have names);
//   3. each sample goes to the layer of the innermost frame that belongs to one (LAYERS below);
//      samples in no layer's code are Express's routing or Node.js/V8/kernel work of their own.
// A layer's µs/req is its share of the samples times the CPU µs/req of step 1 (the profiler's
// own overhead is left out of the figure, not out of the shares).
// Knobs: BENCH_PROFILE_SCENARIOS ("pbcd"), BENCH_REQUESTS (20000), BENCH_PROFILE_HZ (2000),
// BENCH_PROFILE_WRITE ("1": write bench/results/cpu-per-layer.{md,json,png}).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../src/config/load-config';
import {
  errorText,
  fixed,
  intFromEnv,
  markdownTable,
  measuredOf,
  runLoad,
  startServer,
  stopServer,
  within,
} from './harness';
import { NOOP_PATH } from './protocol';
import { type BenchReceiver, startReceiver } from './receiver';
import { writeFormatted } from './drill-report';
import { renderSvgPng } from './svg-png';

const REQUESTS = intFromEnv('BENCH_REQUESTS', 20_000);
const WARMUP = 10_000;
const CONCURRENCY = 50;
const HZ = intFromEnv('BENCH_PROFILE_HZ', 2_000);
const LOAD_TIMEOUT_MS = 120_000;
/** As in the main table: the batch span processor exports every second. */
const SETTLE_EXPORTING_MS = 1_500;
const SETTLE_MS = 100;

export interface ProfileScenario {
  readonly id: 'p' | 'b' | 'c' | 'd';
  readonly label: string;
  readonly entry: 'bare-express-preshaped.js' | 'bench-service.js';
  readonly otlp: boolean;
  readonly samplerArg?: string;
}

const SCENARIOS: readonly ProfileScenario[] = [
  {
    id: 'p',
    label: '(p) bare Express 5 + keepShapes',
    entry: 'bare-express-preshaped.js',
    otlp: false,
  },
  { id: 'b', label: '(b) ops-service, no OTLP endpoint', entry: 'bench-service.js', otlp: false },
  {
    id: 'c',
    label: '(c) ops-service, sampling 0.1 + OTLP',
    entry: 'bench-service.js',
    otlp: true,
    samplerArg: '0.1',
  },
  {
    id: 'd',
    label: '(d) ops-service, sampling 1.0 + OTLP',
    entry: 'bench-service.js',
    otlp: true,
    samplerArg: '1.0',
  },
];

/** The layers, innermost first: a sample belongs to the first layer one of its frames is in. */
export const LAYERS: ReadonlyArray<{ readonly name: string; readonly code: RegExp }> = [
  {
    name: 'request scope (AsyncLocalStorage hooks)',
    code: /node:internal\/async_hooks|async_local_storage|\/telemetry\/request-scope\.js/,
  },
  {
    name: 'access log',
    code: /\/telemetry\/(logger|line-batcher|log-window)\.js|node_modules\/(winston|winston-transport|logform)\//,
  },
  {
    name: 'metrics',
    code: /@opentelemetry\/sdk-metrics\/|\/telemetry\/(metrics|request-durations)\.js/,
  },
  {
    name: 'span export (batch, OTLP/gRPC)',
    code: /@opentelemetry\/(exporter-trace-otlp-grpc|otlp-[a-z-]+)\/|node_modules\/(@grpc|protobufjs)\/|BatchSpanProcessor|\/telemetry\/export-ledger\.js/,
  },
  {
    name: 'spans and request observation',
    code: /@opentelemetry\/(sdk-trace|sdk-trace-base|sdk-trace-node|core|api|resources)\/|\/http\/observe\.middleware\.js|\/http\/route-of\.js/,
  },
  { name: 'rate limit', code: /\/http\/edge\/rate-limit\.middleware\.js|express-rate-limit/ },
  {
    name: 'other edge policies (request id, drain gate, deadline, shedding, ...)',
    code: /\/dist\/src\/http\/(?!edge\/compose\.js|stable-shapes\.js)/,
  },
  { name: 'route handler and its response (res.json)', code: /\/dist\/bench\// },
];
export const ROUTING = 'Express routing (router, app, request/response helpers)';
export const RUNTIME = 'Node.js HTTP, V8, GC and kernel (not under any layer)';

/** The layer of one perf sample, from its frames (leaf first). */
export function layerOf(frames: readonly string[]): string {
  let inModules = false;
  for (const frame of frames) {
    for (const layer of LAYERS) if (layer.code.test(frame)) return layer.name;
    if (frame.includes('/node_modules/')) inModules = true;
  }
  return inModules ? ROUTING : RUNTIME;
}

/** `perf script` text -> samples per layer. */
export function samplesPerLayer(script: string): Map<string, number> {
  const counts = new Map<string, number>();
  let frames: string[] = [];
  const flush = (): void => {
    if (frames.length === 0) return;
    const layer = layerOf(frames);
    counts.set(layer, (counts.get(layer) ?? 0) + 1);
    frames = [];
  };
  for (const line of script.split('\n')) {
    if (line.trim() === '') flush();
    else if (line.startsWith(' ') || line.startsWith('\t')) frames.push(line.trim());
    else frames = [];
  }
  flush();
  return counts;
}

export interface LayerProfile {
  readonly scenario: ProfileScenario;
  readonly cpuMicrosPerRequest: number;
  readonly samples: number;
  /** µs/req per layer: its share of the samples times cpuMicrosPerRequest. */
  readonly layers: Readonly<Record<string, number>>;
}

function perfAvailable(): string | undefined {
  const probe = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    return 'Linux perf is not installed (Debian: apt-get install linux-perf)';
  }
  return undefined;
}

async function record(pid: number, file: string, during: () => Promise<unknown>): Promise<void> {
  const perf = spawn(
    'perf',
    ['record', '-q', '-e', 'cpu-clock', '-F', String(HZ), '-g', '-p', String(pid), '-o', file],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  perf.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<string>((resolve) =>
    perf.once('exit', (code, signal) => resolve(signal ?? String(code))),
  );
  // perf attaches within a few ms; the load's own warm-up is longer than that.
  await new Promise((resolve) => setTimeout(resolve, 300));
  try {
    await during();
  } finally {
    perf.kill('SIGINT');
  }
  // perf writes its file when SIGINT stops it, then exits 0 or by that signal.
  const ending = await within(exited, 30_000, 'perf record');
  if (ending !== '0' && ending !== 'SIGINT') {
    throw new Error(`perf record ended with ${ending}: ${stderr.trim()}`);
  }
}

async function profileScenario(
  scenario: ProfileScenario,
  envOf: (scenario: ProfileScenario, endpoint: string | undefined) => NodeJS.ProcessEnv,
  dir: string,
): Promise<LayerProfile> {
  let receiver: BenchReceiver | undefined;
  const drain = setInterval(() => {
    if (receiver !== undefined) receiver.spans.length = 0;
  }, 1_000);
  try {
    if (scenario.otlp) receiver = await startReceiver();
    const server = await startServer({
      entry: scenario.entry,
      env: envOf(scenario, receiver?.endpoint),
      waitReady: scenario.entry === 'bench-service.js',
      execArgv: ['--perf-basic-prof'],
    });
    try {
      const job = {
        port: server.port,
        path: NOOP_PATH,
        warmup: WARMUP,
        count: REQUESTS,
        concurrency: CONCURRENCY,
        settleMs: scenario.otlp ? SETTLE_EXPORTING_MS : SETTLE_MS,
        timeoutMs: LOAD_TIMEOUT_MS,
      };
      const plain = measuredOf(await runLoad(job));
      const file = path.join(dir, `${scenario.id}.data`);
      const pid = server.child.pid;
      if (pid === undefined) throw new Error(`${scenario.label}: the server has no pid`);
      await record(pid, file, () => runLoad({ ...job, warmup: 0 }));
      const script = spawnSync('perf', ['script', '-i', file], {
        encoding: 'utf8',
        maxBuffer: 1024 * 1024 * 1024,
      });
      if (script.status !== 0) throw new Error(`perf script: ${script.stderr}`);
      const counts = samplesPerLayer(script.stdout);
      const samples = [...counts.values()].reduce((sum, n) => sum + n, 0);
      const layers: Record<string, number> = {};
      for (const [name, n] of counts) layers[name] = (n / samples) * plain.cpuMicrosPerRequest;
      return { scenario, cpuMicrosPerRequest: plain.cpuMicrosPerRequest, samples, layers };
    } finally {
      await stopServer(server);
    }
  } finally {
    clearInterval(drain);
    await receiver?.close();
  }
}

/** Every layer seen, in LAYERS order, then routing and the runtime. */
function layerNames(profiles: readonly LayerProfile[]): string[] {
  const seen = new Set(profiles.flatMap((p) => Object.keys(p.layers)));
  return [...LAYERS.map((l) => l.name), ROUTING, RUNTIME].filter((name) => seen.has(name));
}

export function profileTable(profiles: readonly LayerProfile[]): string {
  const header = ['layer', ...profiles.map((p) => `${p.scenario.label}, µs/req`)];
  const lines = layerNames(profiles).map((name) => [
    name,
    ...profiles.map((p) => fixed(p.layers[name] ?? 0, 1)),
  ]);
  lines.push([
    '**total** (process.cpuUsage, no profiler)',
    ...profiles.map((p) => `**${fixed(p.cpuMicrosPerRequest, 1)}**`),
  ]);
  lines.push(['perf samples', ...profiles.map((p) => String(p.samples))]);
  return markdownTable(header, lines);
}

const PALETTE = [
  '#7c3aed',
  '#dc2626',
  '#ea580c',
  '#ca8a04',
  '#16a34a',
  '#0891b2',
  '#2563eb',
  '#64748b',
  '#a3a3a3',
  '#d4d4d4',
];

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Stacked horizontal bars, one per scenario, one segment per layer. */
export function profileSvg(profiles: readonly LayerProfile[], subtitle: string): string {
  const names = layerNames(profiles);
  const width = 1000;
  const left = 290;
  const barWidth = width - left - 60;
  const barHeight = 34;
  const top = 70;
  const max = Math.max(...profiles.map((p) => p.cpuMicrosPerRequest)) * 1.05;
  const x = (us: number): number => (us / max) * barWidth;
  const parts: string[] = [];
  parts.push(
    `<text x="20" y="28" font-size="18" font-weight="600">CPU per GET /bench/noop request, by layer (µs)</text>`,
    `<text x="20" y="50" font-size="12" fill="#555">${esc(subtitle)}</text>`,
  );
  profiles.forEach((profile, row) => {
    const y = top + row * (barHeight + 16);
    parts.push(
      `<text x="${left - 10}" y="${y + barHeight / 2 + 4}" font-size="13" text-anchor="end">${esc(profile.scenario.label)}</text>`,
    );
    let at = left;
    names.forEach((name, i) => {
      const w = x(profile.layers[name] ?? 0);
      if (w <= 0) return;
      parts.push(
        `<rect x="${at.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${PALETTE[i % PALETTE.length]}"/>`,
      );
      if (w > 26) {
        parts.push(
          `<text x="${(at + w / 2).toFixed(1)}" y="${y + barHeight / 2 + 4}" font-size="11" fill="#fff" text-anchor="middle">${fixed(profile.layers[name] ?? 0, 0)}</text>`,
        );
      }
      at += w;
    });
    parts.push(
      `<text x="${(at + 6).toFixed(1)}" y="${y + barHeight / 2 + 4}" font-size="13" font-weight="600">${fixed(profile.cpuMicrosPerRequest, 0)}</text>`,
    );
  });
  const legendTop = top + profiles.length * (barHeight + 16) + 10;
  names.forEach((name, i) => {
    const y = legendTop + i * 20;
    parts.push(
      `<rect x="${left}" y="${y}" width="14" height="14" fill="${PALETTE[i % PALETTE.length]}"/>`,
      `<text x="${left + 22}" y="${y + 12}" font-size="12">${esc(name)}</text>`,
    );
  });
  const height = legendTop + names.length * 20 + 20;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `font-family="DejaVu Sans, Arial, sans-serif"><rect width="100%" height="100%" fill="#fff"/>` +
    `${parts.join('')}</svg>`
  );
}

export async function runProfile(
  envOf: (scenario: ProfileScenario, endpoint: string | undefined) => NodeJS.ProcessEnv,
): Promise<number> {
  const missing = perfAvailable();
  if (missing !== undefined) {
    console.error(`bench profile: ${missing}`);
    return 1;
  }
  const only = process.env.BENCH_PROFILE_SCENARIOS ?? 'pbcd';
  const scenarios = SCENARIOS.filter((s) => only.includes(s.id));
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  const machine =
    `node ${process.version} | ${cpu} | ${os.cpus().length} cores | ` +
    `${new Date().toISOString()} | ${REQUESTS} requests per scenario, ${CONCURRENCY} connections`;
  console.log(machine);
  console.log('');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ops-bench-profile-'));
  const profiles: LayerProfile[] = [];
  const problems: string[] = [];
  try {
    for (const scenario of scenarios) {
      try {
        profiles.push(await profileScenario(scenario, envOf, dir));
      } catch (error) {
        problems.push(`${scenario.label}: ${errorText(error)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const table = profileTable(profiles);
  console.log(table);
  for (const problem of problems) console.log(`- PROBLEM: ${problem}`);
  if (process.env.BENCH_PROFILE_WRITE === '1' && problems.length === 0) {
    const results = path.join(packageRoot(), 'bench', 'results');
    const command = 'BENCH_PROFILE_WRITE=1 npm run bench -- profile';
    writeFileSync(
      path.join(results, 'cpu-per-layer.json'),
      `${JSON.stringify({ machine, command, profiles }, null, 2)}\n`,
    );
    await writeFormatted(
      path.join(results, 'cpu-per-layer.md'),
      [
        '# CPU per request, by layer',
        '',
        'Written by `npm run bench -- profile` (bench/profile.ts; method in [bench/README.md](../README.md#profile-cpu-per-layer)). Do not edit by hand: run it again.',
        '',
        `- **Machine:** ${machine}`,
        `- **Command:** \`${command}\``,
        '',
        table,
        '',
        '![CPU per request by layer](cpu-per-layer.png)',
        '',
      ].join('\n'),
    );
    await renderSvgPng(profileSvg(profiles, machine), path.join(results, 'cpu-per-layer.png'));
    console.log(`\nwrote bench/results/cpu-per-layer.{md,json,png}`);
  }
  return problems.length === 0 ? 0 : 1;
}
