// Startup, as the machine's `startup` actor runs it: the ops listener first (so /lifecycle shows
// startup), then the dependencies' checks, all at once (they wait on different servers: the key
// set, the database, Redis), then the main listener last, once every check has passed, so nothing
// is routed here before the service can serve. The first check to fail ends startup, named in its
// error, and the others are aborted.
import type { Server } from 'node:http';
import type { StartupOutput } from '../../machines/lifecycle.machine';
import type { StartupCheck } from '../contracts';
import { listen } from './listeners';

/** A startup check that failed: the dependency it waits for is not up. */
export class StartupCheckError extends Error {
  readonly errorCode = 'DEPENDENCY_UNAVAILABLE';
}

async function runCheck(check: StartupCheck, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  try {
    await check.run(signal);
  } catch (error) {
    if (signal.aborted) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new StartupCheckError(`${check.name}: ${message}`, { cause: error });
  }
}

/** Every check at once; rejects with the first failure, after aborting the others. */
async function runChecks(checks: readonly StartupCheck[], signal: AbortSignal): Promise<void> {
  const failed = new AbortController();
  const each = AbortSignal.any([signal, failed.signal]);
  await Promise.all(
    checks.map((check) =>
      runCheck(check, each).catch((error: unknown) => {
        failed.abort(error);
        throw error;
      }),
    ),
  );
}

interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface StartupParts {
  /** Where the listeners bind (from config). */
  readonly config: { readonly http: Endpoint; readonly ops: Endpoint };
  readonly mainServer: Server;
  readonly opsServer: Server;
  readonly checks: readonly StartupCheck[];
}

export async function startup(parts: StartupParts, signal: AbortSignal): Promise<StartupOutput> {
  const { config } = parts;
  const opsBind = await listen(parts.opsServer, 'ops', config.ops.host, config.ops.port);
  await runChecks(parts.checks, signal);
  signal.throwIfAborted();
  const bind = await listen(parts.mainServer, 'main', config.http.host, config.http.port);
  return { bind, opsBind };
}
