// Runs one incident drill and writes its page (runbook/incidents/<name>.md, or another folder).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DRILLS } from './drills';
import { ROOT } from './kit/service-process';
import { type Drill, renderPage } from './page';
import { type Check, DrillRun, type DrillOptions } from './run';

export { DRILLS };
export type { Drill };

/** Where the committed pages live. */
export const INCIDENTS_DIR = path.join(ROOT, 'runbook', 'incidents');

export interface IncidentOptions extends DrillOptions {
  /** Folder of the page (INCIDENTS_DIR for the committed pages, a temporary one in tests). */
  readonly outDir: string;
}

export interface IncidentResult {
  readonly drill: Drill;
  readonly run: DrillRun;
  readonly markdown: string;
  readonly file: string;
  readonly failed: readonly Check[];
}

/** Every drill: a healthy service under light load sets off no alert before the fault. */
function checkQuietBefore(run: DrillRun): void {
  if (run.alerts === undefined) return;
  const active = new Set(
    run.alerts.polls.filter((p) => p.phase === 'before').flatMap((p) => [...p.states.keys()]),
  );
  run.check(
    'no alert is active on the healthy service before the fault',
    active.size === 0,
    active.size === 0
      ? `${run.alerts.polls.filter((p) => p.phase === 'before').length} polls of /api/v1/alerts, none active`
      : `active before the fault: ${[...active].join(', ')}`,
  );
}

export function drillNamed(name: string): Drill {
  const drill = DRILLS.find((d) => d.name === name);
  if (drill === undefined) {
    throw new Error(`no drill ${name}; drills: ${DRILLS.map((d) => d.name).join(', ')}, all`);
  }
  return drill;
}

export async function runIncident(name: string, options: IncidentOptions): Promise<IncidentResult> {
  const drill = drillNamed(name);
  const run = new DrillRun(drill, options);
  try {
    await run.setUp();
    await drill.script(run);
    await run.finish();
    await drill.conclude(run);
    checkQuietBefore(run);
  } finally {
    await run.tearDown();
  }
  const markdown = await renderPage(drill, run);
  mkdirSync(options.outDir, { recursive: true });
  const file = path.join(options.outDir, `${drill.name}.md`);
  writeFileSync(file, markdown);
  return { drill, run, markdown, file, failed: run.checks.filter((c) => !c.ok) };
}
