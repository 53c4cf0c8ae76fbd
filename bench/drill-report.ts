// Writes a shutdown drill's results (`npm run bench -- drill`): bench/results/shutdown-drill.md (the
// table, the machine, the date and the command, every run, and every request ops-service dropped),
// shutdown-drill.json (the same figures, for the chart and for comparisons) and shutdown-drill.png
// (drill-chart.ts). A chart that cannot be drawn (no Chromium) is reported, not fatal.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../src/config/load-config';
import { chartInputOf, renderDrillChart } from './drill-chart';
import type { DrillAggregate, RunResult } from './drill';

export interface DrillReport {
  readonly machine: string;
  readonly command: string;
  readonly seconds: number;
  readonly idle: 'keep' | 'close';
  readonly runs: number;
  readonly exitGoalMs: number;
  readonly table: string;
  readonly goals: readonly string[];
  readonly serviceDrops: readonly string[];
  readonly perRun: string;
  readonly problems: readonly string[];
  readonly rows: readonly DrillAggregate[];
  readonly results: readonly RunResult[];
  readonly setups: readonly { label: string; setup: string }[];
}

/** Writes a results file as `npm run lint` (prettier --check .) wants it. */
export async function writeFormatted(file: string, text: string): Promise<void> {
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(file)) ?? {};
  writeFileSync(file, await prettier.format(text, { ...options, filepath: file }));
}

export async function writeDrillResults(report: DrillReport): Promise<void> {
  const dir = path.join(packageRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const md = path.join(dir, 'shutdown-drill.md');
  const json = path.join(dir, 'shutdown-drill.json');
  const png = path.join(dir, 'shutdown-drill.png');

  const lines = [
    '# Shutdown drill: ops-service and its peers',
    '',
    'Written by `npm run bench -- drill` (bench/drill.ts; method in [bench/README.md](../README.md#shutdown-drill-drillts)). Do not edit by hand: run it again.',
    '',
    `- **Machine:** ${report.machine} (2 cores, shared with other work on the host)`,
    `- **Command:** \`${report.command}\` (${report.seconds.toFixed(0)} s)`,
    `- **Load:** 64 keep-alive connections, each sending its next GET /drill/work (50 ms, 1 KiB of JSON) as soon as the previous one is answered; SIGTERM after 1 s of load; ${report.runs} runs per server and model, the server order reversed every other round; idle keep-alive connections ${report.idle === 'keep' ? 'kept open by the clients (a load balancer’s pool) until the server closes them' : 'closed by the clients once every loop has stopped'}.`,
    '- **Load balancer model:** readiness polled every 100 ms; the first failed poll after the signal stops every client. No readiness: the clients stop 500 ms after the signal.',
    '- **Blind model:** every client keeps sending (a new connection after `Connection: close`) until its first error, for at most 3 s after the signal.',
    '',
    '| server | setup |',
    '| --- | --- |',
    ...report.setups.map((s) => `| ${s.label} | ${s.setup} |`),
    '',
    '## Results',
    '',
    'Medians over the runs, the range (min–max) in brackets. Time to exit counts from the SIGTERM sent by the drill to the exit seen by it.',
    '',
    report.table,
    '',
    ...report.goals,
    '',
    '![Shutdown drill outcomes per server](shutdown-drill.png)',
    '',
    '- **requests**: sent on an established connection (a request whose connection was refused never went out and is counted under "refused").',
    '- **dropped**: sent, and no complete response: resets on a fresh connection (its first request) or on a reused keep-alive connection, plus timeouts and cut bodies, if any.',
    '- **503s**: answered, but not served; **refused**: the connection was refused (the listener is closed): the client learns at once, nothing was sent, a load balancer retries elsewhere.',
    '- **exit code**: the code, or the signal that ended the process; `SIGKILL (hung)`: still running 10 s after SIGTERM, killed by the drill.',
    '',
  ];
  if (report.serviceDrops.length > 0) {
    lines.push(
      "## ops-service's dropped requests, one by one",
      '',
      'Times in ms after the signal. "service access log": the status the service logged for that X-Request-Id (`http.request`), or none: the request never reached the app.',
      '',
      ...report.serviceDrops,
      '',
    );
  }
  lines.push('## Every run', '', report.perRun, '');
  if (report.problems.length > 0) {
    lines.push('## Problems', '', ...report.problems.map((p) => `- ${p}`), '');
  }
  const data = {
    machine: report.machine,
    command: report.command,
    runs: report.runs,
    idle: report.idle,
    exitGoalMs: report.exitGoalMs,
    rows: report.rows,
    // Request by request only for ops-service (the peers' are in their counts).
    results: report.results.map((r) =>
      r.server === 'ops-service' ? r : { ...r, drops: [], notServed: [] },
    ),
  };
  // As `npm run lint` (prettier --check .) wants them.
  await writeFormatted(md, lines.join('\n'));
  await writeFormatted(json, JSON.stringify(data));
  console.log(
    `- wrote ${path.relative(packageRoot(), md)} and ${path.relative(packageRoot(), json)}`,
  );
  try {
    await renderDrillChart(chartInputOf(data), png);
    console.log(`- wrote ${path.relative(packageRoot(), png)}`);
  } catch (error) {
    console.log(`- no chart: ${error instanceof Error ? error.message : String(error)}`);
  }
}
