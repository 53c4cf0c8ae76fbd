// The real runtime with the orders module, started in the test process (no signal handlers, no
// process.exit) on a test database: supertest-style tests with real listeners, the real lifecycle
// machine, real middleware and real telemetry whose spans are kept in memory for assertions.
import type { AddressInfo } from 'node:net';
import type { Router } from 'express';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { buildInfo } from '../../../src/build-info';
import { loadConfig } from '../../../src/config/load-config';
import { currentLogFields } from '../../../src/telemetry/request-scope';
import { ordersModule } from '../../../src/orders/orders.module';
import { type Runtime, startRuntime } from '../../../src/runtime/runtime';
import { createTelemetry } from '../../../src/telemetry/telemetry';
import { type CapturedLogger, captureLogger } from '../../helpers/log-capture';

export interface InProcessService {
  readonly runtime: Runtime;
  readonly port: number;
  readonly log: CapturedLogger;
  readonly spans: InMemorySpanExporter;
  events(name: string): Record<string, unknown>[];
  stop(): Promise<number>;
}

export interface InProcessOptions {
  /**
   * Test-only routers mounted before the orders routes, after the edge policies (a stand-in for
   * the authentication step: a middleware that sets the caller from a test header).
   */
  readonly before?: readonly Router[];
}

export async function startInProcess(
  env: Record<string, string>,
  options: InProcessOptions = {},
): Promise<InProcessService> {
  const loaded = loadConfig({ env: { APP_ENV: 'test', ...env } });
  if (!loaded.ok) throw new Error(`invalid test config: ${JSON.stringify(loaded.problems)}`);
  const log = captureLogger({ scope: currentLogFields });
  const spans = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const telemetry = {
    ...createTelemetry(loaded.config, buildInfo(), log.logger),
    tracer: provider.getTracer('orders-test'),
  };
  const runtime = await startRuntime(loaded, {
    modules: [
      (context) => {
        const orders = ordersModule(context);
        return { ...orders, routers: [...(options.before ?? []), ...(orders.routers ?? [])] };
      },
    ],
    logger: log.logger,
    telemetry,
    handleProcessEvents: false,
    exit: () => undefined,
  });
  await new Promise<void>((resolve, reject) => {
    const check = (): boolean => {
      const snapshot = runtime.actor.getSnapshot();
      if (snapshot.matches('ready')) {
        resolve();
        return true;
      }
      if (snapshot.status === 'done' || snapshot.matches('flushing')) {
        reject(new Error(`the service did not start: ${log.lines().join('\n')}`));
        return true;
      }
      return false;
    };
    if (check()) return;
    const subscription = runtime.actor.subscribe(() => {
      if (check()) subscription.unsubscribe();
    });
  });
  const { port } = runtime.mainServer.address() as AddressInfo;
  let stopping: Promise<number> | undefined;
  return {
    runtime,
    port,
    log,
    spans,
    events: (name) => log.records().filter((record) => record.event === name),
    stop() {
      stopping ??= (async () => {
        runtime.actor.send({ type: 'SIGNAL', signal: 'SIGTERM' });
        const code = await runtime.stopped;
        await provider.shutdown();
        return code;
      })();
      return stopping;
    },
  };
}
