// Whole-process: the built service (`node dist/main.js`) refuses to start on invalid config.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { canConnect, everListened, freePort } from '../helpers/ports';
import { spawnService } from '../helpers/service-process';
import { type TempDir, tempDir } from '../helpers/temp-dir';

let dir: TempDir;
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => {
  dir.remove();
});

async function runInvalid(env: Record<string, string>, expectedLine: string | RegExp) {
  const port = await freePort();
  const service = spawnService({ env: { PORT: String(port), ...env } });
  const exited = service.exited();
  const listened = await everListened(port, exited);
  const code = await exited;
  const stderrLines = service.stderr().trim().split('\n');

  expect(code).toBe(78);
  expect(listened).toBe(false);
  expect(service.events()).toEqual(['config.invalid']);
  expect(
    stderrLines.some((line) =>
      typeof expectedLine === 'string' ? line === expectedLine : expectedLine.test(line),
    ),
  ).toBe(true);
  const invalid = service.lines[0];
  expect(invalid).toMatchObject({
    level: 'error',
    event: 'config.invalid',
    error_code: 'CONFIG_INVALID',
    error_category: 'unexpected',
    service: 'ops-service',
    version: '0.1.0',
  });
  expect(invalid?.problem_count).toBe(stderrLines.length);
  return { service, stderrLines };
}

describe('when the configuration is invalid, then nothing listens, each problem is printed and the exit code is 78', () => {
  it('when a config file holds malformed JSON', async () => {
    const file = dir.write('bad.json', '{ "http": { "port": 8080 ');
    await runInvalid(
      { CONFIG_FILE: file },
      new RegExp(
        `^invalid configuration: CONFIG_FILE ${file} \\(from env CONFIG_FILE\\): malformed JSON: .*line 1 column \\d+$`,
      ),
    );
  });

  it('when CONFIG_FILE does not exist', async () => {
    const file = path.join(dir.path, 'missing.json');
    await runInvalid(
      { CONFIG_FILE: file },
      `invalid configuration: ${file} (from env CONFIG_FILE): config file does not exist`,
    );
  });

  it('when APP_ENV is unknown', async () => {
    await runInvalid(
      { APP_ENV: 'qa' },
      'invalid configuration: env = "qa" (from env APP_ENV): expected one of development, test, staging, production',
    );
  });

  it('when a port is out of range', async () => {
    await runInvalid(
      { OPS_PORT: '65536' },
      'invalid configuration: ops.port = "65536" (from env OPS_PORT): expected a TCP port from 0 to 65535 (0 picks a free port)',
    );
  });

  it('when a budget is not numeric', async () => {
    await runInvalid(
      { SHUTDOWN_DELAY_MS: 'five' },
      'invalid configuration: shutdown.delayMs = "five" (from env SHUTDOWN_DELAY_MS): expected a whole number of milliseconds from 0 to 3600000',
    );
  });

  it('when a config file has an unknown key', async () => {
    const file = dir.write('unknown.json', { shutdown: { graceMs: 5 } });
    await runInvalid(
      { CONFIG_FILE: file },
      `invalid configuration: shutdown.graceMs (from CONFIG_FILE ${file}): unknown key: not in the config schema`,
    );
  });

  it('when the format is pretty, then config.invalid is written in the pretty form', async () => {
    const port = await freePort();
    const service = spawnService({
      env: { PORT: String(port), LOG_FORMAT: 'pretty', LOG_LEVEL: 'chatty' },
    });
    expect(await service.exited()).toBe(78);
    expect(service.rawStdout[0]).toMatch(
      /^ERROR config\.invalid version=0\.1\.0 env=test error_code=CONFIG_INVALID error_category=unexpected problems=\[.*log\.level.*\] problem_count=1 service=ops-service ts=/,
    );
  });
});

it('when the configuration is valid, then the same probe does see the port bound (the check can fail)', async () => {
  const port = await freePort();
  const service = spawnService({ env: { PORT: String(port) } });
  const ready = await service.waitForEvent('service.ready');
  const connected = await canConnect(port);
  service.kill('SIGTERM');
  expect(await service.exited()).toBe(0);
  expect(ready.bind).toBe(`127.0.0.1:${port}`);
  expect(connected).toBe(true);
});

describe('secrets stay secret at startup', () => {
  const password = 'Zx9-very-secret-pw';

  it('when a secret is invalid, then neither stderr nor the log contains it', async () => {
    const { service } = await runInvalid(
      {
        DATABASE_URL: `mysql://orders:${password}@db/orders`,
        NATS_URL: `nats://u:${password}@nats:4222`,
        PORT: '99999',
      },
      'invalid configuration: database.url = <redacted> (from env DATABASE_URL): expected a postgres:// or postgresql:// URL, or empty to turn it off',
    );
    expect(service.stderr()).not.toContain(password);
    expect(JSON.stringify(service.lines)).not.toContain(password);
  });

  it('when secrets are valid, then no log line of a whole run contains them', async () => {
    const config = dir.write('secret.json', {
      nats: { url: `nats://svc:${password}@127.0.0.1:1` },
    });
    writeFileSync(path.join(dir.path, 'unused'), '');
    const service = spawnService({
      env: {
        CONFIG_FILE: config,
        DATABASE_URL: `postgres://orders:${password}@127.0.0.1:1/orders`,
      },
    });
    await service.waitForEvent('service.start');
    service.kill('SIGTERM');
    await service.exited();
    expect(service.stderr() + JSON.stringify(service.lines)).not.toContain(password);
  });
});
