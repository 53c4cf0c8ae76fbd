// Statement spans follow the request's sampling decision: children of a recorded server span are
// recorded (and exported with it); under an unrecorded one none is made, since parent-based
// sampling would drop them anyway.
import { ROOT_CONTEXT, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { requestScope } from '../../../src/telemetry/request-scope';
import { createDatabase } from '../../../src/orders/db/database';
import { sql } from '../../../src/orders/db/database';
import { createDependencyPolicy } from '../../../src/resilience/dependency-policy';
import { isDatabaseFailure, isRetryableDbError } from '../../../src/orders/db/retryable-error';
import { captureLogger } from '../../helpers/log-capture';
import { type DatabaseStack, databaseStack } from '../support/database-stack';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const spans = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const tracer = provider.getTracer('test');

let testDb: TestDatabase;
let stack: DatabaseStack;
beforeAll(async () => {
  testDb = await createTestDatabase();
  stack = databaseStack(testDb.url, 2);
});
afterAll(async () => {
  await stack.close();
  await testDb.drop();
});

const SELECT_ONE = sql('SELECT', 'nothing', 'SELECT $1::int AS one');

function database() {
  const policy = createDependencyPolicy(
    {
      name: 'database',
      attemptTimeoutMs: 5_000,
      maxAttempts: 1,
      initialBackoffMs: 10,
      maxBackoffMs: 10,
      breakerThreshold: 5,
      halfOpenAfterMs: 1_000,
      concurrency: 2,
      queue: 10,
      isRetryable: isRetryableDbError,
      isFailure: isDatabaseFailure,
    },
    { logger: captureLogger().logger },
  );
  return createDatabase(() => stack.db, policy, tracer);
}

async function inRequest(traceFlags: TraceFlags): Promise<string[]> {
  spans.reset();
  const server = tracer.startSpan(
    'POST /v1/orders',
    { kind: SpanKind.SERVER },
    trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags,
      isRemote: true,
    }),
  );
  const context = trace.setSpan(ROOT_CONTEXT, server);
  const db = database();
  await requestScope.run({ fields: { request_id: 'r' }, context }, () =>
    db.transaction('create order', (session) => session.run(SELECT_ONE, [1]), { retry: false }),
  );
  server.end();
  return spans
    .getFinishedSpans()
    .filter((s) => s.kind === SpanKind.CLIENT)
    .map((s) => s.name);
}

it('when the request span is recorded, then the transaction and each statement have a CLIENT span', async () => {
  expect(await inRequest(TraceFlags.SAMPLED)).toEqual(['SELECT nothing', 'create order']);
});

it('when the request span is not recorded (not sampled), then no statement span is even started', async () => {
  const started = jest.spyOn(tracer, 'startSpan');
  try {
    expect(await inRequest(TraceFlags.NONE)).toEqual([]);
    // Only the server span of the test itself.
    expect(started.mock.calls.map((call) => call[0])).toEqual(['POST /v1/orders']);
  } finally {
    started.mockRestore();
  }
});
