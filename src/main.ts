// Production entry point: load config -> create the runtime -> start it.
// First, before anything else loads: V8's heap settings (runtime/heap-tuning.ts).
import './heap-tuned';
import { buildInfo } from './build-info';
import { loadConfig } from './config/load-config';
import { EXIT_INVALID_CONFIG, reportInvalidConfig } from './config/report-invalid';
import { createLogger } from './telemetry/logger';
import { createServiceLogger } from './runtime/service-logger';
import { createTelemetry } from './telemetry/telemetry';

async function main(): Promise<void> {
  const build = buildInfo();
  const loaded = loadConfig();
  if (!loaded.ok) {
    const logger = createLogger({
      service: build.name,
      version: build.version,
      env: loaded.hints.env,
      level: 'info',
      format: loaded.hints.logFormat,
    });
    reportInvalidConfig(loaded.problems, logger, process.stderr);
    await logger.flush();
    process.exit(EXIT_INVALID_CONFIG);
  }
  const logger = createServiceLogger(loaded);
  // Tracing exists before Express and the HTTP stack are loaded (the runtime is imported after).
  const telemetry = createTelemetry(loaded.config, build, logger);
  const { startRuntime } = await import('./runtime/runtime.js');
  const { ordersModule } = await import('./orders/orders.module.js');
  await startRuntime(loaded, { logger, telemetry, modules: [ordersModule] });
}

void main();
