// Structured logging on winston's transports (standard output: BatchedTransport, a
// winston-transport; a caller's stream: winston's Stream transport). Every line is one event:
// `ts`, `level`, `event`, `service`, `version`, `env`, then the request scope (`request_id`,
// `trace_id`, `span_id`) when written while serving a request, then the event's own fields.
// Secrets are redacted here, at the logger, so no call site has to remember to.
import type { Writable } from 'node:stream';
import type winston from 'winston';
import type TransportStream from 'winston-transport';
import { BatchedTransport, LineBatcher } from './line-batcher';
import type { LogFormat, LogLevel } from '../config/schema';

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  error(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  debug(event: string, fields?: LogFields): void;
  /** A logger whose lines all carry `fields` (for example a request's scope). */
  child(fields: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
  /** Resolves once everything written so far has been handed to the output stream. */
  flush(): Promise<void>;
}

export interface LoggerOptions {
  readonly service: string;
  readonly version: string;
  readonly env: string;
  readonly level: LogLevel;
  readonly format: LogFormat;
  /** Exact secret values (from config) to scrub from any string written. */
  readonly secrets?: readonly string[];
  /** Where lines go; stdout by default. */
  readonly stream?: Writable;
  /**
   * Fields of the current scope (the request being served), looked up on every line so that
   * code deep in a request writes `request_id`/`trace_id`/`span_id` without passing a logger.
   */
  readonly scope?: () => object | undefined;
}

const LEVELS: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3 };
const MESSAGE = Symbol.for('message');
const LEVEL = Symbol.for('level');
export const REDACTED = '[REDACTED]';

// Keys whose values are credentials wherever they appear (headers, bodies, errors).
const SENSITIVE_KEY =
  /pass(word|wd|phrase)?$|secret|token|authorization|cookie|api[-_]?key|credential|private[-_]?key/i;
// `scheme://user:password@host` -> `scheme://user:[REDACTED]@host`
const URL_CREDENTIALS = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:@/]*:)[^\s@/]+@/gi;

export function createLogger(options: LoggerOptions): Logger {
  const secrets = (options.secrets ?? []).filter((s) => s.length >= 4);
  const scrub = (text: string): string => {
    let out = text;
    for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out.includes('@') ? out.replace(URL_CREDENTIALS, `$1${REDACTED}@`) : out;
  };
  const render = options.format === 'pretty' ? renderPretty : renderJson;

  // Standard output is written in batches (line-batcher.ts: at most 10 ms apart); a stream given by the
  // caller (tests) gets each line as it is written.
  const batcher = options.stream === undefined ? new LineBatcher(process.stdout) : undefined;
  // Each line is rendered (and redacted) and its level checked here, then handed straight to the
  // winston transport. winston's Logger is a Transform stream in front of its transports: with the
  // line already rendered, its only work would be two stream writes and a nextTick per line (the
  // access log is on every request's path).
  const transport: TransportStream =
    batcher === undefined
      ? streamTransport(options.stream ?? process.stdout)
      : new BatchedTransport(batcher);
  const max = LEVELS[options.level];
  const { service, version, env } = options;
  // JSON lines are the same text either way; most are rendered without building the record: the
  // envelope's constant part is rendered once here and only the line's own fields go through
  // JSON.stringify. Anything unusual (pretty format, a field named like the envelope, a value that
  // needs redaction, fields that are not a plain object) takes the general path below.
  const envelopeTail = `,"service":${JSON.stringify(service)},"version":${JSON.stringify(version)},"env":${JSON.stringify(env)}`;
  const fastJson =
    options.format !== 'pretty' && [service, version, env].every((value) => scrub(value) === value);

  const make = (bound: LogFields | undefined): Logger => {
    const write = (level: LogLevel, event: string, fields: LogFields | undefined): void => {
      if (LEVELS[level] > max) return;
      const ts = isoNow();
      const scope = options.scope?.();
      let line: string | undefined;
      if (fastJson) {
        const own =
          scope === undefined && bound === undefined ? fields : merge(scope, bound, fields);
        if ((own === undefined || isSimpleFields(own)) && scrub(event) === event) {
          const body =
            own === undefined
              ? '{}'
              : (renderFlat(own, scrub) ??
                (needsRedaction(own, scrub, 0) ? undefined : JSON.stringify(own)));
          // An integer-like key sorts before every other key of an object, the envelope's too.
          if (body !== undefined && !isDigit(body.charCodeAt(2))) {
            line =
              `{"ts":"${ts}","level":"${level}","event":${JSON.stringify(event)}${envelopeTail}` +
              (body.length > 2 ? `,${body.slice(1)}` : '}');
          }
        }
      }
      if (line === undefined) {
        const record: Record<string, unknown> = { ts, level, event, service, version, env };
        if (scope !== undefined) Object.assign(record, scope);
        if (bound !== undefined) Object.assign(record, bound);
        if (fields !== undefined) {
          // The envelope (ts, level, event, service, version, env) cannot be overwritten by fields.
          for (const key of Object.keys(fields)) if (!(key in ENVELOPE)) record[key] = fields[key];
        }
        line = render(
          needsRedaction(record, scrub, 0)
            ? (redact(record, scrub, 0) as Record<string, unknown>)
            : record,
        );
      }
      transport.log?.({ level, message: event, [LEVEL]: level, [MESSAGE]: line }, noop);
    };
    return {
      error: (event, fields) => write('error', event, fields),
      warn: (event, fields) => write('warn', event, fields),
      info: (event, fields) => write('info', event, fields),
      debug: (event, fields) => write('debug', event, fields),
      child: (fields) => make(bound === undefined ? fields : { ...bound, ...fields }),
      isLevelEnabled: (level) => LEVELS[level] <= max,
      flush: () =>
        batcher === undefined ? flushStream(options.stream ?? process.stdout) : batcher.flush(),
    };
  };
  return make(undefined);
}

function noop(): void {}

/**
 * winston's Stream transport, for a stream the caller gives (tests, tools). Required only then:
 * winston's logger, formats and transports take 50-90 ms to load, on the startup path of a service
 * whose standard output goes through BatchedTransport (winston-transport) and never needs them.
 */
function streamTransport(stream: Writable): TransportStream {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use only
  const { transports } = require('winston') as typeof winston;
  return new transports.Stream({ stream });
}

// Object.assign onto one empty object, not `{ ...a, ...b }`: V8 gives most results of a spread of
// two objects a hidden class of their own (measured: ~3 us per merge, against ~0.15 us).
function merge(
  scope: object | undefined,
  bound: LogFields | undefined,
  fields: LogFields | undefined,
): LogFields {
  const merged: Record<string, unknown> = {};
  if (scope !== undefined) Object.assign(merged, scope);
  if (bound !== undefined) Object.assign(merged, bound);
  if (fields !== undefined) Object.assign(merged, fields);
  return merged;
}

/** A plain object, without a toJSON of its own and without keys named like the envelope. */
function isSimpleFields(fields: LogFields): boolean {
  const prototype: unknown = Object.getPrototypeOf(fields);
  return (
    (prototype === Object.prototype || prototype === null) &&
    fields.toJSON === undefined &&
    fields.ts === undefined &&
    fields.level === undefined &&
    fields.event === undefined &&
    fields.service === undefined &&
    fields.version === undefined &&
    fields.env === undefined
  );
}

// A string JSON writes as it is between quotes: printable ASCII without `"` or `\\`.
const VERBATIM = /^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * `JSON.stringify(fields)` for the common line: every value a string, finite number, boolean,
 * null or undefined, every string and key written verbatim, and nothing to redact. Undefined
 * when any of that does not hold: the caller then takes the general path. Measured at about half
 * of JSON.stringify's time for an access line (eight fields) on Node 20.
 */
function renderFlat(fields: LogFields, scrub: (text: string) => string): string | undefined {
  let out = '{';
  for (const key in fields) {
    if (!Object.hasOwn(fields, key)) continue;
    const value = fields[key];
    if (value === undefined) continue;
    // Unsafe keys, and credential-like keys with a value (redacted by the general path).
    if (!VERBATIM.test(key) || (value !== '' && isSensitiveKey(key))) return undefined;
    let rendered: string;
    if (typeof value === 'string') {
      if (!VERBATIM.test(value) || scrub(value) !== value) return undefined;
      rendered = `"${value}"`;
    } else if (typeof value === 'number') {
      rendered = Number.isFinite(value) ? String(value) : 'null';
    } else if (typeof value === 'boolean') {
      rendered = value ? 'true' : 'false';
    } else if (value === null) {
      rendered = 'null';
    } else {
      return undefined;
    }
    out += `${out.length === 1 ? '' : ','}"${key}":${rendered}`;
  }
  return `${out}}`;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

// Lines written in the same millisecond share one timestamp string.
let lastTsMs = Number.NaN;
let lastTs = '';
function isoNow(): string {
  const now = Date.now();
  if (now !== lastTsMs) {
    lastTsMs = now;
    lastTs = new Date(now).toISOString();
  }
  return lastTs;
}

const ENVELOPE: Readonly<Record<string, true>> = {
  ts: true,
  level: true,
  event: true,
  service: true,
  version: true,
  env: true,
};

function flushStream(stream: Writable): Promise<void> {
  if (!stream.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}

/** Whether `redact` would change anything: most lines need no copy at all. */
function needsRedaction(value: unknown, scrub: (text: string) => string, depth: number): boolean {
  if (typeof value === 'string') return scrub(value) !== value;
  if (typeof value !== 'object' || value === null) return false;
  if (depth > 8 || value instanceof Error || Array.isArray(value)) return true;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const child = (value as Record<string, unknown>)[key];
    if (isSensitiveKey(key) && child !== '' && child !== undefined) return true;
    if (needsRedaction(child, scrub, depth + 1)) return true;
  }
  return false;
}

/** Copies a value with credentials replaced; errors become plain objects with their cause chain. */
function redact(value: unknown, scrub: (text: string) => string, depth: number): unknown {
  if (typeof value === 'string') return scrub(value);
  if (typeof value !== 'object' || value === null) return value;
  if (depth > 8) return '[Truncated]';
  if (value instanceof Error) return redact(serializeError(value), scrub, depth + 1);
  if (Array.isArray(value)) return value.map((item) => redact(item, scrub, depth + 1));
  const out: Record<string, unknown> = {};
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const child = (value as Record<string, unknown>)[key];
    out[key] =
      isSensitiveKey(key) && child !== '' && child !== undefined
        ? REDACTED
        : redact(child, scrub, depth + 1);
  }
  return out;
}

// The same few keys come back on every line: remember the answer (bounded, keys are code's).
const sensitiveKeys = new Map<string, boolean>();
function isSensitiveKey(key: string): boolean {
  let known = sensitiveKeys.get(key);
  if (known === undefined) {
    known = SENSITIVE_KEY.test(key);
    if (sensitiveKeys.size < 10_000) sensitiveKeys.set(key, known);
  }
  return known;
}

function serializeError(error: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { name: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (error.stack !== undefined) out.stack = error.stack;
  if (error.cause !== undefined) out.cause = error.cause;
  return out;
}

function renderJson(record: Record<string, unknown>): string {
  return JSON.stringify(record);
}

// `INFO service.start version=0.1.0 env=staging bind=127.0.0.1:8080 service=ops-service ts=...`
function renderPretty(record: Record<string, unknown>): string {
  const { ts, level, event, service, version, env, ...rest } = record;
  const parts = [
    String(level).toUpperCase(),
    String(event),
    `version=${prettyValue(version)}`,
    `env=${prettyValue(env)}`,
  ];
  for (const [key, value] of Object.entries(rest)) {
    if (value !== undefined) parts.push(`${key}=${prettyValue(value)}`);
  }
  parts.push(`service=${prettyValue(service)}`, `ts=${prettyValue(ts)}`);
  return parts.join(' ');
}

function prettyValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}
