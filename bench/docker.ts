import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import S3rver from 's3rver';
import { mintLocalToken } from '../src/auth/token.js';
import { localAuth } from '../src/config.js';
import { logKeys } from '../src/logs/archive.js';
import { S3Store } from '../src/storage/s3.js';
import { parseArgs, positive } from './lib/args.js';
import { startKilnProcess } from './lib/kilnProcess.js';
import { benchPool, createDatabase } from './lib/pg.js';
import { ms, ratio, sleep, summarize, table, uptimeLine } from './lib/stats.js';

/**
 * `npm run bench -- docker`: the runner on the real Docker engine, Postgres and s3rver, with the
 * worker as its own process (`kiln worker`) and the API as another (`kiln serve`).
 *
 * 1. Latency: submit -> SUCCEEDED of a one-step `true` job, beside raw `docker run --rm <same
 *    image> true` timed the same way, runs alternating. Goal: ratio of medians <= 1.2.
 * 2. Log throughput: a step prints 1,000,000 lines; lines/s from the step's start to its end,
 *    every line checked in Postgres and in the archived log in S3; the worker's peak resident
 *    memory (VmHWM). Anchor: the same command in a bare `docker run`, its output only counted.
 *    Goals: Kiln's lines/s >= 0.5x docker run's, worker peak RSS < 300 MiB through the archive.
 *    The CPU time of the worker and of its database's Postgres backends is printed beside them:
 *    on a machine shared with others the wall times swing, the CPU a million lines costs less so.
 *
 * `--part log` runs part 2 alone; `--worker-node-options "--cpu-prof --cpu-prof-dir=DIR"`
 * profiles the worker.
 */
const IMAGE = 'kiln-test/busybox:latest';
const JWT_SECRET = 'kiln-bench-secret-that-is-at-least-32-bytes-long';
const GOAL_RATIO = 1.2;

const SPEC = {
  runs: { default: '10', help: 'measured runs of each side for the latency (after 2 warm-up runs each)' },
  lines: { default: '1000000', help: 'lines printed by the throughput step' },
  image: { default: IMAGE, help: 'image of both sides (must be present locally)' },
  'worker-heap': { default: '0', help: 'cap the worker\'s V8 heap at this many MiB (--max-old-space-size; 0 = node\'s default)' },
  part: { default: 'all', help: 'all | latency | log: run only the latency part or only the log throughput part' },
  'worker-node-options': { default: '', help: 'NODE_OPTIONS of the worker, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it' },
};
/** Goals of the log part: Kiln stores lines at >= this fraction of raw `docker run`'s read rate, ... */
const GOAL_LOG_RATIO = 0.5;
/** ... and the worker's peak resident memory stays under this, archive included (MiB). */
const GOAL_PEAK_RSS_MB = 300;


/** Peak and current resident memory of a process, in MiB (VmHWM, VmRSS). */
function memoryMb(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peak: kb('VmHWM') / 1024, now: kb('VmRSS') / 1024 };
}

/** CPU time (user + system) a process has used so far, in ms; 0 once it is gone. */
function cpuMs(pid: number): number {
  try {
    // Fields 14 and 15 of /proc/<pid>/stat, counted after the command name's closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/** CPU time of the Postgres backends connected to the benchmark's database (the worker's among them). */
async function postgresCpuMs(pool: pg.Pool, database: string): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ pid: number }>(`select pid from pg_stat_activity where datname = $1`, [database]);
  return new Map(rows.map((r) => [r.pid, cpuMs(r.pid)]));
}

/** Runs a command to its end; resolves with its wall time in ms and (optionally) its stdout line count. */
function timed(command: string, args: string[], countLines = false): Promise<{ ms: number; lines: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', countLines ? 'pipe' : 'ignore', 'pipe'] });
    let lines = 0;
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++;
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ ms: performance.now() - started, lines }) : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr}`))));
  });
}

interface Stack {
  pool: pg.Pool;
  database: string;
  apiUrl: string;
  token: string;
  workerPid: number;
  store: S3Store;
}

async function submit(stack: Stack, yaml: string): Promise<string> {
  const res = await fetch(`${stack.apiUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.token}` },
    body: JSON.stringify({ query: 'mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }', variables: { s: yaml } }),
  });
  const body = (await res.json()) as { data?: { submitJob: { jobs: Array<{ lastExecution: { id: string } }> } }; errors?: unknown };
  if (!body.data) throw new Error(`submitJob failed: ${JSON.stringify(body.errors)}`);
  return body.data.submitJob.jobs[0]!.lastExecution.id;
}

/** Polls the database (every 5 ms) until the execution is final; returns its row. */
async function finalRow(pool: pg.Pool, id: string, timeoutMs: number): Promise<{ status: string; error: string | null; started_at: Date; finished_at: Date; last_seq: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query(`select status, error, started_at, finished_at, last_seq from executions where id = $1`, [id]);
    if (rows[0] && !['QUEUED', 'RUNNING'].includes(rows[0].status)) return rows[0];
    if (Date.now() > deadline) throw new Error(`execution ${id} did not finish within ${timeoutMs} ms`);
    await sleep(5);
  }
}

const oneStep = (name: string, image: string, run: string) => `jobs:\n  - name: ${name}\n    image: ${image}\n    steps:\n      - run: ${JSON.stringify(run)}\n`;

/** Part 1: submit -> SUCCEEDED beside raw `docker run --rm`, alternating, warm-ups discarded. */
async function latency(stack: Stack, image: string, runs: number): Promise<{ kiln: number[]; raw: number[] }> {
  const kiln: number[] = [];
  const raw: number[] = [];
  for (let i = -2; i < runs; i++) {
    const started = performance.now();
    const id = await submit(stack, oneStep(`Latency${i + 3}`, image, 'true'));
    const row = await finalRow(stack.pool, id, 60_000);
    const kilnMs = performance.now() - started;
    if (row.status !== 'SUCCEEDED') throw new Error(`latency run ended ${row.status}: ${row.error}`);
    const rawMs = (await timed('docker', ['run', '--rm', '--network', 'none', image, 'true'])).ms;
    if (i >= 0) {
      kiln.push(kilnMs);
      raw.push(rawMs);
    }
  }
  return { kiln, raw };
}

/** Counts the lines of an archived object, streaming it. */
async function countArchived(store: S3Store, key: string, isBuildLine: (line: string) => boolean): Promise<{ lines: number; build: number; first: string; last: string }> {
  let rest = '';
  let lines = 0;
  let build = 0;
  let first = '';
  let last = '';
  for await (const chunk of await store.getStream(key)) {
    const parts = (rest + (chunk as Buffer).toString('utf8')).split('\n');
    rest = parts.pop()!;
    for (const line of parts) {
      lines++;
      if (!isBuildLine(line)) continue;
      build++;
      if (build === 1) first = line;
      last = line;
    }
  }
  return { lines, build, first, last };
}

/** Part 2: one step printing `lines` lines, all stored and archived; the worker's memory. */
async function throughput(stack: Stack, image: string, lines: number) {
  const before = memoryMb(stack.workerPid).now;
  const workerCpu0 = cpuMs(stack.workerPid);
  // Backends may come and go during the run (pools grow): the set is sampled as it runs.
  const pgCpu0 = await postgresCpuMs(stack.pool, stack.database);
  const pgCpu = new Map(pgCpu0);
  const pgSampler = setInterval(() => {
    void postgresCpuMs(stack.pool, stack.database).then((m) => {
      for (const [pid, ms] of m) if (ms > 0) pgCpu.set(pid, ms);
    }, () => undefined);
  }, 250);
  let sampledPeak = 0;
  const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, memoryMb(stack.workerPid).now)), 50);
  const submitted = performance.now();
  const id = await submit(stack, oneStep('Throughput', image, `seq 1 ${lines}`));
  const row = await finalRow(stack.pool, id, 600_000);
  const endToEndMs = performance.now() - submitted;
  clearInterval(sampler);
  let archivePeak = 0;
  const archiveSampler = setInterval(() => (archivePeak = Math.max(archivePeak, memoryMb(stack.workerPid).now)), 50);
  clearInterval(pgSampler);
  for (const [pid, ms] of await postgresCpuMs(stack.pool, stack.database)) if (ms > 0) pgCpu.set(pid, ms);
  const cpu = {
    worker: cpuMs(stack.workerPid) - workerCpu0,
    postgres: [...pgCpu].reduce((sum, [pid, ms]) => sum + ms - (pgCpu0.get(pid) ?? 0), 0),
  };
  if (row.status !== 'SUCCEEDED') throw new Error(`throughput run ended ${row.status}: ${row.error}`);
  const { rows: [step] } = await stack.pool.query(`select started_at from execution_steps where execution_id = $1 and index = 0`, [id]);
  // Until the status is recorded, which happens after the last line is stored.
  const stepMs = row.finished_at.getTime() - step.started_at.getTime();
  const { rows: [stored] } = await stack.pool.query(
    `select count(*) filter (where stream = 'STDOUT')::int as stdout, count(*)::int as total, max(seq) as max_seq,
            count(*) filter (where stream = 'STDOUT' and text <> (seq - first.s + 1)::text)::int as out_of_place
       from log_chunks, (select min(seq) as s from log_chunks where execution_id = $1 and stream = 'STDOUT') as first
      where execution_id = $1`,
    [id],
  );
  const archiveStarted = performance.now();
  for (;;) {
    const { rows } = await stack.pool.query(`select log_key from executions where id = $1`, [id]);
    if (rows[0].log_key) break;
    if (performance.now() - archiveStarted > 600_000) throw new Error('the log was not archived within 10 minutes');
    await sleep(50);
  }
  const archivedAfterMs = performance.now() - submitted;
  clearInterval(archiveSampler);
  const text = await countArchived(stack.store, logKeys(id).text, (l) => !l.startsWith('[kiln] '));
  const ndjson = await countArchived(stack.store, logKeys(id).ndjson, (l) => l.includes('"stream":"STDOUT"'));
  const rawRun = await timed('docker', ['run', '--rm', '--network', 'none', image, 'seq', '1', String(lines)], true);
  const memory = memoryMb(stack.workerPid);
  return { stepMs, endToEndMs, archivedAfterMs, stored, lastSeq: row.last_seq, text, ndjson, raw: rawRun, memory, sampledPeak, archivePeak, before, cpu };
}

/** Part 1, printed. */
async function reportLatency(stack: Stack, image: string, runs: number): Promise<void> {
  const lat = await latency(stack, image, runs);
  const k = summarize(lat.kiln);
  const r = summarize(lat.raw);
  const kMin = Math.min(...lat.kiln);
  const rMin = Math.min(...lat.raw);
  console.log(`## 1. submit -> SUCCEEDED of a one-step \`true\` job (${runs} runs each, alternating, after 2 warm-ups)\n`);
  console.log(table([
    ['', 'min ms', 'p50 ms', 'p99 ms', 'max ms'],
    ['Kiln (GraphQL submit -> SUCCEEDED)', ms(kMin), ms(k.p50), ms(k.p99), ms(k.max)],
    [`docker run --rm --network none ${image} true`, ms(rMin), ms(r.p50), ms(r.p99), ms(r.max)],
    ['ratio Kiln / docker run', ratio(kMin, rMin), ratio(k.p50, r.p50), ratio(k.p99, r.p99), ratio(k.max, r.max)],
  ]));
  const p50Ratio = k.p50 / r.p50;
  console.log(`\ngoal: p50 ratio <= ${GOAL_RATIO} -> ${p50Ratio.toFixed(2)} ${p50Ratio <= GOAL_RATIO ? 'MET' : 'NOT MET'}\n`);
}

/** Part 2, printed; false when a line was lost or not archived. */
async function reportLog(stack: Stack, image: string, lines: number): Promise<boolean> {
  const t = await throughput(stack, image, lines);
  const allStored = t.stored.stdout === lines && t.stored.out_of_place === 0 && t.stored.max_seq === t.stored.total && t.stored.total === t.lastSeq;
  const allArchived = t.text.build === lines && t.text.first === '1' && t.text.last === String(lines) && t.ndjson.lines === t.lastSeq && t.ndjson.build === lines;
  const kilnRate = lines / (t.stepMs / 1000);
  const rawRate = t.raw.lines / (t.raw.ms / 1000);
  console.log(`## 2. log throughput: one step printing ${lines.toLocaleString('en')} lines (\`seq 1 ${lines}\`)\n`);
  console.log(table([
    ['', 'wall ms', 'lines/s'],
    ['Kiln: step start -> every line stored in Postgres', ms(t.stepMs), Math.round(kilnRate).toLocaleString('en')],
    ['Kiln: submit -> SUCCEEDED', ms(t.endToEndMs), Math.round(lines / (t.endToEndMs / 1000)).toLocaleString('en')],
    ['Kiln: submit -> log archived in S3', ms(t.archivedAfterMs), Math.round(lines / (t.archivedAfterMs / 1000)).toLocaleString('en')],
    [`docker run --rm (output counted, nothing stored)`, ms(t.raw.ms), Math.round(rawRate).toLocaleString('en')],
  ]));
  console.log(`\nstored: ${t.stored.stdout.toLocaleString('en')} STDOUT lines in order, ${t.stored.total.toLocaleString('en')} lines in all, seq 1..${t.stored.max_seq} gapless, last_seq ${t.lastSeq} -> ${allStored ? 'none lost' : 'LOST OR OUT OF ORDER'}`);
  console.log(`archived: log.txt ${t.text.build.toLocaleString('en')} build lines (${t.text.first}..${t.text.last}), log.ndjson ${t.ndjson.lines.toLocaleString('en')} lines -> ${allArchived ? 'all archived' : 'INCOMPLETE'}`);
  console.log(`CPU from submit to SUCCEEDED: worker ${ms(t.cpu.worker)} ms, its database's Postgres backends ${ms(t.cpu.postgres)} ms`);
  console.log(
    `worker process memory (RSS): ${t.before.toFixed(0)} MiB before the run, highest sampled while it ran ${t.sampledPeak.toFixed(0)} MiB and while it archived ${t.archivePeak.toFixed(0)} MiB, ` +
      `peak over the whole process life (VmHWM, archive included) ${t.memory.peak.toFixed(0)} MiB, ${t.memory.now.toFixed(0)} MiB now`,
  );
  const logRatio = kilnRate / rawRate;
  console.log(`\ngoal: lines/s ratio Kiln / docker run >= ${GOAL_LOG_RATIO} -> ${logRatio.toFixed(2)} ${logRatio >= GOAL_LOG_RATIO ? 'MET' : 'NOT MET'}`);
  console.log(`goal: worker peak RSS < ${GOAL_PEAK_RSS_MB} MiB -> ${t.memory.peak.toFixed(0)} ${t.memory.peak < GOAL_PEAK_RSS_MB ? 'MET' : 'NOT MET'}`);
  return allStored && allArchived;
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, SPEC);
  if (!['all', 'latency', 'log'].includes(a.part)) throw new Error(`--part: all, latency or log, got "${a.part}"`);
  const runs = Math.round(positive(a.runs, 'runs'));
  const lines = Math.round(positive(a.lines, 'lines'));
  const image = a.image;
  await timed('docker', ['image', 'inspect', image]).catch(() => {
    throw new Error(`image ${image} is not present locally: run scripts/build-test-images.sh`);
  });

  console.log(`# Kiln docker benchmark — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s), ${uptimeLine()} at start (other engineers' tests may share the machine)`);
  console.log(`image ${image}; worker = \`kiln worker\` (own process), API = \`kiln serve\` (own process), Postgres 127.0.0.1:5432, s3rver on 127.0.0.1\n`);

  const db = await createDatabase('docker');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-docker-'));
  const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: path.join(dataDir, 's3'), configureBuckets: [{ name: 'kiln-bench', configs: [] }] });
  const { port } = await s3.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const env = {
    DATABASE_URL: db.url,
    KILN_DATA_DIR: dataDir,
    KILN_JWT_SECRET: JWT_SECRET,
    KILN_SECRETS_KEY: Buffer.alloc(32, 9).toString('base64'),
    KILN_DEFAULT_IMAGE: image,
    S3_BUCKET: 'kiln-bench',
    S3_ENDPOINT: endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
  };
  const store = new S3Store({ bucket: 'kiln-bench', endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const pool = benchPool(db.url, 2);
  const processes: Array<{ stop(): Promise<void> }> = [];
  try {
    const api = await startKilnProcess('serve', { ...env, PORT: '0', HOST: '127.0.0.1' });
    processes.push(api);
    const heapMb = Math.round(Number(a['worker-heap']));
    const worker = await startKilnProcess('worker', {
      ...env, KILN_WORKER_ID: 'bench-worker', KILN_WORKER_CONCURRENCY: '2',
      ...(heapMb > 0 || a['worker-node-options'] ? { NODE_OPTIONS: [heapMb > 0 ? `--max-old-space-size=${heapMb}` : '', a['worker-node-options']].join(' ').trim() } : {}),
    });
    if (a['worker-node-options']) console.log(`worker NODE_OPTIONS: ${a['worker-node-options']}\n`);
    if (heapMb > 0) console.log(`worker heap capped at ${heapMb} MiB (--max-old-space-size)\n`);
    processes.push(worker);
    const auth = localAuth(new TextEncoder().encode(JWT_SECRET));
    const token = await mintLocalToken(auth as Extract<typeof auth, { mode: 'local' }>, 'bench', 3600);
    const stack: Stack = { pool, database: db.name, apiUrl: api.url!, token, workerPid: worker.child.pid!, store };

    if (a.part === 'all' || a.part === 'latency') await reportLatency(stack, image, runs);
    if (a.part === 'all' || a.part === 'log') {
      if (!(await reportLog(stack, image, lines))) process.exitCode = 1;
    }
    console.log(`\n${uptimeLine()} at end`);
  } finally {
    for (const p of processes.reverse()) await p.stop().catch(() => undefined);
    await pool.end().catch(() => undefined);
    store.close();
    await s3.close().catch(() => undefined);
    await db.drop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
}
