// Anything thrown on the request path becomes a catalogue code here, in one place. What is not
// recognised is INTERNAL: a bug, logged with its cause chain, never shown to the client.
import { AppError, type ErrorCode } from './catalogue';

export interface MappedError {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly extensions: Readonly<Record<string, unknown>>;
  readonly retryAfterSeconds: number | undefined;
  /** True when this is a bug (INTERNAL): log it with its cause, count it. */
  readonly unexpected: boolean;
}

// body-parser's error types (express.json), see its README "Errors".
const BODY_PARSER_ERRORS: Readonly<Record<string, { code: ErrorCode; detail: string }>> = {
  'entity.parse.failed': { code: 'MALFORMED_JSON', detail: 'The request body is not valid JSON.' },
  'entity.too.large': {
    code: 'PAYLOAD_TOO_LARGE',
    detail: 'The request body is larger than allowed.',
  },
  'encoding.unsupported': {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    detail: 'The request body encoding is not supported.',
  },
  'charset.unsupported': {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    detail: 'The request body charset must be utf-8.',
  },
  'request.aborted': {
    code: 'MALFORMED_REQUEST',
    detail: 'The request body was not received in full.',
  },
  'request.size.invalid': {
    code: 'MALFORMED_REQUEST',
    detail: 'The request body does not match its Content-Length.',
  },
};

export function mapError(error: unknown): MappedError {
  if (error instanceof AppError) {
    return {
      code: error.code,
      detail: error.detail,
      extensions: error.extensions,
      retryAfterSeconds: error.retryAfterSeconds,
      unexpected: false,
    };
  }
  const type = (error as { type?: unknown } | null)?.type;
  const known = typeof type === 'string' ? BODY_PARSER_ERRORS[type] : undefined;
  if (known !== undefined) {
    return { ...known, extensions: {}, retryAfterSeconds: undefined, unexpected: false };
  }
  // Express itself rejects some requests with a 4xx status (a path parameter that is not valid
  // percent-encoding, for instance).
  const status = (error as { status?: unknown; expose?: unknown } | null)?.status;
  if (status === 400) {
    return {
      code: 'MALFORMED_REQUEST',
      detail: 'The request could not be understood.',
      extensions: {},
      retryAfterSeconds: undefined,
      unexpected: false,
    };
  }
  return {
    code: 'INTERNAL',
    detail: 'An unexpected error occurred.',
    extensions: {},
    retryAfterSeconds: undefined,
    unexpected: true,
  };
}
