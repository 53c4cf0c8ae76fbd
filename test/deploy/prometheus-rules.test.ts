// The alerting and recording rules in deploy/prometheus/ (issue #14): promtool accepts them and
// their unit tests pass; every metric an expression reads is one a real running service exports
// (scraped here from a fresh instance, not taken from a list that could drift), or, in
// kubernetes.rules.yml only, one of the few kube-state-metrics series listed below; every alert has
// a severity, a summary, a description and a runbook_url naming a real heading of runbook/; every
// alert has unit tests where it fires and where it does not. Each check returns its problems as
// text; the mutation tests at the end prove each one can fail.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { anchorsOf } from '../../scripts/incidents/kit/markdown';
import { scrapeLiveService } from './live-service';
import { dict, list, optionalScalar } from './narrow';
import { exportedNames, metricNames } from './promql';
import {
  filesIn,
  parseRules,
  PROMETHEUS_DIR,
  PROMETHEUS_OWN_SERIES,
  promtoolFailure,
  readFiles,
  ROOT,
  type Rule,
  RULE_FILES,
  RULES_DIR,
} from './rule-files';

jest.setTimeout(60_000);

const TESTS_DIR = `${PROMETHEUS_DIR}/tests`;
const RUNBOOK_DIR = 'runbook';
const SEVERITIES = ['critical', 'warning'];
/** runbook_url is relative to the repository root (see the header of the rules file). */
const RUNBOOK_URL = /^runbook\/([A-Za-z0-9_-]+\.md)#([^#\s]+)$/;

const TEST_FILES = filesIn(TESTS_DIR, '.test.yml');

/** The one rule file that reads series from kube-state-metrics instead of the service. */
const KUBERNETES_RULES = `${RULES_DIR}/kubernetes.rules.yml`;
/**
 * The kube-state-metrics series KUBERNETES_RULES may read, and only that file. No running service
 * can show them, so they are listed by hand, as kube-state-metrics v2.x documents them
 * (docs/metrics/workload/pod-metrics.md of kubernetes/kube-state-metrics; labels namespace, pod,
 * uid, container): the exit code and the reason of a container's last termination (both
 * EXPERIMENTAL; the exit code since v2.7.0) and its restart counter (STABLE). Keep it this short: a
 * name added here is trusted without a check.
 */
const KUBE_STATE_METRICS_SERIES: ReadonlySet<string> = new Set([
  'kube_pod_container_status_last_terminated_exitcode',
  'kube_pod_container_status_last_terminated_reason',
  'kube_pod_container_status_restarts_total',
]);

// ---------------------------------------------------------------------------------------------
// Rules and their unit tests

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
    const testName = optionalScalar(test.name, `${file}: test name`) ?? '(unnamed)';
    for (const rawCase of list(test.alert_rule_test, `${file}: ${testName}.alert_rule_test`)) {
      const item = dict(rawCase, `${file}: ${testName} alert_rule_test`);
      cases.push({
        file,
        test: testName,
        alertname: optionalScalar(item.alertname, 'alertname') ?? '',
        fires: list(item.exp_alerts, 'exp_alerts').length > 0,
      });
    }
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// Runbook headings, as GitHub anchors them

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
      if (PROMETHEUS_OWN_SERIES.has(name)) continue;
      if (rule.file === KUBERNETES_RULES) {
        if (KUBE_STATE_METRICS_SERIES.has(name)) continue;
        problems.push(
          `${rule.file}: ${rule.name} reads ${name}, which neither the service nor kube-state-metrics (KUBE_STATE_METRICS_SERIES) exports and no rule records`,
        );
        continue;
      }
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
  return { rules: readFiles(RULE_FILES), tests: readFiles(TEST_FILES) };
}

function subjectOf(texts: Texts, exported: ReadonlySet<string>): Subject {
  return {
    rules: [...texts.rules].flatMap(([file, text]) => parseRules(file, text)),
    cases: [...texts.tests].flatMap(([file, text]) => parseAlertCases(file, text)),
    exported,
    runbook: runbookAnchors(),
  };
}

const texts = readTexts();
let exported: Set<string> = new Set();

// A real service after traffic that makes every lazily created series appear (./live-service.ts).
beforeAll(async () => {
  exported = exportedNames(await scrapeLiveService());
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

  test('when the kubernetes rules read kube-state-metrics, then they read every listed series and nothing of the service', () => {
    const rules = subjectOf(texts, exported).rules.filter((r) => r.file === KUBERNETES_RULES);
    expect(rules.map((r) => r.name).sort()).toEqual([
      'OpsServiceConfigInvalid',
      'OpsServiceKilled',
      'OpsServiceUncleanExit',
    ]);
    const read = new Set(rules.flatMap((r) => metricNames(r.expr)));
    expect([...read].sort()).toEqual([...KUBE_STATE_METRICS_SERIES].sort());
    for (const rule of rules) expect(rule.expr).toMatch(/container="ops-service"/);
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
    when: 'the kubernetes rules read a name kube-state-metrics does not export',
    in: 'rules',
    from: 'increase(kube_pod_container_status_restarts_total{container="ops-service"}[10m])',
    to: 'increase(kube_pod_container_restarts_total{container="ops-service"}[10m])',
    check: metricNameProblems,
    reports:
      /kubernetes\.rules\.yml: OpsServiceUncleanExit reads kube_pod_container_restarts_total, which neither the service nor kube-state-metrics/,
  },
  {
    when: 'the kubernetes rules read a service metric under a wrong name',
    in: 'rules',
    from: 'max by (namespace, pod, container) (kube_pod_container_status_last_terminated_exitcode{container="ops-service"}) == 78',
    to: 'max by (namespace, pod, container) (ops_exit_code{container="ops-service"}) == 78',
    check: metricNameProblems,
    reports: /OpsServiceConfigInvalid reads ops_exit_code, which neither the service nor/,
  },
  {
    when: 'a rule outside kubernetes.rules.yml reads a kube-state-metrics series',
    in: 'rules',
    from: 'expr: up{job="ops-service"} == 0',
    to: 'expr: kube_pod_container_status_restarts_total{container="ops-service"} > 0',
    check: metricNameProblems,
    reports:
      /ops-service\.rules\.yml: OpsServiceDown reads kube_pod_container_status_restarts_total, which the service does not export/,
  },
  {
    when: 'a kubernetes alert loses its only firing unit test',
    in: 'tests',
    from: 'alertname: OpsServiceUncleanExit\n        exp_alerts:\n          - exp_labels:',
    to: 'alertname: OpsServiceUncleanExitt\n        exp_alerts:\n          - exp_labels:',
    check: coverageProblems,
    reports:
      /OpsServiceUncleanExit: no unit test where it fires[\s\S]*tests OpsServiceUncleanExitt, which is no alert/,
  },
  {
    when: 'a kubernetes alert names a runbook heading that does not exist',
    in: 'rules',
    from: 'runbook_url: runbook/errors.md#config_invalid',
    to: 'runbook_url: runbook/errors.md#invalid_config',
    check: runbookProblems,
    reports:
      /OpsServiceConfigInvalid runbook_url .*: runbook\/errors.md has no heading #invalid_config/,
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
