// Which database errors are worth another attempt: the connection failed or was lost (the next
// attempt gets a fresh one), the server is restarting, or PostgreSQL itself asks for a retry
// (serialization failure, deadlock). Everything else (a constraint, a syntax error, a statement
// timeout) would fail the same way again.

const RETRYABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE']);

const RETRYABLE_SQLSTATES = new Set([
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08003', // connection_does_not_exist
  '08006', // connection_failure
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);

// pg reports a lost or unobtainable connection without a code.
const RETRYABLE_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection timeout/i;

export function isRetryableDbError(error: Error): boolean {
  if (error instanceof AggregateError) {
    return error.errors.some((inner) => inner instanceof Error && isRetryableDbError(inner));
  }
  const code = (error as { code?: unknown }).code;
  if (
    typeof code === 'string' &&
    (RETRYABLE_SOCKET_CODES.has(code) || RETRYABLE_SQLSTATES.has(code))
  ) {
    return true;
  }
  return RETRYABLE_MESSAGES.test(error.message);
}
