// `npm run build && node dist/bench/rate-limit.js`: the CPU per request of the rate limit layer,
// variant by variant, in one run on this machine, printed as a markdown table (bench/README.md,
// "Rate limit layer"). Each variant is bench/rate-limit-server.ts, an Express 5 app with keepShapes
// serving GET /bench/noop, with the limit far above what a run sends (never a 429):
//   (0) no rate limiter (the baseline)
//   (1) express-rate-limit, standardHeaders 'draft-8', its MemoryStore
//   (2) express-rate-limit, standardHeaders 'draft-7', its MemoryStore
//   (3) the service's rateLimitMiddleware (its structured headers, SyncMemoryStore)
//   (4) the service's rateLimitMiddleware with RedisRateLimitStore on a real Redis
// Method as in run.ts: a fresh server child per run, the load generator (load.ts) in its own child,
// the server's process.cpuUsage() read over HTTP around the measured requests, divided by their
// number. BENCH_RATE_LIMIT_ROUNDS rounds, the variants in the listed order in odd rounds and
// reversed in even ones; each figure is the median over the rounds.
// Knobs (environment): BENCH_REQUESTS (20000), BENCH_WARMUP (2000), BENCH_RATE_LIMIT_ROUNDS (7),
// BENCH_RATE_LIMIT_VARIANTS ("01234"), BENCH_RATE_LIMIT_MAX (10000000 per 60 s),
// BENCH_REDIS_URL (redis://127.0.0.1:6379), BENCH_SERVER_NODE_OPTIONS (node flags for the servers).
// Redis: keys under a prefix of this run's own (ops-bench-rl-<random hex>:), deleted at the end,
// also on a failed run, on SIGINT/SIGTERM and on the overall timeout.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import Redis from 'ioredis';
import {
  checkStatuses,
  errorText,
  fixed,
  intFromEnv,
  killAll,
  runBenchEntry,
  markdownTable,
  type Measured,
  measuredOf,
  median,
  type RunningServer,
  runLoad,
  startServer,
  stopServer,
  within,
} from './harness';
import { isRateLimitStoreReport, NOOP_BODY, NOOP_PATH, RATE_LIMIT_STORE_PATH } from './protocol';

const REQUESTS = intFromEnv('BENCH_REQUESTS', 20_000);
const WARMUP = intFromEnv('BENCH_WARMUP', 2_000);
const ROUNDS = intFromEnv('BENCH_RATE_LIMIT_ROUNDS', 7);
const LIMIT = intFromEnv('BENCH_RATE_LIMIT_MAX', 10_000_000);
const WINDOW_MS = 60_000;
const WINDOW_SECONDS = Math.ceil(WINDOW_MS / 1000);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const CONCURRENCY = 50;
const SETTLE_MS = 100;
const LOAD_TIMEOUT_MS = 90_000;
/** One GET on a fresh connection (before and after the load). */
const PROBE_TIMEOUT_MS = 5_000;
/** One Redis step of the orchestrator (connect, INFO, SCAN, GET, DEL). */
const REDIS_TIMEOUT_MS = 5_000;
/** On an abnormal exit: how long deleting this run's Redis keys may take. */
const CLEANUP_TIMEOUT_MS = 5_000;
/** Hits on the limiter per server run: the GET before the load, warm-up, 2 CPU reads, load, GET after. */
const HITS_PER_RUN = 1 + WARMUP + 2 + REQUESTS + 1;
/** This run's Redis keys, and nothing else, start with this. */
const RUN_PREFIX = `ops-bench-rl-${randomBytes(4).toString('hex')}:`;

type VariantId = '0' | '1' | '2' | '3' | '4';
type HeaderForm = 'none' | 'draft-8' | 'draft-7' | 'service';

interface Variant {
  readonly id: VariantId;
  readonly label: string;
  readonly headers: HeaderForm;
  readonly redis: boolean;
}

const VARIANTS: readonly Variant[] = [
  { id: '0', label: '(0) no rate limiter', headers: 'none', redis: false },
  {
    id: '1',
    label: '(1) express-rate-limit draft-8, MemoryStore',
    headers: 'draft-8',
    redis: false,
  },
  {
    id: '2',
    label: '(2) express-rate-limit draft-7, MemoryStore',
    headers: 'draft-7',
    redis: false,
  },
  {
    id: '3',
    label: '(3) service rateLimitMiddleware, SyncMemoryStore',
    headers: 'service',
    redis: false,
  },
  {
    id: '4',
    label: '(4) service rateLimitMiddleware, RedisRateLimitStore',
    headers: 'service',
    redis: true,
  },
];

// ---------------------------------------------------------------------------------------------
// One GET on a fresh connection, with its headers and body (the checks before and after the load)

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

function getOnce(port: number, urlPath: string): Promise<Answer> {
  const answer = new Promise<Answer>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.once('error', reject);
    req.setTimeout(PROBE_TIMEOUT_MS, () => req.destroy(new Error('probe timeout')));
  });
  return within(answer, PROBE_TIMEOUT_MS + 1_000, `GET ${urlPath}`);
}

/** A header's single value (a repeated header is joined, and then fails the checks). */
function headerOf(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * What is wrong with GET /bench/noop's answer after `hits` hits of the one client key, if
 * anything: 200, NOOP_BODY, and the variant's rate limit headers with r = LIMIT - hits.
 */
function answerProblem(variant: Variant, answer: Answer, hits: number): string | undefined {
  if (answer.status !== 200) return `answered ${answer.status}: ${answer.body.slice(0, 200)}`;
  if (answer.body !== JSON.stringify(NOOP_BODY)) return `body ${answer.body.slice(0, 200)}`;
  const limit = headerOf(answer, 'ratelimit');
  const policy = headerOf(answer, 'ratelimit-policy');
  const legacy = Object.keys(answer.headers).filter((name) => name.startsWith('x-ratelimit'));
  if (legacy.length > 0) return `legacy headers ${legacy.join(', ')}`;
  if (variant.headers === 'none') {
    return limit === undefined && policy === undefined
      ? undefined
      : `rate limit headers without a limiter: ${limit} / ${policy}`;
  }
  const forms: Record<Exclude<HeaderForm, 'none'>, { limit: RegExp; policy: RegExp }> = {
    'draft-8': {
      limit: /^"[^"]+"; r=(\d+); t=(\d+)$/,
      policy: new RegExp(`^"[^"]+"; q=${LIMIT}; w=${WINDOW_SECONDS}; pk=:[A-Za-z0-9+/=]+:$`),
    },
    'draft-7': {
      limit: new RegExp(`^limit=${LIMIT}, remaining=(\\d+), reset=(\\d+)$`),
      policy: new RegExp(`^${LIMIT};w=${WINDOW_SECONDS}$`),
    },
    service: {
      limit: /^"default";r=(\d+);t=(\d+)$/,
      policy: new RegExp(`^"default";q=${LIMIT};w=${WINDOW_SECONDS}$`),
    },
  };
  const form = forms[variant.headers];
  const match = form.limit.exec(limit ?? '');
  if (match === null) return `RateLimit ${limit}`;
  if (!form.policy.test(policy ?? '')) return `RateLimit-Policy ${policy}`;
  const remaining = Number(match[1]);
  const seconds = Number(match[2]);
  if (remaining !== LIMIT - hits) {
    return `RateLimit remaining ${remaining} after ${hits} hits, expected ${LIMIT - hits}: ${limit}`;
  }
  if (seconds > WINDOW_SECONDS) return `RateLimit reset ${seconds} s > ${WINDOW_SECONDS} s`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Redis (variant 4): the orchestrator's own connection, to check the counts and delete the keys

let redis: Redis | undefined;

async function connectRedis(): Promise<Redis> {
  const client = new Redis(REDIS_URL, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: REDIS_TIMEOUT_MS,
    commandTimeout: REDIS_TIMEOUT_MS,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await within(client.connect(), REDIS_TIMEOUT_MS, `Redis ${REDIS_URL}`);
  } catch (error) {
    client.disconnect();
    throw error;
  }
  return client;
}

async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await within(
      client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000),
      REDIS_TIMEOUT_MS,
      'Redis SCAN',
    );
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  return keys;
}

/** Deletes every key of this run (RUN_PREFIX); returns how many there were. */
async function deleteRunKeys(client: Redis): Promise<number> {
  const keys = await keysUnder(client, RUN_PREFIX);
  if (keys.length > 0) await within(client.del(...keys), REDIS_TIMEOUT_MS, 'Redis DEL');
  return keys.length;
}

/** Redis's own CPU time so far (INFO cpu), in µs: not in the server's figure. */
async function redisCpuMicros(client: Redis): Promise<number> {
  const info = await within(client.info('cpu'), REDIS_TIMEOUT_MS, 'Redis INFO cpu');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1]);
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1e6;
}

// ---------------------------------------------------------------------------------------------
// One run: a fresh server, the checks, the load, the checks again

interface RunOutcome {
  readonly round: number;
  readonly measured: Measured;
  /** Variant 4: Redis's CPU µs per hit over the whole run (warm-up included). */
  readonly redisMicrosPerHit?: number;
}

async function runVariant(
  variant: Variant,
  round: number,
  problems: string[],
): Promise<RunOutcome> {
  const keyPrefix = `${RUN_PREFIX}r${round}:`;
  if (variant.redis && redis === undefined) throw new Error(`no Redis at ${REDIS_URL}`);
  const redisCpuBefore = variant.redis && redis !== undefined ? await redisCpuMicros(redis) : 0;
  let server: RunningServer | undefined;
  try {
    server = await startServer({
      entry: 'rate-limit-server.js',
      env: {
        // Nothing inherited but PATH.
        PATH: process.env.PATH,
        BENCH_RATE_LIMIT_VARIANT: variant.id,
        BENCH_RATE_LIMIT_MAX: String(LIMIT),
        BENCH_RATE_LIMIT_WINDOW_MS: String(WINDOW_MS),
        ...(variant.redis ? { BENCH_REDIS_URL: REDIS_URL, BENCH_REDIS_KEY_PREFIX: keyPrefix } : {}),
      },
      waitReady: false,
    });
    const before = answerProblem(variant, await getOnce(server.port, NOOP_PATH), 1);
    if (before !== undefined) throw new Error(`GET ${NOOP_PATH} before the load: ${before}`);
    const result = await runLoad({
      port: server.port,
      path: NOOP_PATH,
      warmup: WARMUP,
      count: REQUESTS,
      concurrency: CONCURRENCY,
      settleMs: SETTLE_MS,
      timeoutMs: LOAD_TIMEOUT_MS,
    });
    checkStatuses(`round ${round}, ${variant.label}`, result, 200, problems);
    // Every request went through the limiter, under the one client key.
    const after = answerProblem(variant, await getOnce(server.port, NOOP_PATH), HITS_PER_RUN);
    if (after !== undefined) {
      problems.push(`round ${round}, ${variant.label}: GET ${NOOP_PATH} after the load: ${after}`);
    }
    let redisMicrosPerHit: number | undefined;
    if (variant.redis && redis !== undefined) {
      await redisChecks(
        server.port,
        redis,
        keyPrefix,
        `round ${round}, ${variant.label}`,
        problems,
      );
      redisMicrosPerHit = ((await redisCpuMicros(redis)) - redisCpuBefore) / HITS_PER_RUN;
    }
    await stopServer(server);
    return {
      round,
      measured: measuredOf(result),
      ...(redisMicrosPerHit === undefined ? {} : { redisMicrosPerHit }),
    };
  } finally {
    if (server !== undefined) await stopServer(server);
  }
}

/** Every hit counted in Redis under one key (no request counted locally, no warn line). */
async function redisChecks(
  port: number,
  client: Redis,
  keyPrefix: string,
  what: string,
  problems: string[],
): Promise<void> {
  const answer = await getOnce(port, RATE_LIMIT_STORE_PATH);
  let report: unknown;
  try {
    report = JSON.parse(answer.body) as unknown;
  } catch {
    report = undefined;
  }
  if (!isRateLimitStoreReport(report)) {
    problems.push(`${what}: ${RATE_LIMIT_STORE_PATH} answered ${answer.body.slice(0, 200)}`);
  } else if (report.fallbacks > 0 || report.warnings.length > 0) {
    problems.push(
      `${what}: ${report.fallbacks} requests counted locally, not in Redis` +
        `${report.warnings.length > 0 ? `: ${report.warnings.join('; ').slice(0, 300)}` : ''}`,
    );
  }
  const keys = await keysUnder(client, keyPrefix);
  const counts = await Promise.all(
    keys.map((key) => within(client.get(key), REDIS_TIMEOUT_MS, 'Redis GET')),
  );
  if (keys.length !== 1 || Number(counts[0]) !== HITS_PER_RUN) {
    problems.push(
      `${what}: Redis keys ${JSON.stringify(keys)} hold ${JSON.stringify(counts)}, ` +
        `expected one key holding ${HITS_PER_RUN}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Rounds and the table

interface VariantRow {
  readonly variant: Variant;
  readonly runs: readonly RunOutcome[];
  /** CPU µs per request of each round, in round order. */
  readonly cpuByRound: readonly number[];
  readonly cpuMicrosPerRequest: number;
  readonly requestsPerSecond: number;
  readonly redisMicrosPerHit?: number;
}

function rowOf(variant: Variant, runs: readonly RunOutcome[]): VariantRow {
  const redisFigures = runs.flatMap((run) =>
    run.redisMicrosPerHit === undefined ? [] : [run.redisMicrosPerHit],
  );
  return {
    variant,
    runs,
    cpuByRound: runs.map((run) => run.measured.cpuMicrosPerRequest),
    cpuMicrosPerRequest: median(runs.map((run) => run.measured.cpuMicrosPerRequest)),
    requestsPerSecond: median(runs.map((run) => run.measured.requestsPerSecond)),
    ...(redisFigures.length === 0 ? {} : { redisMicrosPerHit: median(redisFigures) }),
  };
}

function table(rows: readonly VariantRow[]): string {
  const baseline = rows.find((row) => row.variant.id === '0')?.cpuMicrosPerRequest;
  const header = [
    'variant',
    'headers',
    'CPU µs/req (median)',
    'spread (min–max)',
    'increment over (0)',
    'req/s (median)',
    'CPU µs/req by round',
  ];
  const headerLabel: Record<HeaderForm, string> = {
    none: 'none',
    'draft-8': 'library draft-8',
    'draft-7': 'library draft-7',
    service: 'service structured',
  };
  const lines = rows.map((row) => {
    const increment =
      row.variant.id === '0'
        ? 'baseline'
        : baseline === undefined
          ? 'n/a'
          : `${row.cpuMicrosPerRequest >= baseline ? '+' : ''}${fixed(row.cpuMicrosPerRequest - baseline, 1)} µs`;
    return [
      row.variant.label,
      headerLabel[row.variant.headers],
      fixed(row.cpuMicrosPerRequest, 1),
      `${fixed(Math.min(...row.cpuByRound), 1)}–${fixed(Math.max(...row.cpuByRound), 1)}`,
      increment,
      fixed(row.requestsPerSecond, 0),
      Array.from({ length: ROUNDS }, (_, i) => {
        const run = row.runs.find((candidate) => candidate.round === i + 1);
        return run === undefined ? '–' : fixed(run.measured.cpuMicrosPerRequest, 1);
      }).join(' '),
    ];
  });
  return markdownTable(header, lines);
}

/**
 * Each variant's increment over (0) within the same round, round by round, and their median: a
 * second reading of the increment, less exposed to the machine drifting between rounds.
 */
function pairedIncrements(rows: readonly VariantRow[]): string[] {
  const baseline = rows.find((row) => row.variant.id === '0');
  if (baseline === undefined) return [];
  const byRound = new Map(
    baseline.runs.map((run) => [run.round, run.measured.cpuMicrosPerRequest]),
  );
  return rows
    .filter((row) => row !== baseline)
    .map((row) => {
      const increments = row.runs.flatMap((run) => {
        const base = byRound.get(run.round);
        return base === undefined ? [] : [run.measured.cpuMicrosPerRequest - base];
      });
      return (
        `${row.variant.label}: increment over (0) in the same round ` +
        `${increments.map((value) => fixed(value, 1)).join(' ')} µs, median ` +
        `${fixed(median(increments), 1)} µs`
      );
    });
}

async function main(): Promise<number> {
  const startedAt = performance.now();
  const only = process.env.BENCH_RATE_LIMIT_VARIANTS ?? '01234';
  const variants = VARIANTS.filter((variant) => only.includes(variant.id));
  if (variants.length === 0) throw new Error('BENCH_RATE_LIMIT_VARIANTS selects no variant (0-4)');
  if (HITS_PER_RUN >= LIMIT) {
    throw new Error(
      `BENCH_RATE_LIMIT_MAX (${LIMIT}) must exceed the ${HITS_PER_RUN} hits of a run`,
    );
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(
    `node ${process.version} | ${cpu.trim()} | ${os.cpus().length} cores | ` +
      `${new Date().toISOString()} | GET ${NOOP_PATH}, ${REQUESTS} requests per run after ` +
      `${WARMUP} warm-up, ${CONCURRENCY} keep-alive connections, one client key | limit ` +
      `${LIMIT} per ${WINDOW_SECONDS} s | ${ROUNDS} rounds, variant order alternating; ` +
      `figures are medians over rounds`,
  );
  console.log('');

  const notes: string[] = [];
  const problems: string[] = [];
  if (variants.some((variant) => variant.redis)) {
    try {
      redis = await connectRedis();
    } catch (error) {
      problems.push(`no Redis at ${REDIS_URL}: ${errorText(error)}`);
    }
  }
  const runs = new Map<VariantId, RunOutcome[]>(variants.map((variant) => [variant.id, []]));
  const excluded: string[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round += 1) {
      const order = round % 2 === 1 ? variants : [...variants].reverse();
      for (const variant of order) {
        if (variant.redis && redis === undefined) continue;
        try {
          const found = problems.length;
          const outcome = await runVariant(variant, round, problems);
          // A run whose checks failed (a status, the count, Redis not answering) did not measure
          // what its row claims: reported above, left out of the figures.
          if (problems.length === found) runs.get(variant.id)?.push(outcome);
          else excluded.push(`round ${round} of ${variant.label}`);
        } catch (error) {
          problems.push(`round ${round}, ${variant.label}: ${errorText(error)}`.trim());
        }
      }
    }
  } finally {
    if (redis !== undefined) {
      try {
        const deleted = await deleteRunKeys(redis);
        const left = await keysUnder(redis, RUN_PREFIX);
        notes.push(
          `Redis ${REDIS_URL}: ${deleted} key(s) under ${RUN_PREFIX} deleted at the end, ` +
            `${left.length} left`,
        );
        if (left.length > 0) problems.push(`Redis keys left: ${left.join(', ')}`);
      } catch (error) {
        problems.push(`Redis keys under ${RUN_PREFIX} not deleted: ${errorText(error)}`);
      }
      redis.disconnect();
      redis = undefined;
    }
  }

  const rows = variants.flatMap((variant) => {
    const measured = runs.get(variant.id) ?? [];
    return measured.length === 0 ? [] : [rowOf(variant, measured)];
  });
  console.log(table(rows));
  console.log('');
  notes.push(...pairedIncrements(rows));
  if (excluded.length > 0) {
    notes.push(`left out of the figures (see PROBLEM below): ${excluded.join(', ')}`);
  }
  const withRedis = rows.find((row) => row.redisMicrosPerHit !== undefined);
  if (withRedis?.redisMicrosPerHit !== undefined) {
    notes.push(
      `${withRedis.variant.label}: Redis's own CPU (INFO cpu, whole run with warm-up, any other ` +
        `client of that Redis included) ${fixed(withRedis.redisMicrosPerHit, 1)} µs per request, ` +
        `not in the server's figure`,
    );
  }
  notes.push(
    `every run: a fresh server, ${HITS_PER_RUN} hits of one client key checked in the ` +
      `rate limit headers after the load (and in Redis for (4)); every measured response a 200`,
  );
  for (const note of notes) console.log(`- ${note}`);
  for (const problem of problems) console.log(`- PROBLEM: ${problem}`);
  console.log(`- bench run: ${((performance.now() - startedAt) / 1000).toFixed(1)} s`);
  return problems.length === 0 ? 0 : 1;
}

/** Kills every child, deletes this run's Redis keys if connected (bounded), then exits. */
function abort(code: number): void {
  killAll();
  const client = redis;
  if (client === undefined) process.exit(code);
  within(deleteRunKeys(client), CLEANUP_TIMEOUT_MS, `deleting Redis keys under ${RUN_PREFIX}`).then(
    () => process.exit(code),
    (error: unknown) => {
      console.error(`bench: ${errorText(error)}`);
      process.exit(code);
    },
  );
}

/** A backstop: every step has its own deadline; a run takes well under a minute. */
const TOTAL_TIMEOUT_MS = 60_000 + ROUNDS * VARIANTS.length * 60_000;

runBenchEntry(main, { totalTimeoutMs: TOTAL_TIMEOUT_MS, abort });
