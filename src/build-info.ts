// What build is running: shown in service.start, /lifecycle and the telemetry resource.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from './config/load-config';

export interface BuildInfo {
  readonly name: string;
  readonly version: string;
  readonly node: string;
}

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (cached === undefined) {
    const pkg = JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as {
      name: string;
      version: string;
    };
    cached = Object.freeze({ name: pkg.name, version: pkg.version, node: process.version });
  }
  return cached;
}
