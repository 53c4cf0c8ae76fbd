// Consumes `payments.captured` ({"order_id", "payment_id", "amount_cents"}) from the durable
// JetStream consumer `ops-service-payments`, one message at a time. Each message ends one way:
//
//   paid        the payment row and the order's `paid` status commit, then the message is acked
//   duplicate   its payment_id was applied before (a redelivery): acked, nothing changes
//   retry       a database failure or an order not (yet) found: nak with a growing delay, until
//               PAYMENTS_MAX_DELIVER deliveries, then dead-lettered
//   dead letter a message that can never apply (not JSON, wrong shape, amount not the order's
//               total, order paid by another payment): published to `payments.dlq` with the
//               reason in headers, then terminated
//
// Acknowledged only after the commit: a crash before the ack redelivers the message, which then
// finds its payment applied. The consumer's position is JetStream's ack floor, so stop() is the
// checkpoint: it stops pulling, lets the message in hand finish (commit and ack) and resolves.
import {
  isSpanContextValid,
  trace,
  SpanKind,
  SpanStatusCode,
  type Tracer,
} from '@opentelemetry/api';
import { type ConsumerMessages, headers as natsHeaders, type JsMsg } from 'nats';
import { type Broker, PAYMENTS_CONSUMER, SUBJECTS } from '../../broker/nats-broker';
import { requestScope } from '../../telemetry/request-scope';
import type { Worker } from '../../contracts';
import type { Logger } from '../../telemetry/logger';
import { contextOf } from '../../telemetry/trace-context';
import type { Database } from '../db/database';
import { describeDbError } from '../db/db';
import { applyPayment, type CapturedPayment } from '../data/payment.repository';
import { setTimeout as sleep } from 'node:timers/promises';
import { isOrderId } from '../domain/order';
import { unstorableText } from '../domain/text';

export type PaymentResult = 'paid' | 'duplicate' | 'retry' | 'dead_lettered';

// Delay before a failed message comes back: 0.5 s, 1 s, 2 s, ... at most 30 s.
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 30_000;
// Pause before pulling again after the consumer itself failed (broker away, consumer missing).
const RESTART_DELAY_MS = 1_000;

export interface PaymentsConsumer extends Worker {
  start(): void;
}

type Parsed =
  { ok: true; payment: Omit<CapturedPayment, 'streamSequence'> } | { ok: false; reason: string };

/** The message body, checked field by field; anything else is a poison message. */
export function parsePayment(data: Uint8Array): Parsed {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    return { ok: false, reason: 'the message is not UTF-8 JSON' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, reason: 'the message is not a JSON object' };
  }
  const {
    order_id: orderId,
    payment_id: paymentId,
    amount_cents: amount,
  } = body as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof orderId !== 'string' || !isOrderId(orderId)) problems.push('order_id must be a UUID');
  if (typeof paymentId !== 'string' || paymentId.length < 1 || paymentId.length > 255) {
    problems.push('payment_id must be a string of 1-255 characters');
  } else {
    const unstorable = unstorableText(paymentId);
    if (unstorable !== undefined) problems.push(`payment_id ${unstorable}`);
  }
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0) {
    problems.push('amount_cents must be a non-negative integer');
  }
  if (problems.length > 0) return { ok: false, reason: problems.join('; ') };
  return {
    ok: true,
    payment: {
      orderId: (orderId as string).toLowerCase(),
      paymentId: paymentId as string,
      amountCents: amount as number,
    },
  };
}

export function retryDelayMs(deliveryCount: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.max(0, deliveryCount - 1));
}

export function createPaymentsConsumer(deps: {
  readonly database: Database;
  readonly broker: Broker;
  readonly logger: Logger;
  readonly tracer: Tracer;
  readonly maxDeliver: number;
  readonly onResult?: (result: PaymentResult) => void;
}): PaymentsConsumer {
  const { database, broker, logger, tracer } = deps;
  const stream = broker.naming.stream('PAYMENTS');
  const dlqSubject = broker.naming.subject(SUBJECTS.paymentsDlq);
  let messages: ConsumerMessages | undefined;
  let loop: Promise<void> | undefined;
  let inHand: Promise<unknown> | undefined;
  let stopped = false;
  let wakeUp: (() => void) | undefined;

  const done = (result: PaymentResult): PaymentResult => {
    deps.onResult?.(result);
    return result;
  };

  async function deadLetter(message: JsMsg, reason: string): Promise<PaymentResult> {
    const js = broker.jetstream();
    const sequence = message.info.streamSequence;
    try {
      if (js === undefined) throw new Error('the broker is not connected');
      const h = natsHeaders();
      h.set('Ops-Dlq-Reason', reason.slice(0, 500));
      h.set('Ops-Original-Subject', message.subject);
      h.set('Ops-Original-Sequence', String(sequence));
      h.set('Ops-Deliveries', String(message.info.deliveryCount));
      // The message id makes a second dead-lettering of the same message (a crash before the
      // term below) a duplicate the stream drops.
      await js.publish(dlqSubject, message.data, {
        msgID: `dlq-${stream}-${sequence}`,
        headers: h,
      });
    } catch (error) {
      logger.warn('payment.dead_letter_failed', {
        stream_sequence: sequence,
        reason: describeDbError(error),
        error_code: 'DEPENDENCY_UNAVAILABLE',
        error_category: 'expected',
      });
      message.nak(retryDelayMs(message.info.deliveryCount));
      return done('retry');
    }
    // No reason text: `+TERM <reason>` needs nats-server 2.10.4; older servers ignore it and
    // redeliver. The reason is in the dead letter's headers and the log line.
    message.term();
    // Needs a person (a refund, a fix upstream): counted in ops_broker_messages_total too.
    logger.warn('payment.dead_lettered', {
      stream_sequence: sequence,
      deliveries: message.info.deliveryCount,
      dlq_subject: dlqSubject,
      reason,
    });
    return done('dead_lettered');
  }

  async function retryOrDeadLetter(message: JsMsg, reason: string): Promise<PaymentResult> {
    const deliveries = message.info.deliveryCount;
    if (deliveries >= deps.maxDeliver) {
      return deadLetter(message, `${reason} (after ${deliveries} deliveries)`);
    }
    const delay = retryDelayMs(deliveries);
    message.nak(delay);
    logger.warn('payment.retry', {
      stream_sequence: message.info.streamSequence,
      deliveries,
      retry_in_ms: delay,
      reason,
    });
    return done('retry');
  }

  async function handle(message: JsMsg): Promise<PaymentResult> {
    const parsed = parsePayment(message.data);
    if (!parsed.ok) return deadLetter(message, parsed.reason);
    const payment = { ...parsed.payment, streamSequence: message.info.streamSequence };
    let outcome;
    try {
      outcome = await database.transaction(
        'apply payment',
        (session) => applyPayment(session, payment),
        { retry: true },
      );
    } catch (error) {
      return retryOrDeadLetter(message, describeDbError(error));
    }
    const fields = {
      order_id: payment.orderId,
      payment_id: payment.paymentId,
      stream_sequence: payment.streamSequence,
    };
    switch (outcome.kind) {
      case 'paid':
      case 'duplicate':
        // After the commit. A lost ack redelivers the message, which then is a duplicate.
        await message.ackAck().catch(() => false);
        if (outcome.kind === 'paid') {
          logger.info('payment.applied', { ...fields, amount_cents: payment.amountCents });
        } else {
          logger.info('payment.duplicate', fields);
        }
        return done(outcome.kind);
      case 'unknown_order':
        return retryOrDeadLetter(message, `order ${payment.orderId} not found`);
      case 'rejected':
        return deadLetter(message, outcome.reason);
    }
  }

  /**
   * One message under a CONSUMER span, continuing the publisher's trace when it sent one, in a
   * scope of its own (as a request has): its database statements are child spans, and its log
   * lines carry `request_id` (the message id, else stream:sequence), `trace_id` and `span_id`.
   */
  function traced(message: JsMsg): Promise<PaymentResult> {
    // The publisher's W3C trace context, when it sent one.
    const parent = contextOf(message.headers?.get('traceparent') || undefined);
    const span = tracer.startSpan(
      `process ${message.subject}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'nats',
          'messaging.operation.type': 'process',
          'messaging.destination.name': message.subject,
          'messaging.consumer.group.name': PAYMENTS_CONSUMER,
          'messaging.message.delivery_count': message.info.deliveryCount,
        },
      },
      parent,
    );
    const ids = span.spanContext();
    const scope = {
      fields: {
        request_id:
          message.headers?.get('Nats-Msg-Id') || `${stream}:${message.info.streamSequence}`,
        ...(isSpanContextValid(ids) ? { trace_id: ids.traceId, span_id: ids.spanId } : {}),
      },
      span,
      context: trace.setSpan(parent, span),
    };
    return requestScope
      .run(scope, () => handle(message))
      .then(
        (result) => {
          span.setAttribute('ops.payment.result', result);
          if (result === 'dead_lettered') span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
          return result;
        },
        (error: unknown) => {
          span.setStatus({ code: SpanStatusCode.ERROR, message: describeDbError(error) });
          span.end();
          throw error;
        },
      );
  }

  // Ends early when stop() wakes it; never what keeps the process alive.
  const pause = (ms: number): Promise<void> => {
    const early = new AbortController();
    wakeUp = () => early.abort();
    return sleep(ms, undefined, { signal: early.signal, ref: false }).catch(() => undefined);
  };

  async function consumeWhileConnected(): Promise<void> {
    const js = broker.jetstream();
    if (js === undefined) return;
    const consumer = await js.consumers.get(stream, PAYMENTS_CONSUMER);
    messages = await consumer.consume({ max_messages: 16 });
    if (stopped) messages.stop();
    for await (const message of messages) {
      const current = traced(message).catch((error: unknown) => {
        logger.error('payment.failed', {
          stream_sequence: message.info.streamSequence,
          reason: describeDbError(error),
          error_code: 'INTERNAL',
          error_category: 'unexpected',
        });
        message.nak(retryDelayMs(message.info.deliveryCount));
      });
      inHand = current;
      await current;
      inHand = undefined;
      if (stopped) break;
    }
  }

  async function run(): Promise<void> {
    while (!stopped) {
      try {
        await consumeWhileConnected();
      } catch (error) {
        if (!stopped) {
          logger.warn('payments.consumer_restarting', {
            reason: describeDbError(error),
            retry_in_ms: RESTART_DELAY_MS,
          });
        }
      }
      messages = undefined;
      if (!stopped) await pause(RESTART_DELAY_MS);
    }
  }

  return {
    name: 'payments-consumer',
    start() {
      if (loop !== undefined || stopped) return;
      loop = run();
    },
    async stop() {
      stopped = true;
      wakeUp?.();
      messages?.stop();
      // The checkpoint: the message in hand commits and is acked (or nak'ed) before we return.
      await inHand;
      await loop;
    },
  };
}
