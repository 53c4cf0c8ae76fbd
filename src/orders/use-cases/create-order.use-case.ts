// POST /v1/orders behind an Idempotency-Key (contract section 6; IETF draft "The Idempotency-Key
// HTTP Header Field"): claim the key, then create the order, its outbox event and the key's
// completion in one transaction. See data/idempotency.repository.ts for why a key can never
// yield two orders, and runbook/orders.md for what on-call sees.
import { randomUUID } from 'node:crypto';
import { AppError } from '../../errors/catalogue';
import type { Logger } from '../../telemetry/logger';
import type { Database } from '../db/database';
import { describeDbError } from '../db/db';
import {
  claimKey,
  type ClaimResult,
  completeKey,
  type IdempotencyRecord,
  lockLease,
  readKey,
  releaseKey,
  type StoredResponse,
} from '../data/idempotency.repository';
import { insertOrder } from '../data/order.repository';
import { insertEvent } from '../data/outbox.repository';
import { fingerprintOf } from '../domain/fingerprint';
import { type Order, type OrderInput, orderJson, orderLocation, totalCents } from '../domain/order';

export interface CreateOrderDeps {
  readonly database: Database;
  readonly logger: Logger;
  readonly leaseMs: number;
  readonly retentionMs: number;
}

export interface CreateOrderCommand {
  readonly idempotencyKey: string;
  readonly input: OrderInput;
  readonly signal?: AbortSignal | undefined;
}

export interface CreateOrderResult {
  readonly response: StoredResponse;
  /** True when this is a stored response sent again (`Idempotent-Replayed: true`). */
  readonly replayed: boolean;
}

export type CreateOrder = (command: CreateOrderCommand) => Promise<CreateOrderResult>;

// A key purged between our claim and our read (its retention ended that instant) is claimed again.
const CLAIM_ROUNDS = 3;
// Ending a lease after a failure is a courtesy (the lease expires anyway): never wait long for it.
const RELEASE_TIMEOUT_MS = 1_000;

export const ORDER_CREATED = { eventType: 'order.created', subject: 'orders.created' } as const;

function responseOf(order: Order): StoredResponse {
  return {
    status: 201,
    headers: { Location: orderLocation(order.id) },
    body: JSON.stringify(orderJson(order)),
  };
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
    if (record.state === 'completed' && record.response !== null) {
      logger.info('idempotency.replayed', {
        idempotency_key: record.key,
        order_id: record.orderId,
      });
      return { response: record.response, replayed: true };
    }
    throw new AppError(
      'IDEMPOTENCY_KEY_IN_PROGRESS',
      'A request with this Idempotency-Key is still being processed; retry after Retry-After seconds.',
      { retryAfterSeconds: 1 },
    );
  }

  async function claim(
    command: CreateOrderCommand,
    fingerprint: string,
    leaseToken: string,
  ): Promise<Exclude<ClaimResult, { kind: 'vanished' }>> {
    for (let round = 1; round <= CLAIM_ROUNDS; round += 1) {
      // Safe to retry: a second attempt with the same lease token finds its own claim.
      const result = await database.run(
        (session) =>
          claimKey(session, {
            key: command.idempotencyKey,
            fingerprint,
            leaseToken,
            leaseMs: deps.leaseMs,
            retentionMs: deps.retentionMs,
          }),
        { signal: command.signal, retry: true },
      );
      if (result.kind !== 'vanished') return result;
    }
    throw new AppError(
      'IDEMPOTENCY_KEY_IN_PROGRESS',
      'The Idempotency-Key is being purged; retry.',
      {
        retryAfterSeconds: 1,
      },
    );
  }

  async function release(key: string, leaseToken: string, cause: unknown): Promise<void> {
    try {
      await database.run((session) => releaseKey(session, key, leaseToken), {
        signal: AbortSignal.timeout(RELEASE_TIMEOUT_MS),
        retry: false,
      });
    } catch (error) {
      logger.warn('idempotency.release_failed', {
        idempotency_key: key,
        reason: describeDbError(error),
        after: describeDbError(cause),
        lease_ms: deps.leaseMs,
      });
    }
  }

  return async function createOrder(command) {
    const key = command.idempotencyKey;
    const fingerprint = fingerprintOf(command.input);
    const leaseToken = randomUUID();
    const claimed = await claim(command, fingerprint, leaseToken);
    if (claimed.kind === 'existing') return answerExisting(claimed.record, fingerprint);
    if (claimed.attempts > 1) {
      logger.warn('idempotency.lease_taken_over', {
        idempotency_key: key,
        attempts: claimed.attempts,
      });
    }

    const orderId = randomUUID();
    const total = totalCents(command.input.items);
    if (total === undefined)
      throw new Error('validation let through an order total above the safe range');
    let created: { order: Order; response: StoredResponse } | undefined;
    try {
      // Safe to retry as a whole: a repeat after an unseen COMMIT finds the key completed (no
      // longer ours) and inserts nothing.
      created = await database.transaction(
        'create order',
        async (session) => {
          if (!(await lockLease(session, key, leaseToken))) return undefined;
          const order = await insertOrder(session, {
            id: orderId,
            input: command.input,
            totalCents: total,
            idempotencyKey: key,
          });
          await insertEvent(session, {
            eventId: randomUUID(),
            aggregateType: 'order',
            aggregateId: order.id,
            eventType: ORDER_CREATED.eventType,
            subject: ORDER_CREATED.subject,
            payload: {
              event_type: ORDER_CREATED.eventType,
              occurred_at: order.created_at,
              order: orderJson(order),
            },
          });
          const response = responseOf(order);
          await completeKey(session, {
            key,
            leaseToken,
            orderId,
            response,
            retentionMs: deps.retentionMs,
          });
          return { order, response };
        },
        { signal: command.signal, retry: true },
      );
    } catch (error) {
      await release(key, leaseToken, error);
      throw error;
    }

    if (created === undefined) {
      // The lease is no longer ours: an earlier attempt of this very request committed (its
      // COMMIT's answer was lost), or the lease expired and another request took the key over.
      const record = await database.run((session) => readKey(session, key), {
        signal: command.signal,
        retry: true,
      });
      if (record?.state === 'completed' && record.orderId === orderId && record.response !== null) {
        logger.info('order.created', { order_id: orderId, idempotency_key: key, recovered: true });
        return { response: record.response, replayed: false };
      }
      if (record !== undefined) return answerExisting(record, fingerprint);
      throw new AppError(
        'IDEMPOTENCY_KEY_IN_PROGRESS',
        'The Idempotency-Key is being purged; retry.',
        {
          retryAfterSeconds: 1,
        },
      );
    }

    logger.info('order.created', {
      order_id: created.order.id,
      idempotency_key: key,
      total_cents: created.order.total_cents,
      currency: created.order.currency,
      items: created.order.items.length,
    });
    return { response: created.response, replayed: false };
  };
}
