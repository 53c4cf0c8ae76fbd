// The service's logger, made one way for the entry point and the runtime: config decides level
// and format, secrets are scrubbed, and the current request's ids join every line.
import { buildInfo } from '../build-info';
import type { LoadedConfig } from '../config/load-config';
import { currentLogFields } from '../telemetry/request-scope';
import { createLogger, type Logger } from '../telemetry/logger';

export function createServiceLogger(loaded: LoadedConfig): Logger {
  const { config } = loaded;
  return createLogger({
    service: config.telemetry.serviceName,
    version: buildInfo().version,
    env: config.env,
    level: config.log.level,
    format: config.log.format,
    secrets: loaded.secrets,
    scope: currentLogFields,
  });
}
