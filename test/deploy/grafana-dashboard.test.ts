// The Grafana dashboard of the local stack (issue #14 item 4), deploy/grafana/dashboards/: every
// PromQL expression it runs (panel targets, template variable queries) reads only series a real
// running service exports (scraped here from a fresh instance, ./live-service.ts) or a rule of
// deploy/prometheus/rules records, with only the labels those series really have (or the
// target's job and instance); promtool parses every expression; every panel and query uses the
// provisioned Prometheus datasource by its uid; every panel has a unique id, a title and a
// description saying what to look for, and every runbook page it names has that heading. Where
// compose mounts the provisioning files and the dashboards is checked with the rest of the stack
// in compose.test.ts. Each check returns its problems as text; the mutation tests at the end
// prove each one can fail.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { anchorsOf } from '../../scripts/incidents/kit/markdown';
import { tempDir } from '../helpers/temp-dir';
import { scrapeLiveService } from './live-service';
import { type Dict, dict, isDict, list, optionalScalar } from './narrow';
import { analyzePromql, exportedLabels, exportedNames, type PromqlUse } from './promql';
import {
  filesIn,
  parseRules,
  PROMETHEUS_OWN_SERIES,
  promtoolFailure,
  readFiles,
  recordedLabels,
  ROOT,
  type Rule,
  RULE_FILES,
  TARGET_LABELS,
} from './rule-files';

jest.setTimeout(60_000);

const FILES = {
  dashboard: 'deploy/grafana/dashboards/ops-service.json',
  datasources: 'deploy/grafana/provisioning/datasources/prometheus.yml',
} as const;
const PANEL_TYPES = ['timeseries', 'stat'];
/** What the `$instance` variable filters on, in every selector of a scraped series. */
const INSTANCE_MATCHER = { label: 'instance', op: '=~', value: '$instance' };
/** Grafana's own range variables, given a duration here so promtool can parse the expression. */
const GRAFANA_DURATIONS =
  /\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}/g;
const VARIABLE_USE = /\$([A-Za-z_]\w*)|\$\{([A-Za-z_]\w*)(?::\w+)?\}|\[\[([A-Za-z_]\w*)\]\]/g;
const RUNBOOK_LINK = /runbook\/([A-Za-z0-9_-]+\.md)#([A-Za-z0-9_-]+)/g;

// ---------------------------------------------------------------------------------------------
// The dashboard and the provisioned datasources

interface Panel {
  readonly id: unknown;
  readonly type: string;
  readonly title: string;
  readonly description: string;
  readonly datasource: unknown;
  readonly gridPos: Dict;
  readonly targets: readonly Dict[];
  /** `panel 3 "Scrape up"`, for the problems. */
  readonly where: string;
}

/** One PromQL expression the dashboard runs, as Grafana would send it. */
interface Query {
  readonly where: string;
  /** With Grafana's range variables replaced by a duration; undefined for `label_values(label)`. */
  readonly expr: string | undefined;
  /** The label of a `label_values(...)` variable query. */
  readonly valuesOf: string | undefined;
  readonly datasource: unknown;
}

interface Variable {
  readonly name: string;
  readonly type: string;
  readonly datasource: unknown;
  readonly definition: string | undefined;
  readonly query: string | undefined;
}

interface Datasource {
  readonly name: string;
  readonly uid: string | undefined;
  readonly type: string | undefined;
  readonly isDefault: boolean;
}

function text(value: unknown, where: string): string {
  return optionalScalar(value, where) ?? '';
}

function panelsOf(raw: readonly unknown[]): Panel[] {
  return raw.flatMap((item, index) => {
    const panel = dict(item, `panels[${index}]`);
    const title = text(panel.title, 'title');
    const own: Panel = {
      id: panel.id,
      type: text(panel.type, 'type'),
      title,
      description: text(panel.description, 'description'),
      datasource: panel.datasource,
      gridPos: dict(panel.gridPos, 'gridPos'),
      targets: list(panel.targets, 'targets').map((t) => dict(t, 'target')),
      where: `panel ${String(panel.id)} ${JSON.stringify(title)}`,
    };
    // A collapsed row holds its panels.
    return [own, ...panelsOf(list(panel.panels, 'panels'))];
  });
}

function variablesOf(dashboard: Dict): Variable[] {
  return list(dict(dashboard.templating, 'templating').list, 'templating.list').map((item) => {
    const variable = dict(item, 'variable');
    const query = isDict(variable.query)
      ? optionalScalar(variable.query.query, 'query.query')
      : optionalScalar(variable.query, 'query');
    return {
      name: text(variable.name, 'name'),
      type: text(variable.type, 'type'),
      datasource: variable.datasource,
      definition: optionalScalar(variable.definition, 'definition'),
      query,
    };
  });
}

function interpolate(expr: string): string {
  return expr.replace(GRAFANA_DURATIONS, '5m');
}

function queriesOf(panels: readonly Panel[], variables: readonly Variable[]): Query[] {
  const queries: Query[] = [];
  for (const panel of panels) {
    for (const target of panel.targets) {
      const expr = text(target.expr, 'expr');
      queries.push({
        where: `${panel.where} target ${text(target.refId, 'refId')}`,
        expr: interpolate(expr),
        valuesOf: undefined,
        datasource: target.datasource,
      });
    }
  }
  for (const variable of variables.filter((v) => v.type === 'query')) {
    const where = `variable ${variable.name}`;
    const query = (variable.query ?? '').trim();
    // label_values(selector, label) or label_values(label); query_result(expr).
    const values = /^label_values\(\s*(?:([\s\S]*?)\s*,\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)$/.exec(
      query,
    );
    const result = /^query_result\(([\s\S]*)\)$/.exec(query);
    queries.push({
      where,
      expr: values !== null ? values[1] : interpolate(result?.[1] ?? query),
      valuesOf: values?.[2],
      datasource: variable.datasource,
    });
  }
  return queries;
}

function parseDatasources(yamlText: string): Datasource[] {
  const document = dict(parseYaml(yamlText), FILES.datasources);
  return list(document.datasources, 'datasources').map((item) => {
    const source = dict(item, 'datasource');
    return {
      name: text(source.name, 'name'),
      uid: optionalScalar(source.uid, 'uid'),
      type: optionalScalar(source.type, 'type'),
      isDefault: source.isDefault === true,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// The subject: the repository's files, and what a real service exports

interface Texts {
  readonly dashboard: string;
  readonly datasources: string;
}

interface Subject {
  readonly panels: readonly Panel[];
  readonly variables: readonly Variable[];
  readonly queries: readonly Query[];
  readonly datasources: readonly Datasource[];
  readonly rules: readonly Rule[];
  /** Each exported series name with its label names. */
  readonly exported: ReadonlyMap<string, ReadonlySet<string>>;
  readonly runbook: ReadonlyMap<string, ReadonlySet<string>>;
}

function readTexts(): Texts {
  const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');
  return { dashboard: read(FILES.dashboard), datasources: read(FILES.datasources) };
}

function runbookAnchors(): Map<string, Set<string>> {
  return new Map(
    filesIn('runbook', '.md').map((file) => [
      path.posix.basename(file),
      anchorsOf(readFileSync(path.join(ROOT, file), 'utf8')),
    ]),
  );
}

const rules = [...readFiles(RULE_FILES)].flatMap(([file, body]) => parseRules(file, body));
const runbook = runbookAnchors();

function subjectOf(texts: Texts, exported: ReadonlyMap<string, ReadonlySet<string>>): Subject {
  const dashboard = dict(JSON.parse(texts.dashboard) as unknown, FILES.dashboard);
  const panels = panelsOf(list(dashboard.panels, 'panels'));
  const variables = variablesOf(dashboard);
  return {
    panels,
    variables,
    queries: queriesOf(panels, variables),
    datasources: parseDatasources(texts.datasources),
    rules,
    exported,
    runbook,
  };
}

/** Names from the scrape (histogram suffixes included) with the label names of their samples. */
function exportedSeries(body: string): Map<string, Set<string>> {
  const labels = exportedLabels(body);
  return new Map([...exportedNames(body)].map((name) => [name, labels.get(name) ?? new Set()]));
}

/** The expression's use, or a problem line when it cannot be read. */
function analyzed(query: Query, problems: string[]): PromqlUse | undefined {
  if (query.expr === undefined) return undefined;
  try {
    return analyzePromql(query.expr);
  } catch (error) {
    problems.push(`${query.where}: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

/**
 * The label names of each series the dashboard may read, undefined for a series nobody makes:
 * a scraped one has its samples' labels plus the target's job and instance; a recorded one has
 * only those its rule keeps (aggregated by job, it has no instance).
 */
function labelsOf(subject: Subject, metric: string): ReadonlySet<string> | undefined {
  const scraped = new Map<string, ReadonlySet<string>>(
    [...subject.exported, ...PROMETHEUS_OWN_SERIES].map(([name, labels]) => [
      name,
      new Set([...labels, ...TARGET_LABELS]),
    ]),
  );
  return scraped.get(metric) ?? recordedLabels(subject.rules, scraped).get(metric);
}

// ---------------------------------------------------------------------------------------------
// Checks: each returns what is wrong, one line per problem

function metricProblems(subject: Subject): string[] {
  const problems: string[] = [];
  for (const query of subject.queries) {
    for (const metric of analyzed(query, problems)?.metrics ?? []) {
      if (labelsOf(subject, metric) !== undefined) continue;
      problems.push(
        `${query.where} reads ${metric}, which the service does not export and no rule records`,
      );
    }
  }
  return problems;
}

function labelProblems(subject: Subject): string[] {
  const problems: string[] = [];
  const lacking = (metric: string, label: string): boolean => {
    const labels = labelsOf(subject, metric);
    // An unknown series is metricProblems' to report.
    return labels !== undefined && !labels.has(label);
  };
  for (const query of subject.queries) {
    const use = analyzed(query, []);
    for (const selector of use?.selectors ?? []) {
      for (const label of selector.labels) {
        if (selector.metric !== undefined && lacking(selector.metric, label)) {
          problems.push(
            `${query.where} selects ${selector.metric} by ${label}, a label it does not have`,
          );
        }
      }
    }
    for (const grouping of use?.groupings ?? []) {
      for (const label of grouping.labels) {
        for (const metric of grouping.scope.filter((m) => lacking(m, label))) {
          problems.push(
            `${query.where} groups ${metric} ${grouping.keyword} ${label}, a label it does not have`,
          );
        }
      }
    }
    const label = query.valuesOf;
    if (label === undefined) continue;
    const metrics = use?.metrics ?? [];
    const anywhere = [...subject.exported.values()].some((labels) => labels.has(label));
    if (metrics.length === 0 && !anywhere && !TARGET_LABELS.includes(label)) {
      problems.push(`${query.where} lists the values of ${label}, which no exported series has`);
    }
    for (const metric of metrics.filter((m) => lacking(m, label))) {
      problems.push(`${query.where} lists the values of ${label}, a label ${metric} does not have`);
    }
  }
  return problems;
}

function datasourceProblems(subject: Subject): string[] {
  const problems: string[] = [];
  const defaults = subject.datasources.filter((d) => d.isDefault);
  const source = defaults[0];
  if (defaults.length !== 1 || source === undefined) {
    return [`${FILES.datasources} provisions ${defaults.length} default datasources, expected 1`];
  }
  if (source.type !== 'prometheus') {
    problems.push(
      `the default datasource ${source.name} is ${String(source.type)}, not prometheus`,
    );
  }
  if (source.uid === undefined || source.uid === '') {
    return [...problems, `the default datasource ${source.name} has no fixed uid to refer to`];
  }
  const check = (where: string, reference: unknown): void => {
    const ref = isDict(reference) ? reference : {};
    if (ref.uid !== source.uid || ref.type !== 'prometheus') {
      problems.push(
        `${where} uses datasource ${JSON.stringify(reference ?? null)}, not the provisioned {"type":"prometheus","uid":"${source.uid}"}`,
      );
    }
  };
  for (const panel of subject.panels.filter((p) => p.type !== 'row'))
    check(panel.where, panel.datasource);
  for (const query of subject.queries) check(query.where, query.datasource);
  return problems;
}

function panelProblems(subject: Subject): string[] {
  const problems: string[] = [];
  const seen = new Set<unknown>();
  for (const panel of subject.panels) {
    if (typeof panel.id !== 'number') problems.push(`${panel.where} has no numeric id`);
    else if (seen.has(panel.id)) problems.push(`${panel.where}: id ${panel.id} is used twice`);
    seen.add(panel.id);
    if (panel.title.trim() === '') problems.push(`${panel.where} has no title`);
    if (panel.type === 'row') continue;
    if (!PANEL_TYPES.includes(panel.type)) {
      problems.push(`${panel.where} is a ${panel.type} panel, not ${PANEL_TYPES.join(' or ')}`);
    }
    if (panel.description.trim() === '') {
      problems.push(`${panel.where} has no description saying what to look for`);
    }
    const refIds = panel.targets.map((t) => text(t.refId, 'refId'));
    if (refIds.length === 0) problems.push(`${panel.where} has no query`);
    if (new Set(refIds).size !== refIds.length) problems.push(`${panel.where} repeats a refId`);
    for (const target of panel.targets) {
      if (text(target.expr, 'expr').trim() === '') {
        problems.push(`${panel.where} target ${text(target.refId, 'refId')} has no expr`);
      }
    }
  }
  return problems;
}

/** Grid cells (24 columns) must not be shared: Grafana would move panels around. */
function layoutProblems(subject: Subject): string[] {
  const problems: string[] = [];
  const taken = new Map<string, string>();
  for (const panel of subject.panels) {
    const [x, y, w, h] = ['x', 'y', 'w', 'h'].map((k) => Number(panel.gridPos[k]));
    if ([x, y, w, h].some((n) => !Number.isInteger(n)) || (x ?? 0) + (w ?? 0) > 24) {
      problems.push(
        `${panel.where} has gridPos ${JSON.stringify(panel.gridPos)} outside 24 columns`,
      );
      continue;
    }
    for (let row = y ?? 0; row < (y ?? 0) + (h ?? 0); row += 1) {
      for (let column = x ?? 0; column < (x ?? 0) + (w ?? 0); column += 1) {
        const other = taken.get(`${row}:${column}`);
        if (other !== undefined && other !== panel.where) {
          problems.push(`${panel.where} overlaps ${other}`);
          row = Infinity;
          break;
        }
        taken.set(`${row}:${column}`, panel.where);
      }
    }
  }
  return problems;
}

function variableProblems(subject: Subject): string[] {
  const problems: string[] = [];
  const names = new Set(subject.variables.map((v) => v.name));
  const instance = subject.variables.find((v) => v.name === 'instance');
  if (
    instance?.type !== 'query' ||
    !/^label_values\(.*,\s*instance\s*\)$/s.test(instance.query ?? '')
  ) {
    problems.push('no query variable instance listing label_values(..., instance)');
  }
  for (const variable of subject.variables) {
    if (variable.definition !== undefined && variable.definition !== variable.query) {
      problems.push(`variable ${variable.name}: definition and query differ`);
    }
  }
  for (const panel of subject.panels) {
    for (const target of panel.targets) {
      const where = `${panel.where} target ${text(target.refId, 'refId')}`;
      const expr = text(target.expr, 'expr');
      for (const match of expr.matchAll(VARIABLE_USE)) {
        const name = match[1] ?? match[2] ?? match[3] ?? '';
        if (!name.startsWith('__') && !names.has(name)) {
          problems.push(`${where} uses $${name}, which is no variable of the dashboard`);
        }
      }
      let use: PromqlUse;
      try {
        use = analyzePromql(interpolate(expr));
      } catch {
        continue; // metricProblems reports it
      }
      for (const selector of use.selectors) {
        // A scraped series (not a recorded one, which has no instance) follows $instance.
        const scraped = selector.metric !== undefined && labelsOf(subject, selector.metric);
        const recorded = subject.rules.some(
          (r) => r.kind === 'record' && r.name === selector.metric,
        );
        if (!scraped || recorded) continue;
        if (
          !selector.matchers.some((m) => JSON.stringify(m) === JSON.stringify(INSTANCE_MATCHER))
        ) {
          problems.push(
            `${where} selects ${String(selector.metric)} without instance=~"$instance"`,
          );
        }
      }
    }
  }
  return problems;
}

function runbookProblems(subject: Subject): string[] {
  const problems: string[] = [];
  for (const panel of subject.panels) {
    for (const [link, page = '', anchor = ''] of panel.description.matchAll(RUNBOOK_LINK)) {
      const anchors = subject.runbook.get(page);
      if (anchors === undefined) problems.push(`${panel.where} names ${link}: no runbook/${page}`);
      else if (!anchors.has(anchor)) {
        problems.push(`${panel.where} names ${link}: runbook/${page} has no heading #${anchor}`);
      }
    }
  }
  return problems;
}

/** promtool parses every expression, written as the recording rules of one group. */
function promqlSyntaxProblems(subject: Subject): string {
  const records = subject.queries.flatMap((query, index) =>
    query.expr === undefined || query.expr.trim() === ''
      ? []
      : [{ record: `dashboard:query_${index}`, expr: query.expr }],
  );
  const dir = tempDir('ops-service-dashboard-');
  try {
    const file = dir.write(
      'dashboard.rules.yml',
      stringifyYaml({ groups: [{ name: 'dashboard', rules: records }] }),
    );
    // Each failing rule is named dashboard:query_<n>: say which panel or variable it is.
    return promtoolFailure('check', 'rules', file).replace(
      /"dashboard:query_(\d+)"/g,
      (name, index: string) => `${name} (${subject.queries[Number(index)]?.where ?? '?'})`,
    );
  } finally {
    dir.remove();
  }
}

// ---------------------------------------------------------------------------------------------

const texts = readTexts();
let exported: Map<string, Set<string>> = new Map();

beforeAll(async () => {
  exported = exportedSeries(await scrapeLiveService());
});

describe('the dashboard', () => {
  test('when the service is scraped, then the series the dashboard is about are there with their labels', () => {
    expect([...(exported.get('http_server_request_duration_bucket') ?? [])]).toEqual(
      expect.arrayContaining([
        'http_route',
        'http_request_method',
        'http_response_status_class',
        'le',
      ]),
    );
    expect([...(exported.get('ops_broker_messages_total') ?? [])]).toEqual(
      expect.arrayContaining(['flow', 'outcome']),
    );
    for (const name of ['ops_rate_limit_store_up', 'ops_rate_limit_store_fallbacks_total']) {
      expect(exported.has(name)).toBe(true);
    }
  });

  test('when the issue lists what to show, then a panel reads each of those series', () => {
    const subject = subjectOf(texts, exported);
    const read = new Set(subject.queries.flatMap((q) => analyzePromql(q.expr ?? '').metrics));
    for (const name of [
      'http_server_request_duration_bucket',
      'http_server_request_duration_count',
      'http_server_active_requests',
      'ops_lifecycle_state',
      'ops_dependency_up',
      'ops_circuit_breaker_state',
      'ops_outbox_backlog',
      'ops_broker_messages_total',
      'nodejs_eventloop_delay_p99',
      'ops_rate_limit_store_up',
      'ops_rate_limit_store_fallbacks_total',
      'process_start_time_seconds',
      'process_memory_rss',
      'process_memory_heap_used',
    ]) {
      expect(read).toContain(name);
    }
    const exprs = subject.queries.map((q) => q.expr ?? '').join('\n');
    for (const q of ['0.5', '0.95', '0.99'])
      expect(exprs).toContain(`histogram_quantile(${q}, sum by (http_route`);
    expect(exprs).toMatch(/outcome="dead_lettered"/);
  });

  test('when an expression reads a metric, then the running service exports it or a rule records it', () => {
    const subject = subjectOf(texts, exported);
    expect(subject.queries.length).toBeGreaterThan(10);
    expect(metricProblems(subject)).toEqual([]);
  });

  test('when an expression selects or groups by a label, then that series has the label', () => {
    expect(labelProblems(subjectOf(texts, exported))).toEqual([]);
  });

  test('when promtool parses every expression, then it accepts them', () => {
    expect(promqlSyntaxProblems(subjectOf(texts, exported))).toBe('');
  });

  test('when a panel or query names a datasource, then it is the provisioned Prometheus by uid', () => {
    expect(datasourceProblems(subjectOf(texts, exported))).toEqual([]);
  });

  test('when panels are listed, then each has a unique id, a title and a description, and a known type', () => {
    expect(panelProblems(subjectOf(texts, exported))).toEqual([]);
  });

  test('when panels are laid out, then none overlaps another or leaves the 24 columns', () => {
    expect(layoutProblems(subjectOf(texts, exported))).toEqual([]);
  });

  test('when a query uses a variable, then it is defined, and every scraped series follows $instance', () => {
    expect(variableProblems(subjectOf(texts, exported))).toEqual([]);
  });

  test('when a description names a runbook page, then it has that heading', () => {
    expect(runbookProblems(subjectOf(texts, exported))).toEqual([]);
  });
});

describe('the PromQL reader', () => {
  test('when an expression is read, then selectors, groupings and their scope come out', () => {
    const use = analyzePromql(
      'sum by (route) (rate(a_total{x="1", le=~"0.5"}[5m])) / on (job) group_left (k) ' +
        'max without (pod) (b{__name__="b", y!="z"} or {__name__="c"}) > 1e3 # {z="1"}',
    );
    expect(use.metrics).toEqual(['a_total', 'b', 'c']);
    expect(use.selectors.map((s) => [s.metric, s.labels])).toEqual([
      ['a_total', ['x', 'le']],
      ['b', ['y']],
      ['c', []],
    ]);
    expect(use.groupings.map((g) => [g.keyword, g.labels, g.scope])).toEqual([
      ['by', ['route'], ['a_total']],
      ['on', ['job'], ['a_total', 'b', 'c']],
      ['group_left', ['k'], ['a_total', 'b', 'c']],
      ['without', ['pod'], ['b']],
    ]);
    expect(analyzePromql('sum(rate(x[5m])) by (le)').groupings).toEqual([
      { keyword: 'by', labels: ['le'], scope: ['x'] },
    ]);
  });

  test('when an expression has what PromQL does not, then the reader refuses it', () => {
    expect(() => analyzePromql('rate(x[$__rate_interval])')).toThrow(/unexpected "\$"/);
    expect(() => analyzePromql('max by (a) x')).toThrow(/outside an aggregation/);
  });

  test('when a variable query is read, then label_values gives its selector and its label', () => {
    const [query] = queriesOf(
      [],
      [
        {
          name: 'v',
          type: 'query',
          datasource: {},
          definition: undefined,
          query: 'label_values(up{job="j"}, pod)',
        },
      ],
    );
    expect(query).toMatchObject({ expr: 'up{job="j"}', valuesOf: 'pod' });
  });
});

// Each check must be able to fail: break one thing in one file and the matching check has to
// report it. `from` must occur in the file (JSON-escaped in the dashboard), so a mutation never
// silently turns into a no-op when the file changes.
interface Mutation {
  readonly when: string;
  readonly file: keyof Texts;
  readonly from: string;
  readonly to: string;
  readonly check: (subject: Subject) => string[] | string;
  readonly reports: RegExp;
}

/** One panel's expression as the dashboard file writes it (JSON-escaped). */
const OUTBOX_EXPR =
  '"expr": "max by (instance) (ops_outbox_backlog{job=\\"ops-service\\", instance=~\\"$instance\\"})"';

const mutations: readonly Mutation[] = [
  {
    when: 'a panel reads a metric the service does not export',
    file: 'dashboard',
    from: 'max by (instance) (ops_outbox_backlog{',
    to: 'max by (instance) (ops_outbox_size{',
    check: metricProblems,
    reports: /"Outbox backlog" target A reads ops_outbox_size, which the service does not export/,
  },
  {
    when: 'a panel reads the histogram under its unit-suffixed name',
    file: 'dashboard',
    from: '(rate(http_server_request_duration_bucket{',
    to: '(rate(http_server_request_duration_seconds_bucket{',
    check: metricProblems,
    reports: /reads http_server_request_duration_seconds_bucket/,
  },
  {
    when: 'a selector uses a label the series does not have',
    file: 'dashboard',
    from: 'outcome=\\"dead_lettered\\"',
    to: 'result=\\"dead_lettered\\"',
    check: labelProblems,
    reports:
      /"Dead-lettered payments" target A selects ops_broker_messages_total by result, a label it does not have/,
  },
  {
    when: 'a panel groups by a label the series does not have',
    file: 'dashboard',
    from: 'sum by (error_code, error_category)',
    to: 'sum by (code, error_category)',
    check: labelProblems,
    reports: /groups ops_errors_total by code, a label it does not have/,
  },
  {
    when: 'a panel groups a route by the raw path',
    file: 'dashboard',
    from: 'sum by (http_route, http_request_method, le)',
    to: 'sum by (http_target, http_request_method, le)',
    check: labelProblems,
    reports: /groups http_server_request_duration_bucket by http_target/,
  },
  {
    when: 'the instance variable lists a label the series does not have',
    file: 'dashboard',
    from: '"query": "label_values(ops_lifecycle_state{job=\\"ops-service\\"}, instance)"',
    to: '"query": "label_values(ops_lifecycle_state{job=\\"ops-service\\"}, pod)"',
    check: labelProblems,
    reports: /variable instance lists the values of pod, a label ops_lifecycle_state does not have/,
  },
  {
    when: 'a panel filters a recorded series by instance, which its rule aggregates away',
    file: 'dashboard',
    from: OUTBOX_EXPR,
    to: '"expr": "job_route:http_server_request_duration:p99_5m{http_route=\\"/v1/orders\\", instance=~\\"$instance\\"}"',
    check: labelProblems,
    reports:
      /"Outbox backlog" target A selects job_route:http_server_request_duration:p99_5m by instance, a label it does not have/,
  },
  {
    when: 'a panel names another datasource uid',
    file: 'dashboard',
    from: '"uid": "ops-prometheus"',
    to: '"uid": "prometheus"',
    check: datasourceProblems,
    reports:
      /panel 2 "Scrape up" uses datasource \{"type":"prometheus","uid":"prometheus"\}, not the provisioned/,
  },
  {
    when: 'the provisioned datasource changes its uid',
    file: 'datasources',
    from: 'uid: ops-prometheus',
    to: 'uid: prometheus-local',
    check: datasourceProblems,
    reports: /not the provisioned \{"type":"prometheus","uid":"prometheus-local"\}/,
  },
  {
    when: 'the provisioned datasource is not the default',
    file: 'datasources',
    from: 'isDefault: true',
    to: 'isDefault: false',
    check: datasourceProblems,
    reports: /provisions 0 default datasources/,
  },
  {
    when: 'an expression is not PromQL',
    file: 'dashboard',
    from: 'histogram_quantile(0.95, sum',
    to: 'histogram_quantile(0.95 sum',
    check: promqlSyntaxProblems,
    reports: /exited 1[\s\S]*"dashboard:query_\d+" \(panel 13 "p95 latency per route" target A\)/,
  },
  {
    when: 'a panel loses its description',
    file: 'dashboard',
    from: '"description": "Whether Prometheus read',
    to: '"summary": "Whether Prometheus read',
    check: panelProblems,
    reports: /panel 2 "Scrape up" has no description/,
  },
  {
    when: 'two panels share an id',
    file: 'dashboard',
    from: '"id": 3,',
    to: '"id": 2,',
    check: panelProblems,
    reports: /id 2 is used twice/,
  },
  {
    when: 'a panel is moved onto another',
    file: 'dashboard',
    from: '"x": 4,',
    to: '"x": 2,',
    check: layoutProblems,
    reports: /"Lifecycle phase now" overlaps panel 2 "Scrape up"/,
  },
  {
    when: 'a query uses a variable the dashboard does not define',
    file: 'dashboard',
    from: 'instance=~\\"$instance\\"',
    to: 'instance=~\\"$pod\\"',
    check: variableProblems,
    reports:
      /"Scrape up" target A uses \$pod, which is no variable[\s\S]*selects up without instance=~"\$instance"/,
  },
  {
    when: 'a description names a runbook heading that does not exist',
    file: 'dashboard',
    from: 'runbook/errors.md#overloaded',
    to: 'runbook/errors.md#overload',
    check: runbookProblems,
    reports: /names runbook\/errors.md#overload: runbook\/errors.md has no heading #overload/,
  },
];

describe('each check can fail', () => {
  test.each(mutations.map((m) => [m.when, m] as const))(
    'when %s, then the check reports it',
    (_when, mutation) => {
      const original = texts[mutation.file];
      expect(original).toContain(mutation.from);
      const mutated = subjectOf(
        { ...texts, [mutation.file]: original.replace(mutation.from, mutation.to) },
        exported,
      );
      const reported = mutation.check(mutated);
      expect(Array.isArray(reported) ? reported.join('\n') : reported).toMatch(mutation.reports);
    },
  );

  test('when a panel reads a recorded series by the labels its rule keeps, then every check accepts it', () => {
    expect(texts.dashboard).toContain(OUTBOX_EXPR);
    const recorded = texts.dashboard.replace(
      OUTBOX_EXPR,
      '"expr": "job_route:http_server_request_duration:p99_5m{job=\\"ops-service\\", http_route=\\"/v1/orders\\"}"',
    );
    const subject = subjectOf({ ...texts, dashboard: recorded }, exported);
    expect([
      ...metricProblems(subject),
      ...labelProblems(subject),
      ...variableProblems(subject),
    ]).toEqual([]);
  });

  test('when the service stops exporting a label a panel groups by, then the label check reports it', () => {
    const without = new Map(exported);
    without.set(
      'ops_dependency_up',
      new Set([...(exported.get('ops_dependency_up') ?? [])].filter((l) => l !== 'dependency')),
    );
    expect(labelProblems(subjectOf(texts, without)).join('\n')).toMatch(
      /"Dependencies now" target A groups ops_dependency_up by dependency, a label it does not have/,
    );
  });

  test('when the service stops exporting a metric a panel reads, then the metric check reports it', () => {
    const without = new Map(exported);
    without.delete('nodejs_eventloop_delay_p99');
    expect(metricProblems(subjectOf(texts, without)).join('\n')).toMatch(
      /"Event loop delay p99" target A reads nodejs_eventloop_delay_p99/,
    );
  });
});
