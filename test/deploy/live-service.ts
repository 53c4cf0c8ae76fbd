// A real service (the production entry point, `node dist/main.js`) with every optional part
// switched on, scraped once after traffic that makes its lazily created series appear: what the
// rules and the dashboard are held against, rather than a list of names that could drift.
//
// - a fresh PostgreSQL database (orders, the outbox, the database breaker);
// - NATS JetStream on its own subject prefix (the outbox relay, the payments consumer);
// - REDIS_URL at a port nothing listens on: the shared rate limit store is down, so
//   ops_rate_limit_store_up reads 0 and every request counts in ops_rate_limit_store_fallbacks_total;
// - traffic: an order (published through the outbox), an unknown order (404 ORDER_NOT_FOUND),
//   an unknown route (404 ROUTE_NOT_FOUND).
import { randomUUID } from 'node:crypto';
import { parsePrometheusText } from '../helpers/prometheus-text';
import { freePort } from '../helpers/ports';
import { MAIN, startService } from '../helpers/service-process';
import { openTestNats, TEST_NATS_URL } from '../orders/support/nats';
import { getPath, orderBody, postOrder } from '../orders/support/orders-client';
import { createTestDatabase } from '../orders/support/test-database';

/** How long the outbox relay may take to publish the order's event. */
const PUBLISH_WAIT_MS = 10_000;

function published(body: string): boolean {
  return parsePrometheusText(body).some(
    (s) =>
      s.name === 'ops_broker_messages_total' &&
      s.labels.flow === 'outbox' &&
      s.labels.outcome === 'published' &&
      s.value >= 1,
  );
}

/** The /metrics body of a live service after the traffic above; the service is stopped after. */
export async function scrapeLiveService(): Promise<string> {
  const database = await createTestDatabase();
  const nats = await openTestNats();
  try {
    const { service, port, opsPort } = await startService(
      {
        SHUTDOWN_DELAY_MS: '0',
        DATABASE_URL: database.url,
        NATS_URL: TEST_NATS_URL,
        NATS_SUBJECT_PREFIX: nats.prefix,
        REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      },
      { script: MAIN },
    );
    try {
      await service.waitForEvent('broker.connected');
      const answers = [
        await postOrder(port, `live-${randomUUID()}`, orderBody()),
        await getPath(port, `/v1/orders/${randomUUID()}`),
        await getPath(port, '/no/such/route'),
      ].map((outcome) => outcome.status ?? outcome.error);
      if (answers.join() !== '201,404,404') {
        throw new Error(`the traffic was answered ${answers.join()}, expected 201,404,404`);
      }
      // The outbox relay publishes right after the commit.
      const deadline = Date.now() + PUBLISH_WAIT_MS;
      const scrape = async (): Promise<string> => (await getPath(opsPort, '/metrics')).text ?? '';
      let body = await scrape();
      while (!published(body) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        body = await scrape();
      }
      if (!published(body)) throw new Error('the outbox relay published nothing in 10 s');
      return body;
    } finally {
      service.kill('SIGTERM');
      await service.exited();
    }
  } finally {
    await nats.close();
    await database.drop();
  }
}
