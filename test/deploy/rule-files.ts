// The Prometheus rule files of deploy/prometheus/rules and promtool (Debian's `prometheus`
// package), shared by the deploy tests: prometheus-rules.test.ts checks the rules themselves,
// grafana-dashboard.test.ts lets the dashboard read the series they record.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { dict, list, optionalScalar, stringMap } from './narrow';
import { analyzePromql } from './promql';

export const ROOT = path.resolve(__dirname, '..', '..');
export const PROMETHEUS_DIR = 'deploy/prometheus';
export const RULES_DIR = `${PROMETHEUS_DIR}/rules`;
/** Series Prometheus makes itself for every target, not read from /metrics. */
export const PROMETHEUS_OWN_SERIES: ReadonlyMap<string, readonly string[]> = new Map([['up', []]]);
/** Labels Prometheus adds to every series of a target when it scrapes it. */
export const TARGET_LABELS = ['job', 'instance'];

/** The repository files of `dir` whose names end with `suffix`, as repository paths. */
export function filesIn(dir: string, suffix: string): string[] {
  return readdirSync(path.join(ROOT, dir))
    .filter((file) => file.endsWith(suffix))
    .sort()
    .map((file) => `${dir}/${file}`);
}

export const RULE_FILES = filesIn(RULES_DIR, '.rules.yml');

/** Repository path -> text. */
export function readFiles(files: readonly string[]): Map<string, string> {
  return new Map(files.map((file) => [file, readFileSync(path.join(ROOT, file), 'utf8')]));
}

// ---------------------------------------------------------------------------------------------
// promtool

export function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (result.error !== undefined) {
    return {
      status: null,
      output: `cannot run promtool (Debian package prometheus; .ci/run installs it): ${result.error.message}`,
    };
  }
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** '' when promtool succeeded, else everything it printed (so a failing test shows it). */
export function promtoolFailure(...args: string[]): string {
  const { status, output } = promtool(...args);
  return status === 0 ? '' : `promtool ${args.join(' ')} exited ${String(status)}:\n${output}`;
}

// ---------------------------------------------------------------------------------------------
// Rules

export interface Rule {
  readonly file: string;
  readonly group: string;
  /** The alert or recorded series name. */
  readonly name: string;
  readonly kind: 'alert' | 'record';
  readonly expr: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export function parseRules(file: string, text: string): Rule[] {
  const rules: Rule[] = [];
  for (const rawGroup of list(dict(parseYaml(text), file).groups, `${file}: groups`)) {
    const group = dict(rawGroup, `${file}: group`);
    const groupName = optionalScalar(group.name, `${file}: group name`) ?? '(unnamed)';
    for (const rawRule of list(group.rules, `${file}: ${groupName}.rules`)) {
      const rule = dict(rawRule, `${file}: ${groupName} rule`);
      const alert = optionalScalar(rule.alert, 'alert');
      const record = optionalScalar(rule.record, 'record');
      const where = `${file}: ${alert ?? record ?? '(unnamed rule)'}`;
      rules.push({
        file,
        group: groupName,
        name: alert ?? record ?? '(unnamed rule)',
        kind: alert === undefined ? 'record' : 'alert',
        expr: optionalScalar(rule.expr, `${where}.expr`) ?? '',
        labels: stringMap(rule.labels, `${where}.labels`),
        annotations: stringMap(rule.annotations, `${where}.annotations`),
      });
    }
  }
  return rules;
}

/**
 * The label names of each series a recording rule records: those it aggregates by, or, with no
 * `by`, those of the series it reads (less `le` through histogram_quantile), plus the rule's own
 * labels. An approximation of PromQL's semantics that holds for the rules of this repository.
 */
export function recordedLabels(
  rules: readonly Rule[],
  exported: ReadonlyMap<string, ReadonlySet<string>>,
): Map<string, Set<string>> {
  const recording = new Map(rules.filter((r) => r.kind === 'record').map((r) => [r.name, r]));
  const known = new Map<string, Set<string>>();
  const labelsOf = (name: string, seen: ReadonlySet<string>): ReadonlySet<string> => {
    const rule = recording.get(name);
    if (rule === undefined || seen.has(name)) return exported.get(name) ?? new Set();
    const cached = known.get(name);
    if (cached !== undefined) return cached;
    const use = analyzePromql(rule.expr);
    const by = use.groupings.filter((g) => g.keyword === 'by');
    const labels = new Set(
      by.length > 0
        ? by.flatMap((g) => g.labels)
        : use.metrics.flatMap((m) => [...labelsOf(m, new Set([...seen, name]))]),
    );
    if (by.length === 0 && /\bhistogram_quantile\s*\(/.test(rule.expr)) labels.delete('le');
    for (const label of Object.keys(rule.labels)) labels.add(label);
    known.set(name, labels);
    return labels;
  };
  for (const name of recording.keys()) labelsOf(name, new Set());
  return known;
}
