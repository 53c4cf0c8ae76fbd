// Every resource kustomize would apply from deploy/k8s (the base and the monitoring component)
// is validated against the Kubernetes OpenAPI schemas that kubernetes-models ships (generated from
// Kubernetes 1.33's API, compiled ajv validators, nothing fetched at run time): types, required
// fields, enums and formats. These schemas do not forbid unknown fields (neither does the API
// server's OpenAPI), so a misspelled optional field still passes: k8s-manifests.test.ts checks
// the fields that matter by name.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const K8S = path.resolve(__dirname, '..', '..', 'deploy', 'k8s');

/** A model class: built from the parsed object (typed as its props), then validated. */
type Model<T> = new (props: T) => { validate(): void };

function check<T>(model: Model<T>): (body: unknown) => void {
  return (body) => new model(body as T).validate();
}

/** apiVersion/kind -> a validator that throws what is wrong. */
const MODELS: Readonly<Record<string, (body: unknown) => void>> = {
  'v1/ConfigMap': check(ConfigMap),
  'v1/Secret': check(Secret),
  'v1/Service': check(Service),
  'apps/v1/Deployment': check(Deployment),
  'policy/v1/PodDisruptionBudget': check(PodDisruptionBudget),
  'networking.k8s.io/v1/NetworkPolicy': check(NetworkPolicy),
  'monitoring.coreos.com/v1/PodMonitor': check(PodMonitor),
};

interface Doc {
  readonly file: string;
  readonly body: Record<string, unknown>;
}

/** The resources (not the patches) a kustomization file lists, parsed. */
function resourcesOf(kustomization: string): string[] {
  const parsed = parseYaml(readFileSync(path.join(K8S, kustomization), 'utf8')) as {
    resources?: string[];
  };
  return (parsed.resources ?? []).map((file) => path.join(path.dirname(kustomization), file));
}

function read(file: string): Doc[] {
  return parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8')).map((document) => ({
    file,
    body: document.toJS() as Record<string, unknown>,
  }));
}

function schemaProblems(doc: Doc): string[] {
  const key = `${String(doc.body.apiVersion)}/${String(doc.body.kind)}`;
  const validate = MODELS[key];
  if (validate === undefined) return [`${doc.file}: no schema for ${key} here: add its model`];
  try {
    validate(doc.body);
    return [];
  } catch (error) {
    return [`${doc.file} (${key}): ${(error as Error).message}`];
  }
}

const docs = [
  ...resourcesOf('kustomization.yaml'),
  ...resourcesOf('monitoring/kustomization.yaml'),
].flatMap(read);

describe('the Kubernetes manifests are valid API objects', () => {
  test.each(docs.map((doc) => [`${doc.file} ${String(doc.body.kind)}`, doc] as const))(
    'when %s is validated against its OpenAPI schema, then it passes',
    (_name, doc) => {
      expect(schemaProblems(doc)).toEqual([]);
    },
  );
});

describe('the schema check can fail', () => {
  const deployment = docs.find((doc) => doc.body.kind === 'Deployment');
  const pdb = docs.find((doc) => doc.body.kind === 'PodDisruptionBudget');
  const configMap = docs.find((doc) => doc.body.kind === 'ConfigMap');
  /** A copy of the resource with the value at `at` replaced (undefined: removed). */
  const broken = (doc: Doc | undefined, at: readonly (string | number)[], value: unknown): Doc => {
    if (doc === undefined) throw new Error('resource missing');
    const body = structuredClone(doc.body);
    const parent = at
      .slice(0, -1)
      .reduce<Record<string | number, unknown>>(
        (node, step) => node[step] as Record<string | number, unknown>,
        body,
      );
    const last = at[at.length - 1] ?? '';
    if (value === undefined) delete parent[last];
    else parent[last] = value;
    return { ...doc, body };
  };
  const container = ['spec', 'template', 'spec', 'containers', 0];
  const cases: readonly [string, Doc, RegExp][] = [
    [
      'replicas is a string',
      broken(deployment, ['spec', 'replicas'], 'three'),
      /replicas must be integer/,
    ],
    [
      'a container port is a string',
      broken(deployment, [...container, 'ports', 0, 'containerPort'], '8080'),
      /containerPort must be integer/,
    ],
    [
      'a container has no name',
      broken(deployment, [...container, 'name'], undefined),
      /must have required property name/,
    ],
    [
      'a spread constraint uses an unknown policy',
      broken(
        deployment,
        ['spec', 'template', 'spec', 'topologySpreadConstraints', 0, 'whenUnsatisfiable'],
        'Sometimes',
      ),
      /whenUnsatisfiable must be equal to one of the allowed values/,
    ],
    [
      'the PDB eviction policy is misspelled',
      broken(pdb, ['spec', 'unhealthyPodEvictionPolicy'], 'Always'),
      /unhealthyPodEvictionPolicy must be equal to one of the allowed values/,
    ],
    [
      'a ConfigMap value is a number',
      broken(configMap, ['data', 'PORT'], 8080),
      /PORT must be string/,
    ],
    [
      'a kind has no model',
      { file: 'x.yaml', body: { apiVersion: 'v1', kind: 'Pod' } },
      /no schema for v1\/Pod/,
    ],
  ];

  test.each(cases)('when %s, then the schema check reports it', (_when, doc, reports) => {
    expect(schemaProblems(doc).join('\n')).toMatch(reports);
  });
});
