// Production entry point: load config -> create the runtime -> start it.
import { buildInfo } from './build-info';
import { loadConfig } from './config/load-config';
import { EXIT_INVALID_CONFIG, reportInvalidConfig } from './config/report-invalid';
import { startRuntime } from './runtime/runtime';
import { createLogger } from './telemetry/logger';

async function main(): Promise<void> {
  const loaded = loadConfig();
  if (!loaded.ok) {
    const build = buildInfo();
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
  await startRuntime(loaded);
}

void main();
