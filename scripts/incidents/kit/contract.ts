// The shutdown contract's log events (CONTRACT.md section 3), as the shutdown drills and the
// incident drills compare a process's log with it.
import type { ServiceProcess } from './service-process';

/** Contract section 3 events, in the order a clean shutdown writes them. */
export const CONTRACT_SHUTDOWN_ORDER = [
  'service.start',
  'service.ready',
  'shutdown.begin',
  'shutdown.intake_stopped',
  'shutdown.drain_complete',
  'telemetry.flush',
  'service.exit',
];

const CONTRACT_EVENTS = new Set([
  ...CONTRACT_SHUTDOWN_ORDER,
  'service.start_failed',
  'shutdown.drain_timeout',
]);

export function contractEvents(service: ServiceProcess): string[] {
  return service.events().filter((event) => CONTRACT_EVENTS.has(event));
}
