// The on-call page of one drill run, as Markdown: what you will see (the drill's timeline, probe
// answers, the meaningful log events, metrics per phase, a /lifecycle excerpt, what clients got,
// the alerts), what it means and what to do (written per drill), and the run's date, machine and
// command. The structure is fixed by the drill; only the numbers change from run to run.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as prettier from 'prettier';
import { type AlertRule, alertRules, type AlertState, outsideDrill } from './alerts';
import { anchorsOf } from './kit/markdown';
import { ROOT } from './kit/service-process';
import { summarize } from './load';
import { stretches } from './probes';
import type { Check, DrillRun, Fact, MetricRow, RunSetup } from './run';

/** A drill: how to run it, and what its page says beyond what it saw. */
export interface Drill extends RunSetup {
  readonly title: string;
  /** One line for the list of drills. */
  readonly summary: string;
  /** What the drill does, for the page (Markdown). */
  readonly fault: string;
  /** The /metrics series of the metrics table, in order. */
  readonly metrics: readonly MetricRow[];
  /** Events left out of the log table (summed up elsewhere); DEFAULT_ROUTINE when absent. */
  readonly routine?: readonly string[];
  /** Drives the run: the fault, its phases, the recovery. */
  script(run: DrillRun): Promise<void>;
  /** After the run (the database and broker still there): facts and checks. */
  conclude(run: DrillRun): Promise<void>;
  /** The run in two or three sentences, from its facts. */
  headline(run: DrillRun): string;
  /** "What it means" (Markdown). */
  readonly meaning: string;
  /** "What to do", one Markdown item each, linking runbook headings (checked when rendered). */
  readonly actions: readonly string[];
}

/** Per-request lines: the clients table counts them instead. */
export const DEFAULT_ROUTINE = [
  'http.request',
  'order.created',
  'outbox.published',
  'idempotency.replayed',
];
/** The fields every line has (ts ... env) and those of the request scope. */
const ENVELOPE = new Set(
  'ts level event service version env request_id trace_id span_id'.split(' '),
);

export const seconds = (ms: number): string => (ms / 1000).toFixed(2);

/** Time relative to the fault, in seconds with a sign: `+1.23`, `-0.50`. */
function rel(run: DrillRun, at: number): string {
  const ms = at - (run.t0 ?? run.startedAt);
  return `${ms < 0 ? '-' : '+'}${seconds(Math.abs(ms))}`;
}

function cell(text: string, max = 400): string {
  const flat = text.replace(/\s+/g, ' ').replace(/\|/g, '\\|');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function value(raw: unknown): string {
  if (typeof raw === 'string') return raw.length > 100 ? `${raw.slice(0, 99)}…` : raw;
  const json = JSON.stringify(raw) ?? String(raw);
  return json.length > 240 ? `${json.slice(0, 239)}…` : json;
}

/** `requests` of shutdown.pending_work, one short item each. */
function requestsValue(raw: unknown[]): string {
  const items = raw.slice(0, 3).map((r) => {
    const q = r as { method?: string; route?: string; age_ms?: number; stage?: string };
    return `${q.method ?? ''} ${q.route ?? ''} (${String(q.age_ms)} ms, ${q.stage ?? ''})`;
  });
  return `[${items.join('; ')}${raw.length > 3 ? `; … ${raw.length - 3} more` : ''}]`;
}

function fields(line: Record<string, unknown>): string {
  return Object.entries(line)
    .filter(([key]) => !ENVELOPE.has(key))
    .map(
      ([key, raw]) =>
        `${key}=${key === 'requests' && Array.isArray(raw) ? requestsValue(raw) : value(raw)}`,
    )
    .join(' ');
}

export function formatNumber(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return '—';
  if (Number.isInteger(n)) return String(n);
  return Math.abs(n) < 1 ? n.toPrecision(3) : n.toFixed(3);
}

export function metricValue(
  samples:
    | readonly { name: string; labels: Readonly<Record<string, string>>; value: number }[]
    | undefined,
  row: MetricRow,
): number | undefined {
  if (samples === undefined) return undefined;
  const wanted = Object.entries(row.labels ?? {});
  const matching = samples.filter(
    (s) => s.name === row.name && wanted.every(([key, v]) => s.labels[key] === v),
  );
  return matching.length === 0 ? undefined : matching.reduce((sum, s) => sum + s.value, 0);
}

/** Keeps a /lifecycle document readable: the fields on-call reads, long lists cut. */
function excerpt(doc: Record<string, unknown>): Record<string, unknown> {
  const keys = [
    'state',
    'readiness',
    'since',
    'in_flight',
    'dependencies',
    'breakers',
    'outbox_backlog',
    'exit_code',
    'shutdown',
    'pending',
  ];
  const cut = (raw: unknown): unknown => {
    if (Array.isArray(raw)) {
      const kept = raw.slice(0, 3).map(cut);
      return raw.length > 3 ? [...kept, `… ${raw.length - 3} more`] : kept;
    }
    if (typeof raw === 'object' && raw !== null) {
      return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, cut(v)]));
    }
    return raw;
  };
  const picked: Record<string, unknown> = {};
  for (const key of keys) if (key in doc) picked[key] = cut(doc[key]);
  if (Array.isArray(doc.history)) {
    const history = doc.history as unknown[];
    picked.history_last_3 = history.slice(-3);
  }
  return picked;
}

// ---------------------------------------------------------------------------------------------

function timelineSection(run: DrillRun): string[] {
  return [
    '### Timeline of the drill',
    '',
    'Times are seconds from the fault (`+0.00`).',
    '',
    '| t (s) | what the drill did |',
    '| ----: | ------------------ |',
    ...run.steps.map((step) => `| ${rel(run, step.at)} | ${cell(step.action)} |`),
  ];
}

function probesSection(run: DrillRun): string[] {
  const rows = stretches(run.probes?.samples ?? []);
  return [
    '### Probes: `/health` and `/ready`',
    '',
    'Sampled every 200 ms on a new connection each (as a kubelet does), timeout 1 s; one row per',
    'stretch of identical answers.',
    '',
    '| from (s) | to (s) | samples | `/health` | `/ready` | `/ready` body |',
    '| -------: | -----: | ------: | --------- | -------- | ------------ |',
    ...rows.map(
      (row) =>
        `| ${rel(run, row.from)} | ${rel(run, row.until)} | ${row.samples} | ${row.health} | ${row.ready} | ${row.readyBody === '' ? '—' : `\`${cell(row.readyBody)}\``} |`,
    ),
  ];
}

function logsSection(drill: Drill, run: DrillRun): string[] {
  const routine = new Set(drill.routine ?? DEFAULT_ROUTINE);
  const since = run.phases[0]?.startedAt ?? run.startedAt;
  // A process that ended without service.exit (killed): its last lines, routine or not.
  const lastOfKilled = new Set(
    run.processes.flatMap((service) =>
      service.lines.at(-1)?.event === 'service.exit' ? [] : service.lines.slice(-3),
    ),
  );
  const kept = run
    .lines()
    .filter(
      ({ proc, line }) =>
        lastOfKilled.has(line) ||
        (!routine.has(line.event) && (proc > 0 || Date.parse(line.ts) >= since)),
    );
  interface Row {
    first: number;
    last: number;
    proc: number;
    level: string;
    event: string;
    fields: string;
    count: number;
  }
  const rows: Row[] = [];
  for (const { proc, line } of kept) {
    const at = Date.parse(line.ts);
    const last = rows.at(-1);
    const same =
      last !== undefined &&
      last.event === line.event &&
      last.proc === proc &&
      last.fields.replace(/\d+/g, '#') === fields(line).replace(/\d+/g, '#');
    if (last !== undefined && same) {
      last.count += 1;
      last.last = at;
      continue;
    }
    rows.push({
      first: at,
      last: at,
      proc,
      level: line.level,
      event: line.event,
      fields: fields(line),
      count: 1,
    });
  }
  const routineList = [...routine].map((e) => `\`${e}\``).join(', ');
  return [
    '### Logs',
    '',
    'The JSON lines on stdout from the start of the steady load, in order, without the lines',
    `written per request or order (${routineList}: the clients table counts those) except the`,
    'last lines of a killed process. Lines in a row that differ only in numbers are one row (`×N`,',
    'first and last time, the fields of the first); the envelope (`service`, `version`, `env`,',
    '`request_id`, `trace_id`, `span_id`) is left out.',
    '',
    '| t (s) | process | level | event | key fields |',
    '| ----: | ------: | ----- | ----- | ---------- |',
    ...rows.map(
      (row) =>
        `| ${rel(run, row.first)}${row.count > 1 ? ` … ${rel(run, row.last)}` : ''} | #${row.proc + 1} | ${row.level} | \`${row.event}\`${row.count > 1 ? ` ×${row.count}` : ''} | ${cell(row.fields) || '—'} |`,
    ),
  ];
}

function metricsSection(drill: Drill, run: DrillRun): string[] {
  const phases = run.phases;
  return [
    '### Metrics: `/metrics` on the ops listener',
    '',
    'Read at the end of each phase (— : no such series, or the process was gone). Counters count',
    'from the start of the process.',
    '',
    `| series | ${phases.map((p) => `${p.key} (${p.label})`).join(' | ')} |`,
    `| ------ | ${phases.map(() => '---:').join(' | ')} |`,
    ...drill.metrics.map(
      (row) =>
        `| \`${row.label}\` | ${phases
          .map((p) => formatNumber(metricValue(run.snapshots.get(p.key), row)))
          .join(' | ')} |`,
    ),
  ];
}

function lifecycleSection(run: DrillRun): string[] {
  const out = [
    '### `/lifecycle` on the ops listener',
    '',
    'Excerpt: the fields on-call reads, lists cut to three entries, the last three transitions.',
  ];
  if (run.lifecycles.length === 0) out.push('', '(the ops listener did not answer when read)');
  for (const capture of run.lifecycles) {
    out.push(
      '',
      `At ${rel(run, capture.at)} s (${capture.label}):`,
      '',
      '```json',
      JSON.stringify(excerpt(capture.doc), null, 2),
      '```',
    );
  }
  return out;
}

function clientsSection(run: DrillRun): string[] {
  const outcomes = run.load?.outcomes ?? [];
  const phases = run.phases;
  const rows = phases.map((phase, index) => {
    const end = phases[index + 1]?.startedAt ?? Number.POSITIVE_INFINITY;
    return {
      label: `${phase.key} (${phase.label})`,
      summary: summarize(outcomes.filter((o) => o.sentAt >= phase.startedAt && o.sentAt < end)),
    };
  });
  rows.push({ label: '**all**', summary: summarize(outcomes) });
  const heldBack = run.load?.heldBack ?? [];
  return [
    '### Clients',
    '',
    'Every request of the load, by the phase it was sent in. "No answer": the connection was',
    'refused, reset or closed before a complete response. Latency is of the answered ones.',
    '',
    `Rounds held back because ${run.setup.load.maxInFlight} were already in flight: ${heldBack.length === 0 ? 'none' : `${heldBack.length}, the first at ${rel(run, heldBack[0] ?? 0)} s`}.`,
    '',
    '| phase | sent | 2xx | 4xx | 5xx | no answer | what they got (besides 2xx) | p50 ms | p95 ms | max ms |',
    '| ----- | ---: | --: | --: | --: | --------: | --------------------------- | -----: | -----: | -----: |',
    ...rows.map(({ label, summary: s }) => {
      const details = [...s.details.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([what, n]) => `${what} ×${n}`)
        .join(', ');
      return `| ${label} | ${s.sent} | ${s.ok2xx} | ${s.client4xx} | ${s.server5xx} | ${s.noAnswer} | ${details || '—'} | ${formatNumber(s.p50Ms)} | ${formatNumber(s.p95Ms)} | ${formatNumber(s.maxMs)} |`;
    }),
  ];
}

function alertCell(run: DrillRun, rule: AlertRule, phase: string): string {
  const polls = (run.alerts?.polls ?? []).filter((p) => p.phase === phase);
  let worst: { state: AlertState; at: number } | undefined;
  for (const poll of polls) {
    const state = poll.states.get(rule.name);
    if (state === undefined) continue;
    if (worst === undefined || (worst.state === 'pending' && state === 'firing')) {
      worst = { state, at: poll.at };
    }
  }
  return worst === undefined ? '·' : `${worst.state} ${rel(run, worst.at)}`;
}

function alertVerdict(run: DrillRun, rule: AlertRule): string {
  const polls = run.alerts?.polls ?? [];
  const first = polls.find((p) => p.states.has(rule.name));
  if (first !== undefined && first.phase === 'before') {
    return `**${first.states.get(rule.name) === 'firing' ? 'fires' : 'pending'} before the fault**: not caused by it (see the checks)`;
  }
  const firing = polls.find((p) => p.states.get(rule.name) === 'firing');
  if (firing !== undefined) return `**fires** (from ${rel(run, firing.at)} s)`;
  const pending = polls.find((p) => p.states.get(rule.name) === 'pending');
  if (pending !== undefined) {
    return `condition true from ${rel(run, pending.at)} s: **fires if it holds for ${rule.for}**`;
  }
  return outsideDrill(rule)
    ? 'not evaluable here: reads kube-state-metrics series (restarts, exit codes of a pod)'
    : 'not triggered';
}

function alertsSection(run: DrillRun): string[] {
  const rules = alertRules();
  const head = ['### Alerts: `deploy/prometheus/rules`', ''];
  if (run.alerts === undefined) {
    return [
      ...head,
      `Not evaluated: ${run.alertsSkipped ?? 'no Prometheus'}. The alerts that exist:`,
      '',
      '| alert | severity | for |',
      '| ----- | -------- | --- |',
      ...rules.map((rule) => `| \`${rule.name}\` | ${rule.severity} | ${rule.for} |`),
    ];
  }
  const phases = run.phases;
  return [
    ...head,
    `Evaluated by a real Prometheus ${run.versions.prometheus ?? ''} scraping this service every 1 s`,
    "with the repository's config and rule files (their `for:` unchanged), alerts read every 0.5 s.",
    'A cell says the worst state seen in that phase and when it was first seen (· : inactive).',
    "Prometheus held only this drill's data: the 5m to 6h windows of the burn-rate rules all cover",
    'the same few seconds, so those rules react faster here than on a pod with hours of history,',
    'and no `for:` of a minute or more can elapse within a drill: "pending" means the condition',
    'was true.',
    '',
    `| alert | severity | for | ${phases.map((p) => p.key).join(' | ')} | verdict |`,
    `| ----- | -------- | --- | ${phases.map(() => '---').join(' | ')} | ------- |`,
    ...rules.map(
      (rule) =>
        `| \`${rule.name}\` | ${rule.severity} | ${rule.for} | ${phases
          .map((p) => alertCell(run, rule, p.key))
          .join(' | ')} | ${alertVerdict(run, rule)} |`,
    ),
  ];
}

function checksSection(checks: readonly Check[]): string[] {
  return [
    '### Checked by the drill',
    '',
    ...checks.map((c) => `- ${c.ok ? '✅' : '❌ **failed:**'} ${c.what}: ${c.detail}`),
  ];
}

export function machineNote(run: DrillRun): string {
  const cpus = os.cpus();
  return [
    `node ${process.version}`,
    `${cpus[0]?.model.trim() ?? 'unknown CPU'}`,
    `${cpus.length} cores`,
    `load average ${run.loadAverage.toFixed(1)} at the start`,
    `${os.type()} ${os.release()}`,
  ].join(' | ');
}

function configLine(drill: Drill, run: DrillRun): string {
  const changed = Object.entries({ ...run.env })
    .filter(([key]) => key === 'SHUTDOWN_DELAY_MS' || key in drill.env)
    .map(([key, v]) => `\`${key}=${v}\``);
  return `\`node dist/main.js\`, \`APP_ENV=production\` (its defaults), except ${changed.join(', ')}; ports, URLs and \`NATS_SUBJECT_PREFIX\` set by the drill; \`AUTH_MODE=jwt\` with a JWK Set the drill made, every client request carrying an ES256 bearer token signed with it.`;
}

function dependenciesLine(drill: Drill, run: DrillRun): string {
  const via = (proxied: boolean): string =>
    proxied ? 'through a TCP proxy the drill breaks' : 'directly';
  return [
    `PostgreSQL ${run.versions.postgresql ?? ''} on 127.0.0.1:5432, a fresh database (dropped after), ${via(drill.via.database === 'proxy')}`,
    `NATS JetStream ${run.versions['nats-server'] ?? ''} on 127.0.0.1:4222, subject prefix \`${run.nats.prefix}\` (streams deleted after), ${via(drill.via.broker === 'proxy')}`,
    `an OTLP/gRPC collector stand-in (answers every export), ${via(drill.via.collector === 'proxy')}`,
    run.alerts === undefined ? 'no Prometheus' : `Prometheus ${run.versions.prometheus ?? ''}`,
  ].join('; ');
}

export function commandOf(name: string): string {
  return `npm run incident -- ${name}`;
}

/**
 * The page, formatted by Prettier with the repository's settings (so `npm run lint` accepts it
 * as written). Throws if a link into runbook/ names a page or heading that does not exist.
 */
export async function renderPage(drill: Drill, run: DrillRun): Promise<string> {
  const durationMs = Date.now() - run.startedAt;
  const lines = [
    `# Incident drill: \`${drill.name}\``,
    '',
    `<!-- Generated by \`${commandOf(drill.name)}\` (scripts/incidents/). Do not edit: run it again. -->`,
    '',
    `**${drill.title}.** ${drill.fault}`,
    '',
    `**This run:** ${drill.headline(run)}`,
    '',
    `Recorded ${run.ranAt} with \`${commandOf(drill.name)}\` (details at the end). Numbers vary from run to run; the structure of this page does not.`,
    '',
    '## What you will see',
    '',
    ...timelineSection(run),
    '',
    ...probesSection(run),
    '',
    ...logsSection(drill, run),
    '',
    ...metricsSection(drill, run),
    '',
    ...lifecycleSection(run),
    '',
    ...clientsSection(run),
    '',
    ...alertsSection(run),
    '',
    ...checksSection(run.checks),
    '',
    '## What it means',
    '',
    drill.meaning.trim(),
    '',
    '## What to do',
    '',
    ...drill.actions.map((action, index) => `${index + 1}. ${action}`),
    '',
    '## This run',
    '',
    `- Date: ${run.ranAt} (the drill took ${seconds(durationMs)} s)`,
    `- Machine: ${machineNote(run)}`,
    `- Command: \`${commandOf(drill.name)}\` (that is \`npm run build && node dist/scripts/incident.js ${drill.name}\`)`,
    `- Service: ${configLine(drill, run)}`,
    `- Dependencies: ${dependenciesLine(drill, run)}`,
    `- Facts: ${Object.entries(run.facts)
      .map(([key, v]) => `\`${key}\`=${formatFact(v)}`)
      .join(', ')}`,
    '',
  ];
  const page = lines.join('\n');
  const broken = brokenLinks(page);
  if (broken.length > 0)
    throw new Error(`${drill.name}: broken runbook links: ${broken.join(', ')}`);
  const file = path.join(ROOT, 'runbook', 'incidents', `${drill.name}.md`);
  const config = (await prettier.resolveConfig(file)) ?? {};
  return prettier.format(page, { ...config, filepath: file });
}

function formatFact(v: Fact): string {
  if (typeof v === 'number') return formatNumber(v);
  return v === undefined ? '—' : String(v);
}

/** Links of a page under runbook/incidents/ to runbook pages and headings that do not exist. */
export function brokenLinks(page: string): string[] {
  const broken: string[] = [];
  for (const match of page.matchAll(/\]\((\.\.\/|\.\/)?([A-Za-z0-9_-]+\.md)(?:#([^)\s]+))?\)/g)) {
    const [link, up, file, anchor] = match;
    const dir = up === '../' ? path.join(ROOT, 'runbook') : path.join(ROOT, 'runbook', 'incidents');
    const target = path.join(dir, file ?? '');
    if (!existsSync(target)) {
      broken.push(link);
      continue;
    }
    if (anchor !== undefined && !anchorsOf(readFileSync(target, 'utf8')).has(anchor)) {
      broken.push(link);
    }
  }
  return broken;
}
