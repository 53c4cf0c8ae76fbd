// The one error catalogue: every code a client or an operator can see is declared here once,
// with its HTTP status, title, category and whether a retry can help. runbook/errors.md has one
// heading per code, and a test keeps the two in step (in both directions).
//
// category: `expected` errors are the client's or the environment's (bad input, limits, a
// dependency down) and are not bugs; `unexpected` ones need a person now: a bug (logged with its
// cause), or the service cannot run at all (it did not start, it crashed, it was hard-stopped).
// A log line's level follows its code's category: unexpected -> error, expected -> warn or info.
//
// OPERATIONAL_CATALOGUE declares the codes that are never an HTTP answer: they appear only as the
// `error_code` of log lines (startup failures, crashes, shutdown steps). Every code the service
// emits is declared in one of the two, and has its heading in runbook/errors.md.

export type ErrorCategory = 'expected' | 'unexpected';

export interface ErrorSpec {
  readonly status: number;
  readonly title: string;
  readonly category: ErrorCategory;
  /** Whether the same request may succeed if retried later (clients: honour Retry-After). */
  readonly retryable: boolean;
}

export const ERROR_CATALOGUE = {
  // The request itself.
  MALFORMED_REQUEST: {
    status: 400,
    title: 'The request is not valid HTTP',
    category: 'expected',
    retryable: false,
  },
  MALFORMED_JSON: {
    status: 400,
    title: 'The request body is not valid JSON',
    category: 'expected',
    retryable: false,
  },
  VALIDATION_FAILED: {
    status: 400,
    title: 'The request did not pass validation',
    category: 'expected',
    retryable: false,
  },
  ROUTE_NOT_FOUND: { status: 404, title: 'No such route', category: 'expected', retryable: false },
  METHOD_NOT_ALLOWED: {
    status: 405,
    title: 'Method not allowed on this route',
    category: 'expected',
    retryable: false,
  },
  CLIENT_TIMEOUT: {
    status: 408,
    title: 'The client took too long to send the request',
    category: 'expected',
    retryable: true,
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    title: 'The request body is too large',
    category: 'expected',
    retryable: false,
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    title: 'The request body must be application/json',
    category: 'expected',
    retryable: false,
  },
  EXPECTATION_FAILED: {
    status: 417,
    title: 'The Expect header asks for something this service does not do',
    category: 'expected',
    retryable: false,
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    title: 'The request headers are too large',
    category: 'expected',
    retryable: false,
  },
  // Limits and the service's own state.
  UNAUTHENTICATED: {
    status: 401,
    title: 'Authentication required',
    category: 'expected',
    retryable: false,
  },
  INSUFFICIENT_SCOPE: {
    status: 403,
    title: 'The token does not grant this operation',
    category: 'expected',
    retryable: false,
  },
  RATE_LIMITED: {
    status: 429,
    title: 'Too many requests from this client',
    category: 'expected',
    retryable: true,
  },
  OVERLOADED: {
    status: 503,
    title: 'The service is overloaded',
    category: 'expected',
    retryable: true,
  },
  SHUTTING_DOWN: {
    status: 503,
    title: 'The service is shutting down',
    category: 'expected',
    retryable: true,
  },
  REQUEST_TIMEOUT: {
    status: 503,
    title: 'The request took too long to process',
    category: 'expected',
    retryable: true,
  },
  // Dependencies.
  DEPENDENCY_UNAVAILABLE: {
    status: 503,
    title: 'A dependency is unavailable',
    category: 'expected',
    retryable: true,
  },
  CIRCUIT_OPEN: {
    status: 503,
    title: 'A dependency is failing; calls to it are paused',
    category: 'expected',
    retryable: true,
  },
  // The orders API (contract section 6).
  IDEMPOTENCY_KEY_MISSING: {
    status: 400,
    title: 'The Idempotency-Key header is required',
    category: 'expected',
    retryable: false,
  },
  ORDER_NOT_FOUND: { status: 404, title: 'No such order', category: 'expected', retryable: false },
  IDEMPOTENCY_KEY_IN_PROGRESS: {
    status: 409,
    title: 'A request with this Idempotency-Key is still being processed',
    category: 'expected',
    retryable: true,
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    title: 'This Idempotency-Key was used with a different request',
    category: 'expected',
    retryable: false,
  },
  // Bugs.
  INTERNAL: { status: 500, title: 'Internal error', category: 'unexpected', retryable: true },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

export interface OperationalSpec {
  readonly title: string;
  readonly category: ErrorCategory;
}

export const OPERATIONAL_CATALOGUE = {
  CONFIG_INVALID: {
    title: 'The configuration is invalid: nothing starts (exit 78)',
    category: 'unexpected',
  },
  PORT_IN_USE: { title: 'A listener port is taken (exit 1)', category: 'unexpected' },
  BIND_FAILED: { title: 'A listener cannot bind its address (exit 1)', category: 'unexpected' },
  STARTUP_TIMEOUT: {
    title: 'Startup did not complete within STARTUP_TIMEOUT_MS (exit 1)',
    category: 'unexpected',
  },
  STARTUP_FAILED: {
    title: 'Startup failed for a reason no code covers (exit 1)',
    category: 'unexpected',
  },
  PROCESS_CRASH: {
    title: 'An uncaught exception or unhandled rejection (shutdown, exit 1)',
    category: 'unexpected',
  },
  HARD_STOP: {
    title: 'Shutdown outlived SHUTDOWN_HARD_STOP_MS: the process exits 1 at once',
    category: 'unexpected',
  },
  WORKER_STOP_FAILED: {
    title: 'A background worker failed to stop cleanly',
    category: 'unexpected',
  },
  RESOURCE_CLOSE_FAILED: { title: 'A resource failed to close', category: 'unexpected' },
  RESOURCE_CLOSE_TIMEOUT: {
    title: 'A resource did not close within its budget and was left behind',
    category: 'expected',
  },
  TELEMETRY_FLUSH_FAILED: {
    title: 'Spans were not exported at shutdown (the collector failed or timed out)',
    category: 'expected',
  },
  RATE_LIMIT_STORE_UNAVAILABLE: {
    title: 'Redis (REDIS_URL) cannot count requests: each replica counts its own',
    category: 'expected',
  },
} as const satisfies Record<string, OperationalSpec>;

export type OperationalCode = keyof typeof OPERATIONAL_CATALOGUE;

export const OPERATIONAL_CODES = Object.keys(OPERATIONAL_CATALOGUE) as OperationalCode[];

/** Every code the service can emit, answered or logged. */
export type KnownCode = ErrorCode | OperationalCode;

export function categoryOf(code: KnownCode): ErrorCategory {
  return code in ERROR_CATALOGUE
    ? ERROR_CATALOGUE[code as ErrorCode].category
    : OPERATIONAL_CATALOGUE[code as OperationalCode].category;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}

/** One problem with one field of the input, for VALIDATION_FAILED. */
export interface FieldError {
  /** JSON pointer-like path: `items[2].quantity`. */
  readonly field: string;
  readonly message: string;
}

/**
 * An error with a catalogue code. `detail` is written for clients (never an internal message);
 * `cause` keeps what went wrong underneath, for the logs.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly detail: string;
  /** Extension members of the problem body (for example `errors` for VALIDATION_FAILED). */
  readonly extensions: Readonly<Record<string, unknown>>;
  /** Seconds, for the Retry-After header of retryable errors. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    detail: string,
    options: {
      cause?: unknown;
      extensions?: Readonly<Record<string, unknown>>;
      retryAfterSeconds?: number;
    } = {},
  ) {
    super(`${code}: ${detail}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.detail = detail;
    this.extensions = options.extensions ?? {};
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** At most this many field errors are listed in one VALIDATION_FAILED answer. */
export const MAX_FIELD_ERRORS = 20;

export class ValidationError extends AppError {
  readonly errors: readonly FieldError[];
  /** More problems were found than listed: validation stopped at the cap. */
  readonly truncated: boolean;

  constructor(errors: readonly FieldError[], options: { truncated?: boolean } = {}) {
    const truncated = options.truncated === true;
    super(
      'VALIDATION_FAILED',
      truncated
        ? `More than ${errors.length} problems were found; the first ${errors.length} are listed and validation stopped there.`
        : `${errors.length} field(s) failed validation.`,
      { extensions: truncated ? { errors, errors_truncated: true } : { errors } },
    );
    this.name = 'ValidationError';
    this.errors = errors;
    this.truncated = truncated;
  }
}
