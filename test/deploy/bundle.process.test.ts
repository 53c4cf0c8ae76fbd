// The production entry point, dist/main.js, is one bundled file (scripts/bundle.js): started the
// way production starts it, it must serve the whole contract from that file alone. If a package
// slipped out of the bundle (an unresolvable require, a runtime-computed path), the service would
// load it from node_modules, start slower and run a second copy of what the bundle already holds:
// this test names the file instead.
import { readFileSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import path from 'node:path';
import { ORDER_BODY } from '../../bench/protocol';
import { type OtlpReceiver, startOtlpReceiver } from '../helpers/otlp-receiver';
import { MAIN, ROOT, type Started, startService } from '../helpers/service-process';
import { type TempDir, tempDir } from '../helpers/temp-dir';
import { type TestDatabase, createTestDatabase } from '../orders/support/test-database';

jest.setTimeout(60_000);

let database: TestDatabase;
let dir: TempDir;
let started: Started;
let loadedFile: string;
let receiver: OtlpReceiver;

beforeAll(async () => {
  database = await createTestDatabase();
  receiver = await startOtlpReceiver();
  dir = tempDir();
  loadedFile = path.join(dir.path, 'loaded.json');
  // Preloaded by node: at exit, it writes the CommonJS modules the process loaded.
  const preload = dir.write(
    'record-modules.js',
    `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(loadedFile)}, JSON.stringify(Object.keys(require.cache))));\n`,
  );
  started = await startService(
    {
      DATABASE_URL: database.url,
      NODE_OPTIONS: `--require ${preload}`,
      SHUTDOWN_DELAY_MS: '0',
      // The OTLP/gRPC exporter (and gRPC) are in the bundle, loaded at the first export.
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    },
    { script: MAIN, readyTimeoutMs: 20_000 },
  );
});
afterAll(async () => {
  started?.service.kill('SIGKILL');
  dir?.remove();
  await receiver?.close();
  await database?.drop();
});

it('when a line of dist/main.js is looked up in its source map, then it names the TypeScript file and line it came from', () => {
  const bundle = readFileSync(MAIN, 'utf8').split('\n');
  expect(bundle.at(-2)).toBe('//# sourceMappingURL=main.js.map');
  const map = new SourceMap(
    JSON.parse(readFileSync(path.join(ROOT, 'dist', 'main.js.map'), 'utf8')) as SourceMapPayload,
  );
  const source = readFileSync(path.join(ROOT, 'src/telemetry/logger.ts'), 'utf8').split('\n');
  const bundled = bundle.findIndex((line) => line.includes('function isoNow()'));
  const original = source.findIndex((line) => line.startsWith('function isoNow()'));
  expect(bundled).toBeGreaterThan(0);
  const column = (bundle[bundled] ?? '').indexOf('function isoNow()');
  const entry = map.findEntry(bundled, column) as {
    originalSource?: string;
    originalLine?: number;
  };
  expect(entry.originalSource).toMatch(/\/src\/telemetry\/logger\.ts$/);
  expect(entry.originalLine).toBe(original);
});

it('when the bundled service has served orders, exported their spans, served metrics (its GC pauses too) and the lifecycle page and stopped on SIGTERM, then it loaded no CommonJS file but itself', async () => {
  const base = `http://127.0.0.1:${started.port}`;
  const ops = `http://127.0.0.1:${started.opsPort}`;
  const created = await fetch(`${base}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'bundle-test-1' },
    body: JSON.stringify(ORDER_BODY),
  });
  expect(created.status).toBe(201);
  const location = created.headers.get('location');
  expect(location).toMatch(/^\/v1\/orders\//);
  expect((await fetch(`${base}${location ?? ''}`)).status).toBe(200);
  expect((await fetch(`${base}/ready`)).status).toBe(200);
  const metrics = await (await fetch(`${ops}/metrics`)).text();
  expect(metrics).toContain('http_server_request_duration_bucket{http_request_method="POST"');
  // The process's own young-generation collections since its start (telemetry/gc-monitor.ts).
  expect(metrics).toMatch(/^nodejs_gc_duration_count\{kind="minor".*\} [1-9]\d*$/m);
  // The page and its browser files (copied next to the bundle, in dist/client).
  const page = await fetch(`${ops}/lifecycle/view`);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('<svg');
  const script = await fetch(`${ops}/lifecycle/assets/page.js`);
  expect(script.status).toBe(200);
  expect(readFileSync(path.join(ROOT, 'src/http/lifecycle-page/client/page.js'), 'utf8')).toBe(
    await script.text(),
  );

  const exited = started.service.exited();
  started.service.kill('SIGTERM');
  expect(await exited).toBe(0);

  // Flushed at the latest by the shutdown: the POST's server span, through the bundled exporter.
  expect(
    receiver.spans.some(
      (span) => span.kind === 2 && span.attributes['http.route'] === '/v1/orders',
    ),
  ).toBe(true);
  const loaded = JSON.parse(readFileSync(loadedFile, 'utf8')) as string[];
  const preload = path.join(dir.path, 'record-modules.js');
  expect(loaded.filter((file) => file !== preload)).toEqual([MAIN]);
});
