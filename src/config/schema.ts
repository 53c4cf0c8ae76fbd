// The one configuration schema. Every key has a doc, a format, a default and an environment
// variable; `sensitive` keys are never printed. The README's configuration table is generated
// from this file (`npm run docs:config`), and a test fails when the two disagree.
import type convict from 'convict';

export const APP_ENVS = ['development', 'test', 'staging', 'production'] as const;
export type AppEnv = (typeof APP_ENVS)[number];

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['json', 'pretty'] as const;

export const AUTH_MODES = ['jwt', 'off'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface AppConfig {
  env: AppEnv;
  http: {
    host: string;
    port: number;
    keepAliveTimeoutMs: number;
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    bodyTimeoutMs: number;
    handlerTimeoutMs: number;
    maxConnections: number;
    bodyLimitBytes: number;
    trustProxyHops: number;
  };
  limits: {
    rateLimitWindowMs: number;
    rateLimitMax: number;
    maxConcurrentRequests: number;
    maxEventLoopDelayMs: number;
    redisUrl: string;
    redisKeyPrefix: string;
    storeTimeoutMs: number;
  };
  ops: {
    host: string;
    port: number;
  };
  log: {
    level: LogLevel;
    format: LogFormat;
  };
  lifecycle: {
    startupTimeoutMs: number;
  };
  shutdown: {
    delayMs: number;
    drainTimeoutMs: number;
    closeTimeoutMs: number;
    flushTimeoutMs: number;
    hardStopMs: number;
  };
  telemetry: {
    serviceName: string;
    endpoint: string;
    samplerRatio: number;
    exportTimeoutMs: number;
    cloudRegion: string;
  };
  database: {
    url: string;
    dataDir: string;
    poolMax: number;
    connectTimeoutMs: number;
    statementTimeoutMs: number;
    lockTimeoutMs: number;
    idleInTransactionTimeoutMs: number;
    preparedStatements: boolean;
    pipeline: boolean;
    healthIntervalMs: number;
  };
  orders: {
    idempotencyRetentionMs: number;
    idempotencyPurgeIntervalMs: number;
  };
  nats: {
    url: string;
    subjectPrefix: string;
    relayIntervalMs: number;
    paymentsMaxDeliver: number;
    paymentsAckWaitMs: number;
  };
  auth: {
    mode: AuthMode;
    jwksUrl: string;
    jwksFile: string;
    issuer: string;
    audience: string;
    tenantClaim: string;
    clockToleranceMs: number;
    algorithms: string;
    jwksTimeoutMs: number;
    jwksRefreshMs: number;
    jwksCooldownMs: number;
  };
  inspect: string;
}

export const schema: convict.Schema<AppConfig> = {
  env: {
    doc: 'Deployment environment; also selects config/<APP_ENV>.json.',
    format: APP_ENVS as unknown as string[],
    default: 'development',
    env: 'APP_ENV',
  },
  http: {
    host: {
      doc: 'Address the main (public) listener binds to.',
      format: 'host',
      default: '127.0.0.1',
      env: 'HOST',
    },
    port: {
      doc: 'Port of the main listener; 0 picks a free port (reported in service.ready).',
      format: 'port',
      default: 8080,
      env: 'PORT',
    },
    keepAliveTimeoutMs: {
      doc: 'How long an idle keep-alive connection stays open. Keep it above the load balancer idle timeout so the server never closes a socket the balancer is about to reuse.',
      format: 'duration-ms',
      default: 65_000,
      env: 'HTTP_KEEP_ALIVE_TIMEOUT_MS',
    },
    headersTimeoutMs: {
      doc: 'Time a client has to send complete request headers (cuts off slow-header clients).',
      format: 'duration-ms',
      default: 10_000,
      env: 'HTTP_HEADERS_TIMEOUT_MS',
    },
    requestTimeoutMs: {
      doc: 'Time a client has to send a whole request, headers and body: the last bound on slow clients (HTTP_BODY_TIMEOUT_MS cuts slow bodies off first).',
      format: 'duration-ms',
      default: 30_000,
      env: 'HTTP_REQUEST_TIMEOUT_MS',
    },
    bodyTimeoutMs: {
      doc: 'Time a request body has to arrive once its headers have (408 CLIENT_TIMEOUT, then the connection closes). Must be below HTTP_REQUEST_TIMEOUT_MS. A request holds a handler slot (MAX_CONCURRENT_REQUESTS) only once its body is in, so slow uploads cannot take every slot.',
      format: 'duration-ms',
      default: 10_000,
      env: 'HTTP_BODY_TIMEOUT_MS',
    },
    handlerTimeoutMs: {
      doc: "Per-request deadline for the service's own work: past it the request's AbortSignal fires and the client gets 503 REQUEST_TIMEOUT. During the drain, a request whose deadline would outlive what is left of the drain budget gets 503 SHUTTING_DOWN at once.",
      format: 'duration-ms',
      default: 10_000,
      env: 'REQUEST_TIMEOUT_MS',
    },
    maxConnections: {
      doc: "Open connections the main listener accepts; more are closed at once, counted in ops_http_connections_refused_total and logged (http.connections_refused). Lowered at startup to the process's open-files limit minus 256 descriptors kept for the ops listener, the database and the logs.",
      format: 'positive-int',
      default: 10_000,
      env: 'MAX_CONNECTIONS',
    },
    bodyLimitBytes: {
      doc: 'Largest request body accepted (413 PAYLOAD_TOO_LARGE above it).',
      format: 'positive-int',
      default: 262_144,
      env: 'BODY_LIMIT_BYTES',
    },
    trustProxyHops: {
      doc: 'Proxies in front of the service whose X-Forwarded-For is trusted: the client address (rate limit key, logs) is taken that many hops back. 0: the TCP peer.',
      format: 'non-negative-int',
      default: 0,
      env: 'TRUST_PROXY_HOPS',
    },
  },
  limits: {
    rateLimitWindowMs: {
      doc: 'Window of the per-client rate limit.',
      format: 'duration-ms',
      default: 60_000,
      env: 'RATE_LIMIT_WINDOW_MS',
    },
    rateLimitMax: {
      doc: 'Requests one client (by address) may make per window before 429 RATE_LIMITED; 0 turns the limit off.',
      format: 'non-negative-int',
      default: 1_200,
      env: 'RATE_LIMIT_MAX',
    },
    redisUrl: {
      doc: 'Redis holding the rate limit counts, shared by every replica (one atomic call per request). Empty: each process counts in its own memory, so N replicas allow N times RATE_LIMIT_MAX. While Redis cannot be reached each replica counts locally (never a 500), logs rate_limit.store_unavailable and counts ops_rate_limit_store_fallbacks_total.',
      format: 'redis-url',
      default: '',
      env: 'REDIS_URL',
      sensitive: true,
    },
    redisKeyPrefix: {
      doc: 'Prefix of the rate limit keys in Redis; deployments sharing one Redis use different prefixes to keep separate budgets.',
      format: 'redis-key-prefix',
      default: 'ops-service:rl:',
      env: 'RATE_LIMIT_REDIS_PREFIX',
    },
    storeTimeoutMs: {
      doc: 'How long a request waits for Redis to count it before it is counted locally instead; Redis is then left alone for a second (rate_limit.store_unavailable).',
      format: 'duration-ms',
      default: 100,
      env: 'RATE_LIMIT_STORE_TIMEOUT_MS',
    },
    maxConcurrentRequests: {
      doc: 'Requests running their handlers at once (their bodies received) above which new ones get 503 OVERLOADED at once (load shedding). Requests still sending their body do not hold a slot; HTTP_BODY_TIMEOUT_MS and MAX_CONNECTIONS bound those.',
      format: 'positive-int',
      default: 512,
      env: 'MAX_CONCURRENT_REQUESTS',
    },
    maxEventLoopDelayMs: {
      doc: 'Event loop delay (p99 over the last second) above which new requests get 503 OVERLOADED; 0 turns it off.',
      format: 'duration-ms',
      default: 500,
      env: 'SHED_EVENT_LOOP_DELAY_MS',
    },
  },
  ops: {
    host: {
      doc: 'Address of the ops listener (/metrics, /lifecycle). Never expose it publicly.',
      format: 'host',
      default: '127.0.0.1',
      env: 'OPS_HOST',
    },
    port: {
      doc: 'Port of the ops listener; 0 picks a free port (reported in service.ready).',
      format: 'port',
      default: 9464,
      env: 'OPS_PORT',
    },
  },
  log: {
    level: {
      doc: 'Lowest log level written.',
      format: LOG_LEVELS as unknown as string[],
      default: 'info',
      env: 'LOG_LEVEL',
    },
    format: {
      doc: 'json: one JSON object per line; pretty: `INFO event key=value` for humans.',
      format: LOG_FORMATS as unknown as string[],
      default: 'json',
      env: 'LOG_FORMAT',
    },
  },
  lifecycle: {
    startupTimeoutMs: {
      doc: 'Startup budget: listeners bound and essential dependencies up within it, or service.start_failed and exit 1.',
      format: 'duration-ms',
      default: 15_000,
      env: 'STARTUP_TIMEOUT_MS',
    },
  },
  shutdown: {
    delayMs: {
      doc: 'After SIGTERM, readiness fails at once but the listener keeps accepting for this long, while load balancers remove the instance.',
      format: 'duration-ms',
      default: 5_000,
      env: 'SHUTDOWN_DELAY_MS',
    },
    drainTimeoutMs: {
      doc: 'Budget for in-flight requests and workers to finish after intake stops; what is left is aborted (exit 1).',
      format: 'duration-ms',
      default: 20_000,
      env: 'SHUTDOWN_DRAIN_TIMEOUT_MS',
    },
    closeTimeoutMs: {
      doc: 'Budget for closing resources after the drain (database pool, then broker), in their declared order; each gets its share (resource.close_timeout when it runs out). The flush then has its whole budget.',
      format: 'duration-ms',
      default: 1_500,
      env: 'SHUTDOWN_CLOSE_TIMEOUT_MS',
    },
    flushTimeoutMs: {
      doc: 'Budget for flushing and shutting down telemetry exporters.',
      format: 'duration-ms',
      default: 3_000,
      env: 'SHUTDOWN_FLUSH_TIMEOUT_MS',
    },
    hardStopMs: {
      doc: 'Watchdog: the process exits 1 this long after the first signal whatever is still running. Must exceed delay + drain + close + flush.',
      format: 'duration-ms',
      default: 30_000,
      env: 'SHUTDOWN_HARD_STOP_MS',
    },
  },
  telemetry: {
    serviceName: {
      doc: 'service.name resource attribute and the `service` field of every log line.',
      format: 'non-empty-string',
      default: 'ops-service',
      env: 'OTEL_SERVICE_NAME',
    },
    endpoint: {
      doc: 'OTLP/gRPC collector, for example http://127.0.0.1:4317. Empty: spans are made but not exported (required in staging and production).',
      format: 'otlp-endpoint',
      default: '',
      env: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    },
    samplerRatio: {
      doc: 'Ratio of new traces sampled (parent-based: an incoming sampled parent is always followed).',
      format: 'ratio',
      default: 1,
      env: 'OTEL_TRACES_SAMPLER_ARG',
    },
    exportTimeoutMs: {
      doc: 'Timeout of one OTLP export call; bounded by the flush budget at shutdown.',
      format: 'duration-ms',
      default: 10_000,
      env: 'OTEL_EXPORTER_OTLP_TIMEOUT',
    },
    cloudRegion: {
      doc: 'cloud.region resource attribute.',
      format: 'non-empty-string',
      default: 'local',
      env: 'CLOUD_REGION',
    },
  },
  database: {
    url: {
      doc: 'PostgreSQL connection string. Empty: the embedded in-process PostgreSQL (PGlite) in database.dataDir.',
      format: 'postgres-url',
      default: '',
      env: 'DATABASE_URL',
      sensitive: true,
    },
    dataDir: {
      doc: 'Data directory of the embedded PGlite database (used only without DATABASE_URL).',
      format: 'non-empty-string',
      default: './data/pglite',
      env: 'PGLITE_DATA_DIR',
    },
    poolMax: {
      doc: 'Maximum connections in the PostgreSQL pool.',
      format: 'positive-int',
      default: 10,
      env: 'DATABASE_POOL_MAX',
    },
    connectTimeoutMs: {
      doc: 'Timeout for opening one database connection.',
      format: 'duration-ms',
      default: 2_000,
      env: 'DATABASE_CONNECT_TIMEOUT_MS',
    },
    statementTimeoutMs: {
      doc: 'PostgreSQL statement_timeout for every query.',
      format: 'duration-ms',
      default: 5_000,
      env: 'DATABASE_STATEMENT_TIMEOUT_MS',
    },
    lockTimeoutMs: {
      doc: 'PostgreSQL lock_timeout for every query. A POST /v1/orders whose Idempotency-Key is held by a request still running waits this long for it (then gets its stored response) before answering 409 IDEMPOTENCY_KEY_IN_PROGRESS.',
      format: 'duration-ms',
      default: 250,
      env: 'DATABASE_LOCK_TIMEOUT_MS',
    },
    idleInTransactionTimeoutMs: {
      doc: 'PostgreSQL idle_in_transaction_session_timeout: a transaction left open by a process that stopped answering (frozen, cut off) is ended after this long, which frees its Idempotency-Key. A crash or a timed-out request frees it at once.',
      format: 'duration-ms',
      default: 10_000,
      env: 'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS',
    },
    preparedStatements: {
      doc: 'Run statements as named prepared statements (parsed and planned once per connection). Turn off behind a pooler that cannot keep them, such as PgBouncer in transaction mode before 1.21.',
      format: 'boolean',
      default: true,
      env: 'DATABASE_PREPARED_STATEMENTS',
    },
    pipeline: {
      doc: "Send a transaction's statements together, without waiting for each answer (pg's pipeline mode): an order is two round trips to PostgreSQL instead of six. Turn off only if a proxy between the service and PostgreSQL mishandles pipelined messages.",
      format: 'boolean',
      default: true,
      env: 'DATABASE_PIPELINE',
    },
    healthIntervalMs: {
      doc: 'How often the database is pinged (on a connection of its own, so a busy pool never fails the check); two failed pings in a row make readiness 503 degraded, one good ping brings it back.',
      format: 'duration-ms',
      default: 1_000,
      env: 'DATABASE_HEALTH_INTERVAL_MS',
    },
  },
  orders: {
    idempotencyRetentionMs: {
      doc: 'How long an Idempotency-Key and its stored response are kept (replays within it return the stored response; after it the key is purged and may create a new order).',
      format: 'long-duration-ms',
      default: 86_400_000,
      env: 'IDEMPOTENCY_RETENTION_MS',
    },
    idempotencyPurgeIntervalMs: {
      doc: 'How often the background worker purges expired Idempotency-Keys and refreshes the outbox backlog gauge.',
      format: 'duration-ms',
      default: 60_000,
      env: 'IDEMPOTENCY_PURGE_INTERVAL_MS',
    },
  },
  nats: {
    url: {
      doc: 'NATS server(s) with JetStream, comma separated. Empty: events stay in the outbox and are reported, not lost.',
      format: 'nats-url',
      default: '',
      env: 'NATS_URL',
      sensitive: true,
    },
    subjectPrefix: {
      doc: 'Prefix for subjects and stream names when several deployments share one NATS (empty: the contract subjects orders.created, payments.captured, payments.dlq; "staging": staging.orders.created and streams STAGING_ORDERS, STAGING_PAYMENTS).',
      format: 'subject-prefix',
      default: '',
      env: 'NATS_SUBJECT_PREFIX',
    },
    relayIntervalMs: {
      doc: 'How often the outbox relay looks for unpublished events (it also runs at once after each order); while the broker is down it retries at this pace.',
      format: 'duration-ms',
      default: 1_000,
      env: 'OUTBOX_RELAY_INTERVAL_MS',
    },
    paymentsMaxDeliver: {
      doc: 'Deliveries of one payments.captured message before it goes to payments.dlq (a message that can never apply goes there at once).',
      format: 'positive-int',
      default: 5,
      env: 'PAYMENTS_MAX_DELIVER',
    },
    paymentsAckWaitMs: {
      doc: 'How long JetStream waits for the acknowledgement of a payments.captured message before delivering it again.',
      format: 'duration-ms',
      default: 30_000,
      env: 'PAYMENTS_ACK_WAIT_MS',
    },
  },
  auth: {
    mode: {
      doc: 'Authentication of /v1/... : `jwt` (a bearer JWT on every call, RFC 6750) or `off` (every call is the anonymous caller of the default tenant; only with APP_ENV development or test, and logged as auth.disabled at start).',
      format: AUTH_MODES as unknown as string[],
      default: 'off',
      env: 'AUTH_MODE',
    },
    jwksUrl: {
      doc: "The identity provider's JWKS URL: fetched before the service is ready, refreshed every AUTH_JWKS_REFRESH_MS and when a token names an unknown key (at most once per AUTH_JWKS_COOLDOWN_MS). One of AUTH_JWKS_URL and AUTH_JWKS_FILE with AUTH_MODE=jwt.",
      format: 'http-url-or-empty',
      default: '',
      env: 'AUTH_JWKS_URL',
    },
    jwksFile: {
      doc: 'A JWKS file with the public keys tokens are signed with (read at start), instead of AUTH_JWKS_URL.',
      format: String,
      default: '',
      env: 'AUTH_JWKS_FILE',
    },
    issuer: {
      doc: 'The `iss` every token must carry (required with AUTH_MODE=jwt).',
      format: String,
      default: '',
      env: 'AUTH_ISSUER',
    },
    audience: {
      doc: 'The `aud` every token must carry (required with AUTH_MODE=jwt).',
      format: String,
      default: '',
      env: 'AUTH_AUDIENCE',
    },
    tenantClaim: {
      doc: "The claim naming the caller's tenant: every order and Idempotency-Key belongs to it.",
      format: 'non-empty-string',
      default: 'tenant_id',
      env: 'AUTH_TENANT_CLAIM',
    },
    clockToleranceMs: {
      doc: 'Clock skew allowed when checking `exp` and `nbf`.',
      format: 'duration-ms',
      default: 30_000,
      env: 'AUTH_CLOCK_TOLERANCE_MS',
    },
    algorithms: {
      doc: 'Signature algorithms accepted, comma separated; asymmetric only (never `none` or HMAC).',
      format: 'jwt-algorithms',
      default: 'RS256,ES256,EdDSA',
      env: 'AUTH_ALGORITHMS',
    },
    jwksTimeoutMs: {
      doc: 'Timeout of one JWKS fetch.',
      format: 'duration-ms',
      default: 3_000,
      env: 'AUTH_JWKS_TIMEOUT_MS',
    },
    jwksRefreshMs: {
      doc: 'How often the JWKS is fetched again in the background (0: only on an unknown key). A failed refresh keeps the keys already loaded.',
      format: 'duration-ms',
      default: 300_000,
      env: 'AUTH_JWKS_REFRESH_MS',
    },
    jwksCooldownMs: {
      doc: 'Least time between two fetches caused by tokens naming an unknown key (a flood of made-up key ids costs one fetch per period).',
      format: 'duration-ms',
      default: 30_000,
      env: 'AUTH_JWKS_COOLDOWN_MS',
    },
  },
  inspect: {
    doc: 'Live XState inspector: empty (off), websocket://host:port (a local inspector), or sky (hosted Stately inspector, needs internet).',
    format: 'inspect',
    default: '',
    env: 'INSPECT',
  },
};
