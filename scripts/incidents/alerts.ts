// Which alerts of deploy/prometheus/rules a drill sets off, evaluated by a real Prometheus
// (Debian's `prometheus`, as in test/deploy/prometheus-scrape.process.test.ts): the repository's
// scrape config pointed at the drill's ops listener, 1 s scrape and evaluation intervals, the
// repository's rule files unchanged (their `for:` too), and /api/v1/alerts polled during the run.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parse as parseYaml } from 'yaml';
import {
  type Alert,
  api,
  eventually,
  JOB,
  PROMETHEUS_CONFIG,
  type Prometheus,
  query,
  type RuleInfo,
  startPrometheus,
  testConfig,
} from './kit/prometheus';
import { tempDir } from './kit/temp-dir';

const RULES_DIR = path.join(path.dirname(PROMETHEUS_CONFIG), 'rules');
const POLL_EVERY_MS = 500;

export interface AlertRule {
  readonly name: string;
  readonly severity: string;
  /** The rule's `for:` as written (`0s` when it has none: it fires at its first evaluation). */
  readonly for: string;
  readonly runbookUrl: string;
  readonly expr: string;
}

/** Series a drill cannot produce: kube-state-metrics' (the pod's restarts, exit codes). */
export function outsideDrill(rule: AlertRule): boolean {
  return /\bkube_\w+/.test(rule.expr);
}

/** Every alerting rule of deploy/prometheus/rules, in file order. */
export function alertRules(): AlertRule[] {
  const rules: AlertRule[] = [];
  for (const file of readdirSync(RULES_DIR)
    .filter((f) => f.endsWith('.rules.yml'))
    .sort()) {
    const doc = parseYaml(readFileSync(path.join(RULES_DIR, file), 'utf8')) as {
      groups?: {
        rules?: {
          alert?: string;
          expr?: string;
          for?: string;
          labels?: Record<string, string>;
          annotations?: Record<string, string>;
        }[];
      }[];
    };
    for (const group of doc.groups ?? []) {
      for (const rule of group.rules ?? []) {
        if (rule.alert === undefined) continue;
        rules.push({
          name: rule.alert,
          severity: rule.labels?.severity ?? '',
          for: rule.for ?? '0s',
          runbookUrl: rule.annotations?.runbook_url ?? '',
          expr: rule.expr ?? '',
        });
      }
    }
  }
  return rules;
}

export type AlertState = 'pending' | 'firing';

/** One poll of /api/v1/alerts: the state of each active alert (the worst of its series). */
export interface AlertPoll {
  readonly at: number;
  readonly phase: string;
  readonly states: ReadonlyMap<string, AlertState>;
}

export interface AlertWatch {
  readonly version: string;
  readonly polls: readonly AlertPoll[];
  /** Resolves once the target is scraped as up and every rule has been evaluated. */
  ready(): Promise<void>;
  stop(): Promise<void>;
}

export async function startAlertWatch(
  opsPort: number,
  phaseNow: () => string,
): Promise<AlertWatch> {
  const dir = tempDir('ops-service-incident-prometheus-');
  let prometheus: Prometheus;
  try {
    prometheus = await startPrometheus(dir, testConfig(`127.0.0.1:${opsPort}`));
  } catch (error) {
    dir.remove();
    throw error;
  }
  const port = prometheus.port;
  const build = await api<{ version?: string }>(port, 'status/buildinfo').catch(() => ({
    version: undefined,
  }));
  const polls: AlertPoll[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      const answer = await api<{ alerts: Alert[] }>(port, 'alerts').catch(() => undefined);
      if (answer !== undefined) {
        const states = new Map<string, AlertState>();
        for (const alert of answer.alerts) {
          const name = alert.labels.alertname ?? '';
          const state = alert.state === 'firing' ? 'firing' : 'pending';
          if (states.get(name) !== 'firing') states.set(name, state);
        }
        polls.push({ at, phase: phaseNow(), states });
      }
      await delay(Math.max(0, POLL_EVERY_MS - (Date.now() - at)));
    }
  })();
  return {
    version: build.version ?? 'unknown',
    polls,
    async ready() {
      await eventually('the service to be scraped as up', async () => {
        const up = await query(port, `up{job="${JOB}"}`);
        return up[0]?.value[1] === '1' ? true : undefined;
      });
      await eventually('every rule to be evaluated', async () => {
        const groups = await api<{
          groups: { rules: (RuleInfo & { lastEvaluation?: string })[] }[];
        }>(port, 'rules');
        const rules = groups.groups.flatMap((g) => g.rules);
        return rules.length > 0 &&
          rules.every((r) => r.health === 'ok' && !String(r.lastEvaluation).startsWith('0001'))
          ? true
          : undefined;
      });
    },
    async stop() {
      running = false;
      await loop;
      await prometheus.stop();
      dir.remove();
    },
  };
}
