import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { mintLocalToken } from '../src/auth/token.js';
import { localAuth } from '../src/config.js';
import { rawCache, rawRun, type RunTimes } from './build/rawDocker.js';
import { parseArgs, positive } from './lib/args.js';
import { GO_CACHE, GO_SEED_STEPS, goJobYaml, makeGoRepository } from './lib/goModule.js';
import { startKilnProcess } from './lib/kilnProcess.js';
import { benchPool, createDatabase } from './lib/pg.js';
import { ms, ratio, sleep, table, uptimeLine } from './lib/stats.js';

/**
 * `npm run bench -- build` (issue 13, item 5): the seed's BuildAndTest steps (GO_SEED_STEPS) on
 * the fixture module (test/fixtures/go/hello) in kiln-test/go, through a `kiln start` process
 * (checkout by path from a local bare repository), beside the same steps in the same image with
 * `docker run` + `docker exec` (bench/build/rawDocker.ts), with a cold cache and a warm one.
 *
 * Cold: every run starts with empty module and build caches (compiling the standard library it
 * uses). Warm: Kiln's `cache:` (GO_CACHE, keyed on go.sum) when this build's job file accepts it,
 * primed by one run; the anchor's counterpart is two docker volumes on the same paths, primed
 * the same way. A Kiln without `cache:` prints no warm row for itself and says so.
 */
const IMAGE = 'kiln-test/go:latest';
const GIT_IMAGE = 'kiln-test/git:latest';
const JWT_SECRET = 'kiln-bench-secret-that-is-at-least-32-bytes-long';
const GiB = 1024 ** 3;

const SPEC = {
  runs: { default: '3', help: 'measured runs of each side and cache state (median reported)' },
  image: { default: IMAGE, help: 'the Go image of both sides (scripts/build-test-images.sh)' },
  cache: { default: 'auto', help: 'auto | off: warm runs with Kiln\'s `cache:` when the job file accepts it' },
};

interface Stack {
  pool: pg.Pool;
  apiUrl: string;
  token: string;
  repository: string;
  image: string;
  jobs: number;
}

async function gql<T>(stack: Stack, query: string, variables: Record<string, unknown>): Promise<T> {
  const res = await fetch(`${stack.apiUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: unknown };
  if (!body.data) throw new Error(`${query.slice(0, 40)}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** Whether this Kiln's job-file check accepts `cache:` (the `cache` branch adds it). */
async function acceptsCache(stack: Stack): Promise<{ ok: boolean; why: string }> {
  const yaml = goJobYaml('CacheProbe', { repository: stack.repository, image: stack.image, cache: GO_CACHE });
  const { validateJobSpec: v } = await gql<{ validateJobSpec: { valid: boolean; diagnostics: Array<{ path: string; message: string }> } }>(
    stack,
    'query($s: String!) { validateJobSpec(spec: $s) { valid diagnostics { path message } } }',
    { s: yaml },
  );
  return { ok: v.valid, why: v.diagnostics.map((d) => `${d.path}: ${d.message}`).join('; ') };
}

/** Submits the job file and waits for its end; its steps' times from the database. */
async function kilnRun(stack: Stack, cache: boolean): Promise<RunTimes> {
  // A job of its own per cold run (nothing shared); one job for the cached runs, as a user would.
  const name = cache ? 'BuildCached' : `BuildCold${++stack.jobs}`;
  const yaml = goJobYaml(name, { repository: stack.repository, image: stack.image, ...(cache ? { cache: GO_CACHE } : {}) });
  const started = performance.now();
  const data = await gql<{ submitJob: { jobs: Array<{ lastExecution: { id: string } }> } }>(
    stack,
    'mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }',
    { s: yaml },
  );
  const id = data.submitJob.jobs[0]!.lastExecution.id;
  for (;;) {
    const { rows } = await stack.pool.query(`select status, error from executions where id = $1`, [id]);
    if (rows[0] && !['QUEUED', 'RUNNING'].includes(rows[0].status)) {
      if (rows[0].status !== 'SUCCEEDED') throw new Error(`Kiln's run ${id} ended ${rows[0].status}: ${rows[0].error}`);
      break;
    }
    if (performance.now() - started > 600_000) throw new Error(`Kiln's run ${id} did not end within 10 minutes`);
    await sleep(20);
  }
  const total = performance.now() - started;
  const { rows } = await stack.pool.query(`select started_at, finished_at from execution_steps where execution_id = $1 order by index`, [id]);
  return { steps: rows.map((r) => r.finished_at.getTime() - r.started_at.getTime()), total };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Medians of each step and of the total over runs; NaNs when there are none. */
function medians(runs: RunTimes[]): RunTimes {
  return { steps: GO_SEED_STEPS.map((_, i) => median(runs.map((r) => r.steps[i]!))), total: median(runs.map((r) => r.total)) };
}

async function repeat(runs: number, run: () => Promise<RunTimes>): Promise<RunTimes[]> {
  const out: RunTimes[] = [];
  for (let i = 0; i < runs; i++) out.push(await run());
  return out;
}

function report(runs: number, rows: { kilnCold: RunTimes; rawCold: RunTimes; kilnWarm: RunTimes | null; rawWarm: RunTimes }, warmNote: string): void {
  const cells = (t: RunTimes) => [...t.steps.map(ms), ms(t.total)];
  const ratios = (a: RunTimes, b: RunTimes) => [...a.steps.map((x, i) => ratio(x, b.steps[i]!)), ratio(a.total, b.total)];
  const none = ['-', '-', '-', '-'];
  console.log(`## the seed's BuildAndTest on example.com/hello: median ms of ${runs} runs\n`);
  console.log(table([
    ['', ...GO_SEED_STEPS.map((s) => `${s.name} (${s.run})`), 'total'],
    ['Kiln, cold (submit -> SUCCEEDED)', ...cells(rows.kilnCold)],
    ['docker run + exec, cold', ...cells(rows.rawCold)],
    ['ratio Kiln / docker, cold', ...ratios(rows.kilnCold, rows.rawCold)],
    ['Kiln, warm cache:', ...(rows.kilnWarm ? cells(rows.kilnWarm) : none)],
    ['docker run + exec, warm volumes', ...cells(rows.rawWarm)],
    ['ratio Kiln / docker, warm', ...(rows.kilnWarm ? ratios(rows.kilnWarm, rows.rawWarm) : none)],
    ['cold / warm, Kiln', ...(rows.kilnWarm ? ratios(rows.kilnCold, rows.kilnWarm) : none)],
    ['cold / warm, docker', ...ratios(rows.rawCold, rows.rawWarm)],
  ]));
  console.log(`\nKiln's total includes the queue, the checkout (git clone of the bare repository), ${rows.kilnWarm ? 'the cache restore and save, ' : ''}the log storage and the container's removal; docker's has a bind-mounted copy of the module.`);
  console.log('Each docker step is a `docker` CLI process (its start-up is in the figure); Kiln execs through the engine API. A warm `go test` reuses its result from GOCACHE (`(cached)`), as in any CI with a Go cache.');
  if (warmNote) console.log(warmNote);
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, SPEC);
  const runs = Math.round(positive(a.runs, 'runs'));
  if (!['auto', 'off'].includes(a.cache)) throw new Error(`--cache: auto or off, got "${a.cache}"`);
  console.log(`# Kiln build benchmark — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s), ${uptimeLine()} at start (other engineers' tests may share the machine)`);
  console.log(`image ${a.image}; Kiln = \`kiln start\` (own process), Postgres 127.0.0.1:5432, local artifact store; both sides 2 CPUs, 2 GiB, network none\n`);

  const db = await createDatabase('build');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-build-'));
  const reposDir = path.join(dataDir, 'repos');
  const pool = benchPool(db.url, 2);
  const cache = await rawCache();
  let kiln: Awaited<ReturnType<typeof startKilnProcess>> | undefined;
  try {
    await mkdir(reposDir);
    const repository = await makeGoRepository(reposDir);
    kiln = await startKilnProcess('start', {
      DATABASE_URL: db.url,
      KILN_DATA_DIR: dataDir,
      KILN_JWT_SECRET: JWT_SECRET,
      KILN_SECRETS_KEY: Buffer.alloc(32, 9).toString('base64'),
      KILN_DEFAULT_IMAGE: a.image,
      KILN_DEFAULT_CPUS: '2',
      KILN_DEFAULT_MEMORY: String(2 * GiB),
      KILN_GIT_IMAGE: GIT_IMAGE,
      KILN_GIT_LOCAL_ROOT: reposDir,
      KILN_WORKER_CONCURRENCY: '1',
      PORT: '0',
      HOST: '127.0.0.1',
    });
    const auth = localAuth(new TextEncoder().encode(JWT_SECRET));
    const token = await mintLocalToken(auth as Extract<typeof auth, { mode: 'local' }>, 'bench', 3600);
    const stack: Stack = { pool, apiUrl: kiln.url!, token, repository, image: a.image, jobs: 0 };
    const limits = { image: a.image, cpus: 2, memoryBytes: 2 * GiB };

    const probe = a.cache === 'off' ? { ok: false, why: '--cache off' } : await acceptsCache(stack);
    // Cold runs alternate sides, so that a neighbour's burst weighs on both.
    const kilnCold: RunTimes[] = [];
    const rawCold: RunTimes[] = [];
    for (let i = 0; i < runs; i++) {
      kilnCold.push(await kilnRun(stack, false));
      rawCold.push(await rawRun(limits));
    }
    // Warm: one priming run each (cold, then saved), then the measured runs.
    await rawRun({ ...limits, cache });
    const rawWarm = await repeat(runs, () => rawRun({ ...limits, cache }));
    let kilnWarm: RunTimes[] | null = null;
    if (probe.ok) {
      await kilnRun(stack, true);
      kilnWarm = await repeat(runs, () => kilnRun(stack, true));
    }
    const note = probe.ok ? '' : `\nno warm row for Kiln: this build's job file does not accept \`cache:\` (${probe.why}); it comes with the \`cache\` branch (issue 13).`;
    report(runs, { kilnCold: medians(kilnCold), rawCold: medians(rawCold), kilnWarm: kilnWarm && medians(kilnWarm), rawWarm: medians(rawWarm) }, note);
    console.log(`\n${uptimeLine()} at end`);
  } finally {
    await kiln?.stop().catch(() => undefined);
    await cache.remove();
    await pool.end().catch(() => undefined);
    await db.drop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
}
