// The live lifecycle page in a real browser (Debian's chromium driven by playwright-core), against
// the real service: it shows ready.serving; losing the database shows ready.degraded with the
// reason; after SIGTERM it shows draining and then flushing before the process exits. Every state
// the page displayed is recorded in the page itself (a MutationObserver on the body's
// data-state), so a state shown for a few milliseconds is not missed. Screenshots are written to
// test-artifacts/ (not committed; the README's picture is one of them).
/// <reference lib="dom" />
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../orders/support/test-database';
import { startTcpProxy, type TcpProxy } from '../orders/support/tcp-proxy';
import { ROOT, type ServiceProcess, startService } from '../helpers/service-process';

jest.setTimeout(40_000);

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts');

let browser: Browser;
let database: TestDatabase;
let proxy: TcpProxy;
/** An OTLP endpoint that accepts connections and never answers: the flush takes its budget. */
let blackHole: net.Server;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  database = await createTestDatabase();
  const target = new URL(database.url);
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  blackHole = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
});
afterAll(async () => {
  await browser?.close();
  for (const socket of sockets) socket.destroy();
  blackHole?.close();
  await proxy?.close();
  await database?.drop();
});

async function openPage(opsPort: number): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  // Anything the page asks of another origin would fail here (no internet): there must be none.
  page.on('request', (request) => {
    if (!request.url().startsWith(`http://127.0.0.1:${opsPort}/`))
      problems.push(`request to ${request.url()}`);
  });
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { seenStates: string[] }).seenStates = seen;
    new MutationObserver(() => {
      const state = document.body.dataset.state ?? '';
      if (state !== '' && seen[seen.length - 1] !== state) seen.push(state);
    }).observe(document, {
      attributes: true,
      subtree: true,
      attributeFilter: ['data-state'],
    });
  });
  await page.goto(`http://127.0.0.1:${opsPort}/`);
  return { page, problems };
}

const shownState = (page: Page): Promise<string> =>
  page.evaluate(() => document.body.dataset.state ?? '');

const seenStates = (page: Page): Promise<string[]> =>
  page.evaluate(() => (window as unknown as { seenStates: string[] }).seenStates);

it('when the service is ready, loses its database and then gets SIGTERM, then the page shows ready.serving, ready.degraded with the reason, draining and flushing, live', async () => {
  const { service, port, opsPort } = await startService({
    DATABASE_URL: database.url.replace(/:\d+\//, `:${proxy.port}/`),
    DATABASE_CONNECT_TIMEOUT_MS: '1000',
    DATABASE_HEALTH_INTERVAL_MS: '250',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(blackHole.address() as net.AddressInfo).port}`,
    SHUTDOWN_DELAY_MS: '400',
    SHUTDOWN_FLUSH_TIMEOUT_MS: '800',
  });
  try {
    await watchThrough(service, opsPort, port);
  } finally {
    service.kill('SIGKILL');
  }
});

async function watchThrough(service: ServiceProcess, opsPort: number, port: number): Promise<void> {
  const { page, problems } = await openPage(opsPort);

  await page.waitForFunction(() => document.body.dataset.state === 'ready.serving');
  expect(await page.locator('#state').textContent()).toBe('ready.serving');
  expect(await page.locator('g.state.active').getAttribute('data-state')).toBe('ready.serving');
  expect(await page.locator('g.state.active-parent').getAttribute('data-state')).toBe('ready');
  expect(await page.locator('#dependencies').textContent()).toContain('database');
  await page.screenshot({ path: path.join(ARTIFACTS, 'lifecycle-page-ready.png'), fullPage: true });

  // The main listener never serves the page.
  const main = await fetch(`http://127.0.0.1:${port}/`);
  expect({ status: main.status, body: await main.text() }).toMatchObject({ status: 404 });

  await proxy.cut();
  await page.waitForFunction(() => document.body.dataset.state === 'ready.degraded', null, {
    timeout: 10_000,
  });
  expect(await page.locator('#readiness').textContent()).toContain('degraded');
  expect(await page.locator('#reasons').textContent()).toMatch(/database: down/);
  await page.screenshot({
    path: path.join(ARTIFACTS, 'lifecycle-page-degraded.png'),
    fullPage: true,
  });
  await proxy.restore();
  await page.waitForFunction(() => document.body.dataset.state === 'ready.serving', null, {
    timeout: 10_000,
  });

  service.kill('SIGTERM');
  await page.waitForFunction(() => document.body.dataset.state?.startsWith('draining') === true);
  await page.screenshot({
    path: path.join(ARTIFACTS, 'lifecycle-page-draining.png'),
    fullPage: true,
  });
  expect(await page.locator('#shutdown-panel').isVisible()).toBe(true);
  expect(await service.exited()).toBe(0);

  const seen = await seenStates(page);
  const first = (prefix: string): number => seen.findIndex((s) => s.startsWith(prefix));
  expect(seen).toEqual(expect.arrayContaining(['ready.serving', 'ready.degraded', 'flushing']));
  expect(first('draining')).toBeGreaterThan(seen.lastIndexOf('ready.serving'));
  expect(first('flushing')).toBeGreaterThan(first('draining'));
  // The page learns of the exit before the stream closes.
  expect(await shownState(page)).toBe('stopped');
  expect(await page.locator('#connection').textContent()).toContain('exiting with code 0');
  expect(problems).toEqual([]);
  await page.close();
}
