// One incident drill run: the real built service (`node dist/main.js`, APP_ENV=production) on the
// real local dependencies (a fresh PostgreSQL database, NATS JetStream under a fresh subject
// prefix, an OTLP/gRPC collector), each optionally behind a TCP proxy the drill breaks; a steady
// light load; probes; Prometheus evaluating the repository's alerts. A drill script drives it
// (`run.fault(...)`, `run.phase(...)`, `run.hold(...)`), and everything seen is kept for the page.
import os from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { type AlertWatch, startAlertWatch } from './alerts';
import { type Bearer, createBearer } from './kit/bearer';
import { type Collector, startCollector } from './kit/collector';
import { openTestNats, TEST_NATS_URL, type TestNats } from './kit/nats';
import { getPath } from './kit/orders-client';
import { freePort } from './kit/ports';
import { parsePrometheusText, type Sample } from './kit/prometheus-text';
import { type LogLine, MAIN, type ServiceProcess, startService } from './kit/service-process';
import { startTcpProxy, type TcpProxy } from './kit/tcp-proxy';
import { tempDir, type TempDir } from './kit/temp-dir';
import { createTestDatabase, type TestDatabase, urlOf } from './kit/test-database';
import { type Load, startLoad } from './load';
import { type Probes, startProbes } from './probes';

/** Production configuration, with the one change every drill makes (a short shutdown delay). */
export const BASE_ENV: Readonly<Record<string, string>> = {
  APP_ENV: 'production',
  SHUTDOWN_DELAY_MS: '500',
};

export interface MetricRow {
  /** As shown on the page, e.g. `ops_dependency_up{dependency="database"}`. */
  readonly label: string;
  readonly name: string;
  /** Samples whose labels include these are summed (none matching: no value). */
  readonly labels?: Readonly<Record<string, string>>;
}

export type Fact = string | number | boolean | undefined;

export interface Check {
  readonly what: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface Step {
  readonly at: number;
  readonly action: string;
}

export interface Phase {
  readonly key: string;
  readonly label: string;
  readonly startedAt: number;
}

export interface LifecycleCapture {
  readonly at: number;
  readonly label: string;
  readonly doc: Record<string, unknown>;
}

export interface DrillOptions {
  /** Evaluate the alerts with a real Prometheus (needs Debian's `prometheus`). */
  readonly prometheus: boolean;
  /** Progress lines (the CLI prints them; tests keep quiet). */
  readonly progress?: (line: string) => void;
}

export interface Topology {
  readonly database?: 'proxy';
  readonly broker?: 'proxy';
  readonly collector?: 'proxy';
}

export interface RunSetup {
  readonly name: string;
  readonly via: Topology;
  readonly env: Readonly<Record<string, string>>;
  readonly load: { readonly ratePerSecond: number; readonly maxInFlight: number };
}

export class DrillRun {
  readonly startedAt = Date.now();
  readonly ranAt = new Date(this.startedAt).toISOString();
  readonly loadAverage = os.loadavg()[0] ?? 0;
  readonly processes: ServiceProcess[] = [];
  readonly steps: Step[] = [];
  readonly phases: Phase[] = [];
  readonly snapshots = new Map<string, Sample[]>();
  readonly lifecycles: LifecycleCapture[] = [];
  readonly facts: Record<string, Fact> = {};
  readonly checks: Check[] = [];
  /** Exit code of each process that ended, by its index in `processes`. */
  readonly exitCodes = new Map<number, number>();
  readonly versions: Record<string, string> = {};
  t0: number | undefined;
  alertsSkipped: string | undefined;
  database!: TestDatabase;
  nats!: TestNats;
  collector!: Collector;
  databaseProxy: TcpProxy | undefined;
  brokerProxy: TcpProxy | undefined;
  collectorProxy: TcpProxy | undefined;
  port = 0;
  opsPort = 0;
  env: Record<string, string> = {};
  /** The drill's files (the JWK Set), removed at the end. */
  readonly dir: TempDir = tempDir('ops-service-incident-');
  /** Production takes bearer tokens only: the drill's clients carry one. */
  readonly bearer: Bearer = createBearer(this.dir);
  probes: Probes | undefined;
  load: Load | undefined;
  alerts: AlertWatch | undefined;
  private readonly marks = new Map<string, number>();
  private readonly keptValues = new Map<string, unknown>();

  constructor(
    readonly setup: RunSetup,
    readonly options: DrillOptions,
  ) {}

  /** The service process started last. */
  get service(): ServiceProcess {
    const service = this.processes.at(-1);
    if (service === undefined) throw new Error('no service started yet');
    return service;
  }

  get phase(): string {
    return this.phases.at(-1)?.key ?? 'setup';
  }

  progress(line: string): void {
    this.options.progress?.(`[${this.setup.name}] ${line}`);
  }

  // -------------------------------------------------------------------------------------------
  // Set up and tear down

  async setUp(): Promise<void> {
    const { via } = this.setup;
    this.database = await createTestDatabase('ops_incident');
    this.nats = await openTestNats();
    this.collector = await startCollector();
    const postgres = new URL(this.database.url);
    const nats = new URL(TEST_NATS_URL);
    if (via.database === 'proxy') {
      this.databaseProxy = await startTcpProxy({
        host: postgres.hostname,
        port: Number(postgres.port || 5432),
      });
    }
    if (via.broker === 'proxy') {
      this.brokerProxy = await startTcpProxy({
        host: nats.hostname,
        port: Number(nats.port || 4222),
      });
    }
    if (via.collector === 'proxy') {
      this.collectorProxy = await startTcpProxy({ host: '127.0.0.1', port: this.collector.port });
    }
    const [server] = await this.database.query<{ server_version: string }>('SHOW server_version');
    this.versions.postgresql = server?.server_version ?? 'unknown';
    this.versions['nats-server'] = this.nats.nc.info?.version ?? 'unknown';
    this.port = await freePort();
    this.opsPort = await freePort();
    this.env = {
      ...BASE_ENV,
      HOST: '127.0.0.1',
      OPS_HOST: '127.0.0.1',
      PORT: String(this.port),
      OPS_PORT: String(this.opsPort),
      DATABASE_URL:
        this.databaseProxy === undefined
          ? this.database.url
          : urlOf(this.database.name, `postgres://postgres@127.0.0.1:${this.databaseProxy.port}/`),
      NATS_URL:
        this.brokerProxy === undefined
          ? TEST_NATS_URL
          : `nats://127.0.0.1:${this.brokerProxy.port}`,
      NATS_SUBJECT_PREFIX: this.nats.prefix,
      ...this.bearer.env,
      OTEL_EXPORTER_OTLP_ENDPOINT:
        this.collectorProxy === undefined
          ? this.collector.endpoint
          : `http://127.0.0.1:${this.collectorProxy.port}`,
      ...this.setup.env,
    };
    await this.startService();
    await this.service.waitForEvent('broker.connected', 10_000);
    if (this.options.prometheus) {
      try {
        this.alerts = await startAlertWatch(this.opsPort, () => this.phase);
        this.versions.prometheus = this.alerts.version;
        await this.alerts.ready();
      } catch (error) {
        this.alertsSkipped = `Prometheus could not be used: ${String(error).split('\n')[0]}`;
        await this.alerts?.stop();
        this.alerts = undefined;
      }
    } else {
      this.alertsSkipped = 'not evaluated in this run (run without Prometheus)';
    }
    this.probes = startProbes(this.port);
    this.load = startLoad(this.port, {
      ...this.setup.load,
      keyPrefix: `${this.setup.name}-${this.startedAt.toString(36)}`,
      headers: this.bearer.headers,
    });
    this.phases.push({ key: 'before', label: 'steady load', startedAt: Date.now() });
    this.step(
      `steady load starts: ${this.setup.load.ratePerSecond} orders/s (POST /v1/orders, then a GET of the order), open loop, at most ${this.setup.load.maxInFlight} in flight; probes every 200 ms`,
    );
  }

  async tearDown(): Promise<void> {
    await this.probes?.stop().catch(() => undefined);
    await this.load?.stop().catch(() => undefined);
    for (const service of this.processes) {
      if (service.child.exitCode === null && service.child.signalCode === null) {
        service.kill('SIGKILL');
        await service.exited(5_000).catch(() => undefined);
      }
    }
    await this.alerts?.stop().catch(() => undefined);
    for (const proxy of [this.databaseProxy, this.brokerProxy, this.collectorProxy]) {
      await proxy?.close().catch(() => undefined);
    }
    await this.collector?.close().catch(() => undefined);
    await this.nats?.close().catch(() => undefined);
    await this.database?.drop().catch(() => undefined);
    this.dir.remove();
  }

  // -------------------------------------------------------------------------------------------
  // The service

  /** Starts `node dist/main.js` with the run's environment and waits for `service.ready`. */
  async startService(): Promise<ServiceProcess> {
    const index = this.processes.length;
    const { service } = await startService(this.env, { script: MAIN, readyTimeoutMs: 20_000 });
    this.processes.push(service);
    void service.exited(600_000).then(
      (code) => this.exitCodes.set(index, code),
      () => undefined,
    );
    return service;
  }

  alive(service: ServiceProcess = this.service): boolean {
    return service.child.exitCode === null && service.child.signalCode === null;
  }

  signal(signal: NodeJS.Signals, action: string, mark?: string): void {
    this.step(action, mark);
    this.service.kill(signal);
  }

  /** Waits for the current process to exit and returns its code. */
  async exited(timeoutMs = 15_000): Promise<number> {
    const code = await this.service.exited(timeoutMs);
    this.exitCodes.set(this.processes.length - 1, code);
    return code;
  }

  /** Log lines of every process of the run, with the process's index. */
  lines(): { proc: number; line: LogLine }[] {
    return this.processes.flatMap((service, proc) => service.lines.map((line) => ({ proc, line })));
  }

  /** The first line of `event` (of any process, or of `proc`), if any. */
  line(event: string, proc?: number): LogLine | undefined {
    return this.lines().find(
      (l) => l.line.event === event && (proc === undefined || l.proc === proc),
    )?.line;
  }

  // -------------------------------------------------------------------------------------------
  // The timeline

  step(action: string, mark?: string): number {
    const at = Date.now();
    this.steps.push({ at, action });
    if (mark !== undefined) this.marks.set(mark, at);
    this.progress(action);
    return at;
  }

  mark(name: string): number {
    const at = this.marks.get(name);
    if (at === undefined) throw new Error(`no mark ${name}`);
    return at;
  }

  /** The fault: time zero of the page. */
  async fault(action: string, phase: { key: string; label: string }): Promise<void> {
    await this.nextPhase(phase.key, phase.label);
    this.t0 = this.step(action, 'fault');
  }

  /** Ends the current phase (its metrics are read now, if the ops listener answers). */
  async nextPhase(key: string, label: string): Promise<void> {
    await this.snapshot();
    this.phases.push({ key, label, startedAt: Date.now() });
  }

  /** Reads /metrics into the current phase's column (the last successful read of a phase wins). */
  async snapshot(): Promise<void> {
    const res = await getPath(this.opsPort, '/metrics');
    if (res.status !== 200 || res.text === undefined) return;
    try {
      this.snapshots.set(this.phase, parsePrometheusText(res.text));
    } catch {
      // A scrape cut off mid-body by an exit: keep the previous read.
    }
  }

  /** Reads /lifecycle now, kept for the page under `label`. */
  async lifecycle(label: string): Promise<Record<string, unknown> | undefined> {
    const doc = await this.lifecycleDoc();
    if (doc !== undefined) this.lifecycles.push({ at: Date.now(), label, doc });
    return doc;
  }

  async lifecycleDoc(): Promise<Record<string, unknown> | undefined> {
    const res = await getPath(this.opsPort, '/lifecycle');
    return res.status === 200 ? res.json : undefined;
  }

  hold(ms: number): Promise<void> {
    return delay(ms).then(() => undefined);
  }

  /**
   * Polls `condition` every 100 ms for at most `maxMs`; resolves with when it first held, or
   * undefined. Never throws: a drill reports what it saw, it does not give up.
   */
  async until(
    condition: () => boolean | Promise<boolean>,
    maxMs: number,
  ): Promise<number | undefined> {
    const deadline = Date.now() + maxMs;
    for (;;) {
      if (await condition()) return Date.now();
      if (Date.now() > deadline) return undefined;
      await delay(100);
    }
  }

  /** The first probe sample at or after `since` whose /ready answered `status`. */
  readyAnswer(status: string, since: number): number | undefined {
    return this.probes?.samples.find((s) => s.at >= since && s.ready === status)?.at;
  }

  // -------------------------------------------------------------------------------------------
  // The database, from the drill's side

  /**
   * A session of the drill's own takes `LOCK TABLE <table> IN EXCLUSIVE MODE` (orders then wait
   * on it: they are in flight, in their transaction, holding their Idempotency-Key); the returned
   * function commits and ends the session.
   */
  async lockTable(table: string): Promise<() => Promise<void>> {
    const client = new pg.Client({ connectionString: this.database.url });
    client.on('error', () => undefined);
    await client.connect();
    await client.query('BEGIN');
    await client.query(`LOCK TABLE ${table} IN EXCLUSIVE MODE`);
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      await client.query('COMMIT').catch(() => undefined);
      await client.end().catch(() => undefined);
    };
  }

  /** Orders committed for these Idempotency-Keys, by key. */
  async ordersByKey(keys: readonly string[]): Promise<Map<string, number>> {
    const rows = await this.database.query<{ idempotency_key: string; n: string }>(
      'SELECT idempotency_key, count(*) AS n FROM orders WHERE idempotency_key = ANY($1::text[]) GROUP BY 1',
      [keys],
    );
    return new Map(rows.map((row) => [row.idempotency_key, Number(row.n)]));
  }

  // -------------------------------------------------------------------------------------------
  // Findings

  /** Keeps something the drill's script saw for its conclusions. */
  keep(key: string, value: unknown): void {
    this.keptValues.set(key, value);
  }

  kept<T>(key: string): T | undefined {
    return this.keptValues.get(key) as T | undefined;
  }

  fact(key: string, value: Fact): void {
    this.facts[key] = value;
  }

  check(what: string, ok: boolean, detail: string): void {
    this.checks.push({ what, ok, detail });
    if (!ok) this.progress(`CHECK FAILED: ${what}: ${detail}`);
  }

  /** Ends the run: reads the last phase's metrics, stops the load and probes, stops the service. */
  async finish(): Promise<void> {
    if (this.alive()) await this.snapshot();
    await this.load?.stop();
    await this.probes?.stop();
    if (this.alive()) {
      this.signal('SIGTERM', 'SIGTERM: the drill ends, the service stops normally');
      await this.exited();
    }
  }
}
