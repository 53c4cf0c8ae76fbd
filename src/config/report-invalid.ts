// What an operator sees when configuration is invalid: every problem on its own line on stderr
// (key, where the value came from, what was expected; never a secret), one `config.invalid`
// log event, and exit code 78 (EX_CONFIG from sysexits.h).
import type { Writable } from 'node:stream';
import type { Logger } from '../telemetry/logger';
import { type ConfigProblem, formatProblem } from './load-config';

export const EXIT_INVALID_CONFIG = 78;

export function reportInvalidConfig(
  problems: readonly ConfigProblem[],
  logger: Logger,
  stderr: Writable,
): void {
  const lines = problems.map(formatProblem);
  stderr.write(lines.map((line) => `invalid configuration: ${line}\n`).join(''));
  logger.error('config.invalid', {
    error_code: 'CONFIG_INVALID',
    error_category: 'unexpected',
    problems: lines,
    problem_count: lines.length,
  });
}
