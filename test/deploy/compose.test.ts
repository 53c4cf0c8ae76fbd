// The container image and the local stack (Dockerfile, docker-compose.yml, deploy/*) are only
// read here, never run: these tests parse them and check that they agree with the config schema
// and with each other (env names, ports, endpoints, shutdown budget, pinned images, where Grafana
// finds its provisioning files and dashboards, the development key set ops-service verifies
// bearer tokens with). Each check returns its problems as text; the mutation tests at the end
// prove each one can fail.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load-config';
import { schema } from '../../src/config/schema';
import { type SchemaLeaf, leavesOf } from '../../src/config/schema-walk';
import { type Dict, dict, imageProblem, isDict, list, optionalScalar, scalar } from './narrow';

const ROOT = path.resolve(__dirname, '..', '..');
const SERVICE = 'ops-service';
/** Read by the loader itself, not a schema key. */
const LOADER_ENV = ['CONFIG_FILE'];
/** Read by node and libraries (express), not by the service's config. */
const NODE_RUNTIME_ENV = ['NODE_ENV'];
/** Where the postgres and nats images listen by default (the compose file does not move them). */
const POSTGRES_PORT = 5432;
const NATS_CLIENT_PORT = 4222;
/** Grafana's defaults (GF_SERVER_HTTP_PORT, GF_PATHS_PROVISIONING) and Prometheus' listen port. */
const GRAFANA_PORT = 3000;
const GRAFANA_PROVISIONING = '/etc/grafana/provisioning';
const PROMETHEUS_PORT = 9090;
/** The dashboard the provider must find (its queries: grafana-dashboard.test.ts). */
const DASHBOARD = 'deploy/grafana/dashboards/ops-service.json';
/** The development private key (deploy/auth/README.md): on the host only, never in a container. */
const DEV_SIGNING_KEY = 'deploy/auth/dev-signing-key.jwk';
/** Members only a private or secret JWK has (RFC 7518 6.2.2, 6.3.2, 6.4.1; RFC 8037 2). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

// ---------------------------------------------------------------------------------------------
// Sources

interface Texts {
  readonly compose: string;
  readonly collector: string;
  readonly prometheus: string;
  readonly dockerfile: string;
  readonly dockerignore: string;
  readonly grafanaDatasources: string;
  readonly grafanaDashboards: string;
}

const FILES: Readonly<Record<keyof Texts, string>> = {
  compose: 'docker-compose.yml',
  collector: 'deploy/otel-collector.yaml',
  prometheus: 'deploy/prometheus/prometheus.yml',
  dockerfile: 'Dockerfile',
  dockerignore: '.dockerignore',
  grafanaDatasources: 'deploy/grafana/provisioning/datasources/prometheus.yml',
  grafanaDashboards: 'deploy/grafana/provisioning/dashboards/ops-service.yml',
};

function readTexts(): Texts {
  const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');
  return {
    compose: read(FILES.compose),
    collector: read(FILES.collector),
    prometheus: read(FILES.prometheus),
    dockerfile: read(FILES.dockerfile),
    dockerignore: read(FILES.dockerignore),
    grafanaDatasources: read(FILES.grafanaDatasources),
    grafanaDashboards: read(FILES.grafanaDashboards),
  };
}

// ---------------------------------------------------------------------------------------------
// YAML documents (narrowing: ./narrow.ts)

function yamlDocument(text: string, where: string): Dict {
  const parsed: unknown = parseYaml(text);
  return dict(parsed, where);
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

interface PortMapping {
  readonly hostIp: string | undefined;
  /** Undefined when docker picks a random host port. */
  readonly published: number | undefined;
  readonly target: number;
}

interface Mount {
  readonly source: string;
  readonly target: string;
  /** `:ro` in the short syntax, `read_only: true` in the long one. */
  readonly readOnly: boolean;
}

interface Service {
  readonly name: string;
  readonly image: string | undefined;
  readonly build: unknown;
  readonly environment: ReadonlyMap<string, string>;
  readonly ports: readonly PortMapping[];
  readonly expose: readonly number[];
  /** Service name -> condition. */
  readonly dependsOn: ReadonlyMap<string, string>;
  /** The healthcheck's test as one line, undefined without one. */
  readonly healthcheck: string | undefined;
  readonly command: readonly string[];
  readonly volumes: readonly Mount[];
  readonly stopGracePeriod: string | undefined;
  readonly stopSignal: string | undefined;
}

function portNumber(text: string, where: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new Error(`${where}: ${JSON.stringify(text)} is not one port`);
  return Number(text);
}

/** Short syntax `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`, or the long syntax. */
function parsePort(entry: unknown, where: string): PortMapping {
  if (isDict(entry)) {
    const published = optionalScalar(entry.published, `${where}.published`);
    return {
      hostIp: optionalScalar(entry.host_ip, `${where}.host_ip`),
      published: published === undefined ? undefined : portNumber(published, where),
      target: portNumber(scalar(entry.target, `${where}.target`), where),
    };
  }
  const spec = scalar(entry, where).replace(/\/(tcp|udp)$/, '');
  const parts = spec.split(':');
  const target = portNumber(parts[parts.length - 1] ?? '', where);
  const published =
    parts.length >= 2 ? portNumber(parts[parts.length - 2] ?? '', where) : undefined;
  const hostIp = parts.length >= 3 ? parts.slice(0, -2).join(':') : undefined;
  return { hostIp, published, target };
}

function parseEnvironment(value: unknown, where: string): Map<string, string> {
  const env = new Map<string, string>();
  if (Array.isArray(value)) {
    for (const item of value as readonly unknown[]) {
      const text = scalar(item, where);
      const at = text.indexOf('=');
      env.set(at < 0 ? text : text.slice(0, at), at < 0 ? '' : text.slice(at + 1));
    }
    return env;
  }
  for (const [name, raw] of Object.entries(dict(value, where))) {
    env.set(name, optionalScalar(raw, `${where}.${name}`) ?? '');
  }
  return env;
}

function parseDependsOn(value: unknown, where: string): Map<string, string> {
  if (Array.isArray(value)) {
    return new Map(list(value, where).map((name) => [scalar(name, where), 'service_started']));
  }
  return new Map(
    Object.entries(dict(value, where)).map(([name, spec]) => [
      name,
      optionalScalar(dict(spec, `${where}.${name}`).condition, where) ?? 'service_started',
    ]),
  );
}

function parseHealthcheck(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  const test = dict(value, where).test;
  if (typeof test === 'string') return test;
  const words = list(test, `${where}.test`).map((word) => scalar(word, `${where}.test`));
  return words.length === 0 ? undefined : words.join(' ');
}

function parseCommand(value: unknown, where: string): string[] {
  if (typeof value === 'string') return value.split(/\s+/).filter((word) => word !== '');
  return list(value, where).map((word) => scalar(word, where));
}

function parseMount(entry: unknown, where: string): Mount {
  if (isDict(entry)) {
    return {
      source: scalar(entry.source, `${where}.source`),
      target: scalar(entry.target, `${where}.target`),
      readOnly: entry.read_only === true,
    };
  }
  const [source = '', target = '', mode = ''] = scalar(entry, where).split(':');
  return { source, target, readOnly: mode.split(',').includes('ro') };
}

function parseCompose(text: string): Map<string, Service> {
  const document = yamlDocument(text, FILES.compose);
  const services = new Map<string, Service>();
  for (const [name, raw] of Object.entries(dict(document.services, 'services'))) {
    const where = `services.${name}`;
    const spec = dict(raw, where);
    services.set(name, {
      name,
      image: optionalScalar(spec.image, `${where}.image`),
      build: spec.build,
      environment: parseEnvironment(spec.environment, `${where}.environment`),
      ports: list(spec.ports, `${where}.ports`).map((p, i) => parsePort(p, `${where}.ports[${i}]`)),
      expose: list(spec.expose, `${where}.expose`).map((p) =>
        portNumber(scalar(p, `${where}.expose`), `${where}.expose`),
      ),
      dependsOn: parseDependsOn(spec.depends_on, `${where}.depends_on`),
      healthcheck: parseHealthcheck(spec.healthcheck, `${where}.healthcheck`),
      command: parseCommand(spec.command, `${where}.command`),
      volumes: list(spec.volumes, `${where}.volumes`).map((v, i) =>
        parseMount(v, `${where}.volumes[${i}]`),
      ),
      stopGracePeriod: optionalScalar(spec.stop_grace_period, `${where}.stop_grace_period`),
      stopSignal: optionalScalar(spec.stop_signal, `${where}.stop_signal`),
    });
  }
  return services;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 0.001,
  µs: 0.001,
  ns: 0.000001,
};

/** Compose durations are Go durations: `35s`, `1m30s`, `1.5s`, `500ms`. */
function parseDuration(text: string): number {
  const part = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/gy;
  let total = 0;
  let end = 0;
  for (let match = part.exec(text); match !== null; match = part.exec(text)) {
    total += Number(match[1]) * (DURATION_UNITS_MS[match[2] ?? ''] ?? Number.NaN);
    end = part.lastIndex;
  }
  if (text === '' || end !== text.length || Number.isNaN(total)) {
    throw new Error(`${JSON.stringify(text)} is not a duration like 35s or 1m30s`);
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Dockerfile (a plain text parse: continuations, comments, one instruction per logical line)

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

interface Stage {
  readonly image: string;
  readonly alias: string | undefined;
  readonly instructions: readonly Instruction[];
}

function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const line of text.split(/\r?\n/)) {
    // Comment lines are dropped, also inside a continued instruction (as docker does).
    if (/^\s*#/.test(line)) continue;
    if (/\\\s*$/.test(line)) {
      pending += line.replace(/\\\s*$/, ' ');
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  if (pending.trim() !== '') logical.push(pending);

  const stages: { image: string; alias: string | undefined; instructions: Instruction[] }[] = [];
  for (const line of logical.map((l) => l.trim()).filter((l) => l !== '')) {
    const match = /^(\S+)\s*(.*)$/s.exec(line);
    const keyword = (match?.[1] ?? '').toUpperCase();
    const args = (match?.[2] ?? '').trim();
    if (keyword === 'FROM') {
      const words = args.split(/\s+/).filter((word) => !word.startsWith('--'));
      const asAt = words.findIndex((word) => word.toUpperCase() === 'AS');
      stages.push({
        image: words[0] ?? '',
        alias: asAt > 0 ? words[asAt + 1] : undefined,
        instructions: [],
      });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (stage === undefined) {
      if (keyword === 'ARG') continue; // an ARG before the first FROM is allowed
      throw new Error(`Dockerfile: ${keyword} before the first FROM`);
    }
    stage.instructions.push({ keyword, args });
  }
  return stages;
}

function all(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((instruction) => instruction.keyword === keyword);
}

/** `["node", "dist/main.js"]` -> the words, or undefined for the shell form. */
function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(args);
    if (Array.isArray(parsed) && parsed.every((word): word is string => typeof word === 'string')) {
      return parsed;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** `ENV A=1 B="two words"` or the legacy `ENV A 1`. */
function parseEnvInstruction(args: string): Map<string, string> {
  const env = new Map<string, string>();
  const legacy = /^([A-Za-z_][A-Za-z0-9_]*)\s+([^=]*)$/.exec(args);
  if (legacy?.[1] !== undefined && !args.includes('=')) {
    env.set(legacy[1], (legacy[2] ?? '').trim());
    return env;
  }
  const pair = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
  for (const match of args.matchAll(pair)) {
    const value = match[2] ?? '';
    env.set(match[1] ?? '', /^["']/.test(value) ? value.slice(1, -1) : value);
  }
  return env;
}

function dockerfileEnv(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const instruction of all(stage, 'ENV')) {
    for (const [name, value] of parseEnvInstruction(instruction.args)) env.set(name, value);
  }
  return env;
}

function finalStage(stack: Stack): Stage {
  const stage = stack.dockerfile[stack.dockerfile.length - 1];
  if (stage === undefined) throw new Error('Dockerfile: no FROM');
  return stage;
}

// ---------------------------------------------------------------------------------------------
// The whole stack

interface Stack {
  readonly leaves: readonly SchemaLeaf[];
  readonly services: ReadonlyMap<string, Service>;
  readonly collector: Dict;
  readonly prometheus: Dict;
  readonly dockerfile: readonly Stage[];
  readonly dockerignore: readonly string[];
  readonly grafanaDatasources: Dict;
  readonly grafanaDashboards: Dict;
}

function parseStack(texts: Texts, leaves: readonly SchemaLeaf[] = leavesOf(schema)): Stack {
  return {
    leaves,
    services: parseCompose(texts.compose),
    collector: yamlDocument(texts.collector, FILES.collector),
    prometheus: yamlDocument(texts.prometheus, FILES.prometheus),
    dockerfile: parseDockerfile(texts.dockerfile),
    dockerignore: texts.dockerignore
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#')),
    grafanaDatasources: yamlDocument(texts.grafanaDatasources, FILES.grafanaDatasources),
    grafanaDashboards: yamlDocument(texts.grafanaDashboards, FILES.grafanaDashboards),
  };
}

function service(stack: Stack, name: string): Service {
  const found = stack.services.get(name);
  if (found === undefined) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

function leaf(stack: Stack, key: string): SchemaLeaf {
  const found = stack.leaves.find((l) => l.key === key);
  if (found === undefined) throw new Error(`the config schema has no key ${key}`);
  return found;
}

function envName(stack: Stack, key: string): string {
  const name = leaf(stack, key).env;
  if (name === undefined) throw new Error(`the config key ${key} has no env variable`);
  return name;
}

function defaultNumber(stack: Stack, key: string): number {
  const value = leaf(stack, key).default;
  if (typeof value !== 'number') throw new Error(`the default of ${key} is not a number`);
  return value;
}

/** The container's environment: the image's ENV, overridden by the compose file. */
function serviceEnv(stack: Stack): Map<string, string> {
  return new Map([...dockerfileEnv(finalStage(stack)), ...service(stack, SERVICE).environment]);
}

/** A key's value in the container as a string: its env variable if set, else the schema default. */
function effective(stack: Stack, key: string): string {
  return serviceEnv(stack).get(envName(stack, key)) ?? String(leaf(stack, key).default);
}

function effectiveNumber(stack: Stack, key: string): number {
  const text = effective(stack, key);
  if (!/^\d+$/.test(text)) throw new Error(`${key} = ${JSON.stringify(text)} is not a number`);
  return Number(text);
}

/** `host:port` (or a URL) -> its parts. */
function hostPort(address: string): { host: string; port: number | undefined } {
  const url = new URL(address.includes('://') ? address : `tcp://${address}`);
  return { host: url.hostname, port: url.port === '' ? undefined : Number(url.port) };
}

/** A compose bind-mount source resolved against the repository root. */
function repoPath(source: string): string {
  return path.relative(ROOT, path.resolve(ROOT, source)).split(path.sep).join('/');
}

/** `otlp/jaeger` -> `otlp`: a collector component id's type. */
function componentType(id: string): string {
  return id.split('/')[0] ?? id;
}

// ---------------------------------------------------------------------------------------------
// Checks: each returns what is wrong, one line per problem

function envNameProblems(stack: Stack): string[] {
  const schemaNames = new Set(stack.leaves.flatMap((l) => (l.env === undefined ? [] : [l.env])));
  const problems: string[] = [];
  for (const name of service(stack, SERVICE).environment.keys()) {
    if (!schemaNames.has(name) && !LOADER_ENV.includes(name)) {
      problems.push(`docker-compose.yml sets ${name} on ${SERVICE}: not an env name of the schema`);
    }
  }
  for (const name of dockerfileEnv(finalStage(stack)).keys()) {
    if (!schemaNames.has(name) && !LOADER_ENV.includes(name) && !NODE_RUNTIME_ENV.includes(name)) {
      problems.push(`the Dockerfile sets ENV ${name}: not an env name of the schema`);
    }
  }
  return problems;
}

function portProblems(stack: Stack): string[] {
  const problems: string[] = [];
  const ops = service(stack, SERVICE);
  for (const [key, label] of [
    ['http.port', 'main'],
    ['ops.port', 'ops'],
  ] as const) {
    const port = defaultNumber(stack, key);
    const listening = effectiveNumber(stack, key);
    if (listening !== port) {
      problems.push(
        `the ${label} listener is moved to ${listening}, the schema default is ${port}`,
      );
    }
    const mapping = ops.ports.find((p) => p.target === port);
    if (mapping === undefined) {
      problems.push(`${SERVICE} does not publish container port ${port} (${key} default)`);
    } else if (mapping.published !== port) {
      problems.push(`${SERVICE} publishes ${port} on host port ${String(mapping.published)}`);
    }
  }
  const expected = new Set([defaultNumber(stack, 'http.port'), defaultNumber(stack, 'ops.port')]);
  for (const mapping of ops.ports) {
    if (!expected.has(mapping.target)) {
      problems.push(
        `${SERVICE} publishes container port ${mapping.target}, which nothing listens on`,
      );
    }
  }
  // Inside a container a loopback-only listener cannot be reached by port mappings or by peers.
  for (const key of ['http.host', 'ops.host']) {
    const host = effective(stack, key);
    if (host !== '0.0.0.0' && host !== '::') {
      problems.push(`${key} is ${host} in the container: unreachable from outside it`);
    }
  }
  return problems;
}

/** The ports the collector's OTLP receivers take gRPC on, keyed by receiver id. */
function otlpGrpcPorts(stack: Stack, problems: string[]): Map<string, number> {
  const ports = new Map<string, number>();
  for (const [id, raw] of Object.entries(dict(stack.collector.receivers, 'receivers'))) {
    if (componentType(id) !== 'otlp') continue;
    const protocols = dict(dict(raw, `receivers.${id}`).protocols, `receivers.${id}.protocols`);
    const grpc = protocols.grpc;
    if (grpc === undefined) continue;
    const endpoint = optionalScalar(dict(grpc, 'grpc').endpoint, 'grpc.endpoint');
    if (endpoint === undefined) {
      problems.push(
        `receiver ${id}: grpc.endpoint unset (the collector binds localhost by default)`,
      );
      continue;
    }
    const { host, port } = hostPort(endpoint);
    if (host !== '0.0.0.0' && host !== '[::]') {
      problems.push(`receiver ${id} listens on ${host}: other containers cannot reach it`);
    }
    ports.set(id, port ?? 4317);
  }
  return ports;
}

function tracesPipeline(stack: Stack): Dict {
  const pipelines = dict(dict(stack.collector.service, 'service').pipelines, 'service.pipelines');
  return dict(pipelines.traces, 'service.pipelines.traces');
}

function pipelineIds(stack: Stack, section: 'receivers' | 'processors' | 'exporters'): string[] {
  return list(tracesPipeline(stack)[section], `traces.${section}`).map((id) => scalar(id, section));
}

function otlpEndpointProblems(stack: Stack): string[] {
  const problems: string[] = [];
  const name = envName(stack, 'telemetry.endpoint');
  const endpoint = service(stack, SERVICE).environment.get(name);
  if (endpoint === undefined || endpoint === '') return [`${SERVICE} has no ${name}`];
  const url = new URL(endpoint);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`${name} ${endpoint}: the OTLP exporter takes http:// or https://`);
  }
  const collector = stack.services.get(url.hostname);
  if (collector === undefined) {
    problems.push(`${name} points at ${url.hostname}, which is not a compose service`);
  } else if (!(collector.image ?? '').startsWith('otel/opentelemetry-collector')) {
    problems.push(`${name} points at ${url.hostname}, which is not an OpenTelemetry Collector`);
  }
  const used = new Set(pipelineIds(stack, 'receivers'));
  const ports = [...otlpGrpcPorts(stack, problems)].filter(([id]) => used.has(id));
  const port = url.port === '' ? undefined : Number(url.port);
  if (!ports.some(([, listening]) => listening === port)) {
    const listening = ports.map(([id, p]) => `${id}:${p}`).join(', ') || 'none';
    problems.push(`${name} uses port ${String(port)}; traces receivers on gRPC: ${listening}`);
  }
  return problems;
}

function collectorProblems(stack: Stack): string[] {
  const problems: string[] = [];
  for (const section of ['receivers', 'processors', 'exporters'] as const) {
    const defined = dict(stack.collector[section], section);
    const ids = pipelineIds(stack, section);
    if (ids.length === 0 && section !== 'processors') {
      problems.push(`the traces pipeline has no ${section}`);
    }
    for (const id of ids) {
      if (!(id in defined)) problems.push(`the traces pipeline uses ${section} ${id}, not defined`);
    }
  }
  const processors = pipelineIds(stack, 'processors');
  if (processors[0] !== 'memory_limiter') {
    problems.push('memory_limiter must be the first processor of the traces pipeline');
  }
  if (!processors.some((id) => componentType(id) === 'batch')) {
    problems.push('the traces pipeline has no batch processor');
  }
  const extensions = dict(stack.collector.extensions, 'extensions');
  const enabled = list(dict(stack.collector.service, 'service').extensions, 'service.extensions');
  for (const id of enabled.map((e) => scalar(e, 'service.extensions'))) {
    if (!(id in extensions)) problems.push(`service.extensions enables ${id}, not defined`);
  }
  if (!enabled.includes('health_check')) problems.push('the health_check extension is not enabled');

  const exporters = dict(stack.collector.exporters, 'exporters');
  // Undefined ones are reported above.
  const otlpExporters = pipelineIds(stack, 'exporters').filter(
    (id) => componentType(id) === 'otlp' && id in exporters,
  );
  if (otlpExporters.length === 0) problems.push('the traces pipeline has no otlp exporter');
  for (const id of otlpExporters) {
    const spec = dict(exporters[id], `exporters.${id}`);
    const { host, port } = hostPort(scalar(spec.endpoint, `exporters.${id}.endpoint`));
    const jaeger = stack.services.get(host);
    if (jaeger === undefined || !(jaeger.image ?? '').startsWith('jaegertracing/')) {
      problems.push(`exporter ${id} sends to ${host}, which is not the jaeger service`);
    } else {
      if (port === undefined || !jaeger.expose.includes(port)) {
        problems.push(
          `exporter ${id} sends to port ${String(port)}; jaeger exposes ${jaeger.expose.join(', ')}`,
        );
      }
      if (jaeger.environment.get('COLLECTOR_OTLP_ENABLED') !== 'true') {
        problems.push('jaeger does not set COLLECTOR_OTLP_ENABLED=true');
      }
    }
    if (dict(spec.tls, `exporters.${id}.tls`).insecure !== true) {
      problems.push(`exporter ${id}: jaeger takes plaintext gRPC here, set tls.insecure: true`);
    }
  }

  // The file checked here must be the file the collector container reads.
  const collector = [...stack.services.values()].find((s) =>
    (s.image ?? '').startsWith('otel/opentelemetry-collector'),
  );
  const mount = collector?.volumes.find((v) => repoPath(v.source) === FILES.collector);
  const configFlag = collector?.command.find((word) => word.startsWith('--config='));
  if (mount === undefined) {
    problems.push(`no collector service mounts ${FILES.collector}`);
  } else if (configFlag !== `--config=${mount.target}`) {
    problems.push(
      `the collector reads ${String(configFlag)}, the config is mounted at ${mount.target}`,
    );
  }
  return problems;
}

function prometheusProblems(stack: Stack): string[] {
  const problems: string[] = [];
  const global = dict(stack.prometheus.global, 'global');
  if (global.scrape_interval !== '15s') {
    problems.push(`global.scrape_interval is ${String(global.scrape_interval)}, expected 15s`);
  }
  const jobs = list(stack.prometheus.scrape_configs, 'scrape_configs').map((j) =>
    dict(j, 'scrape_configs[]'),
  );
  const job = jobs.find((j) => j.job_name === SERVICE);
  if (job === undefined) return [...problems, `no scrape job ${SERVICE}`];
  // Prometheus' default metrics_path is /metrics.
  const metricsPath = optionalScalar(job.metrics_path, 'metrics_path') ?? '/metrics';
  if (metricsPath !== '/metrics')
    problems.push(`job ${SERVICE} scrapes ${metricsPath}, not /metrics`);
  const targets = list(job.static_configs, 'static_configs').flatMap((c) =>
    list(dict(c, 'static_configs[]').targets, 'targets').map((t) => scalar(t, 'targets')),
  );
  const opsPort = effectiveNumber(stack, 'ops.port');
  const wanted = `${SERVICE}:${opsPort}`;
  if (!targets.includes(wanted)) {
    problems.push(`job ${SERVICE} targets ${targets.join(', ') || 'nothing'}, expected ${wanted}`);
  }
  const prometheus = [...stack.services.values()].find((s) =>
    (s.image ?? '').startsWith('prom/prometheus'),
  );
  const mount = prometheus?.volumes.find((v) => repoPath(v.source) === FILES.prometheus);
  // The image reads /etc/prometheus/prometheus.yml unless --config.file says otherwise.
  const configFlag = prometheus?.command.find((word) => word.startsWith('--config.file='));
  const reads = configFlag?.slice('--config.file='.length) ?? '/etc/prometheus/prometheus.yml';
  if (mount?.target !== reads) {
    problems.push(
      `prometheus reads ${reads}, ${FILES.prometheus} is mounted at ${String(mount?.target)}`,
    );
  }
  // rule_files are resolved against the config file's folder: in the container each pattern must
  // fall in a mount of a repository folder where it matches the rule files (deploy/prometheus/).
  const ruleFiles = list(stack.prometheus.rule_files, 'rule_files').map((r) =>
    scalar(r, 'rule_files'),
  );
  if (ruleFiles.length === 0) problems.push('prometheus loads no rule_files');
  for (const pattern of ruleFiles) {
    const inContainer = path.posix.resolve(path.posix.dirname(reads), pattern);
    const folder = prometheus?.volumes.find((v) => inContainer.startsWith(`${v.target}/`));
    if (folder === undefined) {
      problems.push(
        `rule_files ${pattern} is ${inContainer} in the container: nothing mounted there`,
      );
      continue;
    }
    const inRepo = path.posix.join(
      repoPath(folder.source),
      path.posix.relative(folder.target, inContainer),
    );
    if (repoGlob(inRepo).length === 0) {
      problems.push(`rule_files ${pattern} is ${inRepo} in the repository: no file matches`);
    }
  }
  return problems;
}

/** The repository files a Prometheus rule_files pattern (`*` and `?` in the file name) matches. */
function repoGlob(pattern: string): string[] {
  const folder = path.join(ROOT, path.posix.dirname(pattern));
  const escaped = path.posix.basename(pattern).replace(/[.+^${}()|[\]\\]/g, '\\$&');
  const name = new RegExp(`^${escaped.replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  if (!existsSync(folder)) return [];
  return readdirSync(folder).filter((file) => name.test(file));
}

/** Where a container path of `service` comes from in the repository, through its bind mounts. */
function repoPathIn(service: Service, containerPath: string): string | undefined {
  const mount = service.volumes
    .filter((v) => containerPath === v.target || containerPath.startsWith(`${v.target}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
  if (mount === undefined) return undefined;
  return path.posix.join(repoPath(mount.source), path.posix.relative(mount.target, containerPath));
}

/** Where a repository file is inside the container of `service`, through its bind mounts. */
function containerPathOf(service: Service, file: string): string | undefined {
  for (const mount of service.volumes) {
    const source = repoPath(mount.source);
    if (file === source || file.startsWith(`${source}/`)) {
      return path.posix.join(mount.target, path.posix.relative(source, file));
    }
  }
  return undefined;
}

function grafanaProblems(stack: Stack): string[] {
  const grafana = [...stack.services.values()].find((s) =>
    (s.image ?? '').startsWith('grafana/grafana'),
  );
  if (grafana === undefined) return ['no compose service runs grafana/grafana'];
  const problems: string[] = [];
  const env = grafana.environment;

  const port = Number(env.get('GF_SERVER_HTTP_PORT') ?? GRAFANA_PORT);
  const mapping = grafana.ports.find((p) => p.target === port);
  if (mapping?.published !== GRAFANA_PORT) {
    problems.push(`grafana does not publish its port ${port} on host port ${GRAFANA_PORT}`);
  } else if (mapping.hostIp !== '127.0.0.1') {
    problems.push(
      `grafana is published on ${mapping.hostIp ?? 'every interface'}, not the host's loopback`,
    );
  }
  if (env.get('GF_AUTH_ANONYMOUS_ENABLED') === 'true') {
    // Grafana's default anonymous role is Viewer.
    const role = env.get('GF_AUTH_ANONYMOUS_ORG_ROLE') ?? 'Viewer';
    if (role !== 'Viewer') problems.push(`anonymous visitors get the ${role} role, not Viewer`);
  }

  // Each provisioning file must be where Grafana reads its kind: <provisioning>/<kind>/.
  const provisioning = env.get('GF_PATHS_PROVISIONING') ?? GRAFANA_PROVISIONING;
  for (const file of [FILES.grafanaDatasources, FILES.grafanaDashboards]) {
    const kind = path.posix.basename(path.posix.dirname(file));
    const wanted = `${provisioning}/${kind}/${path.posix.basename(file)}`;
    const inContainer = containerPathOf(grafana, file);
    if (inContainer !== wanted) {
      problems.push(
        `${file} is ${inContainer === undefined ? 'not mounted into grafana' : `mounted at ${inContainer}`}; Grafana reads ${kind} from ${provisioning}/${kind}/`,
      );
    }
  }

  // The default datasource is the compose Prometheus, queried at the scrape interval.
  const sources = list(stack.grafanaDatasources.datasources, 'datasources').map((d) =>
    dict(d, 'datasources[]'),
  );
  const source = sources.find((d) => d.isDefault === true);
  if (source === undefined) return [...problems, `${FILES.grafanaDatasources} has no default`];
  if (source.type !== 'prometheus') problems.push(`the default datasource is not prometheus`);
  if ((optionalScalar(source.uid, 'uid') ?? '') === '') {
    problems.push('the default datasource has no fixed uid for the dashboards to name');
  }
  const url = hostPort(optionalScalar(source.url, 'url') ?? 'missing');
  const target = stack.services.get(url.host);
  if (!(target?.image ?? '').startsWith('prom/prometheus')) {
    problems.push(`the datasource url points at ${url.host}, which is not the prometheus service`);
  } else if (url.port !== PROMETHEUS_PORT) {
    problems.push(`the datasource url uses port ${String(url.port)}, prometheus listens on 9090`);
  }
  if (target !== undefined && !grafana.dependsOn.has(url.host)) {
    problems.push(`grafana does not depend on ${url.host}`);
  }
  const interval = optionalScalar(dict(source.jsonData, 'jsonData').timeInterval, 'timeInterval');
  const scrape = optionalScalar(dict(stack.prometheus.global, 'global').scrape_interval, 'scrape');
  if (interval !== scrape) {
    problems.push(
      `the datasource timeInterval is ${String(interval)}, prometheus scrapes every ${String(scrape)}`,
    );
  }

  // The dashboard provider reads a folder that is the repository's dashboards folder.
  const providers = list(stack.grafanaDashboards.providers, 'providers').map((p) =>
    dict(p, 'providers[]'),
  );
  if (providers.length === 0) problems.push(`${FILES.grafanaDashboards} has no provider`);
  for (const provider of providers) {
    const name = optionalScalar(provider.name, 'name') ?? '(unnamed)';
    if (provider.type !== 'file') problems.push(`dashboard provider ${name} is not of type file`);
    const folder = optionalScalar(dict(provider.options, 'options').path, 'options.path') ?? '';
    const inRepo = repoPathIn(grafana, folder);
    if (inRepo !== path.posix.dirname(DASHBOARD)) {
      problems.push(
        `dashboard provider ${name} reads ${folder}: ${inRepo === undefined ? 'nothing is mounted there' : `${inRepo} in the repository`}, not ${path.posix.dirname(DASHBOARD)}`,
      );
    }
  }
  const home = env.get('GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH');
  if (home !== undefined && repoPathIn(grafana, home) !== DASHBOARD) {
    problems.push(`the home dashboard ${home} is not ${DASHBOARD} in the container`);
  }
  if (!existsSync(path.join(ROOT, DASHBOARD))) problems.push(`${DASHBOARD} does not exist`);
  return problems;
}

function shutdownProblems(stack: Stack): string[] {
  const problems: string[] = [];
  const ops = service(stack, SERVICE);
  if (ops.stopGracePeriod === undefined) {
    return ['ops-service has no stop_grace_period (compose default: 10s)'];
  }
  const grace = parseDuration(ops.stopGracePeriod);
  const budget = ['shutdown.delayMs', 'shutdown.drainTimeoutMs', 'shutdown.flushTimeoutMs'];
  const defaults = budget.reduce((sum, key) => sum + defaultNumber(stack, key), 0);
  const effectiveSum = budget.reduce((sum, key) => sum + effectiveNumber(stack, key), 0);
  const hardStop = Math.max(
    defaultNumber(stack, 'shutdown.hardStopMs'),
    effectiveNumber(stack, 'shutdown.hardStopMs'),
  );
  for (const [what, ms] of [
    ['delay + drain + flush (schema defaults)', defaults],
    ['delay + drain + flush (as configured)', effectiveSum],
    ['the hard stop deadline', hardStop],
  ] as const) {
    if (grace <= ms) {
      problems.push(`stop_grace_period ${ops.stopGracePeriod} does not exceed ${what}: ${ms} ms`);
    }
  }
  const stopSignal = all(finalStage(stack), 'STOPSIGNAL').pop()?.args ?? 'SIGTERM';
  for (const signal of [stopSignal, ops.stopSignal ?? stopSignal]) {
    if (signal !== 'SIGTERM') problems.push(`the container is stopped with ${signal}, not SIGTERM`);
  }
  return problems;
}

function dockerfileProblems(stack: Stack): string[] {
  const problems: string[] = [];
  const final = finalStage(stack);
  const build = stack.dockerfile.slice(0, -1);
  const runs = build.flatMap((stage) => all(stage, 'RUN').map((run) => run.args));
  for (const step of ['npm ci', 'npm run build']) {
    if (!runs.some((run) => run.includes(step))) problems.push(`no build stage runs ${step}`);
  }
  if (!runs.some((run) => /npm (prune|ci)\b.*--omit=dev/.test(run))) {
    problems.push('no build stage drops the dev dependencies (npm prune --omit=dev)');
  }
  if (build.length === 0) problems.push('the Dockerfile is not multi-stage');

  const cmd = all(final, 'CMD').pop();
  const words = cmd === undefined ? undefined : execForm(cmd.args);
  if (JSON.stringify(words) !== JSON.stringify(['node', 'dist/main.js'])) {
    problems.push(
      `the final CMD is ${String(cmd?.args)}, expected exec form ["node","dist/main.js"]`,
    );
  }
  if (all(final, 'ENTRYPOINT').length > 0) {
    problems.push('the final stage has an ENTRYPOINT: node would not be PID 1');
  }
  const user = all(final, 'USER').pop()?.args.split(':')[0];
  if (user === undefined || user === 'root' || user === '0') {
    problems.push(`the final stage runs as ${user ?? 'root (no USER)'}`);
  }
  const exposed = all(final, 'EXPOSE').flatMap((e) =>
    e.args.split(/\s+/).map((p) => Number(p.replace(/\/(tcp|udp)$/, ''))),
  );
  for (const key of ['http.port', 'ops.port']) {
    const port = defaultNumber(stack, key);
    if (!exposed.includes(port)) problems.push(`the image does not EXPOSE ${port} (${key})`);
  }
  const copied = all(final, 'COPY').flatMap((c) =>
    c.args
      .split(/\s+/)
      .filter((w) => !w.startsWith('--'))
      .slice(0, -1)
      .map((source) => path.posix.basename(source)),
  );
  // package.json: the loader finds the package root (and so config/) by it.
  for (const needed of ['package.json', 'node_modules', 'dist', 'config', 'migrations']) {
    if (!copied.includes(needed)) problems.push(`the runtime stage does not copy ${needed}`);
  }
  const healthcheck = all(final, 'HEALTHCHECK').pop();
  if (healthcheck !== undefined && healthcheck.args !== 'NONE') {
    const at = healthcheck.args.indexOf('CMD');
    const check = at < 0 ? undefined : execForm(healthcheck.args.slice(at + 3).trim());
    if (check?.[0] !== 'node' || !check.join(' ').includes('/health')) {
      problems.push('the HEALTHCHECK must run node (no curl in slim images) against /health');
    }
  }
  return problems;
}

function imageProblems(stack: Stack): string[] {
  const problems: string[] = [];
  for (const s of stack.services.values()) {
    if (s.image === undefined) {
      if (s.build === undefined) problems.push(`service ${s.name} has neither image nor build`);
      continue;
    }
    const problem = imageProblem(s.image, `service ${s.name}`);
    if (problem !== undefined) problems.push(problem);
  }
  const aliases = new Set<string>();
  for (const stage of stack.dockerfile) {
    if (!aliases.has(stage.image)) {
      const problem = imageProblem(stage.image, 'Dockerfile FROM');
      if (problem !== undefined) problems.push(problem);
    }
    if (stage.alias !== undefined) aliases.add(stage.alias);
  }
  return problems;
}

function dependencyProblems(stack: Stack): string[] {
  const problems: string[] = [];
  const ops = service(stack, SERVICE);
  const env = ops.environment;
  for (const dependency of ['postgres', 'nats']) {
    const condition = ops.dependsOn.get(dependency);
    if (condition !== 'service_healthy') {
      problems.push(
        `${SERVICE} waits for ${dependency} with ${String(condition)}, not service_healthy`,
      );
    }
    if (stack.services.get(dependency)?.healthcheck === undefined) {
      problems.push(`${dependency} has no healthcheck for service_healthy to wait on`);
    }
  }
  for (const name of ops.dependsOn.keys()) {
    if (!stack.services.has(name)) problems.push(`${SERVICE} depends on ${name}, not a service`);
  }

  const postgres = service(stack, 'postgres');
  if (!(postgres.healthcheck ?? '').includes('pg_isready')) {
    problems.push('the postgres healthcheck does not use pg_isready');
  }
  const dbUrl = new URL(env.get(envName(stack, 'database.url')) ?? 'postgres://missing');
  const credentials: [string, string][] = [
    ['POSTGRES_USER', decodeURIComponent(dbUrl.username)],
    ['POSTGRES_PASSWORD', decodeURIComponent(dbUrl.password)],
    ['POSTGRES_DB', dbUrl.pathname.slice(1)],
  ];
  for (const [variable, inUrl] of credentials) {
    if (postgres.environment.get(variable) !== inUrl) {
      problems.push(`DATABASE_URL has ${inUrl || 'nothing'} where postgres has ${variable}`);
    }
  }
  if (dbUrl.hostname !== 'postgres' || Number(dbUrl.port || POSTGRES_PORT) !== POSTGRES_PORT) {
    problems.push(`DATABASE_URL points at ${dbUrl.host}, not postgres:${POSTGRES_PORT}`);
  }

  const nats = service(stack, 'nats');
  if (!nats.command.includes('-js')) problems.push('nats runs without JetStream (-js)');
  const monitor = nats.command[nats.command.indexOf('-m') + 1];
  if (!nats.command.includes('-m') || monitor === undefined) {
    problems.push('nats has no monitoring port (-m), which its healthcheck needs');
  } else if (!(nats.healthcheck ?? '').includes(`:${monitor}/healthz?js-enabled-only=true`)) {
    problems.push(`the nats healthcheck does not ask :${monitor}/healthz?js-enabled-only=true`);
  }
  const natsUrl = hostPort(env.get(envName(stack, 'nats.url')) ?? 'nats://missing');
  if (natsUrl.host !== 'nats' || (natsUrl.port ?? NATS_CLIENT_PORT) !== NATS_CLIENT_PORT) {
    problems.push(`NATS_URL points at ${natsUrl.host}:${String(natsUrl.port)}, not nats:4222`);
  }
  return problems;
}

/** A repository file's text, or undefined when there is no such file. */
function readRepoFile(file: string): string | undefined {
  const full = path.join(ROOT, file);
  return existsSync(full) && statSync(full).isFile() ? readFileSync(full, 'utf8') : undefined;
}

/** What keeps a JWK Set file from being a public key set ops-service can load. */
function jwksDocumentProblems(text: string, where: string): string[] {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    return [`${where} is not JSON: ${error instanceof Error ? error.message : String(error)}`];
  }
  const keys = isDict(document) ? document.keys : undefined;
  if (!Array.isArray(keys) || keys.length === 0) {
    return [`${where} is not a JWK Set: no "keys" list with at least one key`];
  }
  const problems: string[] = [];
  for (const [i, key] of (keys as readonly unknown[]).entries()) {
    if (!isDict(key)) {
      problems.push(`${where} keys[${i}] is not a JWK object`);
      continue;
    }
    const name = `${where} keys[${i}] (kid ${JSON.stringify(key.kid)})`;
    const secret = PRIVATE_JWK_MEMBERS.filter((member) => member in key);
    if (secret.length > 0) {
      problems.push(
        `${name} holds the private member(s) ${secret.join(', ')}: publish public keys only`,
      );
    }
    if (typeof key.kty !== 'string') problems.push(`${name} has no kty`);
    if (typeof key.kid !== 'string' || key.kid === '') {
      problems.push(`${name} has no kid: tokens name their key by kid`);
    }
    if (key.use !== undefined && key.use !== 'sig') {
      problems.push(`${name} is for use ${JSON.stringify(key.use)}, not sig`);
    }
  }
  return problems;
}

/**
 * Staging takes only bearer JWTs, and the local stack has no identity provider: ops-service reads
 * the development key set from a file (AUTH_JWKS_FILE) that must be mounted, read-only, from a
 * repository file holding public keys only. The private key never goes into any container.
 */
function authProblems(
  stack: Stack,
  read: (file: string) => string | undefined = readRepoFile,
): string[] {
  const problems: string[] = [];
  const mode = effective(stack, 'auth.mode');
  if (mode !== 'jwt') problems.push(`${SERVICE} runs with AUTH_MODE=${mode}, not jwt`);
  const variable = envName(stack, 'auth.jwksFile');
  const jwksFile = effective(stack, 'auth.jwksFile');
  const ops = service(stack, SERVICE);
  if (jwksFile === '') {
    problems.push(`${SERVICE} has no ${variable}: the local stack has no JWKS URL to fetch from`);
  } else {
    const mount = ops.volumes
      .filter((v) => jwksFile === v.target || jwksFile.startsWith(`${v.target}/`))
      .sort((a, b) => b.target.length - a.target.length)[0];
    const inRepo = repoPathIn(ops, jwksFile);
    if (mount === undefined || inRepo === undefined) {
      problems.push(`${variable} is ${jwksFile}: nothing is mounted there in ${SERVICE}`);
    } else {
      if (!mount.readOnly) {
        problems.push(`${mount.source} is mounted into ${SERVICE} read-write: mount it :ro`);
      }
      const text = read(inRepo);
      if (text === undefined) {
        problems.push(
          `${variable} is ${inRepo} in the repository: no such file (docker would mount an empty directory)`,
        );
      } else {
        problems.push(...jwksDocumentProblems(text, inRepo));
      }
    }
  }
  for (const s of stack.services.values()) {
    for (const v of s.volumes) {
      const source = repoPath(v.source);
      if (source === '' || DEV_SIGNING_KEY === source || DEV_SIGNING_KEY.startsWith(`${source}/`)) {
        problems.push(
          `service ${s.name} mounts ${source || '.'}, which holds the private key ${DEV_SIGNING_KEY}: mount the JWKS file alone`,
        );
      }
    }
  }
  return problems;
}

/** A .dockerignore pattern as a regular expression over context paths (`*`, `**`, `?`). */
function ignorePattern(pattern: string): RegExp {
  const glob = (part: string): string =>
    part
      .split('')
      .map((char) => {
        if (char === '*') return '[^/]*';
        if (char === '?') return '[^/]';
        return /[.+^${}()|[\]\\]/.test(char) ? `\\${char}` : char;
      })
      .join('');
  const body = pattern
    .replace(/^\/+|\/+$/g, '')
    .split('**')
    .map(glob)
    .join('.*');
  return new RegExp(`^${body}(/.*)?$`);
}

function isIgnored(stack: Stack, file: string): boolean {
  let ignored = false;
  for (const line of stack.dockerignore) {
    const negated = line.startsWith('!');
    if (ignorePattern(negated ? line.slice(1) : line).test(file)) ignored = !negated;
  }
  return ignored;
}

function dockerignoreProblems(stack: Stack): string[] {
  const problems: string[] = [];
  for (const file of ['node_modules', 'dist', 'data', 'coverage', '.git', DEV_SIGNING_KEY]) {
    if (!isIgnored(stack, file)) problems.push(`.dockerignore lets ${file} into the build context`);
  }
  const needed = [
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'src/main.ts',
    'scripts/bundle.js',
    'scripts/copy-assets.js',
    'config/default.json',
  ];
  for (const file of needed) {
    if (isIgnored(stack, file)) problems.push(`.dockerignore drops ${file}, which the build needs`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Tests

const texts = readTexts();
const stack = parseStack(texts);

describe('the container image and the local stack agree with the config schema', () => {
  test('when every file is parsed, then each compose service and Dockerfile stage is found', () => {
    expect([...stack.services.keys()].sort()).toEqual(
      [
        'grafana',
        'jaeger',
        'nats',
        'ops-service',
        'otel-collector',
        'postgres',
        'prometheus',
      ].sort(),
    );
    expect(stack.dockerfile.map((stage) => stage.image)).toEqual([
      'node:20-bookworm-slim',
      'node:20-bookworm-slim',
    ]);
    expect(stack.dockerignore.length).toBeGreaterThan(0);
  });

  test('when ops-service is given environment variables, then each is an env name of the schema', () => {
    expect(envNameProblems(stack)).toEqual([]);
  });

  test('when the real loader reads the container environment, then the configuration is valid', () => {
    const env = Object.fromEntries(serviceEnv(stack));
    const loaded = loadConfig({ env, configDir: path.join(ROOT, 'config') });
    expect(loaded.ok ? [] : loaded.problems).toEqual([]);
  });

  test('when ops-service publishes ports, then they are the http.port and ops.port defaults', () => {
    expect(portProblems(stack)).toEqual([]);
  });

  test('when ops-service exports traces, then the endpoint is the collector on its otlp gRPC port', () => {
    expect(otlpEndpointProblems(stack)).toEqual([]);
  });

  test('when the collector runs the traces pipeline, then every part is defined and jaeger gets the spans', () => {
    expect(collectorProblems(stack)).toEqual([]);
  });

  test('when prometheus scrapes, then it reads ops-service on the ops port at /metrics and loads the mounted rules', () => {
    expect(prometheusProblems(stack)).toEqual([]);
  });

  test('when grafana starts, then it loads the mounted provisioning, queries the compose prometheus and finds the dashboard', () => {
    expect(grafanaProblems(stack)).toEqual([]);
  });

  test('when docker stops ops-service, then the grace period outlasts delay + drain + flush', () => {
    expect(shutdownProblems(stack)).toEqual([]);
  });

  test('when the image is built, then node runs dist/main.js as PID 1, as a non-root user', () => {
    expect(dockerfileProblems(stack)).toEqual([]);
  });

  test('when an image is pulled, then it is pinned to a tag other than latest', () => {
    expect(imageProblems(stack)).toEqual([]);
  });

  test('when ops-service starts, then postgres and nats are healthy and match its URLs', () => {
    expect(dependencyProblems(stack)).toEqual([]);
  });

  test('when the build context is sent, then local outputs stay out and build inputs stay in', () => {
    expect(dockerignoreProblems(stack)).toEqual([]);
  });

  test('when ops-service verifies bearer tokens, then its JWKS file is mounted read-only from a public key set', () => {
    expect(authProblems(stack)).toEqual([]);
  });
});

describe('the helpers parse like docker and compose do', () => {
  test('when stop_grace_period is a Go duration, then it parses to milliseconds', () => {
    expect(parseDuration('35s')).toBe(35_000);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('35')).toThrow(/not a duration/);
    expect(() => parseDuration('35 s')).toThrow(/not a duration/);
  });

  test('when a port is written in short or long syntax, then host ip, published and target are read', () => {
    expect(parsePort('8080:8080', 'p')).toEqual({
      hostIp: undefined,
      published: 8080,
      target: 8080,
    });
    expect(parsePort('127.0.0.1:9464:9464/tcp', 'p')).toEqual({
      hostIp: '127.0.0.1',
      published: 9464,
      target: 9464,
    });
    expect(parsePort('4317', 'p')).toEqual({
      hostIp: undefined,
      published: undefined,
      target: 4317,
    });
    expect(parsePort({ target: 8080, published: '80' }, 'p')).toEqual({
      hostIp: undefined,
      published: 80,
      target: 8080,
    });
    expect(() => parsePort('8000-8010:8000-8010', 'p')).toThrow(/not one port/);
  });

  test('when a mount is written in short or long syntax, then read-only is read', () => {
    expect(parseMount('./a.json:/etc/a.json:ro', 'v')).toEqual({
      source: './a.json',
      target: '/etc/a.json',
      readOnly: true,
    });
    expect(parseMount('./a:/a:z,ro', 'v').readOnly).toBe(true);
    expect(parseMount('./a:/a', 'v').readOnly).toBe(false);
    expect(parseMount('./a:/a:rw', 'v').readOnly).toBe(false);
    expect(parseMount({ source: './a', target: '/a', read_only: true }, 'v').readOnly).toBe(true);
  });

  test('when a Dockerfile continues lines and has comments, then instructions are joined', () => {
    const stages = parseDockerfile(
      'FROM node:20 AS build\n# note\nENV A=1 \\\n  # inside\n  B="two words"\nFROM build\nCMD node x.js\n',
    );
    expect(stages.map((s) => [s.image, s.alias])).toEqual([
      ['node:20', 'build'],
      ['build', undefined],
    ]);
    const first = stages[0];
    expect(first === undefined ? [] : [...dockerfileEnv(first)]).toEqual([
      ['A', '1'],
      ['B', 'two words'],
    ]);
    expect(execForm('node x.js')).toBeUndefined();
    expect(execForm('["node", "x.js"]')).toEqual(['node', 'x.js']);
  });

  test('when .dockerignore patterns use globs and negation, then paths match as docker matches them', () => {
    const ignoring = (...lines: string[]): Stack => ({ ...stack, dockerignore: lines });
    expect(isIgnored(ignoring('*.log'), 'server.log')).toBe(true);
    expect(isIgnored(ignoring('*.log'), 'logs/server.log')).toBe(false);
    expect(isIgnored(ignoring('**/*.log'), 'logs/server.log')).toBe(true);
    expect(isIgnored(ignoring('dist'), 'dist/main.js')).toBe(true);
    expect(isIgnored(ignoring('dist'), 'distribution.md')).toBe(false);
    expect(isIgnored(ignoring('docker-compose*.yml'), 'docker-compose.yml')).toBe(true);
    expect(isIgnored(ignoring('config', '!config/default.json'), 'config/default.json')).toBe(
      false,
    );
  });

  test('when an image reference is checked, then registry ports are not mistaken for tags', () => {
    expect(imageProblem('localhost:5000/app', 'i')).toMatch(/not pinned/);
    expect(imageProblem('localhost:5000/app:1.2', 'i')).toBeUndefined();
    expect(imageProblem('postgres', 'i')).toMatch(/not pinned/);
    expect(imageProblem('postgres:latest', 'i')).toMatch(/latest/);
    expect(imageProblem('postgres@sha256:abc', 'i')).toBeUndefined();
  });
});

// Each check must be able to fail: break one thing in one file (or in the schema) and the
// matching check has to report it. `from` must occur in the file, so a mutation never silently
// turns into a no-op when the file changes.
interface Mutation {
  readonly when: string;
  readonly file: keyof Texts;
  readonly from: string;
  readonly to: string;
  readonly check: (stack: Stack) => string[];
  readonly reports: RegExp;
}

const mutations: readonly Mutation[] = [
  {
    when: 'compose renames an env variable',
    file: 'compose',
    from: 'OTEL_EXPORTER_OTLP_ENDPOINT:',
    to: 'OTEL_ENDPOINT:',
    check: envNameProblems,
    reports: /sets OTEL_ENDPOINT on ops-service/,
  },
  {
    when: 'the Dockerfile sets an unknown ENV',
    file: 'dockerfile',
    from: 'OPS_HOST=0.0.0.0',
    to: 'OPS_HOST=0.0.0.0 OPS_BIND=0.0.0.0',
    check: envNameProblems,
    reports: /ENV OPS_BIND/,
  },
  {
    when: 'the main port is published on another host port',
    file: 'compose',
    from: "'8080:8080'",
    to: "'8081:8080'",
    check: portProblems,
    reports: /publishes 8080 on host port 8081/,
  },
  {
    when: 'the ops listener is moved away from its default',
    file: 'compose',
    from: "OPS_PORT: '9464'",
    to: "OPS_PORT: '9465'",
    check: portProblems,
    reports: /ops listener is moved to 9465/,
  },
  {
    when: 'the ops listener binds loopback in the container',
    file: 'compose',
    from: 'OPS_HOST: 0.0.0.0',
    to: 'OPS_HOST: 127.0.0.1',
    check: portProblems,
    reports: /ops.host is 127.0.0.1/,
  },
  {
    when: 'the OTLP endpoint uses a port the collector does not listen on',
    file: 'compose',
    from: 'http://otel-collector:4317',
    to: 'http://otel-collector:4318',
    check: otlpEndpointProblems,
    reports: /uses port 4318/,
  },
  {
    when: 'the OTLP endpoint names a host that is not a service',
    file: 'compose',
    from: 'http://otel-collector:4317',
    to: 'http://collector:4317',
    check: otlpEndpointProblems,
    reports: /collector, which is not a compose service/,
  },
  {
    when: 'the collector receiver binds localhost',
    file: 'collector',
    from: 'endpoint: 0.0.0.0:4317',
    to: 'endpoint: localhost:4317',
    check: otlpEndpointProblems,
    reports: /listens on localhost/,
  },
  {
    when: 'the traces pipeline names an undefined exporter',
    file: 'collector',
    from: 'exporters: [otlp/jaeger]',
    to: 'exporters: [otlp/tempo]',
    check: collectorProblems,
    reports: /uses exporters otlp\/tempo, not defined/,
  },
  {
    when: 'the traces pipeline puts batch before memory_limiter',
    file: 'collector',
    from: 'processors: [memory_limiter, batch]',
    to: 'processors: [batch, memory_limiter]',
    check: collectorProblems,
    reports: /memory_limiter must be the first/,
  },
  {
    when: 'the otlp exporter targets a port jaeger does not expose',
    file: 'collector',
    from: 'endpoint: jaeger:4317',
    to: 'endpoint: jaeger:14250',
    check: collectorProblems,
    reports: /sends to port 14250/,
  },
  {
    when: 'the collector config is mounted where the collector does not read',
    file: 'compose',
    from: 'otel-collector.yaml:/etc/otelcol-contrib/config.yaml',
    to: 'otel-collector.yaml:/etc/otelcol/config.yaml',
    check: collectorProblems,
    reports: /the collector reads --config=\/etc\/otelcol-contrib\/config.yaml/,
  },
  {
    when: 'prometheus scrapes the main port',
    file: 'prometheus',
    from: 'ops-service:9464',
    to: 'ops-service:8080',
    check: prometheusProblems,
    reports: /expected ops-service:9464/,
  },
  {
    when: 'prometheus scrapes another path',
    file: 'prometheus',
    from: 'metrics_path: /metrics',
    to: 'metrics_path: /prometheus',
    check: prometheusProblems,
    reports: /scrapes \/prometheus/,
  },
  {
    when: 'prometheus loads rules from a pattern no file matches',
    file: 'prometheus',
    from: '- rules/*.rules.yml',
    to: '- rules/*.rules.yaml',
    check: prometheusProblems,
    reports:
      /rule_files rules\/\*\.rules\.yaml is deploy\/prometheus\/rules\/\*\.rules\.yaml in the repository: no file matches/,
  },
  {
    when: 'the rules folder is mounted where prometheus does not look',
    file: 'compose',
    from: './deploy/prometheus/rules:/etc/prometheus/rules:ro',
    to: './deploy/prometheus/rules:/etc/prometheus/alerts:ro',
    check: prometheusProblems,
    reports: /is \/etc\/prometheus\/rules\/\*\.rules\.yml in the container: nothing mounted there/,
  },
  {
    when: 'prometheus loads no rules',
    file: 'prometheus',
    from: 'rule_files:\n  - rules/*.rules.yml\n',
    to: '',
    check: prometheusProblems,
    reports: /loads no rule_files/,
  },
  {
    when: 'grafana is published on every interface',
    file: 'compose',
    from: "'127.0.0.1:3000:3000'",
    to: "'3000:3000'",
    check: grafanaProblems,
    reports: /grafana is published on every interface/,
  },
  {
    when: 'anonymous visitors may edit',
    file: 'compose',
    from: 'GF_AUTH_ANONYMOUS_ORG_ROLE: Viewer',
    to: 'GF_AUTH_ANONYMOUS_ORG_ROLE: Editor',
    check: grafanaProblems,
    reports: /anonymous visitors get the Editor role/,
  },
  {
    when: 'the provisioning folder is mounted where grafana does not look',
    file: 'compose',
    from: './deploy/grafana/provisioning:/etc/grafana/provisioning:ro',
    to: './deploy/grafana/provisioning:/etc/grafana/provision:ro',
    check: grafanaProblems,
    reports:
      /datasources\/prometheus.yml is mounted at \/etc\/grafana\/provision\/datasources\/prometheus.yml; Grafana reads datasources from \/etc\/grafana\/provisioning\/datasources\//,
  },
  {
    when: 'the dashboards folder is mounted elsewhere than the provider reads',
    file: 'compose',
    from: './deploy/grafana/dashboards:/etc/grafana/dashboards:ro',
    to: './deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro',
    check: grafanaProblems,
    reports:
      /dashboard provider ops-service reads \/etc\/grafana\/dashboards: nothing is mounted there[\s\S]*home dashboard/,
  },
  {
    when: 'the dashboard provider reads another folder',
    file: 'grafanaDashboards',
    from: 'path: /etc/grafana/dashboards',
    to: 'path: /etc/grafana/provisioning/dashboards',
    check: grafanaProblems,
    reports:
      /reads \/etc\/grafana\/provisioning\/dashboards: deploy\/grafana\/provisioning\/dashboards in the repository/,
  },
  {
    when: 'the datasource points at localhost (grafana itself, in its container)',
    file: 'grafanaDatasources',
    from: 'url: http://prometheus:9090',
    to: 'url: http://localhost:9090',
    check: grafanaProblems,
    reports: /points at localhost, which is not the prometheus service/,
  },
  {
    when: 'the datasource uses a port prometheus does not listen on',
    file: 'grafanaDatasources',
    from: 'url: http://prometheus:9090',
    to: 'url: http://prometheus:9091',
    check: grafanaProblems,
    reports: /uses port 9091/,
  },
  {
    when: 'the datasource loses its fixed uid',
    file: 'grafanaDatasources',
    from: 'uid: ops-prometheus',
    to: '',
    check: grafanaProblems,
    reports: /has no fixed uid/,
  },
  {
    when: 'the datasource interval differs from the scrape interval',
    file: 'grafanaDatasources',
    from: 'timeInterval: 15s',
    to: 'timeInterval: 30s',
    check: grafanaProblems,
    reports: /timeInterval is 30s, prometheus scrapes every 15s/,
  },
  {
    when: 'the grafana image loses its tag',
    file: 'compose',
    from: 'grafana/grafana:11.6.1',
    to: 'grafana/grafana',
    check: imageProblems,
    reports: /service grafana: grafana\/grafana is not pinned/,
  },
  {
    when: 'stop_grace_period is shorter than the shutdown budget',
    file: 'compose',
    from: 'stop_grace_period: 35s',
    to: 'stop_grace_period: 20s',
    check: shutdownProblems,
    reports: /20s does not exceed delay \+ drain \+ flush/,
  },
  {
    when: 'stop_grace_period equals the hard stop',
    file: 'compose',
    from: 'stop_grace_period: 35s',
    to: 'stop_grace_period: 30s',
    check: shutdownProblems,
    reports: /does not exceed the hard stop deadline/,
  },
  {
    when: 'compose raises the drain timeout past the grace period',
    file: 'compose',
    from: "SHUTDOWN_DRAIN_TIMEOUT_MS: '20000'",
    to: "SHUTDOWN_DRAIN_TIMEOUT_MS: '29000'",
    check: shutdownProblems,
    reports: /\(as configured\): 37000 ms/,
  },
  {
    when: 'the CMD uses the shell form',
    file: 'dockerfile',
    from: 'CMD ["node", "dist/main.js"]',
    to: 'CMD node dist/main.js',
    check: dockerfileProblems,
    reports: /expected exec form/,
  },
  {
    when: 'the CMD goes through npm',
    file: 'dockerfile',
    from: 'CMD ["node", "dist/main.js"]',
    to: 'CMD ["npm", "start"]',
    check: dockerfileProblems,
    reports: /expected exec form/,
  },
  {
    when: 'the image runs as root',
    file: 'dockerfile',
    from: 'USER node',
    to: 'USER root',
    check: dockerfileProblems,
    reports: /runs as root/,
  },
  {
    when: 'the image exposes only the main port',
    file: 'dockerfile',
    from: 'EXPOSE 8080 9464',
    to: 'EXPOSE 8080',
    check: dockerfileProblems,
    reports: /does not EXPOSE 9464/,
  },
  {
    when: 'the runtime stage forgets the config folder',
    file: 'dockerfile',
    from: 'COPY --from=build /app/config ./config',
    to: '',
    check: dockerfileProblems,
    reports: /does not copy config/,
  },
  {
    when: 'an image loses its tag',
    file: 'compose',
    from: 'prom/prometheus:v2.55.1',
    to: 'prom/prometheus',
    check: imageProblems,
    reports: /prom\/prometheus is not pinned/,
  },
  {
    when: 'an image uses latest',
    file: 'compose',
    from: 'jaegertracing/all-in-one:1.62.0',
    to: 'jaegertracing/all-in-one:latest',
    check: imageProblems,
    reports: /uses latest/,
  },
  {
    when: 'the Dockerfile base image loses its tag',
    file: 'dockerfile',
    from: 'FROM node:20-bookworm-slim AS runtime',
    to: 'FROM node AS runtime',
    check: imageProblems,
    reports: /Dockerfile FROM: node is not pinned/,
  },
  {
    when: 'ops-service stops waiting for a healthy database',
    file: 'compose',
    from: 'postgres:\n        condition: service_healthy',
    to: 'postgres:\n        condition: service_started',
    check: dependencyProblems,
    reports: /waits for postgres with service_started/,
  },
  {
    when: 'DATABASE_URL disagrees with the postgres credentials',
    file: 'compose',
    from: 'postgres://ops:ops@postgres:5432/ops',
    to: 'postgres://ops:secret@postgres:5432/ops',
    check: dependencyProblems,
    reports: /DATABASE_URL has secret where postgres has POSTGRES_PASSWORD/,
  },
  {
    when: 'nats runs without JetStream',
    file: 'compose',
    from: "command: ['-js', '-m', '8222']",
    to: "command: ['-m', '8222']",
    check: dependencyProblems,
    reports: /without JetStream/,
  },
  {
    when: 'compose turns authentication off',
    file: 'compose',
    from: 'AUTH_MODE: jwt',
    to: "AUTH_MODE: 'off'",
    check: authProblems,
    reports: /runs with AUTH_MODE=off, not jwt/,
  },
  {
    when: 'AUTH_JWKS_FILE points where nothing is mounted',
    file: 'compose',
    from: 'AUTH_JWKS_FILE: /etc/ops-service/auth/dev-jwks.json',
    to: 'AUTH_JWKS_FILE: /etc/ops-service/jwks.json',
    check: authProblems,
    reports: /AUTH_JWKS_FILE is \/etc\/ops-service\/jwks.json: nothing is mounted there/,
  },
  {
    when: 'the key set is mounted read-write',
    file: 'compose',
    from: 'dev-jwks.json:/etc/ops-service/auth/dev-jwks.json:ro',
    to: 'dev-jwks.json:/etc/ops-service/auth/dev-jwks.json',
    check: authProblems,
    reports: /dev-jwks.json is mounted into ops-service read-write/,
  },
  {
    when: 'the key set is mounted from a file that does not exist',
    file: 'compose',
    from: './deploy/auth/dev-jwks.json:',
    to: './deploy/auth/jwks.json:',
    check: authProblems,
    reports: /is deploy\/auth\/jwks.json in the repository: no such file/,
  },
  {
    when: 'the whole auth folder is mounted, private key included',
    file: 'compose',
    from: './deploy/auth/dev-jwks.json:/etc/ops-service/auth/dev-jwks.json:ro',
    to: './deploy/auth:/etc/ops-service/auth:ro',
    check: authProblems,
    reports: /service ops-service mounts deploy\/auth, which holds the private key/,
  },
  {
    when: '.dockerignore lets deploy/ into the build context',
    file: 'dockerignore',
    from: '\ndeploy\n',
    to: '\n',
    check: dockerignoreProblems,
    reports: /lets deploy\/auth\/dev-signing-key.jwk into the build context/,
  },
  {
    when: '.dockerignore drops the config folder',
    file: 'dockerignore',
    from: 'node_modules\n',
    to: 'node_modules\nconfig\n',
    check: dockerignoreProblems,
    reports: /drops config\/default.json/,
  },
];

describe('each check can fail', () => {
  test.each(mutations.map((m) => [m.when, m] as const))(
    'when %s, then the check reports it',
    (_when, mutation) => {
      const original = texts[mutation.file];
      expect(original).toContain(mutation.from);
      const mutated = parseStack({
        ...texts,
        [mutation.file]: original.replace(mutation.from, mutation.to),
      });
      expect(mutation.check(mutated).join('\n')).toMatch(mutation.reports);
    },
  );

  test('when the mounted key set holds a private key, then the auth check reports it', () => {
    const privateSet = (file: string): string | undefined =>
      file === 'deploy/auth/dev-jwks.json'
        ? JSON.stringify({ keys: [JSON.parse(readRepoFile(DEV_SIGNING_KEY) ?? '{}')] })
        : readRepoFile(file);
    expect(authProblems(stack, privateSet).join('\n')).toMatch(
      /deploy\/auth\/dev-jwks.json keys\[0\] \(kid "local-dev-1"\) holds the private member\(s\) d/,
    );
  });

  test('when the mounted file is not a JWK Set, then the auth check reports it', () => {
    const reading = (text: string) => (): string => text;
    expect(authProblems(stack, reading('{"kty":"EC"}')).join('\n')).toMatch(/is not a JWK Set/);
    expect(authProblems(stack, reading('{"keys":[]}')).join('\n')).toMatch(/is not a JWK Set/);
    expect(authProblems(stack, reading('not json')).join('\n')).toMatch(/is not JSON/);
    expect(
      authProblems(stack, reading('{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}')).join('\n'),
    ).toMatch(/holds the private member\(s\) k[\s\S]*has no kid/);
  });

  test('when the schema renames an env variable compose still sets, then the env check reports it', () => {
    const renamed = stack.leaves.map((l) =>
      l.env === 'NATS_URL' ? { ...l, env: 'NATS_SERVERS' } : l,
    );
    expect(envNameProblems({ ...stack, leaves: renamed }).join('\n')).toMatch(/sets NATS_URL/);
  });

  test('when the schema moves the default ops port, then the port checks report it', () => {
    const moved = stack.leaves.map((l) => (l.key === 'ops.port' ? { ...l, default: 9465 } : l));
    const problems = [
      ...portProblems({ ...stack, leaves: moved }),
      ...dockerfileProblems({ ...stack, leaves: moved }),
    ];
    expect(problems.join('\n')).toMatch(/does not publish container port 9465/);
    expect(problems.join('\n')).toMatch(/does not EXPOSE 9465/);
  });

  test('when the schema raises the shutdown defaults, then the grace period check reports it', () => {
    const raised = stack.leaves.map((l) =>
      l.key === 'shutdown.drainTimeoutMs' ? { ...l, default: 40_000 } : l,
    );
    expect(shutdownProblems({ ...stack, leaves: raised }).join('\n')).toMatch(/schema defaults/);
  });
});
