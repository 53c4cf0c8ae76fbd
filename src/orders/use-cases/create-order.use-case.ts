// POST /v1/orders behind an Idempotency-Key (contract section 6; IETF draft "The Idempotency-Key
// HTTP Header Field"): the key (with the response to replay), the order, its items and its outbox
// event commit in one transaction, key first. See data/idempotency.repository.ts for why a key can
// never yield two orders nor stay held, and runbook/orders.md for what on-call sees. Keys and
// orders belong to the caller's tenant (issue #15): the same key sent by two tenants is two keys,
// two orders, two stored responses; a replay only ever returns the tenant's own.
import { randomUUID } from 'node:crypto';
import { AppError } from '../../errors/catalogue';
import type { CancelSignal } from '../../resilience/cancellation';
import { currentScope } from '../../telemetry/request-scope';
import type { Logger } from '../../telemetry/logger';
import { traceparentOf } from '../../telemetry/trace-context';
import type { Database } from '../db/database';
import {
  type IdempotencyRecord,
  insertKey,
  LOCK_NOT_AVAILABLE,
  readKey,
  type StoredResponse,
} from '../data/idempotency.repository';
import { insertOrder, orderOf } from '../data/order.repository';
import { insertEvent, SerializedPayload } from '../data/outbox.repository';
import { orderFingerprint } from '../domain/fingerprint';
import { type Order, type OrderInput, orderJson, orderLocation, totalCents } from '../domain/order';
import { assertTenantId } from '../domain/tenant';

export interface CreateOrderDeps {
  readonly database: Database;
  readonly logger: Logger;
  readonly retentionMs: number;
  /** After an order commits (the outbox relay publishes its event at once). */
  readonly onCreated?: (() => void) | undefined;
}

export interface CreateOrderCommand {
  /** The caller's tenant (`callerOf(res).tenant`): owns the order and the key. */
  readonly tenant: string;
  readonly idempotencyKey: string;
  readonly input: OrderInput;
  readonly signal?: CancelSignal | undefined;
}

export interface CreateOrderResult {
  readonly response: StoredResponse;
  /** True when this is a stored response sent again (`Idempotent-Replayed: true`). */
  readonly replayed: boolean;
}

export type CreateOrder = (command: CreateOrderCommand) => Promise<CreateOrderResult>;

export const ORDER_CREATED = { eventType: 'order.created', subject: 'orders.created' } as const;
/** The event payload's constant start, serialized once. */
const ORDER_CREATED_PAYLOAD_START = `{"event_type":${JSON.stringify(ORDER_CREATED.eventType)},`;

function responseOf(order: Order): StoredResponse {
  return {
    status: 201,
    headers: { Location: orderLocation(order.id) },
    body: JSON.stringify(orderJson(order)),
  };
}

function inProgress(cause?: unknown): AppError {
  return new AppError(
    'IDEMPOTENCY_KEY_IN_PROGRESS',
    'A request with this Idempotency-Key is still being processed; retry after Retry-After seconds.',
    { retryAfterSeconds: 1, cause },
  );
}

const isLockTimeout = (error: unknown): boolean =>
  (error as { code?: unknown } | null)?.code === LOCK_NOT_AVAILABLE;

/**
 * Thrown inside the transaction to roll it back when a committed request already has the key. An
 * AppError, so the resilience policy neither retries it nor counts it against the breaker; it is
 * caught below and never reaches a client.
 */
class KeyTaken extends AppError {
  constructor() {
    super('IDEMPOTENCY_KEY_IN_PROGRESS', 'The Idempotency-Key is already taken.');
  }
}

export function createOrderUseCase(deps: CreateOrderDeps): CreateOrder {
  const { database, logger } = deps;

  function answerExisting(record: IdempotencyRecord, fingerprint: string): CreateOrderResult {
    if (record.fingerprint !== fingerprint) {
      throw new AppError(
        'IDEMPOTENCY_KEY_REUSED',
        'This Idempotency-Key was already used with a different request body; use a new key for a new order.',
      );
    }
    logger.info('idempotency.replayed', {
      idempotency_key: record.key,
      order_id: record.orderId,
    });
    return { response: record.response, replayed: true };
  }

  return async function createOrder(command) {
    const { tenant } = command;
    assertTenantId(tenant);
    const key = command.idempotencyKey;
    const fingerprint = orderFingerprint(command.input);
    const total = totalCents(command.input.items);
    if (total === undefined)
      throw new Error('validation let through an order total above the safe range');
    const newOrder = {
      id: randomUUID(),
      tenant,
      input: command.input,
      totalCents: total,
      idempotencyKey: key,
      createdAt: new Date(),
    };
    const order = orderOf(newOrder);
    const response = responseOf(order);

    // Safe to retry as a whole: a repeat after an unseen COMMIT finds the key taken (by this
    // very order) and rolls back what it wrote beside it.
    const created = await database
      .transaction(
        'create order',
        (session) =>
          // All three go out together (one round trip with pipelining; see db/pg.adapter.ts).
          // The order and its event are written even when the key turns out to be taken: the
          // transaction then rolls back, so they never commit without their key. A callback, not
          // an async function: every promise of a request pays the request scope's async hooks.
          Promise.allSettled([
            insertKey(session, {
              tenant,
              key,
              fingerprint,
              orderId: order.id,
              response,
              retentionMs: deps.retentionMs,
            }),
            insertOrder(session, newOrder),
            insertEvent(session, {
              eventId: randomUUID(),
              aggregateType: 'order',
              aggregateId: order.id,
              eventType: ORDER_CREATED.eventType,
              subject: ORDER_CREATED.subject,
              // tenant_id beside the order, not in it: `order` stays the API's order, member
              // for member; consumers that know no tenants ignore the new member. The order is
              // the response body as sent (the same JSON), not serialized a second time.
              payload: new SerializedPayload(
                ORDER_CREATED_PAYLOAD_START +
                  // An ISO 8601 timestamp has nothing JSON escapes.
                  `"occurred_at":"${order.created_at}",` +
                  `"tenant_id":${JSON.stringify(tenant)},"order":${response.body}}`,
              ),
              traceParent: traceparentOf(currentScope()?.context),
            }),
          ]).then(([keyed, ordered, announced]) => {
            if (keyed.status === 'rejected') {
              // Another request with this key is still running: an answer now, not a failure of
              // the database (the breaker does not count it, the policy does not retry it).
              if (isLockTimeout(keyed.reason)) throw inProgress(keyed.reason);
              throw keyed.reason;
            }
            if (!keyed.value) throw new KeyTaken();
            if (ordered.status === 'rejected') throw ordered.reason;
            if (announced.status === 'rejected') throw announced.reason;
            return true;
          }),
        { signal: command.signal, retry: true },
      )
      .catch((error: unknown) => {
        if (error instanceof KeyTaken) return false;
        throw error;
      });

    if (!created) {
      const record = await database.run((session) => readKey(session, tenant, key), {
        signal: command.signal,
        retry: true,
      });
      // Purged in between (its retention ended that instant): the client may simply retry.
      if (record === undefined) throw inProgress();
      if (record.orderId === order.id) {
        // An earlier attempt of this very request committed; its COMMIT's answer was lost.
        logger.info('order.created', { order_id: order.id, idempotency_key: key, recovered: true });
        return { response: record.response, replayed: false };
      }
      return answerExisting(record, fingerprint);
    }

    deps.onCreated?.();
    logger.info('order.created', {
      order_id: order.id,
      idempotency_key: key,
      total_cents: order.total_cents,
      currency: order.currency,
      items: order.items.length,
    });
    return { response, replayed: false };
  };
}
