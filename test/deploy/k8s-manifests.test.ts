// The Kubernetes manifests (deploy/k8s) are only read here, never applied: these tests parse
// them and check that they agree with the config schema, with the real config loader, with the
// operational contract (/work/shared/CONTRACT.md §4: probes on the main listener, the ops
// listener never public) and with each other (ports, selectors, the shutdown budget against the
// grace period, secrets, the identity provider's key set and the egress it needs). Each check
// returns its problems as text; the mutation tests at the end prove each one can fail.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { type AppConfig, formatProblem, loadConfig } from '../../src/config/load-config';
import { schema } from '../../src/config/schema';
import { type SchemaLeaf, leavesOf } from '../../src/config/schema-walk';
import { imageProblem } from './narrow';

const ROOT = path.resolve(__dirname, '..', '..');
const K8S = 'deploy/k8s';
const BASE = 'kustomization.yaml';
const COMPONENT = 'monitoring/kustomization.yaml';
const NAME = 'ops-service';

/** CONTRACT.md §4: both on the main listener. */
const LIVE_PATHS = ['/health', '/livez'];
const READY_PATHS = ['/ready', '/readyz'];
/** CONTRACT.md §4: on the ops listener. */
const METRICS_PATH = '/metrics';

/** Read by the loader itself, not a schema key. */
const LOADER_ENV = ['CONFIG_FILE'];
/** Read by node and libraries (express), not by the service's config. */
const NODE_RUNTIME_ENV = ['NODE_ENV'];
/** uids of the users the official node images define. */
const IMAGE_USERS: Readonly<Record<string, number>> = { root: 0, node: 1000 };
/** Secret values in the repository are placeholders; real ones come from an overlay. */
const PLACEHOLDER = 'CHANGE_ME';

/**
 * Peak RSS measured under load (`node dist/main.js` on PostgreSQL, NATS and Redis: 10,000
 * POST /v1/orders of 100 items over 512 connections; the figures are in deployment.yaml).
 */
const MEASURED_PEAK_RSS_MIB = 207;
/** The V8 heap cap may take at most this share of the memory limit (code, buffers, sockets). */
const MAX_HEAP_SHARE_OF_LIMIT = 0.75;
/** Endpoint removal beyond what the readiness probe takes: kube-proxy and ingress reprogramming. */
const PROPAGATION_MARGIN_MS = 1000;
/** The hard stop must fire this long before the kubelet's SIGKILL at the least. */
const GRACE_MARGIN_MS = 2000;

// ---------------------------------------------------------------------------------------------
// Narrowing parsed YAML (typed `any` by the yaml package, taken as `unknown` here)

type Dict = Readonly<Record<string, unknown>>;

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function dict(value: unknown, where: string): Dict {
  if (value === undefined || value === null) return {};
  if (!isDict(value)) throw new Error(`${where}: expected a mapping`);
  return value;
}

function list(value: unknown, where: string): readonly unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list`);
  return value as readonly unknown[];
}

function scalar(value: unknown, where: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`${where}: expected a scalar`);
}

function optionalScalar(value: unknown, where: string): string | undefined {
  return value === undefined || value === null ? undefined : scalar(value, where);
}

function optionalNumber(value: unknown, where: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw new Error(`${where}: expected a number`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Sources: every YAML file under deploy/k8s (by its path there) and the Dockerfile

interface Texts {
  readonly k8s: Readonly<Record<string, string>>;
  readonly dockerfile: string;
}

function yamlFilesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) return yamlFilesUnder(path.join(dir, entry.name), relative);
    return /\.ya?ml$/.test(entry.name) ? [relative] : [];
  });
}

function readTexts(): Texts {
  const dir = path.join(ROOT, K8S);
  return {
    k8s: Object.fromEntries(
      yamlFilesUnder(dir).map((file) => [file, readFileSync(path.join(dir, file), 'utf8')]),
    ),
    dockerfile: readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'),
  };
}

// ---------------------------------------------------------------------------------------------
// Parsing

interface Resource {
  readonly file: string;
  readonly kind: string;
  readonly name: string;
  readonly body: Dict;
}

interface Kustomization {
  readonly kind: string;
  readonly resources: readonly string[];
  readonly patches: readonly string[];
  readonly components: readonly string[];
}

interface Manifests {
  readonly leaves: readonly SchemaLeaf[];
  /** Every YAML file under deploy/k8s, by its path there. */
  readonly files: readonly string[];
  readonly base: Kustomization;
  readonly component: Kustomization;
  /** The resources the base kustomization applies, from the files it lists. */
  readonly resources: readonly Resource[];
  /** The resources and patches of the monitoring component. */
  readonly monitoring: readonly Resource[];
  readonly dockerfile: { readonly user: string | undefined; readonly env: Map<string, string> };
}

function documents(text: string, file: string): Dict[] {
  return parseAllDocuments(text).flatMap((document, index) => {
    if (document.errors.length > 0) {
      throw new Error(`${file}: ${document.errors.map((e) => e.message).join('; ')}`);
    }
    const value: unknown = document.toJS();
    return value === null || value === undefined ? [] : [dict(value, `${file}[${index}]`)];
  });
}

function resourcesOf(texts: Texts, files: readonly string[]): Resource[] {
  return files.flatMap((file) => {
    const text = texts.k8s[file];
    if (text === undefined) return []; // reported by kustomizationProblems
    return documents(text, file).map((body, index) => ({
      file,
      kind: scalar(body.kind, `${file}[${index}].kind`),
      name: scalar(dict(body.metadata, `${file}[${index}].metadata`).name, `${file} name`),
      body,
    }));
  });
}

function parseKustomization(texts: Texts, file: string): Kustomization {
  const text = texts.k8s[file];
  if (text === undefined) return { kind: '(missing)', resources: [], patches: [], components: [] };
  const [body = {}] = documents(text, file);
  const paths = (key: string): string[] =>
    list(body[key], `${file}.${key}`).map((entry, i) => scalar(entry, `${file}.${key}[${i}]`));
  return {
    kind: scalar(body.kind, `${file}.kind`),
    resources: paths('resources'),
    components: paths('components'),
    patches: list(body.patches, `${file}.patches`).map((patch, i) =>
      scalar(dict(patch, `${file}.patches[${i}]`).path, `${file}.patches[${i}].path`),
    ),
  };
}

/** The final stage's USER and ENV (continuations joined, comment lines dropped, as docker does). */
function parseDockerfile(text: string): Manifests['dockerfile'] {
  const logical: string[] = [];
  let pending = '';
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*#/.test(line)) continue;
    if (/\\\s*$/.test(line)) {
      pending += line.replace(/\\\s*$/, ' ');
      continue;
    }
    logical.push((pending + line).trim());
    pending = '';
  }
  let user: string | undefined;
  let env = new Map<string, string>();
  for (const line of logical) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    switch (keyword.toUpperCase()) {
      case 'FROM':
        user = undefined;
        env = new Map();
        break;
      case 'USER':
        user = args.split(':')[0];
        break;
      case 'ENV':
        for (const match of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
          const value = match[2] ?? '';
          env.set(match[1] ?? '', value.startsWith('"') ? value.slice(1, -1) : value);
        }
        break;
      default:
        break;
    }
  }
  return { user, env };
}

function parseManifests(texts: Texts, leaves: readonly SchemaLeaf[] = leavesOf(schema)): Manifests {
  const base = parseKustomization(texts, BASE);
  const component = parseKustomization(texts, COMPONENT);
  const inComponent = (file: string): string =>
    path.posix.join(path.posix.dirname(COMPONENT), file);
  return {
    leaves,
    files: Object.keys(texts.k8s).sort(),
    base,
    component,
    resources: resourcesOf(texts, base.resources),
    monitoring: resourcesOf(texts, [...component.resources, ...component.patches].map(inComponent)),
    dockerfile: parseDockerfile(texts.dockerfile),
  };
}

// ---------------------------------------------------------------------------------------------
// Lookups

function find(resources: readonly Resource[], kind: string): Resource | undefined {
  return resources.find((r) => r.kind === kind);
}

function the(m: Manifests, kind: string): Resource {
  const found = find(m.resources, kind);
  if (found === undefined) throw new Error(`the kustomization applies no ${kind}`);
  return found;
}

function podTemplate(m: Manifests): Dict {
  return dict(dict(the(m, 'Deployment').body.spec, 'Deployment.spec').template, 'template');
}

function podSpec(m: Manifests): Dict {
  return dict(podTemplate(m).spec, 'template.spec');
}

function podLabels(m: Manifests): Dict {
  return dict(dict(podTemplate(m).metadata, 'template.metadata').labels, 'template labels');
}

function containers(m: Manifests): Dict[] {
  const spec = podSpec(m);
  return [
    ...list(spec.initContainers, 'initContainers'),
    ...list(spec.containers, 'containers'),
  ].map((c, i) => dict(c, `containers[${i}]`));
}

/** The service's container: the one named like the Deployment, or the only one. */
function container(m: Manifests): Dict {
  const all = list(podSpec(m).containers, 'containers').map((c, i) => dict(c, `containers[${i}]`));
  const found = all.find((c) => c.name === NAME) ?? (all.length === 1 ? all[0] : undefined);
  if (found === undefined) throw new Error(`the Deployment has no container ${NAME}`);
  return found;
}

function stringMap(resource: Resource | undefined, key: 'data' | 'stringData'): Dict {
  return resource === undefined ? {} : dict(resource.body[key], `${resource.kind}.${key}`);
}

function configMapData(m: Manifests): Dict {
  return stringMap(find(m.resources, 'ConfigMap'), 'data');
}

/** A Secret's keys and values, from stringData and (base64) data; stringData wins, as in the API. */
function secretData(m: Manifests): Map<string, string> {
  const secret = find(m.resources, 'Secret');
  const data = Object.entries(stringMap(secret, 'data')).map(
    ([k, v]) => [k, Buffer.from(scalar(v, `Secret.data.${k}`), 'base64').toString('utf8')] as const,
  );
  const stringData = Object.entries(stringMap(secret, 'stringData')).map(
    ([k, v]) => [k, scalar(v, `Secret.stringData.${k}`)] as const,
  );
  return new Map([...data, ...stringData]);
}

interface EnvEntry {
  readonly name: string;
  /** Undefined for valueFrom. */
  readonly value: string | undefined;
  readonly fromSecret: boolean;
}

function containerEnv(c: Dict): EnvEntry[] {
  return list(c.env, 'env').map((raw, i) => {
    const entry = dict(raw, `env[${i}]`);
    const valueFrom = dict(entry.valueFrom, `env[${i}].valueFrom`);
    return {
      name: scalar(entry.name, `env[${i}].name`),
      value: optionalScalar(entry.value, `env[${i}].value`),
      fromSecret: valueFrom.secretKeyRef !== undefined,
    };
  });
}

/**
 * The container's environment as the kubelet builds it: the image's ENV, then each envFrom
 * source in order, then env (later wins). Secret values are the repository's placeholders.
 */
function effectiveEnv(m: Manifests): Record<string, string> {
  const env = new Map(m.dockerfile.env);
  for (const source of list(container(m).envFrom, 'envFrom').map((s) => dict(s, 'envFrom[]'))) {
    if (source.configMapRef !== undefined) {
      for (const [k, v] of Object.entries(configMapData(m))) env.set(k, scalar(v, k));
    }
    if (source.secretRef !== undefined) {
      for (const [k, v] of secretData(m)) env.set(k, v);
    }
  }
  for (const entry of containerEnv(container(m))) {
    if (entry.value !== undefined) env.set(entry.name, entry.value);
  }
  return Object.fromEntries(env);
}

type Loaded = { ok: true; config: Readonly<AppConfig> } | { ok: false; problems: string[] };

/** The real loader, over config/ and the container's environment. */
function load(m: Manifests): Loaded {
  const result = loadConfig({ env: effectiveEnv(m), configDir: path.join(ROOT, 'config') });
  return result.ok
    ? { ok: true, config: result.config }
    : { ok: false, problems: result.problems.map(formatProblem) };
}

function sensitiveEnvNames(m: Manifests): Set<string> {
  return new Set(m.leaves.flatMap((l) => (l.sensitive && l.env !== undefined ? [l.env] : [])));
}

function schemaEnvNames(m: Manifests): Set<string> {
  return new Set(m.leaves.flatMap((l) => (l.env === undefined ? [] : [l.env])));
}

/** matchLabels must all be on the pod; matchExpressions are not used in these manifests. */
function selects(selector: unknown, labels: Dict, where: string): boolean {
  const s = dict(selector, where);
  if (s.matchExpressions !== undefined) throw new Error(`${where}: matchExpressions unsupported`);
  const wanted = Object.entries(dict(s.matchLabels, `${where}.matchLabels`));
  return wanted.length > 0 && wanted.every(([k, v]) => labels[k] === v);
}

function containerPorts(m: Manifests): Map<string, number> {
  return new Map(
    list(container(m).ports, 'ports').map((raw, i) => {
      const port = dict(raw, `ports[${i}]`);
      return [
        optionalScalar(port.name, `ports[${i}].name`) ?? `(unnamed ${i})`,
        Number(scalar(port.containerPort, `ports[${i}].containerPort`)),
      ];
    }),
  );
}

/** A named or numbered port of the container as a number (undefined: no such name). */
function resolvePort(m: Manifests, port: unknown, where: string): number | undefined {
  if (typeof port === 'number') return port;
  return containerPorts(m).get(scalar(port, where));
}

/** `256Mi`, `1Gi`, `500M` -> MiB. */
function mebibytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (match === null) throw new Error(`${quantity} is not a memory quantity`);
  const factor: Readonly<Record<string, number>> = {
    '': 1 / 2 ** 20,
    Ki: 1 / 1024,
    Mi: 1,
    Gi: 1024,
    Ti: 1024 ** 2,
    k: 1e3 / 2 ** 20,
    M: 1e6 / 2 ** 20,
    G: 1e9 / 2 ** 20,
    T: 1e12 / 2 ** 20,
  };
  return Number(match[1]) * (factor[match[2] ?? ''] ?? Number.NaN);
}

/** `500m`, `1`, `1.5` -> cores. */
function cores(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(m)?$/.exec(quantity);
  if (match === null) throw new Error(`${quantity} is not a CPU quantity`);
  return Number(match[1]) / (match[2] === 'm' ? 1000 : 1);
}

// ---------------------------------------------------------------------------------------------
// Checks: each returns what is wrong, one line per problem

function kustomizationProblems(m: Manifests): string[] {
  const problems: string[] = [];
  if (m.base.kind !== 'Kustomization')
    problems.push(`${BASE} is ${m.base.kind}, not Kustomization`);
  const topLevel = m.files.filter((f) => !f.includes('/') && f !== BASE);
  for (const file of topLevel) {
    if (!m.base.resources.includes(file)) problems.push(`${file} is not listed in ${BASE}`);
  }
  for (const entry of m.base.resources) {
    if (!m.files.includes(entry)) problems.push(`${BASE} lists ${entry}, which does not exist`);
    if (entry.startsWith('monitoring')) {
      problems.push(`${BASE} pulls in ${entry}: the monitoring component is opt-in (needs a CRD)`);
    }
  }
  if (m.base.components.length > 0) {
    problems.push(`${BASE} enables components ${m.base.components.join(', ')}: opt-in only`);
  }

  if (m.component.kind !== 'Component') {
    problems.push(`${COMPONENT} is ${m.component.kind}, not a kustomize Component`);
  }
  const dir = path.posix.dirname(COMPONENT);
  const used = [...m.component.resources, ...m.component.patches];
  for (const file of m.files.filter((f) => f.startsWith(`${dir}/`) && f !== COMPONENT)) {
    if (!used.includes(path.posix.relative(dir, file))) {
      problems.push(`${file} is not used by ${COMPONENT}`);
    }
  }
  for (const entry of used) {
    if (!m.files.includes(`${dir}/${entry}`)) {
      problems.push(`${COMPONENT} uses ${entry}, which does not exist`);
    }
  }
  return problems;
}

function envNameProblems(m: Manifests): string[] {
  const known = schemaEnvNames(m);
  const allowed = (name: string): boolean => known.has(name) || LOADER_ENV.includes(name);
  const problems: string[] = [];
  for (const name of Object.keys(configMapData(m))) {
    if (!allowed(name)) problems.push(`the ConfigMap sets ${name}: not an env name of the schema`);
  }
  for (const name of secretData(m).keys()) {
    if (!allowed(name)) problems.push(`the Secret sets ${name}: not an env name of the schema`);
  }
  for (const c of containers(m)) {
    for (const { name } of containerEnv(c)) {
      if (!allowed(name) && !NODE_RUNTIME_ENV.includes(name)) {
        problems.push(`container ${String(c.name)} sets ${name}: not an env name of the schema`);
      }
    }
  }
  // envFrom names that match nothing leave the pod in CreateContainerConfigError.
  for (const source of list(container(m).envFrom, 'envFrom').map((s) => dict(s, 'envFrom[]'))) {
    for (const [ref, kind] of [
      ['configMapRef', 'ConfigMap'],
      ['secretRef', 'Secret'],
    ] as const) {
      if (source[ref] === undefined) continue;
      const name = scalar(dict(source[ref], ref).name, `${ref}.name`);
      if (!m.resources.some((r) => r.kind === kind && r.name === name)) {
        problems.push(`envFrom ${ref} ${name}: the kustomization applies no ${kind} of that name`);
      }
    }
  }
  return problems;
}

function secretProblems(m: Manifests): string[] {
  const problems: string[] = [];
  const sensitive = sensitiveEnvNames(m);
  const secret = secretData(m);
  for (const [name, value] of Object.entries(configMapData(m))) {
    if (sensitive.has(name)) problems.push(`the ConfigMap holds ${name}, a sensitive key`);
    // A ConfigMap holds strings only: the API refuses `PORT: 8080`.
    if (typeof value !== 'string') problems.push(`ConfigMap ${name} is not a string: quote it`);
  }
  for (const [name, value] of secret) {
    if (!sensitive.has(name)) problems.push(`the Secret holds ${name}, which is not sensitive`);
    if (!value.includes(PLACEHOLDER)) {
      problems.push(
        `the Secret's ${name} is not a ${PLACEHOLDER} placeholder: no real secrets here`,
      );
    }
  }
  for (const name of sensitive) {
    if (!secret.has(name)) problems.push(`the sensitive ${name} has no slot in the Secret`);
  }
  for (const c of containers(m)) {
    for (const entry of containerEnv(c)) {
      if (sensitive.has(entry.name) && !entry.fromSecret) {
        problems.push(`container ${String(c.name)} sets the sensitive ${entry.name} in plain text`);
      }
    }
  }
  // Without DATABASE_URL the service opens PGlite in /app/data: refused on a read-only root.
  const databaseUrl = m.leaves.find((l) => l.key === 'database.url')?.env ?? 'DATABASE_URL';
  if ((effectiveEnv(m)[databaseUrl] ?? '') === '') {
    problems.push(`${databaseUrl} is empty: the embedded database cannot write its data here`);
  }
  return problems;
}

function configProblems(m: Manifests): string[] {
  const loaded = load(m);
  return loaded.ok ? [] : loaded.problems;
}

/** Runs a check that needs the loaded config; a config that does not load is its one problem. */
function withConfig(m: Manifests, check: (config: Readonly<AppConfig>) => string[]): string[] {
  const loaded = load(m);
  if (!loaded.ok) return [`the config does not load: ${loaded.problems.join('; ')}`];
  return check(loaded.config);
}

interface Probe {
  readonly path: string | undefined;
  readonly port: number | undefined;
  readonly scheme: string;
  readonly periodSeconds: number;
  readonly failureThreshold: number;
}

function probe(m: Manifests, kind: string): Probe | undefined {
  const raw = container(m)[kind];
  if (raw === undefined) return undefined;
  const spec = dict(raw, kind);
  const get = dict(spec.httpGet, `${kind}.httpGet`);
  return {
    path: optionalScalar(get.path, `${kind}.httpGet.path`),
    port: get.port === undefined ? undefined : resolvePort(m, get.port, `${kind}.httpGet.port`),
    scheme: optionalScalar(get.scheme, `${kind}.httpGet.scheme`) ?? 'HTTP',
    // The kubelet's defaults.
    periodSeconds: optionalNumber(spec.periodSeconds, `${kind}.periodSeconds`) ?? 10,
    failureThreshold: optionalNumber(spec.failureThreshold, `${kind}.failureThreshold`) ?? 3,
  };
}

function probeProblems(m: Manifests): string[] {
  return withConfig(m, (config) => {
    const problems: string[] = [];
    const wanted = [
      ['startupProbe', LIVE_PATHS],
      ['readinessProbe', READY_PATHS],
      ['livenessProbe', LIVE_PATHS],
    ] as const;
    for (const [kind, paths] of wanted) {
      const p = probe(m, kind);
      if (p === undefined) {
        problems.push(`the container has no ${kind}`);
        continue;
      }
      if (p.path === undefined || !paths.includes(p.path)) {
        problems.push(
          `${kind} asks ${String(p.path)}; the contract answers it on ${paths.join(', ')}`,
        );
      }
      if (p.port !== config.http.port) {
        problems.push(
          `${kind} targets port ${String(p.port)}; the probes are on the main listener (${config.http.port})`,
        );
      }
      if (p.scheme !== 'HTTP') problems.push(`${kind} uses ${p.scheme}; the listener speaks HTTP`);
    }
    // The service gives up by itself after STARTUP_TIMEOUT_MS; the kubelet must not kill it first.
    const startup = probe(m, 'startupProbe');
    if (startup !== undefined) {
      const windowMs = startup.periodSeconds * startup.failureThreshold * 1000;
      if (windowMs <= config.lifecycle.startupTimeoutMs) {
        problems.push(
          `the startup probe gives up after ${windowMs} ms, not after STARTUP_TIMEOUT_MS (${config.lifecycle.startupTimeoutMs} ms)`,
        );
      }
    }
    return problems;
  });
}

function shutdownProblems(m: Manifests): string[] {
  return withConfig(m, (config) => {
    const problems: string[] = [];
    const { delayMs, drainTimeoutMs, closeTimeoutMs, flushTimeoutMs, hardStopMs } = config.shutdown;
    const graceful = delayMs + drainTimeoutMs + closeTimeoutMs + flushTimeoutMs;
    const graceSeconds = optionalNumber(
      podSpec(m).terminationGracePeriodSeconds,
      'terminationGracePeriodSeconds',
    );
    const graceMs = (graceSeconds ?? 30) * 1000; // the API's default is 30 s
    if (graceMs < hardStopMs + GRACE_MARGIN_MS) {
      problems.push(
        `terminationGracePeriodSeconds ${String(graceSeconds)} does not exceed the hard stop (${hardStopMs} ms) by ${GRACE_MARGIN_MS} ms`,
      );
    }
    if (hardStopMs <= graceful) {
      problems.push(
        `the hard stop (${hardStopMs} ms) does not exceed delay + drain + close + flush (${graceful} ms)`,
      );
    }
    if (graceMs <= graceful) {
      problems.push(
        `the grace period (${graceMs} ms) does not cover a graceful stop (${graceful} ms)`,
      );
    }
    const readiness = probe(m, 'readinessProbe');
    if (readiness !== undefined) {
      const unreadyAfterMs = readiness.periodSeconds * readiness.failureThreshold * 1000;
      if (delayMs < unreadyAfterMs + PROPAGATION_MARGIN_MS) {
        problems.push(
          `SHUTDOWN_DELAY_MS ${delayMs} < readiness period x failureThreshold (${unreadyAfterMs} ms) + ${PROPAGATION_MARGIN_MS} ms propagation`,
        );
      }
    }
    const lifecycle = dict(container(m).lifecycle, 'lifecycle');
    if (lifecycle.preStop !== undefined) {
      problems.push(
        'a preStop hook adds to the shutdown: use SHUTDOWN_DELAY_MS (runbook/shutdown.md)',
      );
    }
    return problems;
  });
}

function portProblems(m: Manifests): string[] {
  return withConfig(m, (config) => {
    const problems: string[] = [];
    const ports = containerPorts(m);
    for (const [name, key, port] of [
      ['http', 'PORT', config.http.port],
      ['ops', 'OPS_PORT', config.ops.port],
    ] as const) {
      const declared = ports.get(name);
      if (declared !== port) {
        problems.push(`container port ${name} is ${String(declared)}, ${key} is ${port}`);
      }
    }
    for (const [name, port] of ports) {
      if (port !== config.http.port && port !== config.ops.port) {
        problems.push(`container port ${name} (${port}): nothing listens on it`);
      }
    }
    // The probes and Prometheus come from outside the pod: loopback cannot be reached.
    for (const [key, host] of [
      ['http.host', config.http.host],
      ['ops.host', config.ops.host],
    ] as const) {
      if (host !== '0.0.0.0' && host !== '::') {
        problems.push(`${key} is ${host}: unreachable from outside the pod`);
      }
    }

    const service = find(m.resources, 'Service');
    if (service === undefined) return [...problems, 'the kustomization applies no Service'];
    const spec = dict(service.body.spec, 'Service.spec');
    if ((optionalScalar(spec.type, 'Service.type') ?? 'ClusterIP') !== 'ClusterIP') {
      problems.push(`the Service is ${String(spec.type)}: keep it ClusterIP behind an ingress`);
    }
    if (
      !selects(
        spec.selector === undefined ? {} : { matchLabels: spec.selector },
        podLabels(m),
        'Service.selector',
      )
    ) {
      problems.push('the Service selector does not match the pod labels');
    }
    const servicePorts = list(spec.ports, 'Service.ports').map((p, i) =>
      dict(p, `Service.ports[${i}]`),
    );
    for (const [i, port] of servicePorts.entries()) {
      if (port.name === undefined) problems.push(`Service port ${i} has no name`);
      const target = resolvePort(m, port.targetPort ?? port.port, `Service.ports[${i}].targetPort`);
      if (target === config.ops.port) {
        problems.push(
          `the Service exposes the ops port (${target}): /metrics and /lifecycle stay private`,
        );
      } else if (target !== config.http.port) {
        problems.push(
          `Service port ${String(port.name)} targets ${String(target)}: not the main listener`,
        );
      }
    }
    if (
      !servicePorts.some(
        (p) => resolvePort(m, p.targetPort ?? p.port, 'targetPort') === config.http.port,
      )
    ) {
      problems.push('the Service does not route to the main listener');
    }

    const annotations = dict(dict(podTemplate(m).metadata, 'metadata').annotations, 'annotations');
    const scrape = [
      ['prometheus.io/scrape', 'true'],
      ['prometheus.io/port', String(config.ops.port)],
      ['prometheus.io/path', METRICS_PATH],
    ] as const;
    for (const [key, wanted] of scrape) {
      if (annotations[key] !== wanted) {
        problems.push(`pod annotation ${key} is ${String(annotations[key])}, expected ${wanted}`);
      }
    }
    return problems;
  });
}

/** A NetworkPolicy peer limited to pods inside the cluster (not an ipBlock, not everything). */
function inClusterPeer(peer: Dict): boolean {
  if (peer.ipBlock !== undefined) return false;
  const narrowed = (selector: unknown): boolean => {
    const s = dict(selector, 'selector');
    return (
      Object.keys(dict(s.matchLabels, 'matchLabels')).length > 0 || s.matchExpressions !== undefined
    );
  };
  return narrowed(peer.namespaceSelector) || narrowed(peer.podSelector);
}

function networkPolicyProblems(m: Manifests): string[] {
  return withConfig(m, (config) => {
    const policy = find(m.resources, 'NetworkPolicy');
    if (policy === undefined) return ['the kustomization applies no NetworkPolicy'];
    const problems: string[] = [];
    const spec = dict(policy.body.spec, 'NetworkPolicy.spec');
    if (!selects(spec.podSelector, podLabels(m), 'NetworkPolicy.podSelector')) {
      problems.push('the NetworkPolicy does not select the ops-service pods');
    }
    const types = list(spec.policyTypes, 'policyTypes').map((t) => scalar(t, 'policyTypes'));
    if (!types.includes('Ingress')) problems.push('the NetworkPolicy does not govern Ingress');
    const rules = list(spec.ingress, 'ingress').map((r, i) => dict(r, `ingress[${i}]`));
    const covers = (rule: Dict, port: number): boolean => {
      const ports = list(rule.ports, 'ports').map((p) => dict(p, 'ports[]'));
      // A rule without ports allows every port.
      return ports.length === 0 || ports.some((p) => resolvePort(m, p.port, 'port') === port);
    };
    const peers = (rule: Dict): Dict[] => list(rule.from, 'from').map((p) => dict(p, 'from[]'));
    const opsRules = rules.filter((rule) => covers(rule, config.ops.port));
    if (opsRules.length === 0) {
      problems.push(`no ingress rule lets Prometheus reach the ops port (${config.ops.port})`);
    }
    for (const rule of opsRules) {
      const from = peers(rule);
      if (from.length === 0) {
        problems.push(`an ingress rule opens the ops port (${config.ops.port}) to every source`);
      } else if (!from.every(inClusterPeer)) {
        problems.push(
          `an ingress rule opens the ops port (${config.ops.port}) beyond selected pods`,
        );
      }
    }
    if (!rules.some((rule) => covers(rule, config.http.port))) {
      problems.push(`no ingress rule admits traffic to the main port (${config.http.port})`);
    }
    return problems;
  });
}

/** The port a JWKS URL is fetched on. */
function urlPort(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/**
 * Bearer JWTs in the cluster: keys from the identity provider's JWKS URL over https (a key set
 * fetched in plain text can be swapped on the way, and with it every token), one fetch shorter
 * than the startup budget, and, where the NetworkPolicy restricts egress, a rule that reaches
 * the JWKS port: the first key set is loaded before the pod is ready.
 */
function authProblems(m: Manifests): string[] {
  return withConfig(m, (config) => {
    const problems: string[] = [];
    const { auth } = config;
    if (auth.mode !== 'jwt') return [`AUTH_MODE is ${auth.mode}: production takes bearer JWTs`];
    let url: URL | undefined;
    if (auth.jwksUrl === '') {
      problems.push("no AUTH_JWKS_URL: these manifests mount no JWKS file; use the provider's URL");
    } else {
      url = new URL(auth.jwksUrl);
      if (url.protocol !== 'https:') {
        problems.push(`AUTH_JWKS_URL ${auth.jwksUrl} is not https: the keys could be swapped`);
      }
    }
    if (auth.jwksTimeoutMs >= config.lifecycle.startupTimeoutMs) {
      problems.push(
        `AUTH_JWKS_TIMEOUT_MS (${auth.jwksTimeoutMs} ms) is not below STARTUP_TIMEOUT_MS (${config.lifecycle.startupTimeoutMs} ms): one slow fetch takes the whole startup`,
      );
    }

    const policy = find(m.resources, 'NetworkPolicy');
    const spec = dict(policy?.body.spec, 'NetworkPolicy.spec');
    const types = list(spec.policyTypes, 'policyTypes').map((t) => scalar(t, 'policyTypes'));
    if (url !== undefined && types.includes('Egress')) {
      const port = urlPort(url);
      const rules = list(spec.egress, 'egress').map((r, i) => dict(r, `egress[${i}]`));
      const reaches = rules.some((rule) => {
        const ports = list(rule.ports, 'ports').map((p) => dict(p, 'ports[]'));
        return ports.length === 0 || ports.some((p) => p.port === port || p.port === undefined);
      });
      if (!reaches) {
        problems.push(
          `the NetworkPolicy restricts egress and no egress rule reaches the JWKS port ${port} (${url.host}): no pod would become ready`,
        );
      }
    }
    return problems;
  });
}

function securityProblems(m: Manifests): string[] {
  const problems: string[] = [];
  const spec = podSpec(m);
  const pod = dict(spec.securityContext, 'securityContext');
  const c = dict(container(m).securityContext, 'container securityContext');
  const user = m.dockerfile.user;
  const imageUid = user === undefined ? 0 : /^\d+$/.test(user) ? Number(user) : IMAGE_USERS[user];
  const runAsUser = c.runAsUser ?? pod.runAsUser;
  if (pod.runAsNonRoot !== true && c.runAsNonRoot !== true)
    problems.push('runAsNonRoot is not true');
  if (typeof runAsUser !== 'number' || runAsUser === 0) {
    problems.push(
      `runAsUser is ${String(runAsUser)}: a numeric non-root uid is needed with runAsNonRoot`,
    );
  } else if (runAsUser !== imageUid) {
    problems.push(
      `runAsUser ${runAsUser} is not the image's USER ${String(user)} (uid ${String(imageUid)})`,
    );
  }
  if (c.readOnlyRootFilesystem !== true) problems.push('readOnlyRootFilesystem is not true');
  if (c.allowPrivilegeEscalation !== false) problems.push('allowPrivilegeEscalation is not false');
  if (c.privileged === true) problems.push('the container is privileged');
  const drop = list(dict(c.capabilities, 'capabilities').drop, 'drop').map((d) =>
    scalar(d, 'drop'),
  );
  if (!drop.includes('ALL'))
    problems.push(`capabilities drop ${drop.join(', ') || 'nothing'}, not ALL`);
  if (list(dict(c.capabilities, 'capabilities').add, 'add').length > 0) {
    problems.push('the container adds capabilities');
  }
  for (const [where, context] of [
    ['pod', pod],
    ['container', c],
  ] as const) {
    const profile = dict(context.seccompProfile, `${where} seccompProfile`);
    const seccomp = optionalScalar(profile.type, `${where} seccompProfile.type`);
    if (seccomp !== undefined && seccomp !== 'RuntimeDefault') {
      problems.push(`the ${where} seccompProfile is ${seccomp}, not RuntimeDefault`);
    }
  }
  if (dict(pod.seccompProfile, 'seccompProfile').type !== 'RuntimeDefault') {
    problems.push('the pod has no RuntimeDefault seccompProfile');
  }
  if (spec.automountServiceAccountToken !== false) {
    problems.push('automountServiceAccountToken is not false: the service never calls the API');
  }
  // Service links inject <SERVICE>_PORT=tcp://... for every Service: a Service named `ops`
  // would set OPS_PORT and the service would refuse its config.
  if (spec.enableServiceLinks !== false) problems.push('enableServiceLinks is not false');
  return problems;
}

function resourceProblems(m: Manifests): string[] {
  const problems: string[] = [];
  const c = container(m);
  const resources = dict(c.resources, 'resources');
  const requests = dict(resources.requests, 'requests');
  const limits = dict(resources.limits, 'limits');
  const quantity = (from: Dict, key: string, where: string): string | undefined =>
    optionalScalar(from[key], `${where}.${key}`);
  for (const key of ['cpu', 'memory']) {
    const request = quantity(requests, key, 'requests');
    const limit = quantity(limits, key, 'limits');
    if (request === undefined) problems.push(`no ${key} request`);
    if (limit === undefined) problems.push(`no ${key} limit`);
    if (request === undefined || limit === undefined) continue;
    const size = key === 'cpu' ? cores : mebibytes;
    if (size(request) > size(limit))
      problems.push(`the ${key} request ${request} exceeds its limit ${limit}`);
  }
  const memoryRequest = quantity(requests, 'memory', 'requests');
  if (memoryRequest !== undefined && mebibytes(memoryRequest) < MEASURED_PEAK_RSS_MIB) {
    problems.push(
      `the memory request ${memoryRequest} is below the measured peak RSS (${MEASURED_PEAK_RSS_MIB} MiB)`,
    );
  }
  const command = list(c.command, 'command').map((w) => scalar(w, 'command'));
  if (command[0] !== 'node' || command[command.length - 1] !== 'dist/main.js') {
    problems.push(
      `the command is ${JSON.stringify(command)}: expected the exec form node ... dist/main.js`,
    );
  }
  const heapFlag = command.find((w) => w.startsWith('--max-old-space-size='));
  const memoryLimit = quantity(limits, 'memory', 'limits');
  if (heapFlag === undefined) {
    problems.push(
      'no --max-old-space-size: V8 would size its heap from the limit and leave no room',
    );
  } else if (memoryLimit !== undefined) {
    const heap = Number(heapFlag.split('=')[1]);
    const cap = mebibytes(memoryLimit) * MAX_HEAP_SHARE_OF_LIMIT;
    if (!(heap <= cap)) {
      problems.push(
        `the V8 heap cap (${heap} MiB) is above ${MAX_HEAP_SHARE_OF_LIMIT * 100}% of the memory limit ${memoryLimit}`,
      );
    }
  }
  return problems;
}

function availabilityProblems(m: Manifests): string[] {
  const problems: string[] = [];
  const spec = dict(the(m, 'Deployment').body.spec, 'Deployment.spec');
  const replicas = optionalNumber(spec.replicas, 'replicas') ?? 1;
  if (replicas < 3) problems.push(`${replicas} replicas: expected at least 3`);
  if (!selects(spec.selector, podLabels(m), 'Deployment.selector')) {
    problems.push('the Deployment selector does not match its pod labels');
  }
  const strategy = dict(spec.strategy, 'strategy');
  const rolling = dict(strategy.rollingUpdate, 'rollingUpdate');
  if (strategy.type !== 'RollingUpdate')
    problems.push(`strategy ${String(strategy.type)}, not RollingUpdate`);
  if (rolling.maxUnavailable !== 0) {
    problems.push(
      `maxUnavailable ${String(rolling.maxUnavailable)}: a rollout must never go below ${replicas} ready pods`,
    );
  }
  if (typeof rolling.maxSurge !== 'number' || rolling.maxSurge < 1) {
    problems.push(
      `maxSurge ${String(rolling.maxSurge)}: with maxUnavailable 0 a rollout needs a surge pod`,
    );
  }

  const pod = podSpec(m);
  const spread = list(pod.topologySpreadConstraints, 'topologySpreadConstraints').map((t) =>
    dict(t, 'topologySpreadConstraints[]'),
  );
  const antiAffinity = list(
    dict(dict(pod.affinity, 'affinity').podAntiAffinity, 'podAntiAffinity')
      .requiredDuringSchedulingIgnoredDuringExecution,
    'podAntiAffinity.required',
  ).map((t) => dict(t, 'podAntiAffinity[]'));
  const acrossNodes = [...spread, ...antiAffinity].some(
    (t) =>
      t.topologyKey === 'kubernetes.io/hostname' &&
      selects(t.labelSelector, podLabels(m), 'labelSelector'),
  );
  if (!acrossNodes) problems.push('nothing spreads the pods across nodes (kubernetes.io/hostname)');

  const pdb = find(m.resources, 'PodDisruptionBudget');
  if (pdb === undefined) return [...problems, 'the kustomization applies no PodDisruptionBudget'];
  const budget = dict(pdb.body.spec, 'PodDisruptionBudget.spec');
  if (!selects(budget.selector, podLabels(m), 'PodDisruptionBudget.selector')) {
    problems.push('the PodDisruptionBudget does not select the ops-service pods');
  }
  const maxUnavailable = optionalNumber(budget.maxUnavailable, 'maxUnavailable');
  const minAvailable = optionalNumber(budget.minAvailable, 'minAvailable');
  const disruptions = maxUnavailable ?? (minAvailable === undefined ? 0 : replicas - minAvailable);
  if (disruptions < 1)
    problems.push('the PodDisruptionBudget allows no eviction: node drains would hang');
  if (replicas - disruptions < 2) {
    problems.push(
      `the PodDisruptionBudget lets ${disruptions} of ${replicas} pods go at once: fewer than 2 would serve`,
    );
  }
  return problems;
}

function imageProblems(m: Manifests): string[] {
  return containers(m).flatMap((c) => {
    const problem = imageProblem(scalar(c.image, 'image'), `container ${String(c.name)}`);
    return problem === undefined ? [] : [problem];
  });
}

function monitoringProblems(m: Manifests): string[] {
  const problems: string[] = [];
  const monitor = find(m.monitoring, 'PodMonitor');
  if (monitor === undefined) return ['the monitoring component has no PodMonitor'];
  const spec = dict(monitor.body.spec, 'PodMonitor.spec');
  if (!selects(spec.selector, podLabels(m), 'PodMonitor.selector')) {
    problems.push('the PodMonitor does not select the ops-service pods');
  }
  const endpoints = list(spec.podMetricsEndpoints, 'podMetricsEndpoints').map((e) =>
    dict(e, 'endpoint'),
  );
  if (endpoints.length === 0) problems.push('the PodMonitor has no podMetricsEndpoints');
  const opsPort = containerPorts(m).get('ops');
  for (const endpoint of endpoints) {
    const port = optionalScalar(endpoint.port, 'endpoint.port');
    if (port === undefined || resolvePort(m, port, 'endpoint.port') !== opsPort) {
      problems.push(`the PodMonitor scrapes port ${String(port)}, not the ops port`);
    }
    const metricsPath = optionalScalar(endpoint.path, 'endpoint.path') ?? '/metrics';
    if (metricsPath !== METRICS_PATH) problems.push(`the PodMonitor scrapes ${metricsPath}`);
  }
  const patch = find(m.monitoring, 'Deployment');
  const annotations = dict(
    dict(dict(dict(patch?.body.spec, 'spec').template, 'template').metadata, 'metadata')
      .annotations,
    'annotations',
  );
  if (patch?.name !== NAME || annotations['prometheus.io/scrape'] !== 'false') {
    problems.push('the component does not turn the scrape annotation off: every pod scraped twice');
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Tests

const texts = readTexts();
const manifests = parseManifests(texts);

describe('the Kubernetes manifests agree with the config schema and the contract', () => {
  test('when deploy/k8s is parsed, then the base applies each kind once and the component its PodMonitor', () => {
    expect(manifests.resources.map((r) => r.kind).sort()).toEqual(
      [
        'ConfigMap',
        'Deployment',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'Secret',
        'Service',
      ].sort(),
    );
    expect(manifests.monitoring.map((r) => r.kind).sort()).toEqual(['Deployment', 'PodMonitor']);
  });

  test('when kustomize builds the base, then it lists every manifest and leaves monitoring opt-in', () => {
    expect(kustomizationProblems(manifests)).toEqual([]);
  });

  test('when the pod gets its environment, then each name is an env name of the schema', () => {
    expect(envNameProblems(manifests)).toEqual([]);
  });

  test('when config is split, then sensitive keys are exactly the Secret, as placeholders', () => {
    expect(secretProblems(manifests)).toEqual([]);
  });

  test('when the real loader reads the container environment, then the configuration is valid', () => {
    expect(configProblems(manifests)).toEqual([]);
  });

  test('when the kubelet probes, then it asks the contract paths on the main listener', () => {
    expect(probeProblems(manifests)).toEqual([]);
  });

  test('when a pod is stopped, then the grace period outlasts the hard stop and the delay the readiness probe', () => {
    expect(shutdownProblems(manifests)).toEqual([]);
  });

  test('when ports are named, then they match PORT and OPS_PORT and only the main one is in the Service', () => {
    expect(portProblems(manifests)).toEqual([]);
  });

  test('when the NetworkPolicy applies, then the ops port admits Prometheus only and the main port is open', () => {
    expect(networkPolicyProblems(manifests)).toEqual([]);
  });

  test('when bearer tokens are verified, then the keys come over https in time and egress lets them', () => {
    expect(authProblems(manifests)).toEqual([]);
  });

  test('when the pod runs, then it is non-root (the image user), read-only, without privileges', () => {
    expect(securityProblems(manifests)).toEqual([]);
  });

  test('when resources are set, then they cover the measured RSS and bound the V8 heap below the limit', () => {
    expect(resourceProblems(manifests)).toEqual([]);
  });

  test('when nodes are drained or a rollout runs, then at least two pods keep serving on different nodes', () => {
    expect(availabilityProblems(manifests)).toEqual([]);
  });

  test('when an image is pulled, then it is pinned to a tag other than latest', () => {
    expect(imageProblems(manifests)).toEqual([]);
  });

  test('when the monitoring component is used, then the PodMonitor scrapes the ops port once', () => {
    expect(monitoringProblems(manifests)).toEqual([]);
  });
});

describe('the helpers read quantities and selectors as Kubernetes does', () => {
  test('when a memory or CPU quantity is read, then binary and decimal suffixes convert', () => {
    expect(mebibytes('256Mi')).toBe(256);
    expect(mebibytes('1Gi')).toBe(1024);
    expect(mebibytes('1048576')).toBe(1);
    expect(mebibytes('1000M')).toBeCloseTo(953.67, 2);
    expect(() => mebibytes('256MB')).toThrow(/not a memory quantity/);
    expect(cores('500m')).toBe(0.5);
    expect(cores('1')).toBe(1);
    expect(() => cores('1 core')).toThrow(/not a CPU quantity/);
  });

  test('when a selector has no labels, then it selects nothing here', () => {
    expect(selects({ matchLabels: { a: '1' } }, { a: '1', b: '2' }, 's')).toBe(true);
    expect(selects({ matchLabels: { a: '2' } }, { a: '1' }, 's')).toBe(false);
    expect(selects({}, { a: '1' }, 's')).toBe(false);
  });
});

// Each check must be able to fail: break one thing in one file (or in the schema) and the
// matching check has to report it. `from` must occur in the file, so a mutation never silently
// turns into a no-op when the file changes.
interface Mutation {
  readonly when: string;
  /** A path under deploy/k8s, or `Dockerfile`. */
  readonly file: string;
  readonly from: string;
  readonly to: string;
  readonly check: (m: Manifests) => string[];
  readonly reports: RegExp;
}

const CONTAINER_INDENT = ' '.repeat(10);

const mutations: readonly Mutation[] = [
  {
    when: 'the kustomization forgets a manifest',
    file: 'kustomization.yaml',
    from: '  - networkpolicy.yaml\n',
    to: '',
    check: kustomizationProblems,
    reports: /networkpolicy.yaml is not listed/,
  },
  {
    when: 'the kustomization lists a file that does not exist',
    file: 'kustomization.yaml',
    from: '  - service.yaml\n',
    to: '  - service.yaml\n  - hpa.yaml\n',
    check: kustomizationProblems,
    reports: /lists hpa.yaml, which does not exist/,
  },
  {
    when: 'the base pulls in the monitoring component',
    file: 'kustomization.yaml',
    from: 'resources:\n',
    to: 'components:\n  - monitoring\nresources:\n',
    check: kustomizationProblems,
    reports: /enables components monitoring/,
  },
  {
    when: 'the component drops its patch',
    file: 'monitoring/kustomization.yaml',
    from: 'patches:',
    to: 'unused:',
    check: kustomizationProblems,
    reports: /scrape-annotations-off.yaml is not used/,
  },
  {
    when: 'the ConfigMap misspells an env name',
    file: 'configmap.yaml',
    from: 'LOG_LEVEL: info',
    to: 'LOGLEVEL: info',
    check: envNameProblems,
    reports: /ConfigMap sets LOGLEVEL/,
  },
  {
    when: 'the container sets an env name the schema does not have',
    file: 'deployment.yaml',
    from: `${CONTAINER_INDENT}envFrom:`,
    to: `${CONTAINER_INDENT}env:\n${CONTAINER_INDENT}  - name: OTEL_ENDPOINT\n${CONTAINER_INDENT}    value: http://x:4317\n${CONTAINER_INDENT}envFrom:`,
    check: envNameProblems,
    reports: /container ops-service sets OTEL_ENDPOINT/,
  },
  {
    when: 'envFrom names a ConfigMap that is not applied',
    file: 'deployment.yaml',
    from: 'name: ops-service-config',
    to: 'name: ops-config',
    check: envNameProblems,
    reports: /configMapRef ops-config: the kustomization applies no ConfigMap/,
  },
  {
    when: 'a sensitive key goes into the ConfigMap',
    file: 'configmap.yaml',
    from: '  LOG_FORMAT: json\n',
    to: '  LOG_FORMAT: json\n  DATABASE_URL: postgres://db/ops\n',
    check: secretProblems,
    reports: /ConfigMap holds DATABASE_URL, a sensitive key/,
  },
  {
    when: 'a plain key goes into the Secret',
    file: 'secret.yaml',
    from: 'stringData:\n',
    to: 'stringData:\n  LOG_LEVEL: debug\n',
    check: secretProblems,
    reports: /Secret holds LOG_LEVEL, which is not sensitive/,
  },
  {
    when: 'the Secret loses a sensitive key',
    file: 'secret.yaml',
    from: '  REDIS_URL:',
    to: '  # REDIS_URL:',
    check: secretProblems,
    reports: /sensitive REDIS_URL has no slot in the Secret/,
  },
  {
    when: 'a real-looking credential is committed',
    file: 'secret.yaml',
    from: 'ops_service:CHANGE_ME@postgres',
    to: 'ops_service:s3cret@postgres',
    check: secretProblems,
    reports: /DATABASE_URL is not a CHANGE_ME placeholder/,
  },
  {
    when: 'a ConfigMap number is not quoted',
    file: 'configmap.yaml',
    from: "PORT: '8080'",
    to: 'PORT: 8080',
    check: secretProblems,
    reports: /ConfigMap PORT is not a string/,
  },
  {
    when: 'the ConfigMap holds a value the schema refuses',
    file: 'configmap.yaml',
    from: 'LOG_LEVEL: info',
    to: 'LOG_LEVEL: verbose',
    check: configProblems,
    reports: /log.level = "verbose" \(from env LOG_LEVEL\)/,
  },
  {
    when: 'production loses its OTLP endpoint',
    file: 'configmap.yaml',
    from: 'OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector.observability.svc.cluster.local:4317',
    to: "OTEL_EXPORTER_OTLP_ENDPOINT: ''",
    check: configProblems,
    reports: /OTLP endpoint .* is required in production/,
  },
  {
    when: 'the drain budget no longer fits the hard stop',
    file: 'configmap.yaml',
    from: "SHUTDOWN_DRAIN_TIMEOUT_MS: '20000'",
    to: "SHUTDOWN_DRAIN_TIMEOUT_MS: '26000'",
    check: configProblems,
    reports: /must be less than the hard stop deadline/,
  },
  {
    when: 'production loses its issuer',
    file: 'configmap.yaml',
    from: '  AUTH_ISSUER: https://idp.example.com/\n',
    to: '',
    check: configProblems,
    reports: /AUTH_MODE=jwt needs AUTH_ISSUER/,
  },
  {
    when: 'production turns authentication off',
    file: 'configmap.yaml',
    from: 'AUTH_MODE: jwt',
    to: "AUTH_MODE: 'off'",
    check: configProblems,
    reports: /AUTH_MODE=off is only allowed with APP_ENV development or test/,
  },
  {
    when: 'the JWKS is fetched over plain http',
    file: 'configmap.yaml',
    from: 'AUTH_JWKS_URL: https://idp.example.com/',
    to: 'AUTH_JWKS_URL: http://idp.example.com/',
    check: authProblems,
    reports: /AUTH_JWKS_URL http:\/\/idp.example.com\/.well-known\/jwks.json is not https/,
  },
  {
    when: 'one JWKS fetch may outlast the startup budget',
    file: 'configmap.yaml',
    from: "  STARTUP_TIMEOUT_MS: '15000'\n",
    to: "  STARTUP_TIMEOUT_MS: '15000'\n  AUTH_JWKS_TIMEOUT_MS: '15000'\n",
    check: authProblems,
    reports: /AUTH_JWKS_TIMEOUT_MS \(15000 ms\) is not below STARTUP_TIMEOUT_MS/,
  },
  {
    when: 'the NetworkPolicy restricts egress without the JWKS port',
    file: 'networkpolicy.yaml',
    from: '    - Ingress\n',
    to: '    - Ingress\n    - Egress\n',
    check: authProblems,
    reports: /no egress rule reaches the JWKS port 443 \(idp.example.com\)/,
  },
  {
    when: 'the liveness probe asks /ready',
    file: 'deployment.yaml',
    from: 'livenessProbe:\n            httpGet:\n              path: /livez',
    to: 'livenessProbe:\n            httpGet:\n              path: /ready',
    check: probeProblems,
    reports: /livenessProbe asks \/ready/,
  },
  {
    when: 'the readiness probe asks /health',
    file: 'deployment.yaml',
    from: 'path: /ready\n',
    to: 'path: /health\n',
    check: probeProblems,
    reports: /readinessProbe asks \/health/,
  },
  {
    when: 'the readiness probe targets the ops port',
    file: 'deployment.yaml',
    from: 'path: /ready\n              port: http',
    to: 'path: /ready\n              port: ops',
    check: probeProblems,
    reports: /readinessProbe targets port 9464/,
  },
  {
    when: 'the startup probe gives up before STARTUP_TIMEOUT_MS',
    file: 'deployment.yaml',
    from: 'failureThreshold: 20',
    to: 'failureThreshold: 10',
    check: probeProblems,
    reports: /gives up after 10000 ms/,
  },
  {
    when: 'the grace period equals the hard stop',
    file: 'deployment.yaml',
    from: 'terminationGracePeriodSeconds: 35',
    to: 'terminationGracePeriodSeconds: 30',
    check: shutdownProblems,
    reports: /terminationGracePeriodSeconds 30 does not exceed the hard stop/,
  },
  {
    when: 'the hard stop is raised to just below the grace period',
    file: 'configmap.yaml',
    from: "SHUTDOWN_HARD_STOP_MS: '30000'",
    to: "SHUTDOWN_HARD_STOP_MS: '34000'",
    check: shutdownProblems,
    reports: /does not exceed the hard stop \(34000 ms\) by 2000 ms/,
  },
  {
    when: 'the delay is shorter than the readiness probe needs',
    file: 'configmap.yaml',
    from: "SHUTDOWN_DELAY_MS: '5000'",
    to: "SHUTDOWN_DELAY_MS: '2000'",
    check: shutdownProblems,
    reports: /SHUTDOWN_DELAY_MS 2000 < readiness/,
  },
  {
    when: 'the readiness probe is made slower than the delay covers',
    file: 'deployment.yaml',
    from: 'periodSeconds: 2\n            failureThreshold: 2',
    to: 'periodSeconds: 2\n            failureThreshold: 3',
    check: shutdownProblems,
    reports: /\(6000 ms\) \+ 1000 ms propagation/,
  },
  {
    when: 'a preStop sleep is added',
    file: 'deployment.yaml',
    from: `${CONTAINER_INDENT}envFrom:`,
    to: `${CONTAINER_INDENT}lifecycle:\n${CONTAINER_INDENT}  preStop:\n${CONTAINER_INDENT}    sleep:\n${CONTAINER_INDENT}      seconds: 5\n${CONTAINER_INDENT}envFrom:`,
    check: shutdownProblems,
    reports: /preStop hook/,
  },
  {
    when: 'the main container port disagrees with PORT',
    file: 'deployment.yaml',
    from: 'containerPort: 8080',
    to: 'containerPort: 8081',
    check: portProblems,
    reports: /container port http is 8081, PORT is 8080/,
  },
  {
    when: 'the ConfigMap moves the ops listener',
    file: 'configmap.yaml',
    from: "OPS_PORT: '9464'",
    to: "OPS_PORT: '9465'",
    check: portProblems,
    reports: /container port ops is 9464, OPS_PORT is 9465[\s\S]*prometheus.io\/port is 9464/,
  },
  {
    when: 'the ops listener binds loopback',
    file: 'configmap.yaml',
    from: 'OPS_HOST: 0.0.0.0',
    to: 'OPS_HOST: 127.0.0.1',
    check: portProblems,
    reports: /ops.host is 127.0.0.1/,
  },
  {
    when: 'the Service exposes the ops port',
    file: 'service.yaml',
    from: '      protocol: TCP\n',
    to: '      protocol: TCP\n    - name: metrics\n      port: 9464\n      targetPort: ops\n',
    check: portProblems,
    reports: /the Service exposes the ops port/,
  },
  {
    when: 'the Service selects other pods',
    file: 'service.yaml',
    from: 'selector:\n    app.kubernetes.io/name: ops-service',
    to: 'selector:\n    app.kubernetes.io/name: orders',
    check: portProblems,
    reports: /Service selector does not match/,
  },
  {
    when: 'the scrape annotation points at the main port',
    file: 'deployment.yaml',
    from: "prometheus.io/port: '9464'",
    to: "prometheus.io/port: '8080'",
    check: portProblems,
    reports: /prometheus.io\/port is 8080, expected 9464/,
  },
  {
    when: 'the ops rule admits an address block instead of Prometheus pods',
    file: 'networkpolicy.yaml',
    from: '        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: monitoring\n          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n',
    to: '        - ipBlock:\n            cidr: 0.0.0.0/0\n',
    check: networkPolicyProblems,
    reports: /opens the ops port \(9464\) beyond selected pods/,
  },
  {
    when: 'the main rule drops its port list and so admits every port',
    file: 'networkpolicy.yaml',
    from: '    - ports:\n        - port: http\n          protocol: TCP\n',
    to: '    - {}\n',
    check: networkPolicyProblems,
    reports: /opens the ops port \(9464\) to every source/,
  },
  {
    when: 'no rule reaches the ops port',
    file: 'networkpolicy.yaml',
    from: '        - port: ops',
    to: '        - port: 9999',
    check: networkPolicyProblems,
    reports: /no ingress rule lets Prometheus reach the ops port/,
  },
  {
    when: 'the NetworkPolicy selects other pods',
    file: 'networkpolicy.yaml',
    from: 'podSelector:\n    matchLabels:\n      app.kubernetes.io/name: ops-service',
    to: 'podSelector:\n    matchLabels:\n      app.kubernetes.io/name: orders',
    check: networkPolicyProblems,
    reports: /does not select the ops-service pods/,
  },
  {
    when: 'the pod runs as root',
    file: 'deployment.yaml',
    from: 'runAsUser: 1000',
    to: 'runAsUser: 0',
    check: securityProblems,
    reports: /runAsUser is 0/,
  },
  {
    when: 'the image user changes and the manifest does not follow',
    file: 'Dockerfile',
    from: 'USER node',
    to: 'USER 10001',
    check: securityProblems,
    reports: /runAsUser 1000 is not the image's USER 10001/,
  },
  {
    when: 'the root filesystem is writable',
    file: 'deployment.yaml',
    from: 'readOnlyRootFilesystem: true',
    to: 'readOnlyRootFilesystem: false',
    check: securityProblems,
    reports: /readOnlyRootFilesystem is not true/,
  },
  {
    when: 'privilege escalation is allowed',
    file: 'deployment.yaml',
    from: 'allowPrivilegeEscalation: false',
    to: 'allowPrivilegeEscalation: true',
    check: securityProblems,
    reports: /allowPrivilegeEscalation is not false/,
  },
  {
    when: 'only one capability is dropped',
    file: 'deployment.yaml',
    from: "drop: ['ALL']",
    to: "drop: ['NET_RAW']",
    check: securityProblems,
    reports: /capabilities drop NET_RAW, not ALL/,
  },
  {
    when: 'the pod seccomp profile is unconfined',
    file: 'deployment.yaml',
    from: 'seccompProfile:\n          type: RuntimeDefault',
    to: 'seccompProfile:\n          type: Unconfined',
    check: securityProblems,
    reports: /pod seccompProfile is Unconfined/,
  },
  {
    when: 'service links are left on',
    file: 'deployment.yaml',
    from: 'enableServiceLinks: false',
    to: 'enableServiceLinks: true',
    check: securityProblems,
    reports: /enableServiceLinks is not false/,
  },
  {
    when: 'the memory request is below the measured peak',
    file: 'deployment.yaml',
    from: 'memory: 256Mi',
    to: 'memory: 128Mi',
    check: resourceProblems,
    reports: /memory request 128Mi is below the measured peak RSS/,
  },
  {
    when: 'the memory limit leaves the V8 heap no room',
    file: 'deployment.yaml',
    from: 'memory: 512Mi',
    to: 'memory: 300Mi',
    check: resourceProblems,
    reports: /heap cap \(256 MiB\) is above 75% of the memory limit 300Mi/,
  },
  {
    when: 'the CPU limit goes',
    file: 'deployment.yaml',
    from: "cpu: '1'",
    to: '',
    check: resourceProblems,
    reports: /no cpu limit/,
  },
  {
    when: 'the container runs through a shell',
    file: 'deployment.yaml',
    from: "command: ['node', '--max-old-space-size=256', 'dist/main.js']",
    to: "command: ['sh', '-c', 'node --max-old-space-size=256 dist/main.js']",
    check: resourceProblems,
    reports: /expected the exec form/,
  },
  {
    when: 'the Deployment runs two replicas',
    file: 'deployment.yaml',
    from: 'replicas: 3',
    to: 'replicas: 2',
    check: availabilityProblems,
    reports: /2 replicas: expected at least 3[\s\S]*fewer than 2 would serve/,
  },
  {
    when: 'a rollout may take a pod away first',
    file: 'deployment.yaml',
    from: 'maxUnavailable: 0',
    to: 'maxUnavailable: 1',
    check: availabilityProblems,
    reports: /maxUnavailable 1: a rollout must never go below 3/,
  },
  {
    when: 'the pods are spread only across zones',
    file: 'deployment.yaml',
    from: 'topologyKey: kubernetes.io/hostname',
    to: 'topologyKey: topology.kubernetes.io/region',
    check: availabilityProblems,
    reports: /nothing spreads the pods across nodes/,
  },
  {
    when: 'the PodDisruptionBudget allows two evictions at once',
    file: 'poddisruptionbudget.yaml',
    from: 'maxUnavailable: 1',
    to: 'maxUnavailable: 2',
    check: availabilityProblems,
    reports: /lets 2 of 3 pods go at once/,
  },
  {
    when: 'the PodDisruptionBudget is minAvailable of every replica',
    file: 'poddisruptionbudget.yaml',
    from: 'maxUnavailable: 1',
    to: 'minAvailable: 3',
    check: availabilityProblems,
    reports: /allows no eviction/,
  },
  {
    when: 'the image uses latest',
    file: 'deployment.yaml',
    from: 'ops-service:0.1.0',
    to: 'ops-service:latest',
    check: imageProblems,
    reports: /uses latest/,
  },
  {
    when: 'the image loses its tag',
    file: 'deployment.yaml',
    from: 'ops-service:0.1.0',
    to: 'ops-service',
    check: imageProblems,
    reports: /is not pinned/,
  },
  {
    when: 'the PodMonitor scrapes the main port',
    file: 'monitoring/podmonitor.yaml',
    from: 'port: ops',
    to: 'port: http',
    check: monitoringProblems,
    reports: /scrapes port http, not the ops port/,
  },
  {
    when: 'the component leaves annotation scraping on',
    file: 'monitoring/scrape-annotations-off.yaml',
    from: "prometheus.io/scrape: 'false'",
    to: "prometheus.io/scrape: 'true'",
    check: monitoringProblems,
    reports: /every pod scraped twice/,
  },
];

function mutate(mutation: Mutation): Texts {
  if (mutation.file === 'Dockerfile') {
    return { ...texts, dockerfile: texts.dockerfile.replace(mutation.from, mutation.to) };
  }
  const original = texts.k8s[mutation.file] ?? '';
  return {
    ...texts,
    k8s: { ...texts.k8s, [mutation.file]: original.replace(mutation.from, mutation.to) },
  };
}

describe('each check can fail', () => {
  test.each(mutations.map((m) => [m.when, m] as const))(
    'when %s, then the check reports it',
    (_when, mutation) => {
      const original = mutation.file === 'Dockerfile' ? texts.dockerfile : texts.k8s[mutation.file];
      expect(original).toContain(mutation.from);
      expect(mutation.check(parseManifests(mutate(mutation))).join('\n')).toMatch(mutation.reports);
    },
  );

  test('when the NetworkPolicy restricts egress but lets https out, then the auth check passes', () => {
    const policy = texts.k8s['networkpolicy.yaml'] ?? '';
    expect(policy).toContain('    - Ingress\n');
    const withEgress = policy.replace(
      '    - Ingress\n',
      '    - Ingress\n    - Egress\n  egress:\n    - ports:\n        - port: 443\n          protocol: TCP\n',
    );
    const m = parseManifests({ ...texts, k8s: { ...texts.k8s, 'networkpolicy.yaml': withEgress } });
    expect(authProblems(m)).toEqual([]);
  });

  test('when a manifest file is added but not listed, then the kustomization check reports it', () => {
    const added = parseManifests({ ...texts, k8s: { ...texts.k8s, 'hpa.yaml': 'kind: X\n' } });
    expect(kustomizationProblems(added).join('\n')).toMatch(/hpa.yaml is not listed/);
  });

  test('when the schema renames an env variable the Secret sets, then the env check reports it', () => {
    const renamed = manifests.leaves.map((l) =>
      l.env === 'NATS_URL' ? { ...l, env: 'NATS_SERVERS' } : l,
    );
    expect(envNameProblems({ ...manifests, leaves: renamed }).join('\n')).toMatch(
      /the Secret sets NATS_URL/,
    );
  });

  test('when the schema makes a ConfigMap key sensitive, then the secret check reports it', () => {
    const marked = manifests.leaves.map((l) =>
      l.env === 'OTEL_EXPORTER_OTLP_ENDPOINT' ? { ...l, sensitive: true } : l,
    );
    expect(secretProblems({ ...manifests, leaves: marked }).join('\n')).toMatch(
      /ConfigMap holds OTEL_EXPORTER_OTLP_ENDPOINT, a sensitive key/,
    );
  });

  test('when the schema adds a sensitive key, then the secret check asks for a slot', () => {
    const added: SchemaLeaf = {
      key: 'auth.clientSecret',
      doc: '',
      format: 'non-empty-string',
      default: '',
      env: 'AUTH_CLIENT_SECRET',
      sensitive: true,
    };
    expect(
      secretProblems({ ...manifests, leaves: [...manifests.leaves, added] }).join('\n'),
    ).toMatch(/sensitive AUTH_CLIENT_SECRET has no slot/);
  });
});
