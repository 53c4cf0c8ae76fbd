// Startup, as the machine's `startup` actor runs it: the ops listener first (so /lifecycle shows
// startup), then each essential dependency's check, then the main listener last, so nothing is
// routed here before the service can serve.
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
  for (const check of parts.checks) await runCheck(check, signal);
  signal.throwIfAborted();
  const bind = await listen(parts.mainServer, 'main', config.http.host, config.http.port);
  return { bind, opsBind };
}
