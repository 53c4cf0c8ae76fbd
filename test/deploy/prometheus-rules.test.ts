// The alerting and recording rules in deploy/prometheus/ (issue #14): promtool accepts them and
// their unit tests pass; every metric an expression reads is one a real running service exports
// (scraped here from a fresh instance, not taken from a list that could drift); every alert has
// a severity, a summary, a description and a runbook_url naming a real heading of runbook/; every
// alert has unit tests where it fires and where it does not. Each check returns its problems as
// text; the mutation tests at the end prove each one can fail.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parsePrometheusText } from '../helpers/prometheus-text';
import { MAIN, startService } from '../helpers/service-process';
import { openTestNats, TEST_NATS_URL, type TestNats } from '../orders/support/nats';
import { getPath, orderBody, postOrder } from '../orders/support/orders-client';
import { createTestDatabase, type TestDatabase } from '../orders/support/test-database';

jest.setTimeout(60_000);

const ROOT = path.resolve(__dirname, '..', '..');
const PROMETHEUS_DIR = 'deploy/prometheus';
const RULES_DIR = `${PROMETHEUS_DIR}/rules`;
const TESTS_DIR = `${PROMETHEUS_DIR}/tests`;
const RUNBOOK_DIR = 'runbook';
/** Series Prometheus makes itself for every target, not read from /metrics. */
const PROMETHEUS_OWN_SERIES = ['up'];
const SEVERITIES = ['critical', 'warning'];
/** runbook_url is relative to the repository root (see the header of the rules file). */
const RUNBOOK_URL = /^runbook\/([A-Za-z0-9_-]+\.md)#([^#\s]+)$/;

function filesIn(dir: string, suffix: string): string[] {
  return readdirSync(path.join(ROOT, dir))
    .filter((file) => file.endsWith(suffix))
    .sort()
    .map((file) => `${dir}/${file}`);
}

const RULE_FILES = filesIn(RULES_DIR, '.rules.yml');
const TEST_FILES = filesIn(TESTS_DIR, '.test.yml');

// ---------------------------------------------------------------------------------------------
// promtool

function promtool(...args: string[]): { status: number | null; output: string } {
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
function promtoolFailure(...args: string[]): string {
  const { status, output } = promtool(...args);
  return status === 0 ? '' : `promtool ${args.join(' ')} exited ${String(status)}:\n${output}`;
}

// ---------------------------------------------------------------------------------------------
// Narrowing parsed YAML (typed `any` by the yaml package, taken as `unknown` here)

type Dict = Readonly<Record<string, unknown>>;

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function dict(value: unknown, where: string): Dict {
  if (value === undefined || value === null) return {};
  if (!isDict(value)) throw new Error(`${where}: expected a mapping`);
  return value;
}

function list(value: unknown, where: string): readonly unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list`);
  return value as readonly unknown[];
}

function optionalString(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`${where}: expected a scalar`);
}

function stringMap(value: unknown, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, raw] of Object.entries(dict(value, where))) {
    out[key] = optionalString(raw, `${where}.${key}`) ?? '';
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rules and their unit tests

interface Rule {
  readonly file: string;
  readonly group: string;
  /** The alert or recorded series name. */
  readonly name: string;
  readonly kind: 'alert' | 'record';
  readonly expr: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

function parseRules(file: string, text: string): Rule[] {
  const rules: Rule[] = [];
  for (const rawGroup of list(dict(parseYaml(text), file).groups, `${file}: groups`)) {
    const group = dict(rawGroup, `${file}: group`);
    const groupName = optionalString(group.name, `${file}: group name`) ?? '(unnamed)';
    for (const rawRule of list(group.rules, `${file}: ${groupName}.rules`)) {
      const rule = dict(rawRule, `${file}: ${groupName} rule`);
      const alert = optionalString(rule.alert, 'alert');
      const record = optionalString(rule.record, 'record');
      const where = `${file}: ${alert ?? record ?? '(unnamed rule)'}`;
      rules.push({
        file,
        group: groupName,
        name: alert ?? record ?? '(unnamed rule)',
        kind: alert === undefined ? 'record' : 'alert',
        expr: optionalString(rule.expr, `${where}.expr`) ?? '',
        labels: stringMap(rule.labels, `${where}.labels`),
        annotations: stringMap(rule.annotations, `${where}.annotations`),
      });
    }
  }
  return rules;
}

/** One `alert_rule_test` case: which alert, and whether it is expected to fire. */
interface AlertCase {
  readonly file: string;
  readonly test: string;
  readonly alertname: string;
  readonly fires: boolean;
}

function parseAlertCases(file: string, text: string): AlertCase[] {
  const cases: AlertCase[] = [];
  for (const rawTest of list(dict(parseYaml(text), file).tests, `${file}: tests`)) {
    const test = dict(rawTest, `${file}: test`);
    const testName = optionalString(test.name, `${file}: test name`) ?? '(unnamed)';
    for (const rawCase of list(test.alert_rule_test, `${file}: ${testName}.alert_rule_test`)) {
      const item = dict(rawCase, `${file}: ${testName} alert_rule_test`);
      cases.push({
        file,
        test: testName,
        alertname: optionalString(item.alertname, 'alertname') ?? '',
        fires: list(item.exp_alerts, 'exp_alerts').length > 0,
      });
    }
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// Metric names in PromQL

const PROMQL_KEYWORDS = new Set([
  // binary and set operators, modifiers
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'atan2',
  // vector matching and grouping (their label lists are removed before)
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  // aggregation operators (also written `sum by (x) (...)`, not followed by a parenthesis)
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  // number literals
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression selects: identifiers that are neither functions (followed
 * by a parenthesis), keywords, label names (inside braces or grouping lists), durations nor
 * string contents.
 */
function metricNames(expr: string): string[] {
  const cleaned = expr
    .replace(/#[^\n]*/g, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' $1 ')
    .replace(/\boffset\s+-?[0-9a-z]+/g, ' ')
    .replace(/@\s*(-?[0-9.]+|start\(\)|end\(\))/g, ' ');
  const names = new Set<string>();
  for (const match of cleaned.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const at = match.index;
    const word = match[0];
    // Part of a number (1e3, 0x1f).
    if (at > 0 && /[0-9.]/.test(cleaned[at - 1] ?? '')) continue;
    if (PROMQL_KEYWORDS.has(word.toLowerCase())) continue;
    if (/^\s*\(/.test(cleaned.slice(at + word.length))) continue;
    names.add(word);
  }
  return [...names].sort();
}

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

/** Every series name a scrape of /metrics holds, histogram suffixes included. */
function exportedNames(body: string): Set<string> {
  const names = new Set(parsePrometheusText(body).map((sample) => sample.name));
  for (const match of body.matchAll(/^# TYPE (\S+) histogram$/gm)) {
    for (const suffix of HISTOGRAM_SUFFIXES) names.add(`${match[1] ?? ''}${suffix}`);
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// Runbook headings, as GitHub anchors them

/** GitHub's anchor for a heading (github-slugger): rendered text, lower case, punctuation dropped. */
function githubAnchor(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a Markdown page's headings, fenced code blocks skipped, duplicates numbered. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fence: string | undefined;
  for (const line of markdown.split(/\r?\n/)) {
    const fenceMatch = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fenceMatch !== null) {
      const marker = fenceMatch[1] ?? '';
      if (fence === undefined) fence = marker;
      else if (marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      continue;
    }
    if (fence !== undefined) continue;
    const heading = /^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (heading === null) continue;
    const base = githubAnchor(heading[1] ?? '');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

function runbookAnchors(): Map<string, Set<string>> {
  return new Map(
    filesIn(RUNBOOK_DIR, '.md').map((file) => [
      path.posix.basename(file),
      anchorsOf(readFileSync(path.join(ROOT, file), 'utf8')),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// Checks: each returns what is wrong, one line per problem

interface Subject {
  readonly rules: readonly Rule[];
  readonly cases: readonly AlertCase[];
  readonly exported: ReadonlySet<string>;
  readonly runbook: ReadonlyMap<string, ReadonlySet<string>>;
}

function metricNameProblems(subject: Subject): string[] {
  const recorded = new Set(subject.rules.filter((r) => r.kind === 'record').map((r) => r.name));
  const problems: string[] = [];
  for (const rule of subject.rules) {
    for (const name of metricNames(rule.expr)) {
      if (subject.exported.has(name) || recorded.has(name)) continue;
      if (PROMETHEUS_OWN_SERIES.includes(name)) continue;
      problems.push(
        `${rule.file}: ${rule.name} reads ${name}, which the service does not export and no rule records`,
      );
    }
  }
  return problems;
}

function alertLabelProblems(subject: Subject): string[] {
  const problems: string[] = [];
  for (const rule of subject.rules.filter((r) => r.kind === 'alert')) {
    const severity = rule.labels.severity;
    if (severity === undefined) problems.push(`${rule.file}: ${rule.name} has no severity label`);
    else if (!SEVERITIES.includes(severity)) {
      problems.push(
        `${rule.file}: ${rule.name} has severity ${severity}, not one of ${SEVERITIES.join(', ')}`,
      );
    }
    for (const annotation of ['summary', 'description', 'runbook_url']) {
      if ((rule.annotations[annotation] ?? '').trim() === '') {
        problems.push(`${rule.file}: ${rule.name} has no ${annotation} annotation`);
      }
    }
  }
  return problems;
}

function runbookProblems(subject: Subject): string[] {
  const problems: string[] = [];
  for (const rule of subject.rules.filter((r) => r.kind === 'alert')) {
    const url = rule.annotations.runbook_url;
    if (url === undefined) continue;
    const match = RUNBOOK_URL.exec(url);
    if (match === null) {
      problems.push(
        `${rule.file}: ${rule.name} runbook_url ${url} is not of the form runbook/<page>.md#<anchor>`,
      );
      continue;
    }
    const [, page = '', anchor = ''] = match;
    const anchors = subject.runbook.get(page);
    if (anchors === undefined) {
      problems.push(
        `${rule.file}: ${rule.name} runbook_url ${url}: runbook/${page} does not exist`,
      );
    } else if (!anchors.has(anchor)) {
      problems.push(
        `${rule.file}: ${rule.name} runbook_url ${url}: runbook/${page} has no heading #${anchor}`,
      );
    }
  }
  return problems;
}

function coverageProblems(subject: Subject): string[] {
  const problems: string[] = [];
  const alerts = new Set(subject.rules.filter((r) => r.kind === 'alert').map((r) => r.name));
  for (const alert of alerts) {
    const cases = subject.cases.filter((c) => c.alertname === alert);
    if (!cases.some((c) => c.fires)) problems.push(`${alert}: no unit test where it fires`);
    if (!cases.some((c) => !c.fires))
      problems.push(`${alert}: no unit test where it does not fire`);
  }
  for (const item of subject.cases) {
    if (!alerts.has(item.alertname)) {
      problems.push(`${item.file}: "${item.test}" tests ${item.alertname}, which is no alert`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The subject: the repository's files, and what a real service exports

interface Texts {
  readonly rules: ReadonlyMap<string, string>;
  readonly tests: ReadonlyMap<string, string>;
}

function readTexts(): Texts {
  const read = (file: string): [string, string] => [
    file,
    readFileSync(path.join(ROOT, file), 'utf8'),
  ];
  return { rules: new Map(RULE_FILES.map(read)), tests: new Map(TEST_FILES.map(read)) };
}

function subjectOf(texts: Texts, exported: ReadonlySet<string>): Subject {
  return {
    rules: [...texts.rules].flatMap(([file, text]) => parseRules(file, text)),
    cases: [...texts.tests].flatMap(([file, text]) => parseAlertCases(file, text)),
    exported,
    runbook: runbookAnchors(),
  };
}

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.once('end', () => resolve(body));
      })
      .once('error', reject);
  });
}

const texts = readTexts();
let exported: Set<string> = new Set();
let database: TestDatabase;
let nats: TestNats;

// A real service (the production entry point) on a fresh database and its own NATS subjects,
// after traffic that makes every lazily created series appear: an order (published through
// the outbox), an error answer, an unknown route.
beforeAll(async () => {
  database = await createTestDatabase();
  nats = await openTestNats();
  const { service, port, opsPort } = await startService(
    {
      RATE_LIMIT_MAX: '0',
      SHUTDOWN_DELAY_MS: '0',
      DATABASE_URL: database.url,
      NATS_URL: TEST_NATS_URL,
      NATS_SUBJECT_PREFIX: nats.prefix,
    },
    { script: MAIN },
  );
  try {
    await service.waitForEvent('broker.connected');
    expect((await postOrder(port, `rules-${randomUUID()}`, orderBody())).status).toBe(201);
    expect((await getPath(port, `/v1/orders/${randomUUID()}`)).status).toBe(404);
    expect((await getPath(port, '/no/such/route')).status).toBe(404);
    const deadline = Date.now() + 10_000;
    let body = await scrape(opsPort);
    // The outbox relay publishes right after the commit; its counter appears then.
    while (!body.includes('ops_broker_messages_total{') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      body = await scrape(opsPort);
    }
    exported = exportedNames(body);
  } finally {
    service.kill('SIGTERM');
    await service.exited();
  }
});

afterAll(async () => {
  await nats?.close();
  await database?.drop();
});

describe('promtool', () => {
  test('when the rules are checked, then promtool check rules accepts every rule file', () => {
    expect(RULE_FILES.length).toBeGreaterThan(0);
    expect(promtoolFailure('check', 'rules', ...RULE_FILES)).toBe('');
  });

  test('when the scrape config is checked, then promtool check config accepts it and its rule files', () => {
    expect(promtoolFailure('check', 'config', `${PROMETHEUS_DIR}/prometheus.yml`)).toBe('');
  });

  test('when the unit tests run, then promtool test rules passes every one', () => {
    expect(TEST_FILES.length).toBeGreaterThan(0);
    expect(promtoolFailure('test', 'rules', ...TEST_FILES)).toBe('');
  });

  test('when promtool fails, then its output is what the test reports', () => {
    expect(promtoolFailure('check', 'rules', 'no/such/file.yml')).toMatch(/no\/such\/file\.yml/);
  });
});

describe('the rules', () => {
  test('when the service is scraped, then the series the rules are built on are there', () => {
    for (const name of [
      'http_server_request_duration_bucket',
      'http_server_request_duration_count',
      'ops_dependency_up',
      'ops_broker_messages_total',
    ]) {
      expect(exported).toContain(name);
    }
  });

  test('when an expression reads a metric, then the running service exports it or a rule records it', () => {
    const subject = subjectOf(texts, exported);
    expect(subject.rules.filter((r) => r.kind === 'alert').length).toBeGreaterThan(0);
    expect(metricNameProblems(subject)).toEqual([]);
  });

  test('when an alert is defined, then it has a known severity, a summary, a description and a runbook_url', () => {
    expect(alertLabelProblems(subjectOf(texts, exported))).toEqual([]);
  });

  test('when an alert names a runbook_url, then it is a heading of a runbook page', () => {
    expect(runbookProblems(subjectOf(texts, exported))).toEqual([]);
  });

  test('when an alert is defined, then unit tests cover it firing and not firing', () => {
    expect(coverageProblems(subjectOf(texts, exported))).toEqual([]);
  });

  test('when the database is down, then OpsServiceDatabaseDown waits a minute on the database gauge', () => {
    const rule = subjectOf(texts, exported).rules.find((r) => r.name === 'OpsServiceDatabaseDown');
    expect(rule?.expr).toMatch(/ops_dependency_up\{dependency="database"\}/);
    const raw = [...texts.rules.values()].join('\n');
    expect(raw).toMatch(/alert: OpsServiceDatabaseDown\n\s+expr: .*\n\s+for: 1m\n/);
  });
});

describe('the parsers', () => {
  test('when PromQL is read, then only metric names come out', () => {
    expect(
      metricNames(
        'sum by (job, le) (rate(a_total{x="y z", le="0.5"}[5m] offset 1h)) / on (job) group_left (k) ' +
          'b:recorded > 1e3 and bool max without(instance) (c) unless d @ 1700000000 # e',
      ),
    ).toEqual(['a_total', 'b:recorded', 'c', 'd']);
    expect(metricNames('histogram_quantile(0.99, x_bucket) > (14.4 * 0.001)')).toEqual([
      'x_bucket',
    ]);
  });

  test('when headings are anchored, then they match GitHub', () => {
    const anchors = anchorsOf(
      [
        '# Errors',
        '## CIRCUIT_OPEN',
        '### 2. What failed?',
        '## Payments (`payments.captured`)',
        '## Reading `/lifecycle`',
        '## ready.degraded',
        '```sh',
        '# not a heading',
        '```',
        '## Errors',
      ].join('\n'),
    );
    expect([...anchors]).toEqual([
      'errors',
      'circuit_open',
      '2-what-failed',
      'payments-paymentscaptured',
      'reading-lifecycle',
      'readydegraded',
      'errors-1',
    ]);
  });

  test('when histograms are exported, then their suffixed names count as exported', () => {
    const names = exportedNames('# TYPE h histogram\nh_count 1\n# TYPE g gauge\ng 1\n');
    expect([...names].sort()).toEqual(['g', 'h_bucket', 'h_count', 'h_sum']);
  });
});

// Each check must be able to fail: break one thing in one file and the matching check has to
// report it. `from` must occur in the file, so a mutation never silently turns into a no-op.
interface Mutation {
  readonly when: string;
  readonly in: 'rules' | 'tests';
  readonly from: string;
  readonly to: string;
  readonly check: (subject: Subject) => string[];
  readonly reports: RegExp;
}

const mutations: readonly Mutation[] = [
  {
    when: 'an alert reads a metric the service does not export',
    in: 'rules',
    from: '(ops_outbox_backlog) > 100',
    to: '(ops_outbox_backlog_size) > 100',
    check: metricNameProblems,
    reports:
      /OpsServiceOutboxBacklogGrowing reads ops_outbox_backlog_size, which the service does not export/,
  },
  {
    when: 'an alert reads a recorded series no rule records',
    in: 'rules',
    from: 'job:http_server_request_errors:ratio_rate1h > (14.4 * 0.001)',
    to: 'job:http_server_request_error:ratio_rate1h > (14.4 * 0.001)',
    check: metricNameProblems,
    reports: /OpsServiceErrorBudgetBurnFast reads job:http_server_request_error:ratio_rate1h/,
  },
  {
    when: 'a recording rule reads a histogram under its unit-suffixed name',
    in: 'rules',
    from: 'rate(http_server_request_duration_bucket[5m])',
    to: 'rate(http_server_request_duration_seconds_bucket[5m])',
    check: metricNameProblems,
    reports: /reads http_server_request_duration_seconds_bucket/,
  },
  {
    when: 'a runbook_url names a heading that does not exist',
    in: 'rules',
    from: 'runbook_url: runbook/orders.md#when-the-database-is-down',
    to: 'runbook_url: runbook/orders.md#when-the-db-is-down',
    check: runbookProblems,
    reports:
      /OpsServiceDatabaseDown runbook_url .*: runbook\/orders.md has no heading #when-the-db-is-down/,
  },
  {
    when: 'a runbook_url names a page that does not exist',
    in: 'rules',
    from: 'runbook/errors.md#overloaded',
    to: 'runbook/overload.md#overloaded',
    check: runbookProblems,
    reports: /runbook\/overload.md does not exist/,
  },
  {
    when: 'a runbook_url is absolute instead of relative to the repository',
    in: 'rules',
    from: 'runbook_url: runbook/errors.md#circuit_open',
    to: 'runbook_url: https://example.com/runbook/errors.md#circuit_open',
    check: runbookProblems,
    reports: /is not of the form runbook\/<page>.md#<anchor>/,
  },
  {
    when: 'an alert has no severity',
    in: 'rules',
    from: 'severity: warning',
    to: 'priority: warning',
    check: alertLabelProblems,
    reports: /has no severity label/,
  },
  {
    when: 'an alert has an unknown severity',
    in: 'rules',
    from: 'severity: critical',
    to: 'severity: page',
    check: alertLabelProblems,
    reports: /has severity page/,
  },
  {
    when: 'an alert has no runbook_url',
    in: 'rules',
    from: 'runbook_url: runbook/orders.md#payments-paymentscaptured',
    to: 'runbook: runbook/orders.md#payments-paymentscaptured',
    check: alertLabelProblems,
    reports: /OpsServicePaymentsDeadLettered has no runbook_url annotation/,
  },
  {
    when: 'an alert loses its only not-firing unit test',
    in: 'tests',
    from: 'alertname: OpsServiceBrokerDown\n        exp_alerts: []',
    to: 'alertname: OpsServiceBrokerGone\n        exp_alerts: []',
    check: coverageProblems,
    reports:
      /OpsServiceBrokerDown: no unit test where it does not fire[\s\S]*tests OpsServiceBrokerGone, which is no alert/,
  },
  {
    when: 'an alert is added without unit tests',
    in: 'rules',
    from: '  - name: ops-service.process\n    rules:\n',
    to: '  - name: ops-service.process\n    rules:\n      - alert: OpsServiceUntested\n        expr: up == 0\n',
    check: coverageProblems,
    reports: /OpsServiceUntested: no unit test where it fires/,
  },
];

describe('each check can fail', () => {
  test.each(mutations.map((m) => [m.when, m] as const))(
    'when %s, then the check reports it',
    (_when, mutation) => {
      const files = mutation.in === 'rules' ? texts.rules : texts.tests;
      const file = [...files.keys()].find((f) => (files.get(f) ?? '').includes(mutation.from));
      expect(file).toBeDefined();
      const changed = new Map(files);
      changed.set(
        file as string,
        (files.get(file as string) ?? '').replace(mutation.from, mutation.to),
      );
      const mutated = subjectOf(
        mutation.in === 'rules' ? { ...texts, rules: changed } : { ...texts, tests: changed },
        exported,
      );
      expect(mutation.check(mutated).join('\n')).toMatch(mutation.reports);
    },
  );

  test('when the service stops exporting a metric the rules read, then the metric check reports it', () => {
    const without = new Set([...exported].filter((name) => name !== 'ops_dependency_up'));
    expect(metricNameProblems(subjectOf(texts, without)).join('\n')).toMatch(
      /OpsServiceDatabaseDown reads ops_dependency_up/,
    );
  });

  test('when a runbook heading is renamed, then the runbook check reports it', () => {
    const subject = subjectOf(texts, exported);
    const runbook = new Map(subject.runbook);
    runbook.set(
      'errors.md',
      new Set([...(runbook.get('errors.md') ?? [])].filter((a) => a !== 'overloaded')),
    );
    expect(runbookProblems({ ...subject, runbook }).join('\n')).toMatch(
      /OpsServiceEventLoopLag runbook_url runbook\/errors.md#overloaded: runbook\/errors.md has no heading/,
    );
  });
});
