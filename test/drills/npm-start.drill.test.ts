// Contract section 1: `kill -TERM` on the `npm start` process runs the graceful path and npm
// ends with the service's own exit code (npm start uses `exec`, see package.json).
import { spawn } from 'node:child_process';
import { ROOT, baseEnv } from '../helpers/service-process';

jest.setTimeout(60_000);

it('when npm start receives SIGTERM, then the service shuts down gracefully and npm exits with its code', async () => {
  const child = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    env: { ...baseEnv(), SHUTDOWN_DELAY_MS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no service.ready from npm start: ${stdout}`)),
      50_000,
    );
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('"event":"service.ready"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  await ready;
  child.kill('SIGTERM');
  const code = await exited;
  const events = stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => (JSON.parse(line) as { event: string }).event);

  expect(code).toBe(0);
  expect(events).toContain('shutdown.begin');
  expect(events.at(-1)).toBe('service.exit');
});
