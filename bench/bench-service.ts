// Scenarios (b)-(d): the real ops-service runtime, started the way src/main.ts starts it (config ->
// logger -> telemetry before Express loads -> runtime), plus one router with two bench-only routes:
//   GET /bench/noop  the same no-I/O JSON route as bare-express.ts
//   GET /bench/cpu   this process's process.cpuUsage() and RSS (read around the load)
// Production code has no bench routes: only this entry point (dist/bench/) adds them. Everything
// else (request id, probes, server span, access log on stdout, metrics, drain gate, 404, errors)
// is the production middleware stack. Config comes from the environment set by bench/run.ts.
// With the argument `--orders` (scenario (e)) the orders module is loaded too, as src/main.ts
// loads it: POST/GET /v1/orders on DATABASE_URL, its startup check (migrations), workers and the
// database as an essential dependency. Without it ((b)-(d)) no module is loaded.
// First, as in src/main.ts: V8's heap settings, before anything else loads.
import '../src/heap-tuned';
import type { Request, Response } from 'express';
import { buildInfo } from '../src/build-info';
import { loadConfig } from '../src/config/load-config';
import { createServiceLogger } from '../src/runtime/service-logger';
import { createTelemetry } from '../src/telemetry/telemetry';
import {
  CPU_PATH,
  cpuReport,
  exitWithParent,
  type ListeningMessage,
  NOOP_BODY,
  NOOP_PATH,
} from './protocol';

async function main(): Promise<void> {
  // The orchestrator going away is a shutdown like any other: the runtime's SIGTERM path.
  exitWithParent(() => process.kill(process.pid, 'SIGTERM'));
  const loaded = loadConfig();
  if (!loaded.ok) {
    process.stderr.write(`bench-service: invalid config ${JSON.stringify(loaded.problems)}\n`);
    process.exit(78);
  }
  const logger = createServiceLogger(loaded);
  // As in src/main.ts: tracing exists before Express and the HTTP stack are loaded.
  const telemetry = createTelemetry(loaded.config, buildInfo(), logger);
  const { startRuntime } = await import('../src/runtime/runtime.js');
  const { Router } = await import('express');
  const modules = process.argv.includes('--orders')
    ? [(await import('../src/orders/orders.module.js')).ordersModule]
    : undefined;

  const bench = Router();
  bench.get(NOOP_PATH, (_req: Request, res: Response) => {
    res.json(NOOP_BODY);
  });
  bench.get(CPU_PATH, (_req: Request, res: Response) => {
    res.json(cpuReport());
  });

  const runtime = await startRuntime(loaded, {
    logger,
    telemetry,
    routers: [bench],
    ...(modules === undefined ? {} : { modules }),
  });

  const announce = (): void => {
    const address = runtime.mainServer.address();
    if (address === null || typeof address === 'string') return;
    const message: ListeningMessage = { type: 'listening', port: address.port };
    process.send?.(message);
  };
  if (runtime.mainServer.listening) announce();
  else runtime.mainServer.once('listening', announce);
}

void main();
