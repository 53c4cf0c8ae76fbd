// The shutdown drill's chart (bench/results/shutdown-drill.png): per server, for the load balancer
// and the blind model, the requests dropped, the 503 answers and the time to exit (medians, with
// the min–max range as a whisker; the exit codes beside the exit bars). Drawn as an SVG made here
// (no chart library), rendered by Debian's Chromium through playwright-core.
//   node dist/bench/drill-chart.js [results.json] [chart.png]
// redraws it from a drill's JSON (bench/results/shutdown-drill.json by default); `npm run bench --
// drill` calls renderDrillChart itself after writing the results.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../src/config/load-config';
import { renderSvgPng } from './svg-png';

/** What the chart needs of a drill's aggregate row (bench/drill.ts DrillAggregate). */
export interface ChartRow {
  readonly server: string;
  readonly label: string;
  readonly model: 'lb' | 'blind';
  readonly runs: number;
  readonly dropped: readonly number[];
  readonly s503: readonly number[];
  readonly exitMs: readonly number[];
  readonly exitCodes: string;
}

export interface ChartInput {
  readonly rows: readonly ChartRow[];
  readonly title: string;
  readonly subtitle: string;
  /** A dashed line on the exit panel (ops-service's goal), ms. */
  readonly exitGoalMs: number;
}

const COLORS = { lb: '#2563eb', blind: '#ea580c' } as const;
const MODEL_NAMES = { lb: 'load balancer', blind: 'blind' } as const;

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function med(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return 0;
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? 0)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** A round axis maximum at or above `value`. */
function niceMax(value: number): number {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

interface Panel {
  readonly title: string;
  /** Logarithmic axis from 10 (the exit times span 10 ms to 10 s). */
  readonly log?: boolean;
  readonly values: (row: ChartRow) => readonly number[];
  readonly note?: (row: ChartRow) => { text: string; bad: boolean };
  readonly goal?: { value: number; label: string };
}

export function drillChartSvg(input: ChartInput): string {
  const servers = [...new Map(input.rows.map((r) => [r.server, r.label])).entries()];
  const rowOf = (server: string, model: 'lb' | 'blind'): ChartRow | undefined =>
    input.rows.find((r) => r.server === server && r.model === model);
  const panels: Panel[] = [
    { title: 'requests dropped (no response)', values: (r) => r.dropped },
    { title: '503 answers', values: (r) => r.s503 },
    {
      title: 'time to exit after SIGTERM (ms, log scale), exit code',
      log: true,
      values: (r) => r.exitMs,
      note: (r) => ({ text: r.exitCodes, bad: r.exitCodes !== '0' }),
      goal: { value: input.exitGoalMs, label: `goal ${input.exitGoalMs} ms` },
    },
  ];

  const labelWidth = 330;
  const panelWidth = 330;
  const panelGap = 40;
  const top = 112;
  const bar = 13;
  const rowHeight = 2 * bar + 16;
  const plotHeight = servers.length * rowHeight;
  const width = labelWidth + panels.length * (panelWidth + panelGap) + 10;
  const height = top + plotHeight + 70;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="14" y="26" font-size="17" font-weight="bold">${esc(input.title)}</text>`,
    ...input.subtitle
      .split('\n')
      .map((line, i) => `<text x="14" y="${46 + i * 16}" fill="#444">${esc(line)}</text>`),
  );
  // Legend
  let lx = 14;
  for (const model of ['lb', 'blind'] as const) {
    parts.push(
      `<rect x="${lx}" y="72" width="14" height="12" fill="${COLORS[model]}"/>`,
      `<text x="${lx + 20}" y="83">${MODEL_NAMES[model]} model</text>`,
    );
    lx += 160;
  }
  parts.push(
    `<line x1="${lx}" y1="78" x2="${lx + 20}" y2="78" stroke="#111" stroke-width="1.5"/>`,
    `<line x1="${lx}" y1="73" x2="${lx}" y2="83" stroke="#111" stroke-width="1.5"/>`,
    `<line x1="${lx + 20}" y1="73" x2="${lx + 20}" y2="83" stroke="#111" stroke-width="1.5"/>`,
    `<text x="${lx + 28}" y="83">min–max over the runs; bar = median</text>`,
  );

  servers.forEach(([, label], index) => {
    const y = top + index * rowHeight;
    if (index % 2 === 0) {
      parts.push(`<rect x="0" y="${y}" width="${width}" height="${rowHeight}" fill="#f4f4f5"/>`);
    }
    const [name, versions] = label.includes(' (')
      ? [label.slice(0, label.indexOf(' (')), label.slice(label.indexOf(' (') + 1)]
      : [label, ''];
    parts.push(
      `<text x="14" y="${y + rowHeight / 2 - 2}" font-weight="bold">${esc(name)}</text>`,
      `<text x="14" y="${y + rowHeight / 2 + 12}" fill="#555" font-size="10.5">${esc(versions)}</text>`,
    );
  });

  panels.forEach((panel, p) => {
    const x0 = labelWidth + p * (panelWidth + panelGap);
    const all = input.rows.flatMap((r) => [...panel.values(r)]);
    const span = panelWidth - 40;
    const logMax = Math.ceil(Math.log10(Math.max(...all, panel.goal?.value ?? 0, 100)));
    const max = panel.log === true ? 10 ** logMax : niceMax(Math.max(...all, 1));
    const scale = (v: number): number =>
      panel.log === true
        ? (Math.max(0, Math.log10(Math.max(v, 10)) - 1) / (logMax - 1)) * span
        : (v / max) * span;
    const ticks =
      panel.log === true
        ? Array.from({ length: logMax }, (_, i) => 10 ** (i + 1))
        : Array.from({ length: 5 }, (_, i) => (max / 4) * i);
    parts.push(`<text x="${x0}" y="${top - 10}" font-weight="bold">${esc(panel.title)}</text>`);
    // Grid and axis
    for (const v of ticks) {
      const gx = x0 + scale(v);
      parts.push(
        `<line x1="${gx}" y1="${top}" x2="${gx}" y2="${top + plotHeight}" stroke="#d4d4d8"/>`,
        `<text x="${gx}" y="${top + plotHeight + 16}" text-anchor="middle" fill="#555">${Number(v.toFixed(1))}</text>`,
      );
    }
    if (panel.goal !== undefined) {
      const gx = x0 + scale(panel.goal.value);
      parts.push(
        `<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${top + plotHeight}" stroke="#16a34a" stroke-width="1.5" stroke-dasharray="5 3"/>`,
        `<text x="${gx + 3}" y="${top + plotHeight + 32}" fill="#16a34a">${esc(panel.goal.label)}</text>`,
      );
    }
    servers.forEach(([server], index) => {
      (['lb', 'blind'] as const).forEach((model, m) => {
        const row = rowOf(server, model);
        const by = top + index * rowHeight + 8 + m * bar;
        if (row === undefined) return;
        const values = panel.values(row);
        const v = med(values);
        const lo = Math.min(...values);
        const hi = Math.max(...values);
        parts.push(
          `<rect x="${x0}" y="${by}" width="${Math.max(scale(v), v > 0 ? 1.5 : 0)}" height="${bar - 2}" fill="${COLORS[model]}"/>`,
        );
        if (hi > lo) {
          const wy = by + (bar - 2) / 2;
          parts.push(
            `<line x1="${x0 + scale(lo)}" y1="${wy}" x2="${x0 + scale(hi)}" y2="${wy}" stroke="#111" stroke-width="1.2"/>`,
            `<line x1="${x0 + scale(lo)}" y1="${wy - 4}" x2="${x0 + scale(lo)}" y2="${wy + 4}" stroke="#111" stroke-width="1.2"/>`,
            `<line x1="${x0 + scale(hi)}" y1="${wy - 4}" x2="${x0 + scale(hi)}" y2="${wy + 4}" stroke="#111" stroke-width="1.2"/>`,
          );
        }
        const note = panel.note?.(row);
        const text = `${Number(v.toFixed(0))}${note === undefined ? '' : ` · exit ${note.text}`}`;
        parts.push(
          `<text x="${x0 + Math.max(scale(hi), scale(v)) + 5}" y="${by + bar - 3}" font-size="10.5" ` +
            `fill="${note?.bad === true ? '#b91c1c' : '#222'}">${esc(text)}</text>`,
        );
      });
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Renders the chart to `pngFile` with Debian's Chromium (playwright-core, no browser download). */
export async function renderDrillChart(input: ChartInput, pngFile: string): Promise<void> {
  await renderSvgPng(drillChartSvg(input), pngFile);
}

/** The chart's input from a drill's JSON (bench/results/shutdown-drill.json). */
export function chartInputOf(json: {
  rows: readonly ChartRow[];
  machine: string;
  exitGoalMs: number;
  runs: number;
  idle: string;
}): ChartInput {
  return {
    rows: json.rows,
    title: 'Shutdown drill: 64 busy keep-alive connections, GET 50 ms, SIGTERM mid-load',
    subtitle:
      `${json.runs} runs per server and model (medians); delay 500 ms where the library has one; ` +
      `idle connections: ${json.idle === 'keep' ? 'kept open by the clients' : 'closed by the clients'}\n${json.machine}`,
    exitGoalMs: json.exitGoalMs,
  };
}

if (require.main === module) {
  const results = path.join(packageRoot(), 'bench', 'results');
  const jsonFile = process.argv[2] ?? path.join(results, 'shutdown-drill.json');
  const pngFile = process.argv[3] ?? path.join(results, 'shutdown-drill.png');
  const json = JSON.parse(readFileSync(jsonFile, 'utf8')) as Parameters<typeof chartInputOf>[0];
  renderDrillChart(chartInputOf(json), pngFile).then(
    () => console.log(`wrote ${pngFile}`),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
