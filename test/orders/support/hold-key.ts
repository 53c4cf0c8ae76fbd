// Another process in the middle of its create-order transaction: the key row and its order are
// written, nothing is committed. The test decides what happens next: COMMIT, ROLLBACK, a cut
// connection, or nothing at all (PostgreSQL's idle_in_transaction_session_timeout). The key and
// the order are the default tenant's unless another tenant is given.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { DEFAULT_TENANT } from '../../../src/http/caller';

export interface HeldKey {
  readonly client: pg.Client;
  /** The order the holder would create. */
  readonly orderId: string;
  /** The response stored with the key. */
  readonly body: string;
  /** Destroys the socket mid-transaction, as a killed process would. */
  cut(): void;
}

export async function holdKey(
  url: string,
  key: string,
  fingerprint: string,
  settings: Partial<pg.ClientConfig> = {},
  tenant: string = DEFAULT_TENANT,
): Promise<HeldKey> {
  const client = new pg.Client({ connectionString: url, ...settings });
  client.on('error', () => undefined);
  await client.connect();
  const orderId = randomUUID();
  const body = `{"id":"${orderId}","holder":true}`;
  await client.query('BEGIN');
  await client.query(
    `INSERT INTO idempotency_keys
       (tenant_id, key, fingerprint, order_id, response_status, response_headers, response_body,
        expires_at)
     VALUES ($1, $2, $3, $4, 201, $5, $6, now() + interval '1 day')`,
    [tenant, key, fingerprint, orderId, { Location: `/v1/orders/${orderId}` }, body],
  );
  await client.query(
    `INSERT INTO orders (id, tenant_id, customer_id, currency, total_cents, idempotency_key)
     VALUES ($1, $2, 'holder', 'EUR', 1, $3)`,
    [orderId, tenant, key],
  );
  return {
    client,
    orderId,
    body,
    cut() {
      (
        client as unknown as { connection: { stream: { destroy(): void } } }
      ).connection.stream.destroy();
    },
  };
}
