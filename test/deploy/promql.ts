// What a PromQL expression reads (metric names, and the label names its selectors and groupings
// use) and what a scrape of /metrics exports (series names, and the label names of each), for the
// deploy tests that hold the recording rules, the alerts and the Grafana dashboard against a real
// running service. A small lexer, not a full parser: enough for the expressions this repository
// writes, and strict where it does not understand (an unknown character throws).
import { parsePrometheusText } from '../helpers/prometheus-text';

type TokenKind = 'ident' | 'string' | 'number' | 'punct';

interface Token {
  readonly kind: TokenKind;
  readonly text: string;
}

const LEXEMES: readonly (readonly [TokenKind, RegExp])[] = [
  ['string', /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/y],
  // Numbers (1e3, 0x1f, 14.4, Inf is an identifier) and durations (5m, 1h30m, 250ms).
  [
    'number',
    /0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?/y,
  ],
  ['ident', /[a-zA-Z_:][a-zA-Z0-9_:]*/y],
  ['punct', /=~|!~|!=|==|>=|<=|[{}()[\],=<>+\-*/%^@]/y],
];

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < expr.length) {
    const rest = /\s+|#[^\n]*/y;
    rest.lastIndex = at;
    if (rest.exec(expr) !== null) {
      at = rest.lastIndex;
      continue;
    }
    let matched = false;
    for (const [kind, pattern] of LEXEMES) {
      pattern.lastIndex = at;
      const match = pattern.exec(expr);
      if (match === null) continue;
      tokens.push({ kind, text: match[0] });
      at = pattern.lastIndex;
      matched = true;
      break;
    }
    if (!matched) {
      throw new Error(`PromQL: unexpected ${JSON.stringify(expr[at])} at ${at} in ${expr}`);
    }
  }
  return tokens;
}

const AGGREGATIONS = new Set([
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
  'limitk',
  'limit_ratio',
]);

/** Aggregation grouping (by, without) and vector matching (on, ignoring, group_left/right). */
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

const KEYWORDS = new Set([
  ...AGGREGATIONS,
  ...GROUPING,
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'atan2',
  'inf',
  'nan',
]);

const MATCH_OPERATORS = new Set(['=', '!=', '=~', '!~']);

export interface Matcher {
  readonly label: string;
  readonly op: string;
  readonly value: string;
}

/** A series selector: the metric it names (undefined for `{...}` alone) and its label matchers. */
export interface Selector {
  readonly metric: string | undefined;
  /** The matchers' label names, `__name__` left out. */
  readonly labels: readonly string[];
  readonly matchers: readonly Matcher[];
}

/** A `by`/`without`/`on`/`ignoring`/`group_*` list, and the metrics it groups. */
export interface Grouping {
  readonly keyword: string;
  readonly labels: readonly string[];
  /** The metrics of the aggregation's argument; for vector matching, of the whole expression. */
  readonly scope: readonly string[];
}

export interface PromqlUse {
  readonly metrics: readonly string[];
  readonly selectors: readonly Selector[];
  readonly groupings: readonly Grouping[];
}

function closing(tokens: readonly Token[], open: number): number {
  const pairs: Readonly<Record<string, string>> = { '(': ')', '{': '}', '[': ']' };
  const want = pairs[tokens[open]?.text ?? ''];
  let depth = 0;
  for (let i = open; i < tokens.length; i += 1) {
    const text = tokens[i]?.text;
    if (text === tokens[open]?.text) depth += 1;
    else if (text === want && (depth -= 1) === 0) return i;
  }
  throw new Error(`PromQL: unbalanced ${String(tokens[open]?.text)}`);
}

function unquote(text: string): string {
  return text.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** Every metric an expression reads, every selector's labels, every grouping list and its scope. */
export function analyzePromql(expr: string): PromqlUse {
  const tokens = tokenize(expr);
  const isPunct = (i: number, text: string): boolean =>
    tokens[i]?.kind === 'punct' && tokens[i]?.text === text;
  const word = (i: number): string => (tokens[i]?.kind === 'ident' ? (tokens[i]?.text ?? '') : '');

  // Token ranges that hold label names, not metric names: braces and grouping lists.
  const labelRanges: [number, number][] = [];
  const selectors: { metricAt: number | undefined; matchers: Matcher[]; nameFrom?: string }[] = [];
  const lists: { at: number; keyword: string; labels: string[] }[] = [];
  for (let i = 0; i < tokens.length; i += 1) {
    if (isPunct(i, '{')) {
      const end = closing(tokens, i);
      labelRanges.push([i, end]);
      const matchers: Matcher[] = [];
      for (let j = i + 1; j < end; j += 1) {
        const op = tokens[j + 1]?.text ?? '';
        if (tokens[j]?.kind !== 'ident' || !MATCH_OPERATORS.has(op)) continue;
        const value = tokens[j + 2]?.kind === 'string' ? unquote(tokens[j + 2]?.text ?? '""') : '';
        matchers.push({ label: tokens[j]?.text ?? '', op, value });
      }
      const name = matchers.find((m) => m.label === '__name__' && m.op === '=');
      const before = word(i - 1);
      const metricAt = before !== '' && !KEYWORDS.has(before.toLowerCase()) ? i - 1 : undefined;
      selectors.push({ metricAt, matchers, nameFrom: name?.value });
      i = end;
    } else if (GROUPING.has(word(i).toLowerCase()) && isPunct(i + 1, '(')) {
      const end = closing(tokens, i + 1);
      labelRanges.push([i + 1, end]);
      const labels = tokens.slice(i + 2, end).flatMap((t) => (t.kind === 'ident' ? [t.text] : []));
      lists.push({ at: i, keyword: word(i).toLowerCase(), labels });
      i = end;
    }
  }
  const inLabels = (i: number): boolean => labelRanges.some(([from, to]) => i > from && i < to);

  const metricAt = new Map<number, string>();
  tokens.forEach((token, i) => {
    if (token.kind !== 'ident' || inLabels(i)) return;
    if (KEYWORDS.has(token.text.toLowerCase()) || isPunct(i + 1, '(')) return;
    metricAt.set(i, token.text);
  });
  const named = selectors.flatMap((s) => (s.nameFrom === undefined ? [] : [s.nameFrom]));
  const everyMetric = [...new Set([...metricAt.values(), ...named])].sort();

  const metricsBetween = (from: number, to: number): string[] => [
    ...new Set([...metricAt].filter(([i]) => i > from && i < to).map(([, name]) => name)),
  ];
  const groupings = lists.map(({ at, keyword, labels }): Grouping => {
    if (keyword !== 'by' && keyword !== 'without') return { keyword, labels, scope: everyMetric };
    // `sum by (x) (arg)` or `sum (arg) by (x)`.
    const listEnd = closing(tokens, at + 1);
    let argument: number | undefined;
    if (AGGREGATIONS.has(word(at - 1).toLowerCase()) && isPunct(listEnd + 1, '(')) {
      argument = listEnd + 1;
    } else if (isPunct(at - 1, ')')) {
      for (let open = at - 2; open >= 0; open -= 1) {
        if (isPunct(open, '(') && closing(tokens, open) === at - 1) {
          argument = open;
          break;
        }
      }
    }
    if (argument === undefined) throw new Error(`PromQL: ${keyword} outside an aggregation`);
    return { keyword, labels, scope: metricsBetween(argument, closing(tokens, argument)) };
  });

  return {
    metrics: everyMetric,
    selectors: selectors.map((s) => ({
      metric: s.metricAt === undefined ? s.nameFrom : tokens[s.metricAt]?.text,
      labels: s.matchers.filter((m) => m.label !== '__name__').map((m) => m.label),
      matchers: s.matchers,
    })),
    groupings,
  };
}

/**
 * The metric names a PromQL expression selects: identifiers that are neither functions (followed
 * by a parenthesis), keywords, label names (inside braces or grouping lists), durations nor
 * string contents.
 */
export function metricNames(expr: string): string[] {
  return [...analyzePromql(expr).metrics];
}

// ---------------------------------------------------------------------------------------------
// What a scrape of /metrics exports

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

/** Every series name a scrape of /metrics holds, histogram suffixes included. */
export function exportedNames(body: string): Set<string> {
  const names = new Set(parsePrometheusText(body).map((sample) => sample.name));
  for (const match of body.matchAll(/^# TYPE (\S+) histogram$/gm)) {
    for (const suffix of HISTOGRAM_SUFFIXES) names.add(`${match[1] ?? ''}${suffix}`);
  }
  return names;
}

/** Each exported series name with the label names its samples carry (`le` on buckets). */
export function exportedLabels(body: string): Map<string, Set<string>> {
  const labels = new Map<string, Set<string>>();
  for (const sample of parsePrometheusText(body)) {
    const names = labels.get(sample.name) ?? new Set<string>();
    for (const label of Object.keys(sample.labels)) names.add(label);
    labels.set(sample.name, names);
  }
  return labels;
}
