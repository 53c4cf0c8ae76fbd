// The main listener's app as the runtime builds it, on the test config (overridable), for
// supertest: a real lifecycle actor, a real tracker and real telemetry (spans not exported).
import type { Express, Router } from 'express';
import { loadConfig } from '../../src/config/load-config';
import type { AppConfig } from '../../src/config/schema';
import { createApp } from '../../src/http/app';
import { currentLogFields } from '../../src/telemetry/request-scope';
import type { LifecycleView } from '../../src/http/lifecycle-view';
import { RequestTracker } from '../../src/http/request-tracker';
import type { Telemetry } from '../../src/telemetry/telemetry';
import { type CapturedLogger, captureLogger } from './log-capture';
import { testTelemetry } from './test-telemetry';

export interface TestApp {
  readonly app: Express;
  readonly tracker: RequestTracker;
  readonly log: CapturedLogger;
  readonly telemetry: Telemetry;
  readonly config: Readonly<AppConfig>;
}

export function testConfig(env: Record<string, string> = {}): Readonly<AppConfig> {
  const loaded = loadConfig({ env: { APP_ENV: 'test', ...env } });
  if (!loaded.ok) throw new Error(`test config invalid: ${JSON.stringify(loaded.problems)}`);
  return loaded.config;
}

export function testApp(
  lifecycle: LifecycleView,
  options: { routers?: Router[]; env?: Record<string, string> } = {},
): TestApp {
  const config = testConfig(options.env);
  const tracker = new RequestTracker();
  const log = captureLogger({ scope: currentLogFields });
  const telemetry = testTelemetry(log.logger);
  const app = createApp({
    config,
    lifecycle,
    tracker,
    logger: log.logger,
    telemetry,
    routers: options.routers ?? [],
  });
  return { app, tracker, log, telemetry, config };
}
