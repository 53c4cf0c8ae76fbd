import { PassThrough } from 'node:stream';
import { type LoggerOptions, createLogger, type Logger } from '../../src/telemetry/logger';

export interface CapturedLogger {
  readonly logger: Logger;
  /** Every line written so far. */
  readonly lines: () => string[];
  /** Every line parsed as JSON (json format only). */
  readonly records: () => Record<string, unknown>[];
}

export function captureLogger(options: Partial<LoggerOptions> = {}): CapturedLogger {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  const logger = createLogger({
    service: 'ops-service',
    version: '0.1.0',
    env: 'test',
    level: 'debug',
    format: 'json',
    stream,
    ...options,
  });
  const lines = (): string[] => text.split('\n').filter((line) => line !== '');
  return {
    logger,
    lines,
    records: () => lines().map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
