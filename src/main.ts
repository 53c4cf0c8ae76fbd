// Production entry point: load config -> create the runtime -> start it.
import { loadConfig } from './config/load-config';
import { EXIT_INVALID_CONFIG, reportInvalidConfig } from './config/report-invalid';
import { buildInfo } from './build-info';
import { createLogger } from './telemetry/logger';

function main(): void {
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
    process.exitCode = EXIT_INVALID_CONFIG;
    return;
  }
  const { config } = loaded;
  const logger = createLogger({
    service: config.telemetry.serviceName,
    version: build.version,
    env: config.env,
    level: config.log.level,
    format: config.log.format,
    secrets: loaded.secrets,
  });
  logger.info('service.start', {
    version: build.version,
    env: config.env,
    bind: `${config.http.host}:${config.http.port}`,
  });
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stop = (signal: NodeJS.Signals): void => {
    clearInterval(keepAlive);
    logger.info('service.exit', { code: 0, signal });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
