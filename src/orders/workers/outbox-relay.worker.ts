// Publishes the transactional outbox to NATS JetStream. Each run, in one database transaction:
// claim the oldest unpublished events (FOR UPDATE SKIP LOCKED, so replicas split the work),
// publish them in order with message id = event id, mark the published ones. The broker drops a
// republished duplicate (same message id within its duplicate window), so an event published but
// not marked (a crash between the two) is harmless when the next run sends it again. A publish
// failure stops the batch (order kept), is recorded on the event (publish_attempts, last_error)
// and retried at the next interval. Without a broker the events wait, counted by the backlog.
// stop() lets the current batch finish (its marks commit) and resolves.
import { SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { headers as natsHeaders } from 'nats';
import type { Broker } from '../../broker/nats-broker';
import type { Worker } from '../../contracts';
import type { Logger } from '../../telemetry/logger';
import { contextOf, traceparentOf } from '../../telemetry/trace-context';
import type { Database } from '../db/database';
import { describeDbError } from '../db/db';
import { claimPending, countBacklog, markFailed, markPublished } from '../data/outbox.repository';
import { periodic } from './periodic';

export const RELAY_BATCH = 100;
// A publish that gets no acknowledgement from the stream in this time counts as failed.
const PUBLISH_TIMEOUT_MS = 2_000;

export interface RelayWorker extends Worker {
  start(): void;
  /** Runs soon (after an order commits), coalesced with a run already due. */
  wake(): void;
  /** Publishes until the outbox is empty or a publish fails; resolves with how many were published. */
  runOnce(): Promise<number>;
}

interface BatchResult {
  readonly claimed: number;
  readonly published: number;
  readonly duplicates: number;
  readonly failure?: { readonly eventId: string; readonly reason: string };
}

export function createOutboxRelay(deps: {
  readonly database: Database;
  readonly broker: Broker;
  readonly logger: Logger;
  readonly tracer: Tracer;
  readonly intervalMs: number;
  readonly onBacklog: (backlog: number) => void;
  readonly onPublished?: (count: number) => void;
}): RelayWorker {
  const { database, broker, logger, tracer } = deps;

  async function batch(signal: AbortSignal): Promise<BatchResult | undefined> {
    const js = broker.jetstream();
    if (js === undefined) return undefined;
    return database.transaction(
      'outbox relay',
      async (session) => {
        const events = await claimPending(session, RELAY_BATCH);
        const published: string[] = [];
        let duplicates = 0;
        let failure: BatchResult['failure'];
        for (const event of events) {
          const subject = broker.naming.subject(event.subject);
          // A child of the request that wrote the event, when it was written in one.
          const parent = contextOf(event.traceParent);
          const span = tracer.startSpan(
            `publish ${subject}`,
            {
              kind: SpanKind.PRODUCER,
              attributes: {
                'messaging.system': 'nats',
                'messaging.operation.type': 'send',
                'messaging.destination.name': subject,
                'messaging.message.id': event.eventId,
              },
            },
            parent,
          );
          try {
            // The consumers of orders.created continue the PRODUCER span's trace.
            const headers = natsHeaders();
            const traceparent = traceparentOf(trace.setSpan(parent, span));
            if (traceparent !== undefined) headers.set('traceparent', traceparent);
            const ack = await js.publish(subject, event.payload, {
              msgID: event.eventId,
              timeout: PUBLISH_TIMEOUT_MS,
              headers,
            });
            if (ack.duplicate) duplicates += 1;
            published.push(event.eventId);
            span.end();
          } catch (error) {
            const reason = error instanceof Error ? error.message : String(error);
            span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
            span.end();
            // Recorded in this same transaction; the rest of the batch waits (order kept).
            await markFailed(session, event.eventId, reason);
            failure = { eventId: event.eventId, reason };
            break;
          }
        }
        await markPublished(session, published);
        return { claimed: events.length, published: published.length, duplicates, failure };
      },
      { retry: false, signal },
    );
  }

  async function relay(signal: AbortSignal): Promise<number> {
    const startedAt = performance.now();
    let total = 0;
    let duplicates = 0;
    for (;;) {
      const result = await batch(signal);
      if (result === undefined) break;
      total += result.published;
      duplicates += result.duplicates;
      if (result.failure !== undefined) {
        logger.warn('outbox.publish_failed', {
          event_id: result.failure.eventId,
          reason: result.failure.reason,
          retry_in_ms: deps.intervalMs,
          error_code: 'DEPENDENCY_UNAVAILABLE',
          error_category: 'expected',
        });
        break;
      }
      if (result.claimed < RELAY_BATCH || loop.stopped) break;
    }
    if (total > 0) {
      deps.onPublished?.(total);
      logger.info('outbox.published', {
        events: total,
        duplicates,
        ms: Math.round(performance.now() - startedAt),
      });
    }
    if (total > 0 || !loop.stopped)
      deps.onBacklog(await database.run(countBacklog, { retry: true, signal }));
    return total;
  }

  const loop = periodic({
    intervalMs: deps.intervalMs,
    run: relay,
    onError: (error: unknown) => {
      logger.warn('outbox.relay_failed', {
        reason: describeDbError(error),
        error_code: (error as { code?: unknown } | null)?.code ?? 'DEPENDENCY_UNAVAILABLE',
        error_category: 'expected',
      });
      return 0;
    },
  });

  return {
    name: 'outbox-relay',
    start() {
      // Publish what waits as soon as the broker is there (also after each reconnection).
      broker.onConnected(() => loop.wake());
      loop.start();
    },
    wake: () => loop.wake(),
    runOnce: () => loop.runOnce(),
    stop: () => loop.stop(),
    abort: () => loop.abort(),
  };
}
