// npm run incident -- <name>|all [--out DIR] [--no-prometheus]
// Runs incident drills against the real built service and real local dependencies (PostgreSQL on
// 127.0.0.1:5432, NATS JetStream on 127.0.0.1:4222, Debian's prometheus), and writes each drill's
// on-call page to runbook/incidents/<name>.md. Exit code 1 when a drill failed or one of its checks
// did not hold (the page is written anyway: it shows what was seen).
import { DRILLS, INCIDENTS_DIR, runIncident } from './incidents';

function usage(): string {
  return [
    'usage: npm run incident -- <name>|all [--out DIR] [--no-prometheus]',
    '',
    'drills:',
    ...DRILLS.map((d) => `  ${d.name.padEnd(22)} ${d.summary}`),
    `  ${'all'.padEnd(22)} every drill, one after the other`,
    '',
    `pages go to ${INCIDENTS_DIR} unless --out says otherwise`,
  ].join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const names = argv.filter((arg) => !arg.startsWith('--'));
  const outIndex = argv.indexOf('--out');
  const outDir = outIndex >= 0 ? argv[outIndex + 1] : undefined;
  const positional = names.filter((name) => name !== outDir);
  if (positional.length !== 1 || argv.includes('--help')) {
    process.stderr.write(`${usage()}\n`);
    return positional.length === 1 ? 0 : 2;
  }
  const [name] = positional as [string];
  const selected = name === 'all' ? DRILLS.map((d) => d.name) : [name];
  if (name !== 'all' && !DRILLS.some((d) => d.name === name)) {
    process.stderr.write(`unknown drill ${name}\n\n${usage()}\n`);
    return 2;
  }
  let failures = 0;
  for (const drill of selected) {
    const startedAt = Date.now();
    try {
      const result = await runIncident(drill, {
        outDir: outDir ?? INCIDENTS_DIR,
        prometheus: !argv.includes('--no-prometheus'),
        progress: (line) => process.stdout.write(`${line}\n`),
      });
      const took = ((Date.now() - startedAt) / 1000).toFixed(1);
      process.stdout.write(
        `${drill}: ${result.drill.headline(result.run)}\n${drill}: wrote ${result.file} (${took} s), ${result.run.checks.length - result.failed.length}/${result.run.checks.length} checks held\n\n`,
      );
      if (result.failed.length > 0) {
        failures += 1;
        for (const check of result.failed) {
          process.stdout.write(`${drill}: CHECK FAILED: ${check.what}: ${check.detail}\n`);
        }
      }
    } catch (error) {
      failures += 1;
      process.stderr.write(
        `${drill}: the drill failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
    }
  }
  return failures === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  },
);
