// Which database errors are worth another attempt (isRetryableDbError), and which mean the
// database itself is failing (isDatabaseFailure, below).
//
// Worth another attempt: the connection failed or was lost (the next attempt gets a fresh one),
// the server is restarting, or PostgreSQL itself asks for a retry (serialization failure,
// deadlock). Everything else (a constraint, a syntax error, a statement timeout) would fail the
// same way again.

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

// SQLSTATE classes that mean PostgreSQL itself is failing or out of reach: 08 connection
// exception, 53 insufficient resources (disk full, out of memory, too many connections), 57
// operator intervention (shutdown, statement timeout), 58 system error (I/O), XX internal error.
// Data and constraint errors (22, 23), syntax (42) and lock contention (55P03) are the call's own.
const FAILURE_SQLSTATE_CLASSES = new Set(['08', '53', '57', '58', 'XX']);

/**
 * Whether an error means the database is failing (it counts against the breaker and so against
 * readiness): the connection was refused or lost, or the server failed on its side. Never the
 * caller's data: a client must not be able to make the database look down (issue #11).
 */
export function isDatabaseFailure(error: Error): boolean {
  if (error instanceof AggregateError) {
    return error.errors.some((inner) => inner instanceof Error && isDatabaseFailure(inner));
  }
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (/^[0-9A-Z]{5}$/.test(code)) return FAILURE_SQLSTATE_CLASSES.has(code.slice(0, 2));
    // A socket error (ECONNREFUSED, EHOSTUNREACH, ...): the server is out of reach.
    if (/^E[A-Z]+$/.test(code)) return true;
  }
  return RETRYABLE_MESSAGES.test(error.message);
}
