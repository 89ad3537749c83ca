import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { mintLocalToken } from '../src/auth/token.js';
import { localAuth } from '../src/config.js';
import { KilnClient, ExecutionDocument, SubmitJobDocument } from '@kiln/sdk';
import { parseArgs, positive } from './lib/args.js';
import { createDatabase } from './lib/pg.js';
import { ms, ratio, table, uptimeLine } from './lib/stats.js';
import { generatorCommand, generatorJob, lineLatencyMs, nowUs, type GeneratorShape } from './logs/generator.js';
import { cpuMs, rssMb, startKilnProcess, type KilnProcess } from './logs/processes.js';
import { Latencies, subscribe } from './logs/subscribers.js';

/**
 * `npm run bench -- logs`: the live log path end to end, on real processes (`kiln serve` and
 * `kiln worker`, each its own process), the real Docker engine and Postgres.
 *
 * 1. Latency: a step prints lines at --rate per second; one subscriber measures container line
 *    -> subscriber latency. Anchor: the same step in a bare container read straight from Docker's
 *    attach stream (the floor any log system on Docker starts from).
 * 2. Fan-out: --subscribers sockets follow one build; every subscriber must get every line once,
 *    in order; the API process's CPU and resident memory are read from /proc.
 */
const IMAGE = 'kiln-test/busybox:latest';
const SECRET = 'kiln-bench-secret-that-is-at-least-32-bytes-long';

const SPEC = {
  rate: { default: '10000', help: 'lines per second printed by the latency step' },
  seconds: { default: '5', help: 'how long the latency step prints' },
  subscribers: { default: '1000', help: 'sockets following the fan-out build' },
  'fanout-lines': { default: '1000', help: 'lines printed by the fan-out build' },
  'fanout-rate': { default: '50', help: 'lines per second of the fan-out build' },
  'api-heap-mb': { default: '256', help: 'V8 old-space limit of the API process (--max-old-space-size): memory must stay within it' },
};

interface Stack {
  api: KilnProcess;
  worker: KilnProcess;
  client: KilnClient;
  token: string;
}

async function runToEnd(client: KilnClient, executionId: string): Promise<string> {
  for (;;) {
    const { execution } = await client.request(ExecutionDocument, { id: executionId });
    if (execution && !['QUEUED', 'RUNNING'].includes(execution.status)) return execution.status;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Part 1, Kiln: one subscriber from the start of a build printing `shape`. It reads the raw
 * protocol (like the fan-out subscribers) so that the figure is the server's, not a client
 * library's.
 */
async function kilnLatency(stack: Stack, shape: GeneratorShape): Promise<{ latencies: Latencies; lines: number; inOrder: boolean; status: string }> {
  const { submitJob } = await stack.client.request(SubmitJobDocument, { spec: generatorJob('LatencyProbe', IMAGE, shape) });
  const executionId = submitJob.jobs[0]!.lastExecution!.id;
  const latencies = new Latencies();
  const sub = subscribe(stack.api.url!, stack.token, executionId, latencies);
  await sub.ready;
  const result = await sub.done;
  return { latencies, lines: latencies.count, inOrder: result.inOrder && result.completed, status: await runToEnd(stack.client, executionId) };
}

/** Part 1, anchor: the same step in a bare container, read from Docker's attach stream. */
async function dockerLatency(shape: GeneratorShape): Promise<Latencies> {
  const docker = new Dockerode();
  const container = await docker.createContainer({ Image: IMAGE, Cmd: ['sh', '-c', generatorCommand(shape)], HostConfig: { NetworkMode: 'none', AutoRemove: false } });
  const latencies = new Latencies();
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    let pending = '';
    const ended = new Promise<void>((resolve) => stream.on('end', resolve));
    const { PassThrough } = await import('node:stream');
    const out = new PassThrough();
    out.setEncoding('utf8').on('data', (chunk: string) => {
      const received = nowUs();
      const parts = (pending + chunk).split('\n');
      pending = parts.pop()!;
      for (const text of parts) {
        const latency = lineLatencyMs(text, received);
        if (latency !== null) latencies.add(latency);
      }
    });
    docker.modem.demuxStream(stream, out, new PassThrough());
    await container.start();
    await container.wait();
    await ended;
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
  return latencies;
}

/**
 * Part 2: `count` subscribers on their own sockets follow one build from its first line. The
 * execution is queued while no worker runs; the worker starts once every subscriber is in
 * place, so that the figures are those of live fan-out, not of connecting or replaying.
 */
async function fanOut(stack: Stack, count: number, shape: GeneratorShape, startWorker: () => Promise<KilnProcess>) {
  const rssIdle = rssMb(stack.api.pid);
  const { submitJob } = await stack.client.request(SubmitJobDocument, { spec: generatorJob('FanOut', IMAGE, shape) });
  const executionId = submitJob.jobs[0]!.lastExecution!.id;
  const latencies = new Latencies();
  const connectStart = Date.now();
  const connectCpu0 = cpuMs(stack.api.pid);
  const subs = [];
  // Connect in waves, as clients would arrive, rather than 1000 handshakes in one tick.
  for (let i = 0; i < count; i += 50) {
    const wave = Array.from({ length: Math.min(50, count - i) }, () => subscribe(stack.api.url!, stack.token, executionId, latencies));
    await Promise.all(wave.map((s) => s.ready));
    subs.push(...wave);
  }
  const connectedMs = Date.now() - connectStart;
  const connectCpuMs = cpuMs(stack.api.pid) - connectCpu0;
  const rssConnected = rssMb(stack.api.pid);
  const worker = await startWorker();
  const cpu0 = cpuMs(stack.api.pid);
  const t0 = Date.now();
  let rssPeak = rssConnected;
  const rssSeries: number[] = [];
  const sampler = setInterval(() => {
    const rss = rssMb(stack.api.pid);
    rssPeak = Math.max(rssPeak, rss);
    rssSeries.push(rss);
  }, 100);
  const results = await Promise.all(subs.map((s) => s.done));
  const elapsedMs = Date.now() - t0;
  clearInterval(sampler);
  const apiCpuMs = cpuMs(stack.api.pid) - cpu0;
  const status = await runToEnd(stack.client, executionId);
  await new Promise((r) => setTimeout(r, 1000));
  // Ten evenly spaced samples: a plateau, not a slope, is what bounded memory looks like.
  const rssOverTime = Array.from({ length: 10 }, (_, i) => rssSeries[Math.floor(((i + 1) * rssSeries.length) / 10) - 1] ?? NaN);
  return { worker, results, latencies, connectedMs, connectCpuMs, elapsedMs, apiCpuMs, rssIdle, rssConnected, rssPeak, rssOverTime, rssAfter: rssMb(stack.api.pid), status };
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv, SPEC);
  const rate = positive(args.rate, 'rate');
  const seconds = positive(args.seconds, 'seconds');
  const subscribers = Math.round(positive(args.subscribers, 'subscribers'));
  const fanoutLines = Math.round(positive(args['fanout-lines'], 'fanout-lines'));
  const fanoutRate = positive(args['fanout-rate'], 'fanout-rate');
  const latencyShape: GeneratorShape = { rate, total: Math.round(rate * seconds), burst: Math.max(1, Math.round(rate / 100)) };
  const fanoutShape: GeneratorShape = { rate: fanoutRate, total: fanoutLines, burst: Math.max(1, Math.round(fanoutRate / 100)) };

  await new Dockerode().getImage(IMAGE).inspect().catch(() => {
    throw new Error(`the image ${IMAGE} is missing: run scripts/build-test-images.sh`);
  });
  const db = await createDatabase('logs');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-logs-'));
  const apiHeapMb = Math.round(positive(args['api-heap-mb'], 'api-heap-mb'));
  const env = { DATABASE_URL: db.url, KILN_DATA_DIR: dataDir, KILN_JWT_SECRET: SECRET, KILN_DEFAULT_IMAGE: IMAGE, HOST: '127.0.0.1', PORT: '0', KILN_POLL_INTERVAL_MS: '200',
    // 1,000 subscribers of one user: the benchmark measures fan-out, not the per-user rate limit.
    KILN_RATE_LIMIT_RPS: '0' };
  let api: KilnProcess | null = null;
  let worker: KilnProcess | null = null;
  let client: KilnClient | null = null;
  try {
    api = await startKilnProcess('serve', { ...env, NODE_OPTIONS: `--max-old-space-size=${apiHeapMb}` });
    worker = await startKilnProcess('worker', env);
    const token = await mintLocalToken(localAuth(new TextEncoder().encode(SECRET)) as Extract<ReturnType<typeof localAuth>, { mode: 'local' }>, 'bench', 3600);
    client = new KilnClient({ url: api.url!, token });
    const stack: Stack = { api, worker, client, token };
    console.log(`kiln logs benchmark: ${cpus().length} cores, ${uptimeLine()}; kiln serve (pid ${api.pid}, V8 heap limit ${apiHeapMb} MiB) and kiln worker (pid ${worker.pid}), Docker, Postgres`);

    console.log(`\n1) container line -> subscriber latency, ${rate} lines/s for ${seconds} s (${latencyShape.total} lines in bursts of ${latencyShape.burst})`);
    const cpu0 = cpuMs(api.pid);
    const workerCpu0 = cpuMs(worker.pid);
    const wall0 = Date.now();
    const own0 = process.cpuUsage();
    const kiln = await kilnLatency(stack, latencyShape);
    const own = process.cpuUsage(own0);
    const latencyCpu = { apiMs: cpuMs(api.pid) - cpu0, wallMs: Date.now() - wall0, subscriberMs: (own.user + own.system) / 1000 };
    const anchor = await dockerLatency(latencyShape);
    const k = kiln.latencies.summary();
    const d = anchor.summary();
    console.log(
      table([
        ['path', 'lines', 'p50 ms', 'p99 ms', 'max ms'],
        ['kiln: container -> worker -> Postgres -> NOTIFY -> API -> graphql-ws subscriber', String(k.count), ms(k.p50), ms(k.p99), ms(k.max)],
        ['anchor: raw `docker run`, read from Docker attach', String(d.count), ms(d.p50), ms(d.p99), ms(d.max)],
        ['kiln / anchor', '', ratio(k.p50, d.p50), ratio(k.p99, d.p99), ratio(k.max, d.max)],
      ]),
    );
    console.log(`   execution ${kiln.status}; ${kiln.lines}/${latencyShape.total} lines delivered, every seq once and in order: ${kiln.inOrder ? 'yes' : 'NO'}; goal p99 <= 50 ms: ${k.p99 <= 50 ? 'met' : 'NOT met'}`);
    console.log(
      `   CPU meanwhile: API ${(latencyCpu.apiMs / 1000).toFixed(1)} s (${((latencyCpu.apiMs * 1000) / Math.max(1, kiln.lines)).toFixed(0)} us per line), ` +
        `worker ${((cpuMs(worker.pid) - workerCpu0) / 1000).toFixed(1)} s, subscriber ${(latencyCpu.subscriberMs / 1000).toFixed(1)} s, over ${(latencyCpu.wallMs / 1000).toFixed(1)} s`,
    );

    console.log(`\n2) fan-out: ${subscribers} subscribers follow one build of ${fanoutLines} lines at ${fanoutRate} lines/s`);
    // Part 2 queues its build with no worker running; a fresh worker starts once all are connected.
    await worker.stop();
    const f = await fanOut(stack, subscribers, fanoutShape, async () => (worker = await startKilnProcess('worker', env)));
    const chunks = new Set(f.results.map((r) => r.chunks));
    const everyLine = f.results.every((r) => r.completed && r.inOrder) && chunks.size === 1;
    const fl = f.latencies.summary();
    console.log(`   connected and subscribed ${subscribers} sockets in ${f.connectedMs} ms (API CPU ${(f.connectCpuMs / 1000).toFixed(1)} s); then the worker started: build ${f.status}, all subscriptions completed after ${f.elapsedMs} ms`);
    console.log(`   every subscriber received every line once, in order, and completed: ${everyLine ? 'yes' : 'NO'} (${[...chunks].join('/')} chunks each, ${f.results.length * [...chunks][0]!} messages)`);
    console.log(`   delivery latency over all subscribers: p50 ${ms(fl.p50)} ms, p99 ${ms(fl.p99)} ms, max ${ms(fl.max)} ms (${fl.count} samples)`);
    console.log(
      table([
        ['API process (kiln serve)', 'value'],
        ['CPU during the delivery', `${(f.apiCpuMs / 1000).toFixed(1)} s = ${(f.apiCpuMs / f.elapsedMs).toFixed(2)} cores`],
        ['messages delivered per second', `${Math.round((f.results.length * [...chunks][0]!) / (f.elapsedMs / 1000))}`],
        ['CPU per delivered message', `${((f.apiCpuMs * 1000) / Math.max(1, f.results.length * [...chunks][0]!)).toFixed(1)} us`],
        ['RSS before subscribers', `${f.rssIdle.toFixed(0)} MiB`],
        [`RSS with ${subscribers} connected`, `${f.rssConnected.toFixed(0)} MiB`],
        ['RSS peak during the delivery', `${f.rssPeak.toFixed(0)} MiB`],
        ['RSS at each tenth of the delivery', f.rssOverTime.map((v) => v.toFixed(0)).join(' ') + ' MiB'],
        ['RSS after', `${f.rssAfter.toFixed(0)} MiB`],
      ]),
    );
  } catch (err) {
    // A process that died says why in its log.
    for (const p of [api, worker]) if (p !== null) console.error(`--- last output of pid ${p.pid}:\n${p.output().slice(-3000)}`);
    throw err;
  } finally {
    await client?.close();
    await worker?.stop();
    await api?.stop();
    await db.drop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  }
}
