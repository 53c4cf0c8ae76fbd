// broker-down: NATS is unreachable for a few seconds, then comes back.
import { summarize } from '../load';
import type { Drill } from '../page';
import { metricValue } from '../page';
import {
  between,
  checkCreatedCommitted,
  checkExit,
  checkHealthAlways200,
  checkLoggedDownAndUp,
  checkNoCrash,
  lineAfter,
  metricRows,
  outcomesIn,
} from './common';
import { fmt } from './database-down';

const OUTAGE_MS = 6_000;

export const brokerDown: Drill = {
  name: 'broker-down',
  title: 'NATS is unreachable',
  summary: `NATS JetStream unreachable (connections refused) for ${OUTAGE_MS / 1000} s, then back`,
  fault: `The service reaches NATS through a TCP proxy. At +0 the proxy closes the connection and refuses new ones (the NATS cluster is down or unreachable); ${OUTAGE_MS / 1000} s later it accepts again. Orders keep coming throughout; after the broker is back the drill compares the orders in PostgreSQL with the events on the JetStream stream, then a normal SIGTERM ends it.`,
  via: { broker: 'proxy' },
  env: {},
  load: { ratePerSecond: 6, maxInFlight: 12 },
  metrics: metricRows(['DEPENDENCY_UNAVAILABLE']),
  // outbox.published is kept: the catch-up after the outage is the point.
  routine: ['http.request', 'order.created', 'idempotency.replayed'],
  async script(run) {
    await run.hold(2_500);
    await run.fault('the proxy cuts NATS: the connection closed, new ones refused', {
      key: 'during',
      label: 'broker down',
    });
    await run.brokerProxy?.cut();
    await run.hold(OUTAGE_MS - 1_000);
    await run.lifecycle('broker down');
    await run.hold(1_000);
    await run.nextPhase('after', 'broker back');
    const restoredAt = run.step('the proxy accepts NATS connections again', 'restore');
    await run.brokerProxy?.restore();
    await run.until(async () => {
      if (lineAfter(run, 'broker.reconnected', restoredAt) === undefined) return false;
      const doc = await run.lifecycleDoc();
      return doc?.outbox_backlog === 0;
    }, 15_000);
    await run.lifecycle('broker back, outbox caught up');
    await run.hold(1_500);
  },
  async conclude(run) {
    const from = run.mark('fault');
    const restore = run.mark('restore');
    const samples = run.probes?.samples ?? [];
    const readyAnswers = [...new Set(samples.map((s) => s.ready))];
    run.fact('readyAnswers', readyAnswers.join(','));
    run.check(
      '/ready stays 200: the broker is not essential, the pod keeps taking orders',
      readyAnswers.length === 1 && readyAnswers[0] === '200',
      `${samples.length} samples: ${readyAnswers.join(', ')}`,
    );
    const showsDown = samples.find(
      (s) => s.at >= from && s.at < restore && s.readyBody.includes('"broker":{"status":"down"'),
    );
    run.fact('brokerDownInReadyAfterMs', between(from, showsDown?.at));
    run.check(
      "/ready's body shows the broker down meanwhile",
      showsDown !== undefined,
      showsDown === undefined ? 'never' : `from +${fmt(showsDown.at - from)} s`,
    );
    checkHealthAlways200(run);
    const during = summarize(outcomesIn(run, 'during'));
    run.fact('ordersDuringOutage', during.sent);
    run.check(
      'orders keep succeeding while the broker is away',
      during.server5xx + during.noAnswer === 0 && during.ok2xx > 0,
      `${during.ok2xx} of ${during.sent} requests 2xx, ${during.server5xx} 5xx, ${during.noAnswer} without an answer`,
    );
    const backlog = run.lifecycles.find((c) => c.label === 'broker down')?.doc.outbox_backlog;
    const backlogMetric = metricValue(run.snapshots.get('during'), {
      label: '',
      name: 'ops_outbox_backlog',
    });
    run.fact('outboxBacklogDuring', typeof backlog === 'number' ? backlog : undefined);
    run.fact('outboxBacklogMetricDuring', backlogMetric);
    run.check(
      'the waiting events show as outbox backlog (/lifecycle and ops_outbox_backlog)',
      typeof backlog === 'number' && backlog > 0 && (backlogMetric ?? 0) > 0,
      `/lifecycle outbox_backlog ${String(backlog)}, ops_outbox_backlog ${String(backlogMetric)} at the end of the outage`,
    );
    checkLoggedDownAndUp(
      run,
      'broker',
      { down: 'broker.disconnected', up: 'broker.reconnected', fact: 'broker' },
      from,
      restore,
    );
    const [orders] = await run.database.query<{ n: string }>('SELECT count(*) AS n FROM orders');
    const [unpublished] = await run.database.query<{ n: string }>(
      'SELECT count(*) AS n FROM outbox WHERE published_at IS NULL',
    );
    const stream = await run.nats.jsm.streams
      .info(run.nats.naming.stream('ORDERS'))
      .catch(() => undefined);
    const events = stream?.state.messages ?? 0;
    run.fact('ordersInDatabase', Number(orders?.n));
    run.fact('eventsOnStream', events);
    run.fact('outboxUnpublishedAtEnd', Number(unpublished?.n));
    run.check(
      'once the broker is back, every order has exactly one order.created event on the stream',
      Number(orders?.n) === events && Number(unpublished?.n) === 0,
      `${String(orders?.n)} orders in PostgreSQL, ${events} messages on ${run.nats.naming.stream('ORDERS')}, ${String(unpublished?.n)} outbox rows unpublished`,
    );
    await checkCreatedCommitted(run);
    checkNoCrash(run);
    checkExit(run, 0, 0, 'SIGTERM at the end: a clean stop');
  },
  headline(run) {
    const f = run.facts;
    return `\`/ready\` stayed \`200\` (its body showed the broker \`down\` from ${fmt(f.brokerDownInReadyAfterMs)} s) and all ${String(f.ordersDuringOutage)} requests during the outage succeeded; ${String(f.outboxBacklogDuring)} order events waited in the outbox. The service reconnected ${fmt(f.brokerUpLoggedAfterMs)} s after NATS came back and published the backlog: ${String(f.ordersInDatabase)} orders, ${String(f.eventsOnStream)} events on the stream, none left in the outbox.`;
  },
  meaning: `
The broker is **not essential**: orders are written with their \`order.created\` event in one
PostgreSQL transaction (the outbox), so while NATS is away the API keeps working, \`/ready\` stays
\`200\` (its body shows \`"broker":{"status":"down"}\`) and the events wait in the \`outbox\` table,
counted by \`ops_outbox_backlog\`. Payments (\`payments.captured\`) are not consumed meanwhile:
orders stay \`pending\` longer, nothing is lost, since JetStream keeps the messages for the durable
consumer. The service reconnects by itself (\`broker.reconnected\`), the outbox relay publishes the
backlog oldest first, and the stream drops any duplicate by its message id (= event id).

Pulling pods out of the load balancer would not help: every pod needs the same broker. The cost
of a long outage is delay (events and payments), and a backlog to drain.
`,
  actions: [
    'Confirm: `curl -s 127.0.0.1:9464/lifecycle | jq .dependencies.broker` says `down` (`reason` `disconnected, reconnecting`); the logs have one `broker.disconnected` and then nothing until `broker.reconnected` (the client retries every second without a line per attempt); `ops_dependency_up{dependency="broker"}` is 0 and `OpsServiceBrokerDown` fires after 5 minutes.',
    'Fix or escalate NATS (cluster health, the network, credentials in `NATS_URL`). Nothing to do on the pods: do not restart them, it changes nothing and drops in-memory retries.',
    'Watch the backlog: `ops_outbox_backlog` grows while it lasts and should fall to 0 within seconds of `broker.reconnected`; if it grows while the broker is up, publishing itself fails: see [Outbox and NATS JetStream](../orders.md#outbox-and-nats-jetstream) (`outbox.publish_failed`, `last_error`).',
    'Payments resume by themselves from the durable consumer; check [Payments](../orders.md#payments-paymentscaptured) if `payment.retry` or dead letters follow.',
  ],
};
