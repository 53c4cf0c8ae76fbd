// The incident drills of `npm run incident` (scripts/incidents/), run through the same code as the
// command: the real built service (dist/main.js), a fresh PostgreSQL database, NATS under a fresh
// prefix, a real Prometheus with the repository's rules, faults through in-process TCP proxies.
// Two drills run here (their pages go to a temporary folder, not runbook/incidents/); the facts
// they observed are asserted, not only that a page was written. The committed pages are checked
// for their sections, their links and their place in runbook/incidents/README.md.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DRILLS, INCIDENTS_DIR, runIncident } from '../../scripts/incidents';
import { brokenLinks } from '../../scripts/incidents/page';
import type { DrillRun } from '../../scripts/incidents/run';
import { tempDir, type TempDir } from '../helpers/temp-dir';

jest.setTimeout(120_000);

const SECTIONS = ['## What you will see', '## What it means', '## What to do', '## This run'];

let dir: TempDir;
beforeAll(() => {
  dir = tempDir('ops-service-incidents-');
});
afterAll(() => {
  dir.remove();
});

/** The outcome of the check whose description starts with `what` (undefined: not made). */
function held(run: DrillRun, what: string): boolean | undefined {
  return run.checks.find((check) => check.what.startsWith(what))?.ok;
}

/** Each check named (by the start of its description) was made and held. */
function expectHeld(run: DrillRun, checks: readonly string[]): void {
  for (const what of checks) expect([what, held(run, what)]).toEqual([what, true]);
}

function expectPage(markdown: string): void {
  const headings = markdown.split('\n').filter((line) => line.startsWith('## '));
  expect(headings).toEqual(SECTIONS);
  expect(markdown).toMatch(/^- Date: \d{4}-\d\d-\d\dT/m);
  expect(markdown).toMatch(/^- Machine: node v\d+/m);
  expect(markdown).toMatch(/^- Command: `npm run incident -- [a-z-]+`/m);
  expect(brokenLinks(markdown)).toEqual([]);
}

it('database-down: /ready goes 503 degraded naming the database, orders fail fast with a retryable 503, everything recovers by itself and OpsServiceDatabaseDown goes pending', async () => {
  const startedAt = Date.now();
  const { run, markdown, file } = await runIncident('database-down', {
    outDir: dir.path,
    prometheus: true,
  });
  process.stdout.write(
    `incident database-down: ${Date.now() - startedAt} ms; ${run.checks.filter((c) => c.ok).length}/${run.checks.length} checks held\n`,
  );
  expect(path.dirname(file)).toBe(dir.path);
  expect(readFileSync(file, 'utf8')).toBe(markdown);
  expectPage(markdown);

  const f = run.facts;
  // Readiness: degraded within seconds, the public reason coarse, the cause on /lifecycle.
  expect(f.readyDegradedAfterMs).toEqual(expect.any(Number));
  expect(f.readyDegradedAfterMs).toBeLessThan(5_000);
  expect(JSON.parse(String(f.readyBodyDegraded))).toMatchObject({
    status: 'degraded',
    reasons: { database: 'unavailable' },
    dependencies: { database: { status: 'down', essential: true } },
  });
  expect(f.lifecycleState).toBe('ready.degraded');
  expect(String(f.lifecycleDatabaseReason)).toMatch(/\S/);
  // Back by itself once the database answers.
  expect(f.readyRecoveredAfterMs).toEqual(expect.any(Number));
  expect(f.readyRecoveredAfterMs).toBeLessThan(10_000);
  expectHeld(run, [
    '/ready turns 503 degraded',
    '/lifecycle says ready.degraded',
    '/ready is 200 again',
    '/health answered 200 throughout',
    'requests that need the database get a retryable 503',
    'once degraded, requests fail fast',
    'no request went unanswered',
    'the logs say when the database went and came back',
    'every order cut off by the fault succeeds when retried',
    'one order per retried key',
    'every 201 is a committed order',
    'no crash',
    'process #1 exits 0',
  ]);
  expect(Number(f.failedDuringOutage)).toBeGreaterThan(0);
  expect(f.retriesNot201).toBe(0);
  expect(f.exitCode).toBe(0);
  // The alert the runbook promises, seen by a real Prometheus on the repository's rules.
  expect(
    run.alerts?.polls.some((poll) => poll.states.get('OpsServiceDatabaseDown') === 'pending'),
  ).toBe(true);
  expect(markdown).toContain('`OpsServiceDatabaseDown`');
});

it('second-signal: the second SIGTERM skips the drain, the documented events come in order, the in-flight orders are cut off and rolled back, and the exit code is 1', async () => {
  const startedAt = Date.now();
  const { run, markdown } = await runIncident('second-signal', {
    outDir: dir.path,
    prometheus: true,
  });
  process.stdout.write(
    `incident second-signal: ${Date.now() - startedAt} ms; ${run.checks.filter((c) => c.ok).length}/${run.checks.length} checks held\n`,
  );
  expectPage(markdown);

  const f = run.facts;
  // runbook/shutdown.md, "Reading a shutdown from the logs": second signal during the delay.
  expect(f.contractEvents).toBe(
    'service.start > service.ready > shutdown.begin > shutdown.drain_timeout > telemetry.flush > service.exit',
  );
  expect(f.drainTimeoutCause).toBe('second_signal');
  expect(f.drainMs).toBe(0);
  expect(Number(f.aborted)).toBeGreaterThan(0);
  expect(Number(f.pendingRequests)).toBeGreaterThan(0);
  expect(f.exitCode).toBe(1);
  expect(f.exitCause).toBe('signal');
  // Close and flush budgets (1.5 s + 3 s) bound it; usually well under a second.
  expect(f.exitAfterMs).toBeLessThan(5_500);
  expect(Number(f.clientsCutOff)).toBeGreaterThan(0);
  expect(f.cutOffOrdersCommitted).toBe(0);
  expectHeld(run, [
    'the log has the documented events',
    'shutdown.drain_timeout says cause=second_signal',
    'shutdown.pending_work names the requests',
    'clients of the aborted requests get the connection closed',
    'the orders cut off by the shutdown were rolled back',
    'during the delay /ready says 503 draining',
    'drain_ms is 0',
    'process #1 exits 1',
  ]);
});

it('runbook/incidents/README.md lists every drill, and each drill has its committed page with the three sections and working links', () => {
  const readme = readFileSync(path.join(INCIDENTS_DIR, 'README.md'), 'utf8');
  const listed = [...readme.matchAll(/^\| \[([a-z-]+)\]\(\1\.md\)/gm)].map((m) => m[1]);
  expect(listed).toEqual(DRILLS.map((drill) => drill.name));
  expect(brokenLinks(readme)).toEqual([]);
  for (const drill of DRILLS) {
    const file = path.join(INCIDENTS_DIR, `${drill.name}.md`);
    expect([drill.name, existsSync(file)]).toEqual([drill.name, true]);
    const page = readFileSync(file, 'utf8');
    expect(page.startsWith(`# Incident drill: \`${drill.name}\``)).toBe(true);
    expectPage(page);
  }
});
