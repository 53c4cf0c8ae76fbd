// What the lifecycle says under real failures, run as an operator would (issue #12): the real
// service as a child process, real signals, a collector that never answers, a resource that never
// closes, startup work that blocks the event loop, clients that hang up. Each case is a statement
// that used to be false.
import http from 'node:http';
import { delay, get } from '../drills/drill-kit';
import { startBlackHole } from '../helpers/otlp-receiver';
import type { LogLine } from '../helpers/service-process';
import { startService } from '../helpers/service-process';

jest.setTimeout(40_000);

const REQUEST_FIELDS = ['request_id', 'trace_id', 'span_id'];

function withRequestIds(lines: readonly LogLine[]): LogLine[] {
  return lines.filter((line) => REQUEST_FIELDS.some((field) => field in line));
}

describe('the telemetry flush says how the exports really ended', () => {
  it('when the collector accepts connections and never answers, under traffic, then telemetry.flush says timeout with the spans dropped, and no exporter line carries a request id', async () => {
    const blackHole = await startBlackHole();
    try {
      const { service, port } = await startService({
        OTEL_EXPORTER_OTLP_ENDPOINT: blackHole.endpoint,
        OTEL_TRACES_SAMPLER_ARG: '1',
        SHUTDOWN_DELAY_MS: '0',
        SHUTDOWN_FLUSH_TIMEOUT_MS: '2000',
        SHUTDOWN_HARD_STOP_MS: '15000',
      });
      // Traffic across the batch processor's 1 s schedule: an export starts (and hangs) while
      // requests are being served, more spans wait for the flush.
      for (let i = 0; i < 12; i += 1) {
        await Promise.all(Array.from({ length: 4 }, () => get(port, '/drill/work?ms=5', false)));
        await delay(100);
      }
      service.kill('SIGTERM');
      expect(await service.exited()).toBe(0);
      const flush = service.lines.find((line) => line.event === 'telemetry.flush');
      expect(flush).toMatchObject({ level: 'warn', status: 'timeout' });
      expect(Number(flush?.spans_dropped)).toBeGreaterThan(0);
      expect(Number(flush?.spans_dropped_total)).toBeGreaterThanOrEqual(
        Number(flush?.spans_dropped),
      );
      const exporterLines = service.lines.filter((line) => line.event.startsWith('telemetry.'));
      expect(withRequestIds(exporterLines)).toEqual([]);
    } finally {
      await blackHole.close();
    }
  });
});

describe('lines that are not a request’s', () => {
  it('when requests are served, then only their own lines carry request ids: the lifecycle, workers and exporters never do', async () => {
    const { service, port } = await startService({ SHUTDOWN_DELAY_MS: '0' });
    for (let i = 0; i < 5; i += 1)
      expect((await get(port, '/drill/work?ms=5', false)).ok).toBe(true);
    service.kill('SIGTERM');
    expect(await service.exited()).toBe(0);
    const requestEvents = new Set(['http.request']);
    const stray = withRequestIds(service.lines).filter((line) => !requestEvents.has(line.event));
    expect(stray.map((line) => line.event)).toEqual([]);
    expect(service.lines.filter((l) => l.event === 'http.request')).toHaveLength(5);
  });
});

describe('readiness and load shedding agree', () => {
  it('when startup blocked the event loop, then requests after ready are served, not shed, for as long as the loop is on time', async () => {
    const { service, port } = await startService({
      // A block far above the threshold; the threshold far above a healthy loop's p99 under
      // CI load, so only startup's block could shed.
      DRILL_STARTUP_BLOCK_MS: '1500',
      SHED_EVENT_LOOP_DELAY_MS: '300',
      RATE_LIMIT_MAX: '0',
    });
    try {
      const ready = await new Promise<number>((resolve) => {
        http.get({ host: '127.0.0.1', port, path: '/ready', agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
      });
      expect(ready).toBe(200);
      // Over the next windows of the event-loop monitor (1 s each): the one holding startup's
      // block must not count.
      const statuses: number[] = [];
      for (let round = 0; round < 12; round += 1) {
        const outcomes = await Promise.all(
          Array.from({ length: 3 }, () => get(port, '/drill/work?ms=1', false)),
        );
        statuses.push(...outcomes.map((o) => o.status ?? 0));
        await delay(200);
      }
      expect(statuses).toEqual(Array(36).fill(200));
      expect(service.lines.filter((l) => l.error_code === 'OVERLOADED')).toEqual([]);
    } finally {
      service.kill('SIGTERM');
      await service.exited();
    }
  });
});

describe('closing resources is a step of its own', () => {
  it('when a resource never closes, then it is given up at its budget (resource.close_timeout), the others still close in order, and the flush keeps its whole budget', async () => {
    const { service } = await startService({
      DRILL_HUNG_RESOURCE: '1',
      SHUTDOWN_DELAY_MS: '0',
      SHUTDOWN_CLOSE_TIMEOUT_MS: '1000',
      SHUTDOWN_FLUSH_TIMEOUT_MS: '1000',
    });
    service.kill('SIGTERM');
    expect(await service.exited()).toBe(0);
    const events = service.events();
    const at = (event: string): number => events.indexOf(event);
    const closed = service.lines.find((l) => l.event === 'resource.closed');
    const hung = service.lines.find((l) => l.event === 'resource.close_timeout');
    expect(closed).toMatchObject({ resource: 'database', close_ms: expect.any(Number) as unknown });
    expect(hung).toMatchObject({
      level: 'warn',
      resource: 'drill-hung',
      error_code: 'RESOURCE_CLOSE_TIMEOUT',
    });
    // Its share of the step: half of SHUTDOWN_CLOSE_TIMEOUT_MS (the database has its own half).
    expect(Number(hung?.close_ms)).toBeGreaterThanOrEqual(490);
    expect(Number(hung?.close_ms)).toBeLessThan(900);
    expect(at('shutdown.drain_complete')).toBeLessThan(at('resource.closed'));
    expect(at('resource.closed')).toBeLessThan(at('resource.close_timeout'));
    expect(at('resource.close_timeout')).toBeLessThan(at('telemetry.flush'));
    const flush = service.lines.find((l) => l.event === 'telemetry.flush');
    expect(flush).toMatchObject({ status: 'ok' });
    const transitions = service.lines
      .filter((l) => l.event === 'lifecycle.transition')
      .map((l) => l.to);
    expect(transitions).toContain('draining.closing');
    expect(transitions.indexOf('draining.closing')).toBeLessThan(transitions.indexOf('flushing'));
  });
});

describe('what is holding shutdown', () => {
  it('when the drain runs out, then shutdown.pending_work names the requests still running, the resources not closed and the handle kinds, and /lifecycle showed them while draining', async () => {
    const { service, port, opsPort } = await startService({
      SHUTDOWN_DELAY_MS: '0',
      SHUTDOWN_DRAIN_TIMEOUT_MS: '1500',
      RATE_LIMIT_MAX: '0',
    });
    const slow = [
      get(port, '/drill/work?ms=10000', false),
      get(port, '/drill/work?ms=10000', false),
    ];
    await delay(200);
    service.kill('SIGTERM');
    await service.waitForEvent('shutdown.intake_stopped');
    const lifecycle = await new Promise<Record<string, unknown>>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: opsPort, path: '/lifecycle', agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>));
        })
        .on('error', reject);
    });
    expect(lifecycle).toMatchObject({
      state: 'draining.drain.waiting',
      pending: { in_flight: 2, resources: ['database'] },
      shutdown: { drain_deadline: expect.any(String) as unknown },
    });
    expect(await service.exited()).toBe(1);
    await Promise.all(slow);
    const pending = service.lines.find((l) => l.event === 'shutdown.pending_work');
    expect(pending).toMatchObject({
      level: 'warn',
      cause: 'drain_timeout',
      in_flight: 2,
      resources: ['database'],
      workers: [],
    });
    const requests = pending?.requests as { method: string; route: string; age_ms: number }[];
    expect(requests).toHaveLength(2);
    for (const request of requests) {
      expect(request).toMatchObject({ method: 'GET', route: '/drill/work', stage: 'handler' });
      expect(request.age_ms).toBeGreaterThanOrEqual(1_500);
    }
    expect(Object.keys(pending?.handles as object)).toContain('TCPSocketWrap');
    expect(service.events().indexOf('shutdown.pending_work')).toBeLessThan(
      service.events().indexOf('resource.closed'),
    );
  });
});

describe('log levels follow the category', () => {
  it('when a client hangs up before its answer, then its access line is info with aborted, never error', async () => {
    const { service, port } = await startService({ SHUTDOWN_DELAY_MS: '0' });
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/drill/work?ms=400', agent: false });
      req.on('error', () => resolve());
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 100);
    });
    await delay(600);
    service.kill('SIGTERM');
    expect(await service.exited()).toBe(0);
    const line = service.lines.find((l) => l.event === 'http.request');
    expect(line).toMatchObject({ level: 'info', aborted: true });
    expect(service.lines.filter((l) => l.level === 'error')).toEqual([]);
  });
});
