import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { mintLocalToken } from '../src/auth/token.js';
import { localAuth } from '../src/config.js';
import type { JobSpec } from '../src/jobfile/types.js';
import { KilnClient } from '@kiln/sdk';
import { ExecutionDocument, SubmitJobDocument } from '@kiln/sdk';
import { parseArgs, positive } from './lib/args.js';
import { startKilnProcess, type KilnProcess } from './lib/kilnProcess.js';
import { benchPool, createDatabase } from './lib/pg.js';
import { ms, percentile, table, uptimeLine } from './lib/stats.js';
import { generatorJob, lineLatencyMs, type GeneratorShape } from './logs/generator.js';
import { Latencies, subscribe } from './logs/subscribers.js';
import { manyJobs, seedRuns } from './web/seed.js';

/**
 * `npm run bench -- web`: the web app in headless Chromium against `kiln start` (API and worker in
 * one process, its own), Postgres and Docker.
 *
 * 1. Board: --jobs jobs of one user, each with 20 finished runs and a ledger; --loads fresh
 *    browser contexts (cold cache) load `/`; measured in the page from navigation start to the
 *    first rows drawn, and to a usable board (every job drawn, the page no longer busy).
 * 2. Live line: a one-off build prints stamped lines (bench/logs/generator.ts) while its build
 *    page is open and a raw graphql-ws subscriber follows the same build; each line's latency
 *    from the container's clock to the page's DOM (a `.log-line .log-text` element of the build page's
 *    log view, seen by a MutationObserver) beside its latency to the raw subscriber.
 *
 * Chromium: Debian's package, offline flags as in test/helpers/browser.ts (a bench must not
 * import test code: `npm run build` compiles bench/ alone).
 */
const IMAGE = 'kiln-test/busybox:latest';
const SECRET = 'kiln-bench-secret-that-is-at-least-32-bytes-long';
const OWNER = 'bench';
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const SPEC = {
  jobs: { default: '1000', help: 'jobs on the board' },
  runs: { default: '20', help: 'finished runs per job' },
  loads: { default: '10', help: 'cold loads of the board' },
  lines: { default: '200', help: 'stamped lines of the live build' },
  rate: { default: '20', help: 'lines per second of the live build' },
};

/** Runs in the page before its scripts: records each log line's text element (LogViewer's `.log-line .log-text`) added, with when (epoch us). */
const OBSERVE_LINES = `(() => {
  const seen = (window.__kilnLines = []);
  new MutationObserver((records) => {
    const at = (performance.timeOrigin + performance.now()) * 1000;
    for (const r of records) for (const node of r.addedNodes) {
      if (node.nodeType !== 1) continue;
      if (node.matches('.log-line .log-text')) seen.push([node.textContent, at]);
      for (const inner of node.querySelectorAll('.log-line .log-text')) seen.push([inner.textContent, at]);
    }
  }).observe(document, { childList: true, subtree: true });
})();`;

declare const document: { querySelectorAll(s: string): { length: number }; querySelector(s: string): { getAttribute(n: string): string | null } | null };
declare const performance: { now(): number; timeOrigin: number };

async function signedIn(browser: Browser, url: string, token: string): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  await context.route('**/*', (route) => (route.request().url().startsWith(url) ? route.continue() : route.abort()));
  const res = await context.request.post(`${url}/api/v1/session`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status() !== 204) throw new Error(`POST /api/v1/session answered ${res.status()}: ${await res.text()}`);
  return context;
}

/** Part 1: cold loads of the board; ms from navigation start, measured by the page's own clock. */
async function boardLoads(browser: Browser, url: string, token: string, jobs: number, loads: number) {
  const firstRows: number[] = [];
  const usable: number[] = [];
  for (let i = 0; i < loads; i++) {
    const context = await signedIn(browser, url, token);
    const page = await context.newPage();
    await page.goto(`${url}/`, { waitUntil: 'commit' });
    firstRows.push(await (await page.waitForFunction(() => document.querySelectorAll('[data-testid=board] > li').length > 0 && performance.now(), null, { polling: 'raf', timeout: 120_000 })).jsonValue() as number);
    const ready = await page.waitForFunction(
      (n) => document.querySelectorAll('[data-testid=board] > li').length === n && document.querySelector('main')?.getAttribute('aria-busy') === 'false' && performance.now(),
      jobs,
      { polling: 'raf', timeout: 120_000 },
    );
    usable.push((await ready.jsonValue()) as number);
    await context.close();
  }
  const summary = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted[sorted.length - 1] ?? Number.NaN };
  };
  return { firstRows: summary(firstRows), usable: summary(usable) };
}

/** Part 2: one build's lines to its build page and to a raw subscriber. */
async function liveLine(browser: Browser, url: string, token: string, shape: GeneratorShape) {
  const client = new KilnClient({ url, token });
  const { submitJob } = await client.request(SubmitJobDocument, { spec: generatorJob('WebLatency', IMAGE, shape) });
  const executionId = submitJob.jobs[0]!.lastExecution!.id;
  const raw = new Latencies();
  const sub = subscribe(url, token, executionId, raw);
  const context = await signedIn(browser, url, token);
  // Before the page's own scripts: every log line element added to the DOM, with the time it appeared.
  await context.addInitScript({ content: OBSERVE_LINES });
  const page = await context.newPage();
  await page.goto(`${url}/executions/${executionId}`);
  await sub.ready;
  const result = await sub.done;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { execution } = await client.request(ExecutionDocument, { id: executionId });
    if (execution && !['QUEUED', 'RUNNING'].includes(execution.status)) break;
    if (Date.now() > deadline) throw new Error('the live build did not finish within 120 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const seen = (await page.evaluate(() => (globalThis as unknown as { __kilnLines: Array<[string, number]> }).__kilnLines)) ?? [];
  const onPage = new Latencies();
  const counted = new Set<string>();
  for (const [text, at] of seen) {
    const line = /(\d{16,}) (\d+)/.exec(text);
    if (line === null || counted.has(line[2]!)) continue;
    counted.add(line[2]!);
    const latency = lineLatencyMs(`${line[1]} ${line[2]}`, at);
    if (latency !== null) onPage.add(latency);
  }
  await context.close();
  return { page: onPage.summary(), raw: raw.summary(), rawComplete: result.completed && result.inOrder };
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv, SPEC);
  const jobs = Math.round(positive(args.jobs, 'jobs'));
  const runs = Math.round(positive(args.runs, 'runs'));
  const loads = Math.round(positive(args.loads, 'loads'));
  const shape: GeneratorShape = { rate: positive(args.rate, 'rate'), total: Math.round(positive(args.lines, 'lines')), burst: 1, delay: 3 };
  await new Dockerode().getImage(IMAGE).inspect().catch(() => {
    throw new Error(`the image ${IMAGE} is missing: run scripts/build-test-images.sh`);
  });
  const db = await createDatabase('web');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-web-'));
  const env = { DATABASE_URL: db.url, KILN_DATA_DIR: dataDir, KILN_JWT_SECRET: SECRET, KILN_DEFAULT_IMAGE: IMAGE, HOST: '127.0.0.1', PORT: '0', KILN_POLL_INTERVAL_MS: '200', KILN_RATE_LIMIT_RPS: '0' };
  let kiln: KilnProcess | null = null;
  let browser: Browser | null = null;
  const pool = benchPool(db.url, 2);
  try {
    kiln = await startKilnProcess('start', env);
    const url = kiln.url!;
    const token = await mintLocalToken(localAuth(new TextEncoder().encode(SECRET)) as Extract<ReturnType<typeof localAuth>, { mode: 'local' }>, OWNER, 3600);
    const client = new KilnClient({ url, token });
    // Files of 100 jobs: one file of 1,000 can outlast the compile budget on a loaded machine.
    for (let from = 0; from < jobs; from += 100) await client.request(SubmitJobDocument, { spec: manyJobs(Math.min(100, jobs - from), from) });
    const { rows } = await pool.query<{ definition: JobSpec }>(`select definition from jobs where owner = $1 limit 1`, [OWNER]);
    await seedRuns(pool, OWNER, runs, rows[0]!.definition, IMAGE);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    console.log(`kiln web benchmark: ${cpus().length} cores, ${uptimeLine()}; kiln start, Postgres, Docker, headless Chromium`);

    console.log(`\n1) the board: ${jobs} jobs with ${runs} runs each, ${loads} cold loads (ms from navigation start)`);
    const board = await boardLoads(browser, url, token, jobs, loads);
    console.log(
      table([
        ['', 'p50', 'p95', 'max'],
        ['first rows drawn', ms(board.firstRows.p50), ms(board.firstRows.p95), ms(board.firstRows.max)],
        [`usable (${jobs} rows, not busy)`, ms(board.usable.p50), ms(board.usable.p95), ms(board.usable.max)],
      ]),
    );

    console.log(`\n2) container line -> page, ${shape.total} lines at ${shape.rate}/s, beside the same lines to a raw graphql-ws subscriber (ms)`);
    const live = await liveLine(browser, url, token, shape);
    console.log(
      table([
        ['', 'lines', 'p50', 'p99', 'max'],
        ['build page (.log-line in the DOM)', String(live.page.count), ms(live.page.p50), ms(live.page.p99), ms(live.page.max)],
        ['raw graphql-ws subscriber', String(live.raw.count), ms(live.raw.p50), ms(live.raw.p99), ms(live.raw.max)],
      ]),
    );
    if (live.page.count === 0) console.log('   the build page drew no .log-line element: did its log view change its markup (web/src/build/LogViewer.tsx)?');
    if (!live.rawComplete) console.log('   the raw subscriber did not receive every line in order');
  } finally {
    await browser?.close();
    await kiln?.stop();
    await pool.end();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
