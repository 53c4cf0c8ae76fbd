// Loads, layers and validates configuration. This module (with its siblings in src/config) is the
// only code that reads the environment or config files; everything else receives the frozen,
// typed result.
//
// Precedence, lowest first: schema defaults < config/default.json < config/<APP_ENV>.json
// < the file named by CONFIG_FILE < environment variables.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import convict from 'convict';
import { registerFormats } from './formats';
import { APP_ENVS, type AppConfig, type AppEnv, schema } from './schema';
import { type SchemaLeaf, isSchemaBranch, leavesOf } from './schema-walk';

export type Environment = Readonly<Record<string, string | undefined>>;

/** One thing wrong with the configuration, safe to print (secret values are already hidden). */
export interface ConfigProblem {
  /** The config key, or the file, the problem is about. */
  readonly subject: string;
  /** Where the offending value came from: `env PORT`, `config/default.json`, `default`, ... */
  readonly source: string;
  /** The offending value as printed (JSON), `<redacted>` for secrets, absent for file problems. */
  readonly value?: string;
  /** What was expected, or what is wrong. */
  readonly message: string;
}

export interface LoadedConfig {
  readonly config: Readonly<AppConfig>;
  /** Where each key's effective value came from. */
  readonly sources: Readonly<Record<string, string>>;
  /** The effective config with secrets replaced by `[REDACTED]`: the only form ever shown. */
  readonly redacted: Readonly<Record<string, unknown>>;
  /** A stable hash of the effective config, for `/lifecycle` and change detection. */
  readonly hash: string;
  /** Non-empty secret values, so the logger can scrub them from any line. */
  readonly secrets: readonly string[];
}

export type ConfigResult =
  | ({ readonly ok: true } & LoadedConfig)
  | {
      readonly ok: false;
      readonly problems: readonly ConfigProblem[];
      /** Best-effort hints for reporting the failure itself (the env and log format asked for). */
      readonly hints: { readonly env: string; readonly logFormat: 'json' | 'pretty' };
    };

export interface LoadOptions {
  /** The environment variables; the process's own by default. */
  readonly env?: Environment;
  /** Folder holding default.json and <APP_ENV>.json; defaults to the package's config/. */
  readonly configDir?: string;
}

export const REDACTED = '[REDACTED]';

interface Layer {
  readonly label: string;
  readonly file: string;
  readonly required: boolean;
  readonly requiredBy?: string;
}

export function loadConfig(options: LoadOptions = {}): ConfigResult {
  registerFormats();
  const env = options.env ?? process.env;
  const configDir = options.configDir ?? path.join(packageRoot(), 'config');
  const leaves = leavesOf(schema);
  const byKey = new Map(leaves.map((leaf) => [leaf.key, leaf]));
  const problems: ConfigProblem[] = [];
  const sources: Record<string, string> = Object.fromEntries(leaves.map((l) => [l.key, 'default']));
  const raw: Record<string, unknown> = {};

  const appEnv = env.APP_ENV ?? 'development';
  const appEnvKnown = (APP_ENVS as readonly string[]).includes(appEnv);

  const layers: Layer[] = [
    { label: 'config/default.json', file: path.join(configDir, 'default.json'), required: false },
  ];
  if (appEnvKnown) {
    const name = `config/${appEnv}.json`;
    layers.push({ label: name, file: path.join(configDir, `${appEnv}.json`), required: false });
  }
  const configFile = env.CONFIG_FILE;
  if (configFile !== undefined && configFile !== '') {
    layers.push({
      label: `CONFIG_FILE ${configFile}`,
      file: path.resolve(configFile),
      required: true,
      requiredBy: 'env CONFIG_FILE',
    });
  }

  const config = convict<AppConfig>(schema, { env: { ...env }, args: [] });
  for (const layer of layers) {
    const content = readLayer(layer, problems);
    if (content === undefined) continue;
    const known = pickKnownKeys(content, layer.label, byKey, problems);
    for (const [key, value] of known) {
      sources[key] = layer.label;
      raw[key] = value;
    }
    config.load(unflatten(known));
  }
  for (const leaf of leaves) {
    if (leaf.env !== undefined && env[leaf.env] !== undefined) {
      sources[leaf.key] = `env ${leaf.env}`;
      raw[leaf.key] = env[leaf.env];
    }
  }

  const printable = (key: string): string => {
    if (byKey.get(key)?.sensitive === true) return '<redacted>';
    const value = key in raw ? raw[key] : config.get(key as never);
    return JSON.stringify(value) ?? String(value);
  };

  try {
    config.validate({ allowed: 'strict' });
  } catch (error) {
    for (const { key, message } of parseValidationError(error, byKey)) {
      problems.push({
        subject: key,
        source: sources[key] ?? 'default',
        value: printable(key),
        message,
      });
    }
  }

  const effective = config.getProperties();
  if (problems.length === 0) {
    for (const rule of crossKeyRules(effective)) {
      const subject = rule.keys.join(' + ');
      const source = rule.keys.map((k) => `${sources[k] ?? 'default'} for ${k}`).join(', ');
      problems.push({ subject, source, message: rule.message });
    }
  }

  if (problems.length > 0) {
    const logFormat = env.LOG_FORMAT === 'pretty' ? 'pretty' : 'json';
    return { ok: false, problems, hints: { env: appEnv, logFormat } };
  }

  const redacted = redactedView(effective, leaves);
  return {
    ok: true,
    config: deepFreeze(effective),
    sources: Object.freeze({ ...sources }),
    redacted: deepFreeze(redacted),
    hash: hashOf(redacted),
    secrets: Object.freeze(
      leaves
        .filter((leaf) => leaf.sensitive)
        .map((leaf) => readPath(effective, leaf.key))
        .filter((value): value is string => typeof value === 'string' && value.length > 0),
    ),
  };
}

/** `http.port = 70000 (from env PORT): expected a TCP port ...` */
export function formatProblem(problem: ConfigProblem): string {
  const subject =
    problem.value === undefined ? problem.subject : `${problem.subject} = ${problem.value}`;
  return `${subject} (from ${problem.source}): ${problem.message}`;
}

function readLayer(layer: Layer, problems: ConfigProblem[]): Record<string, unknown> | undefined {
  if (!existsSync(layer.file)) {
    if (layer.required) {
      problems.push({
        subject: layer.file,
        source: layer.requiredBy ?? layer.label,
        message: 'config file does not exist',
      });
    }
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(layer.file, 'utf8');
  } catch (error) {
    problems.push({
      subject: layer.label,
      source: layer.requiredBy ?? 'config directory',
      message: `cannot read file: ${(error as Error).message}`,
    });
    return undefined;
  }
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    problems.push({
      subject: layer.label,
      source: layer.requiredBy ?? 'config directory',
      message: `malformed JSON: ${describeJsonError(error as Error, text)}`,
    });
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push({
      subject: layer.label,
      source: layer.requiredBy ?? 'config directory',
      message: 'expected a JSON object at the top level',
    });
    return undefined;
  }
  return parsed as Record<string, unknown>;
}

function describeJsonError(error: Error, text: string): string {
  const match = /position (\d+)/.exec(error.message);
  if (match?.[1] === undefined) return error.message;
  const position = Number(match[1]);
  const before = text.slice(0, position).split('\n');
  const line = before.length;
  const column = (before[before.length - 1]?.length ?? 0) + 1;
  return `${error.message.replace(/ in JSON at position \d+.*$/, '')} at line ${line} column ${column}`;
}

/** Walks a file's object down to the schema's leaves; everything not in the schema is a problem. */
function pickKnownKeys(
  content: Record<string, unknown>,
  label: string,
  byKey: ReadonlyMap<string, SchemaLeaf>,
  problems: ConfigProblem[],
): Map<string, unknown> {
  const known = new Map<string, unknown>();
  const walk = (node: Record<string, unknown>, prefix: string, schemaNode: unknown): void => {
    for (const [name, value] of Object.entries(node)) {
      const key = prefix === '' ? name : `${prefix}.${name}`;
      const child = (schemaNode as Record<string, unknown>)[name];
      if (byKey.has(key)) {
        known.set(key, value);
      } else if (child !== undefined && isSchemaBranch(child)) {
        if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
          walk(value as Record<string, unknown>, key, child);
        } else {
          problems.push({
            subject: key,
            source: label,
            value: JSON.stringify(value),
            message: `expected an object with the keys ${Object.keys(child as object).join(', ')}`,
          });
        }
      } else {
        problems.push({
          subject: key,
          source: label,
          message: 'unknown key: not in the config schema',
        });
      }
    }
  };
  walk(content, '', schema);
  return known;
}

function unflatten(entries: ReadonlyMap<string, unknown>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of entries) {
    const parts = key.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      node[part] ??= {};
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1] as string] = value;
  }
  return root;
}

/**
 * convict reports all problems as one message, one `key: message: value was ...` line each. The
 * value part is dropped: this loader prints the raw value itself, knowing where it came from and
 * whether it is a secret.
 */
function parseValidationError(
  error: unknown,
  byKey: ReadonlyMap<string, SchemaLeaf>,
): { key: string; message: string }[] {
  const text = error instanceof Error ? error.message : String(error);
  const keys = [...byKey.keys()].sort((a, b) => b.length - a.length);
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const key = keys.find((k) => line.startsWith(`${k}: `));
      if (key === undefined) return { key: '(config)', message: line };
      let message = line.slice(key.length + 2).replace(/: value was .*$/s, '');
      const choices = /^must be one of the possible values: (\[.*\])$/.exec(message);
      if (choices?.[1] !== undefined) {
        message = `expected one of ${(JSON.parse(choices[1]) as string[]).join(', ')}`;
      }
      return { key, message };
    });
}

interface CrossKeyProblem {
  readonly keys: readonly string[];
  readonly message: string;
}

function crossKeyRules(config: AppConfig): CrossKeyProblem[] {
  const found: CrossKeyProblem[] = [];
  const { delayMs, drainTimeoutMs, closeTimeoutMs, flushTimeoutMs, hardStopMs } = config.shutdown;
  const shutdownTotal = delayMs + drainTimeoutMs + closeTimeoutMs + flushTimeoutMs;
  if (shutdownTotal >= hardStopMs) {
    found.push({
      keys: [
        'shutdown.delayMs',
        'shutdown.drainTimeoutMs',
        'shutdown.closeTimeoutMs',
        'shutdown.flushTimeoutMs',
        'shutdown.hardStopMs',
      ],
      message: `delay + drain timeout + close timeout + flush timeout (${delayMs} + ${drainTimeoutMs} + ${closeTimeoutMs} + ${flushTimeoutMs} = ${shutdownTotal} ms) must be less than the hard stop deadline (${hardStopMs} ms)`,
    });
  }
  if (
    (config.env === 'staging' || config.env === 'production') &&
    config.telemetry.endpoint === ''
  ) {
    found.push({
      keys: ['env', 'telemetry.endpoint'],
      message: `an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) is required in ${config.env}`,
    });
  }
  found.push(...authRules(config));
  const { bodyTimeoutMs, requestTimeoutMs } = config.http;
  if (bodyTimeoutMs >= requestTimeoutMs) {
    found.push({
      keys: ['http.bodyTimeoutMs', 'http.requestTimeoutMs'],
      message: `the body timeout (${bodyTimeoutMs} ms) must be below the whole-request timeout (${requestTimeoutMs} ms), or slow bodies are cut off by the request timeout instead`,
    });
  }
  if (
    config.http.port !== 0 &&
    config.http.port === config.ops.port &&
    (config.http.host === config.ops.host ||
      config.http.host === '0.0.0.0' ||
      config.ops.host === '0.0.0.0')
  ) {
    found.push({
      keys: ['http.port', 'ops.port'],
      message: `the main and ops listeners cannot share port ${config.http.port}`,
    });
  }
  return found;
}

/** AUTH_MODE=off only where nobody real calls; jwt needs one key source, an issuer, an audience. */
function authRules(config: AppConfig): CrossKeyProblem[] {
  const { auth } = config;
  const found: CrossKeyProblem[] = [];
  if (auth.mode === 'off') {
    if (config.env === 'staging' || config.env === 'production') {
      found.push({
        keys: ['env', 'auth.mode'],
        message: `AUTH_MODE=off is only allowed with APP_ENV development or test; ${config.env} needs AUTH_MODE=jwt with AUTH_JWKS_URL or AUTH_JWKS_FILE, AUTH_ISSUER and AUTH_AUDIENCE`,
      });
    }
    return found;
  }
  if ((auth.jwksUrl === '') === (auth.jwksFile === '')) {
    found.push({
      keys: ['auth.jwksUrl', 'auth.jwksFile'],
      message: 'AUTH_MODE=jwt needs exactly one key source: AUTH_JWKS_URL or AUTH_JWKS_FILE',
    });
  }
  for (const [key, name] of [
    ['auth.issuer', 'AUTH_ISSUER'],
    ['auth.audience', 'AUTH_AUDIENCE'],
  ] as const) {
    if (readPath(config, key) === '')
      found.push({ keys: [key], message: `AUTH_MODE=jwt needs ${name}` });
  }
  return found;
}

function readPath(object: unknown, key: string): unknown {
  return key
    .split('.')
    .reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], object);
}

function redactedView(config: AppConfig, leaves: readonly SchemaLeaf[]): Record<string, unknown> {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const leaf of leaves) {
    if (!leaf.sensitive) continue;
    const parts = leaf.key.split('.');
    const name = parts.pop() as string;
    const target = (parts.length === 0 ? copy : readPath(copy, parts.join('.'))) as Record<
      string,
      unknown
    >;
    if (target[name] !== '') target[name] = REDACTED;
  }
  return copy;
}

/** Canonical JSON (sorted keys) so the hash depends on values only, never on key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : 1,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Hash of the redacted view: a changed secret does not change it, and nothing about a secret can
 * be learned from it.
 */
function hashOf(redacted: Record<string, unknown>): string {
  return createHash('sha256').update(canonical(redacted)).digest('hex').slice(0, 16);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** The folder holding this package's package.json (works from src/ under jest and from dist/). */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`package.json not found above ${__dirname}`);
    dir = parent;
  }
}

export type { AppConfig, AppEnv };
