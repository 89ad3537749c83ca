import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { mintLocalToken } from '../src/auth/token.js';
import { localAuth } from '../src/config.js';
import { parseArgs, positive } from './lib/args.js';
import { startKilnProcess } from './lib/kilnProcess.js';
import { benchPool, createDatabase } from './lib/pg.js';
import { ms, sleep, summarize, table, uptimeLine } from './lib/stats.js';

/**
 * `npm run bench -- services`: how soon the first step starts once a job's Postgres service
 * accepts connections (issue 13, item 2: median < 500 ms over 20 runs), on `kiln start` with the
 * real engine. The service's moment is Postgres's own log line "database system is ready to accept
 * connections" (its timestamp, in ms), the step's is its `started_at`: one clock, the host's.
 * test/services.test.ts checks the same over 3 runs; this runs 20 (or `--runs`), one at a time.
 * Images: kiln-test/postgres and kiln-test/git (scripts/build-test-images.sh).
 */
const JWT_SECRET = 'kiln-bench-secret-that-is-at-least-32-bytes-long';
const POSTGRES_IMAGE = 'kiln-test/postgres:latest';
const GOAL_MEDIAN_MS = 500;

const SPEC = {
  runs: { default: '20', help: 'executions measured, one after the other' },
  ready: { default: 'run', help: 'run: `pg_isready` in the service; tcp: port 5432 from the probe (open a moment before Postgres accepts sessions)' },
};

const READY: Record<string, string> = {
  run: '{ run: "pg_isready -q -h 127.0.0.1 -U postgres", timeout: 60s }',
  tcp: '{ tcp: 5432, timeout: 60s }',
};

const job = (n: number, ready: string) =>
  [
    'jobs:',
    `  - name: ServiceGap${n}`,
    `    image: ${POSTGRES_IMAGE}`,
    '    services:',
    '      - name: db',
    `        image: ${POSTGRES_IMAGE}`,
    '        command: [-c, fsync=off]',
    `        ready: ${ready}`,
    '    steps:',
    '      - run: psql -h db -U postgres -Atc "select 1"',
    '',
  ].join('\n');

async function submit(apiUrl: string, token: string, yaml: string): Promise<string> {
  const res = await fetch(`${apiUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: 'mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }', variables: { s: yaml } }),
  });
  const body = (await res.json()) as { data?: { submitJob: { jobs: Array<{ lastExecution: { id: string } }> } }; errors?: unknown };
  if (!body.data) throw new Error(`submitJob failed: ${JSON.stringify(body.errors)}`);
  return body.data.submitJob.jobs[0]!.lastExecution.id;
}

/** The gap of one finished execution, in ms: its first step's start minus Postgres's "ready" stamp. */
async function gapOf(pool: pg.Pool, id: string): Promise<number> {
  for (const deadline = Date.now() + 120_000; ; await sleep(50)) {
    const { rows } = await pool.query(`select status, error from executions where id = $1`, [id]);
    if (!['QUEUED', 'RUNNING'].includes(rows[0]?.status)) {
      if (rows[0]?.status !== 'SUCCEEDED') throw new Error(`execution ${id} ended ${rows[0]?.status}: ${rows[0]?.error}`);
      break;
    }
    if (Date.now() > deadline) throw new Error(`execution ${id} did not finish within 120 s`);
  }
  const step = await pool.query(`select started_at from execution_steps where execution_id = $1 and index = 0`, [id]);
  const ready = await pool.query(
    `select text from log_chunks where execution_id = $1 and stream = 'SERVICE' and text like '%ready to accept connections%' order by seq limit 1`,
    [id],
  );
  const stamp = /(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC/.exec(ready.rows[0]?.text ?? '')?.[1];
  if (!stamp) throw new Error(`execution ${id} has no "ready to accept connections" line`);
  return (step.rows[0].started_at as Date).getTime() - new Date(`${stamp.replace(' ', 'T')}Z`).getTime();
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, SPEC);
  const runs = positive(a.runs, 'runs');
  const ready = READY[a.ready];
  if (ready === undefined) throw new Error(`--ready must be run or tcp, got ${a.ready}`);
  console.log(`services readiness gap: ${runs} runs, ready: ${ready}\n${uptimeLine()}\n`);
  const db = await createDatabase('services');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-services-'));
  const pool = benchPool(db.url, 2);
  let kiln: Awaited<ReturnType<typeof startKilnProcess>> | null = null;
  try {
    kiln = await startKilnProcess('start', {
      DATABASE_URL: db.url,
      KILN_DATA_DIR: dataDir,
      KILN_JWT_SECRET: JWT_SECRET,
      KILN_SECRETS_KEY: Buffer.alloc(32, 9).toString('base64'),
      KILN_GIT_IMAGE: 'kiln-test/git:latest',
      PORT: '0',
      HOST: '127.0.0.1',
    });
    const auth = localAuth(new TextEncoder().encode(JWT_SECRET));
    const token = await mintLocalToken(auth as Extract<typeof auth, { mode: 'local' }>, 'bench', 3600);
    const gaps: number[] = [];
    for (let i = 0; i < runs; i++) gaps.push(await gapOf(pool, await submit(kiln.url!, token, job(i, ready))));
    const s = summarize(gaps);
    console.log(table([
      ['', 'min', 'median', 'p99', 'max'],
      ['service ready -> first step', ms(Math.min(...gaps)), ms(s.p50), ms(s.p99), ms(s.max)],
    ]));
    console.log(`\nmedian ${ms(s.p50)} (goal < ${GOAL_MEDIAN_MS} ms): ${s.p50 < GOAL_MEDIAN_MS ? 'met' : 'NOT met'}\n${uptimeLine()}`);
  } finally {
    await kiln?.stop();
    await pool.end();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
