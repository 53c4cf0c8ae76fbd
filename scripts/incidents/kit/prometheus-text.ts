// A strict reader of the Prometheus text exposition format (0.0.4), enough to prove that
// /metrics parses and to look samples up by name and labels.
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const COMMENT = /^# (HELP|TYPE|UNIT|EOF)( |$)/;

/** Parses the body; throws naming the first line that is not valid exposition format. */
export function parsePrometheusText(body: string): Sample[] {
  const samples: Sample[] = [];
  body.split('\n').forEach((line, index) => {
    if (line === '' || COMMENT.test(line)) return;
    const match = SAMPLE.exec(line);
    if (match === null) throw new Error(`line ${index + 1} is not Prometheus text format: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[3] ?? '').matchAll(LABEL))
      labels[key as string] = value as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[4]) });
  });
  return samples;
}
