// The load generator: its own process, so its CPU time never lands in the server's accounting.
// A fixed number of GETs (of one path, or when the job has `ids` of the path followed by each id
// in turn), or of POSTs of a JSON body with a unique Idempotency-Key each, plus the job's extra
// headers if any, e.g. a bearer token, when the job has `post`, over `concurrency` keep-alive
// connections (one http.Agent), each of the `concurrency` loops sending its next request as soon
// as the previous one is answered.
//   warm-up (not measured) -> settle -> GET /bench/cpu -> measured load -> settle -> GET /bench/cpu
// Latency is per request, from http.get to the end of the response body (process.hrtime.bigint).
// The CPU_PATH calls are not counted. Started by bench/run.ts with the job as JSON in argv[2];
// the result goes back over IPC.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CPU_PATH,
  type CpuReport,
  exitWithParent,
  isCpuReport,
  isLoadJob,
  type LoadJob,
  type LoadResult,
} from './protocol';

interface PhaseOutcome {
  statuses: Record<string, number>;
  errors: number;
}

function get(agent: http.Agent, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.once('error', reject);
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.resume();
    });
    req.once('error', reject);
  });
}

function post(
  agent: http.Agent,
  port: number,
  path: string,
  body: Buffer,
  key: string,
  extra: Readonly<Record<string, string>> | undefined,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/json',
      'content-length': body.length,
      'idempotency-key': key,
    };
    if (extra !== undefined) Object.assign(headers, extra);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        headers,
      },
      (res) => {
        res.once('error', reject);
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.resume();
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

function getJson(agent: http.Agent, port: number, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    req.once('error', reject);
  });
}

async function readCpu(agent: http.Agent, port: number): Promise<CpuReport> {
  const body = await getJson(agent, port, CPU_PATH);
  if (!isCpuReport(body))
    throw new Error(`load: unexpected ${CPU_PATH} body ${JSON.stringify(body)}`);
  return body;
}

/**
 * One request of the job: a GET, or a POST with the key `<keyPrefix>-<tag><index>` and the spec's
 * extra headers.
 */
function sender(
  agent: http.Agent,
  job: LoadJob,
  tag: 'w' | 'm',
): (index: number) => Promise<number> {
  const spec = job.post;
  const { ids } = job;
  if (spec === undefined && ids !== undefined) {
    const paths = ids.map((id) => `${job.path}${id}`);
    return (index) => get(agent, job.port, paths[index % paths.length] ?? job.path);
  }
  if (spec === undefined) return () => get(agent, job.port, job.path);
  const body = Buffer.from(spec.body, 'utf8');
  const prefix = `${spec.keyPrefix}-${tag}`;
  return (index) => post(agent, job.port, job.path, body, `${prefix}${index}`, spec.headers);
}

/** Sends `total` requests over `job.concurrency` loops; latencies (ms) go into `latencies`. */
async function phase(
  agent: http.Agent,
  job: LoadJob,
  total: number,
  latencies: Float64Array | undefined,
): Promise<PhaseOutcome> {
  const outcome: PhaseOutcome = { statuses: {}, errors: 0 };
  const send = sender(agent, job, latencies === undefined ? 'w' : 'm');
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < total) {
      const index = next;
      next += 1;
      const startedAt = process.hrtime.bigint();
      try {
        const status = await send(index);
        if (latencies !== undefined) {
          latencies[index] = Number(process.hrtime.bigint() - startedAt) / 1e6;
        }
        outcome.statuses[status] = (outcome.statuses[status] ?? 0) + 1;
      } catch {
        outcome.errors += 1;
        if (latencies !== undefined) latencies[index] = Number.NaN;
      }
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, loop));
  return outcome;
}

/** Nearest-rank percentile of sorted values (NaN, the failed requests, sort last and are cut). */
function percentile(sorted: Float64Array, answered: number, p: number): number {
  if (answered === 0) return Number.NaN;
  const rank = Math.min(answered, Math.max(1, Math.ceil((p / 100) * answered)));
  return sorted[rank - 1] ?? Number.NaN;
}

async function main(job: LoadJob): Promise<void> {
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: job.concurrency,
    maxFreeSockets: job.concurrency,
  });
  await phase(agent, job, job.warmup, undefined);
  await sleep(job.settleMs);
  const before = await readCpu(agent, job.port);

  const latencies = new Float64Array(job.count);
  const startedAt = process.hrtime.bigint();
  const outcome = await phase(agent, job, job.count, latencies);
  const elapsedMs = Number(process.hrtime.bigint() - startedAt) / 1e6;

  await sleep(job.settleMs);
  const after = await readCpu(agent, job.port);
  agent.destroy();

  latencies.sort();
  const answered = job.count - outcome.errors;
  const result: LoadResult = {
    type: 'result',
    count: job.count,
    statuses: outcome.statuses,
    errors: outcome.errors,
    elapsedMs,
    p50Ms: percentile(latencies, answered, 50),
    p99Ms: percentile(latencies, answered, 99),
    before,
    after,
  };
  process.send?.(result, undefined, undefined, () => process.disconnect());
}

function parseJob(text: string | undefined): LoadJob {
  let job: unknown;
  try {
    job = JSON.parse(text ?? '') as unknown;
  } catch {
    job = undefined;
  }
  if (!isLoadJob(job)) {
    process.stderr.write(`load: expected a LoadJob as JSON in argv[2], got ${text}\n`);
    process.exit(2);
  }
  return job;
}

const job = parseJob(process.argv[2]);
exitWithParent(() => process.exit(2));
// Bounded whatever the server does: no response, a hung socket, a stalled settle.
const hardStop = setTimeout(() => {
  process.stderr.write(`load: hard timeout after ${job.timeoutMs} ms\n`);
  process.exit(3);
}, job.timeoutMs);
main(job).then(
  () => clearTimeout(hardStop),
  (error: unknown) => {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`load: ${text}\n`);
    process.exit(1);
  },
);
