import { buildInfo } from '../../src/build-info';
import { loadConfig } from '../../src/config/load-config';
import type { Logger } from '../../src/telemetry/logger';
import { createTelemetry, type Telemetry } from '../../src/telemetry/telemetry';

/** Real telemetry on the test config: spans are made (ids reach logs and problems), not exported. */
export function testTelemetry(logger: Logger): Telemetry {
  const loaded = loadConfig({ env: { APP_ENV: 'test' } });
  if (!loaded.ok) throw new Error('the test config is invalid');
  return createTelemetry(loaded.config, buildInfo(), logger);
}
