// The one error catalogue: every code a client or an operator can see is declared here once,
// with its HTTP status, title, category and whether a retry can help. runbook/errors.md has one
// heading per code, and a test keeps the two in step.

export type ErrorCategory = 'expected' | 'unexpected';

export interface ErrorSpec {
  readonly status: number;
  readonly title: string;
  readonly category: ErrorCategory;
  readonly retryable: boolean;
}

export const ERROR_CATALOGUE = {
  ROUTE_NOT_FOUND: { status: 404, title: 'No such route', category: 'expected', retryable: false },
  METHOD_NOT_ALLOWED: {
    status: 405,
    title: 'Method not allowed on this route',
    category: 'expected',
    retryable: false,
  },
  SHUTTING_DOWN: {
    status: 503,
    title: 'The service is shutting down',
    category: 'expected',
    retryable: true,
  },
  INTERNAL: { status: 500, title: 'Internal error', category: 'unexpected', retryable: true },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** An error with a catalogue code; `detail` is safe to show to clients. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly detail: string;

  constructor(code: ErrorCode, detail: string, options?: { cause?: unknown }) {
    super(`${code}: ${detail}`, options);
    this.name = 'AppError';
    this.code = code;
    this.detail = detail;
  }
}
