import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintLocalToken } from '../src/auth/token.js';
import { localAuth } from '../src/config.js';
import { createTestDatabase } from './helpers/db.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { TEST_SECRET, waitFor, type GqlResponse } from './helpers/kiln.js';
import { startKilnProcess, type KilnProcess } from './helpers/processes.js';

// Issue 11, "what it must show" 1: the cron-heavy file, in 4 aliases, 10 requests at once, against
// a real `kiln start` (API and worker in one process; compiled: `npm run build` first).

/** 1,000 jobs on the fifth Thursday of February, each at another time of day (~70 KB). */
function cronHeavyFile(): string {
  const lines = ['jobs:'];
  for (let i = 0; i < 1000; i++) lines.push(`  - {name: j${i}, schedule: "${i % 60} ${(i / 60) | 0} 0 * 2 4#5", steps: [{run: "true"}]}`);
  return `${lines.join('\n')}\n`;
}

const FOUR_ALIASES = `query($s: String!) {
  a: validateJobSpec(spec: $s) { valid diagnostics { message } }
  b: validateJobSpec(spec: $s) { valid diagnostics { message } }
  c: validateJobSpec(spec: $s) { valid diagnostics { message } }
  d: validateJobSpec(spec: $s) { valid diagnostics { message } }
}`;

const BYSTANDER_QUERY = `{ jobs(first: 10) { edges { node { id name } } } executions(first: 10) { edges { node { id status } } } }`;

/** The longest the API's event loop was held since the last scrape (prom-client resets it per scrape). */
async function loopLagMaxMs(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('kiln_nodejs_eventloop_lag_max_seconds '));
  return Number(line!.split(' ')[1]) * 1000;
}

function p99(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]!;
}

describe('a cron-heavy job file against `kiln start`', () => {
  let proc: KilnProcess;
  let url: string;
  let drop: () => Promise<void>;
  const auth = localAuth(new TextEncoder().encode(TEST_SECRET)) as Extract<ReturnType<typeof localAuth>, { mode: 'local' }>;

  async function gql<T = Record<string, any>>(query: string, variables: Record<string, unknown>, token: string): Promise<GqlResponse<T> & { ms: number }> {
    const t0 = performance.now();
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as GqlResponse<T>;
    return { status: res.status, data: body.data, errors: body.errors, ms: performance.now() - t0 };
  }

  beforeAll(async () => {
    await requireDocker();
    const db = await createTestDatabase();
    drop = db.drop;
    proc = startKilnProcess('start', db.url, 'loop-start', {
      HOST: '127.0.0.1',
      KILN_DEFAULT_IMAGE: TEST_IMAGE,
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    });
    url = await waitFor(async () => /GraphQL at (http:\/\/[\d.:]+)\/graphql/.exec(proc.output())?.[1], 60_000, 'kiln start to serve');
    await waitFor(async () => (/worker loop-start running/.test(proc.output()) ? true : undefined), 60_000, 'its worker to run');
  });
  afterAll(async () => {
    await proc?.stop();
    await drop?.();
  });

  it('answers or refuses each request in bounded time, keeps a bystander fast and a running build on attempt 1', { timeout: 180_000 }, async () => {
    const carol = await mintLocalToken(auth, 'carol', 3600);
    const mallory = await mintLocalToken(auth, 'mallory', 3600);

    // Carol's build runs in the same process while the attack goes on.
    const build = `jobs:\n  - name: build\n    image: ${TEST_IMAGE}\n    steps:\n      - run: echo started; sleep 6; echo done\n`;
    const submitted = await gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }`, { s: build }, carol);
    expect(submitted.errors).toBeUndefined();
    const executionId: string = submitted.data!.submitJob.jobs[0].lastExecution.id;
    const EXECUTION = `query($id: ID!) { execution(id: $id) { status attempt error logs { text } } }`;
    await waitFor(async () => {
      const e = (await gql(EXECUTION, { id: executionId }, carol)).data!.execution;
      return e.logs.some((l: { text: string }) => l.text === 'started') ? true : undefined;
    }, 60_000, 'the build to start');

    // Carol's queries, one every 75 ms, before and during the attack.
    const state = { phase: 'baseline' as 'baseline' | 'attack' | 'done' };
    const latencies: Record<'baseline' | 'attack', number[]> = { baseline: [], attack: [] };
    const bystander = (async () => {
      while (state.phase !== 'done') {
        const current = state.phase;
        const res = await gql(BYSTANDER_QUERY, {}, carol);
        expect(res.errors).toBeUndefined();
        latencies[current].push(res.ms);
        await new Promise((r) => setTimeout(r, 75));
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));

    // Mallory: 10 requests at once, each with 4 aliases of validateJobSpec on the cron-heavy file,
    // in waves for about 4 s.
    await loopLagMaxMs(url);
    state.phase = 'attack';
    const spec = cronHeavyFile();
    expect(spec.length).toBeGreaterThan(60_000);
    const answers: Array<GqlResponse<Record<string, any>> & { ms: number }> = [];
    const attackUntil = performance.now() + 4000;
    while (performance.now() < attackUntil) answers.push(...(await Promise.all(Array.from({ length: 10 }, () => gql(FOUR_ALIASES, { s: spec }, mallory)))));
    state.phase = 'done';
    await bystander;
    const lagMs = await loopLagMaxMs(url);

    const answered = answers.filter((a) => a.data != null);
    const refused = answers.filter((a) => a.data == null);
    const attackP99 = p99(latencies.attack);
    const baselineP99 = p99(latencies.baseline);
    console.log(
      `${answers.length} requests of 4 aliases: ${answered.length} answered, ${refused.length} refused, slowest ${Math.max(...answers.map((a) => a.ms)).toFixed(0)} ms; ` +
        `bystander p99 ${baselineP99.toFixed(0)} ms before (${latencies.baseline.length} queries), ${attackP99.toFixed(0)} ms during (${latencies.attack.length} queries), ` +
        `max ${Math.max(...latencies.attack).toFixed(0)} ms; the API's event loop was held ${lagMs.toFixed(0)} ms at most`,
    );

    // Issue 11 asks for 2 s on a quiet machine; measured from this (busy) test process, so with
    // room for a loaded 2-core machine. Before, each alias held the loop 5 s: 20 s per request.
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.ms).toBeLessThan(5000);
    }
    // Answered: every alias says why the file is refused: its schedules, or (on a machine too busy
    // to compile it within KILN_COMPILE_BUDGET_MS) the budget.
    expect(answered.length).toBeGreaterThan(0);
    for (const a of answered) {
      for (const alias of ['a', 'b', 'c', 'd']) {
        expect(a.data![alias].valid).toBe(false);
        expect(a.data![alias].diagnostics[0].message).toMatch(/fires too rarely|took longer than 2000 ms, the limit per file/);
      }
    }
    // Refused: because Mallory has enough files waiting already, and saying so.
    for (const r of refused) {
      expect(r.errors![0]!.extensions!.code).toBe('RATE_LIMITED');
      expect(r.errors![0]!.message).toMatch(/job files being computed or waiting, the most one user may have \(4\)/);
    }
    // Issue 11 asks for p99 <= 100 ms; generous here for a loaded 2-core machine, relative to the
    // same bystander just before. One compile held the loop for 5 s before.
    expect(latencies.attack.length).toBeGreaterThan(20);
    expect(attackP99).toBeLessThanOrEqual(Math.max(250, 2 * baselineP99 + 100));
    expect(lagMs).toBeLessThan(1000);

    const done = await waitFor(async () => {
      const e = (await gql(EXECUTION, { id: executionId }, carol)).data!.execution;
      return ['QUEUED', 'RUNNING'].includes(e.status) ? undefined : e;
    }, 60_000, 'the build to finish');
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempt: 1, error: null });
    expect(proc.output()).not.toMatch(/lease of execution .* lost/);
  });
});
