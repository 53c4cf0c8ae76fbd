// The only way the orders code reaches the database: every call runs under the resilience policy
// (bulkhead, retry of what is safe to repeat, breaker, attempt timeout) and every statement gets a
// CLIENT span, a child of the request's server span. Repositories describe their statements with
// `sql(...)` so spans are named `INSERT orders`, `SELECT idempotency_keys`: the operation and the
// table, never parameter values.
import {
  type Attributes,
  type Context,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { AppError } from '../../errors/catalogue';
import { currentScope } from '../../telemetry/request-scope';
import type { CancelSignal } from '../../resilience/cancellation';
import type { DependencyPolicy } from '../../resilience/dependency-policy';
import type { Db, DbDriver, DbSession, QueryResult, Row } from './db';

export interface Statement {
  readonly operation: string;
  readonly collection: string;
  readonly text: string;
  /** Its span's name and attributes for each driver, made once (not per statement run). */
  readonly span: {
    readonly name: string;
    readonly attributes: Readonly<Record<DbDriver, Attributes>>;
  };
}

/** The attributes every database span has (the transaction's too). */
function baseAttributes(driver: DbDriver): Attributes {
  return {
    'db.system.name': 'postgresql',
    ...(driver === 'pglite' ? { 'db.client.name': 'pglite' } : {}),
  };
}

/** A statement with what its span says about it. */
export function sql(operation: string, collection: string, text: string): Statement {
  // The text is folded onto one line (for spans): a `--` comment would swallow the rest of it.
  if (text.includes('--')) throw new Error(`no SQL comments in statements: ${text}`);
  const folded = text.replace(/\s+/g, ' ').trim();
  const attributes = (driver: DbDriver): Attributes =>
    Object.freeze({
      ...baseAttributes(driver),
      'db.operation.name': operation,
      'db.collection.name': collection,
      // Parameterised text only: values travel as parameters and never reach telemetry.
      'db.query.text': folded,
    });
  return {
    operation,
    collection,
    text: folded,
    span: {
      name: `${operation} ${collection}`,
      attributes: { postgresql: attributes('postgresql'), pglite: attributes('pglite') },
    },
  };
}

export interface Session {
  run<R extends Row = Row>(
    statement: Statement,
    params?: readonly unknown[],
  ): Promise<QueryResult<R>>;
}

export interface RunOptions {
  /** The request's signal: no attempt outlives it. */
  readonly signal?: CancelSignal | undefined;
  /** Retry only reads, and writes the idempotency protocol makes safe to repeat. */
  readonly retry: boolean;
}

export interface Database {
  /** Statements each on its own (autocommit). */
  run<T>(work: (session: Session) => Promise<T>, options: RunOptions): Promise<T>;
  /** Statements in one transaction, named for its span (`create order`). A retry reruns it all. */
  transaction<T>(
    name: string,
    work: (session: Session) => Promise<T>,
    options: RunOptions,
  ): Promise<T>;
}

export function createDatabase(
  db: () => Db | undefined,
  policy: DependencyPolicy,
  tracer: Tracer,
  /** Why the database is known to be down (health pings failing), or undefined while it is up. */
  knownDown: () => string | undefined = () => undefined,
): Database {
  const opened = (): Db => {
    const current = db();
    if (current === undefined) {
      throw new AppError('DEPENDENCY_UNAVAILABLE', 'The database is not open yet.');
    }
    return current;
  };
  const transactionAttributes = {
    postgresql: Object.freeze(baseAttributes('postgresql')),
    pglite: Object.freeze(baseAttributes('pglite')),
  };

  function traced<R extends Row>(
    target: Db,
    parent: Context | undefined,
    statement: Statement,
    execute: () => Promise<QueryResult<R>>,
  ): Promise<QueryResult<R>> {
    // Only the statements of a request are traced, as children of its server span. Background
    // work (the key purge, health trials) would otherwise start a parentless trace every few
    // seconds; its outcome is in its log lines and metrics. A parent that is not recorded (not
    // sampled) would not record its children either: none is made.
    if (parent === undefined) return execute();
    const span = tracer.startSpan(
      statement.span.name,
      { kind: SpanKind.CLIENT, attributes: statement.span.attributes[target.driver] },
      parent,
    );
    return execute().then(
      (result) => {
        span.setAttribute('db.response.returned_rows', result.rows.length);
        span.end();
        return result;
      },
      (error: unknown) => {
        const code = (error as { code?: unknown } | null)?.code;
        span.setAttribute('error.type', typeof code === 'string' ? code : errorName(error));
        if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
          span.setAttribute('db.response.status_code', code);
        }
        span.setStatus({ code: SpanStatusCode.ERROR, message: errorName(error) });
        span.end();
        throw error;
      },
    );
  }

  const sessionOf = (
    target: Db,
    parent: Context | undefined,
    query: DbSession['query'],
  ): Session => ({
    run: <R extends Row>(statement: Statement, params: readonly unknown[] = []) =>
      traced(target, parent, statement, () => query<R>(statement.text, params)),
  });

  // While health pings fail, calls are refused at once: a database that does not answer at all
  // (a network black hole) would otherwise hold each request for its whole attempt timeout, and
  // the breaker only opens after several of them. The pinger's recovery re-opens the gate.
  const refused = (): AppError | undefined => {
    const down = knownDown();
    return down === undefined
      ? undefined
      : new AppError('DEPENDENCY_UNAVAILABLE', 'The database is unavailable.', {
          cause: new Error(down),
          retryAfterSeconds: 1,
        });
  };

  return {
    run(work, options) {
      const refusal = refused();
      if (refusal !== undefined) return Promise.reject(refusal);
      const parent = recordedOnly(currentScope()?.context);
      return policy.call((signal) => {
        const target = opened();
        return work(
          sessionOf(target, parent, (text, params) => target.query(text, params, signal)),
        );
      }, options);
    },
    transaction(name, work, options) {
      const refusal = refused();
      if (refusal !== undefined) return Promise.reject(refusal);
      const scope = recordedOnly(currentScope()?.context);
      return policy.call((signal) => {
        const target = opened();
        if (scope === undefined) {
          return target.transaction(
            (tx) => work(sessionOf(target, undefined, (text, params) => tx.query(text, params))),
            signal,
          );
        }
        const span = tracer.startSpan(
          name,
          { kind: SpanKind.CLIENT, attributes: transactionAttributes[target.driver] },
          scope,
        );
        // Statements of the transaction are children of its span.
        const parent = trace.setSpan(scope, span);
        return target
          .transaction(
            (tx) => work(sessionOf(target, parent, (text, params) => tx.query(text, params))),
            signal,
          )
          .then(
            (result) => {
              span.end();
              return result;
            },
            (error: unknown) => {
              span.setStatus({ code: SpanStatusCode.ERROR, message: errorName(error) });
              span.end();
              throw error;
            },
          );
      }, options);
    },
  };
}

/**
 * The request's context when its span is recorded. Under parent-based sampling the children of an
 * unrecorded span are not recorded either, so making them would only cost CPU on every statement.
 */
function recordedOnly(context: Context | undefined): Context | undefined {
  return context !== undefined && trace.getSpan(context)?.isRecording() === true
    ? context
    : undefined;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'Error';
}
