// Streams the live lifecycle machine to an XState inspector (`INSPECT`). Off by default.
//   websocket://host:port  a local inspector (e.g. `npx @statelyai/inspect` style receivers)
//   sky                     Stately's hosted inspector (needs internet)
// @statelyai/inspect is ESM-only, so it is loaded lazily, and only when asked for.
import { setTimeout } from 'node:timers/promises';
import type { InspectionEvent } from 'xstate';
import type { Logger } from '../telemetry/logger';

export interface Inspector {
  inspect(event: InspectionEvent): void;
  /** Closes the connection; never holds the process open. */
  stop(): Promise<void>;
}

/** `websocket://host:port` -> `ws://host:port`; ws:// and wss:// pass through. */
export function inspectorUrl(setting: string): string {
  return setting.replace(/^websocket:\/\//, 'ws://');
}

export async function startInspector(setting: string, logger: Logger): Promise<Inspector> {
  const inspect = await import('@statelyai/inspect');
  const target = setting === 'sky' ? 'sky' : inspectorUrl(setting);
  const inspector =
    setting === 'sky'
      ? inspect.createSkyInspector({
          onerror: (error: unknown) =>
            logger.warn('inspector.error', { target, error: String(error) }),
        })
      : inspect.createWebSocketInspector({ url: target });
  logger.info('inspector.start', { target });
  return {
    inspect: (event) => inspector.inspect.next?.(event),
    // The inspector sends each event on a 0 ms timer: let the last transitions (flushing,
    // stopped) go out before closing the socket. Bounded, and the socket never holds the process.
    stop: async () => {
      await setTimeout(20, undefined, { ref: false });
      inspector.stop();
    },
  };
}
