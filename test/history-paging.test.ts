import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

/**
 * The history list read as plain rows by one keyset statement: pages at microsecond-close
 * times, steps read with their page or batched, owner scoping at every cursor. Executions are
 * written by SQL (an API-only Kiln runs nothing), with times chosen by the test.
 */

let k: TestKiln;
let alice: string;
let bob: string;
/** Owns three jobs with one execution each. */
let carol: string;
let jobId: string;
let otherJobId: string;

const JOB = (name: string) => `jobs:\n  - name: ${name}\n    schedule: "0 0 1 1 *"\n    steps: [{name: build, run: "true"}, {name: test, run: "true"}]\n`;

/** Inserts executions 1..n of `job` for `owner`, created at `at(n)`, each with steps build (0) and test (1). */
async function insertHistory(job: string, owner: string, times: string[]): Promise<void> {
  await k.kiln.deps.pool.query(
    `with e as (
       insert into executions (id, job_id, owner, number, status, trigger, attempt, priority, plan, queued_at, started_at, finished_at, exit_code, created_at)
       select gen_random_uuid(), $1, $2, n, case when n % 2 = 0 then 'FAILED' else 'SUCCEEDED' end, 'MANUAL', 1, 0, '{}', t, t, t + interval '1 s',
              case when n % 2 = 0 then 1 else 0 end, t
         from unnest($3::timestamptz[]) with ordinality as u(t, n)
       returning id, number, status, exit_code)
     insert into execution_steps (id, execution_id, index, name, status, exit_code)
     select gen_random_uuid(), id, i, case i when 0 then 'build' else 'test' end,
            case when i = 1 then status when status = 'FAILED' then 'SUCCEEDED' else status end,
            case when i = 1 then exit_code else 0 end
       from e, generate_series(0, 1) as i`,
    [job, owner, times],
  );
}

/** Every page of `query`'s connection at `path`, `first` at a time: the numbers, newest first. */
async function allPages(query: string, vars: Record<string, unknown>, token: string, at: (data: any) => any): Promise<{ numbers: number[]; pages: any[] }> {
  const numbers: number[] = [];
  const pages: any[] = [];
  let after: string | null = null;
  for (;;) {
    const res = await k.gql(query, { ...vars, after }, token);
    expect(res.errors).toBeUndefined();
    const conn = at(res.data);
    pages.push(conn);
    numbers.push(...conn.edges.map((e: any) => e.node.number));
    if (!conn.pageInfo.hasNextPage) return { numbers, pages };
    after = conn.pageInfo.endCursor;
  }
}

const PAGE = `query($job: ID, $after: String, $first: Int) { executions(jobId: $job, first: $first, after: $after) {
  edges { cursor node { number status steps { index name status exitCode } } } pageInfo { hasNextPage endCursor } } }`;

beforeAll(async () => {
  k = await startTestKiln({ worker: false });
  alice = await k.token('alice');
  bob = await k.token('bob');
  carol = await k.token('carol');
  const a = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: JOB('Mine') }, alice);
  jobId = a.data!.submitJob.jobs[0].id;
  const b = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: JOB('Theirs') }, bob);
  otherJobId = b.data!.submitJob.jobs[0].id;
  // Ten runs of alice's job: 1..6 one second apart, then 7..10 within one millisecond, microseconds apart.
  const times = [1, 2, 3, 4, 5, 6].map((s) => `2026-01-01T00:00:0${s}.000000Z`);
  times.push('2026-01-01T00:00:07.123100Z', '2026-01-01T00:00:07.123200Z', '2026-01-01T00:00:07.123300Z', '2026-01-01T00:00:07.123400Z');
  await insertHistory(jobId, 'alice', times);
  // Bob's runs fall between alice's: a cursor of alice's must never reach them.
  await insertHistory(otherJobId, 'bob', ['2026-01-01T00:00:03.500000Z', '2026-01-01T00:00:07.123250Z']);
  for (const name of ['One', 'Two', 'Three']) {
    const c = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: JOB(name) }, carol);
    await insertHistory(c.data!.submitJob.jobs[0].id, 'carol', ['2026-01-02T00:00:00Z']);
  }
});
afterAll(() => k?.stop());

describe('execution history pages', () => {
  it('pages through executions created microseconds apart without skipping or repeating any', async () => {
    for (const first of [1, 2, 3]) {
      const { numbers } = await allPages(PAGE, { job: jobId, first }, alice, (d) => d.executions);
      expect(numbers).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    }
  });

  it("shows each execution's own steps, in order, with every page", async () => {
    const { pages } = await allPages(PAGE, { job: jobId, first: 4 }, alice, (d) => d.executions);
    for (const node of pages.flatMap((p) => p.edges.map((e: any) => e.node))) {
      const failed = node.number % 2 === 0;
      expect(node.status).toBe(failed ? 'FAILED' : 'SUCCEEDED');
      expect(node.steps).toEqual([
        { index: 0, name: 'build', status: 'SUCCEEDED', exitCode: 0 },
        { index: 1, name: 'test', status: failed ? 'FAILED' : 'SUCCEEDED', exitCode: failed ? 1 : 0 },
      ]);
    }
  });

  it('finds the steps through fragments and aliases, and through Job.executions', async () => {
    const res = await k.gql(
      `fragment S on Execution { runs: steps { name } }
       query($job: ID!) {
         executions(jobId: $job, first: 2) { edges { node { number ...S } } }
         job(id: $job) { executions(first: 2) { edges { node { ... on Execution { number steps { name } } } } } } }`,
      { job: jobId },
      alice,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.executions.edges.map((e: any) => [e.node.number, e.node.runs.map((s: any) => s.name)])).toEqual([[10, ['build', 'test']], [9, ['build', 'test']]]);
    expect(res.data!.job.executions.edges.map((e: any) => [e.node.number, e.node.steps.length])).toEqual([[10, 2], [9, 2]]);
  });

  it('reads a page and its steps in one statement, and the job of all its rows in one more', async () => {
    const statements: string[] = [];
    const record = <T extends object>(target: T, method: 'query' | 'execute'): (() => void) => {
      const original = (target as any)[method];
      (target as any)[method] = function (this: unknown, text: unknown, ...rest: unknown[]) {
        // A statement as text, or as a config object (named, prepared once per connection).
        const sql = typeof text === 'string' ? text : (text as { text?: unknown } | null)?.text;
        if (typeof sql === 'string') statements.push(sql);
        return original.call(this, text, ...rest);
      };
      return () => void ((target as any)[method] = original);
    };
    const restore = [record(k.kiln.deps.pool, 'query'), record(k.kiln.deps.orm.em.getConnection(), 'execute')];
    try {
      const page = await k.gql(PAGE, { job: jobId, first: 5 }, alice);
      expect(page.data!.executions.edges).toHaveLength(5);
      expect(statements.filter((s) => /execution/.test(s))).toHaveLength(1);
      statements.length = 0;
      const withJob = await k.gql(`query($job: ID) { executions(jobId: $job, first: 5) { edges { node { job { name } } } } }`, { job: jobId }, alice);
      expect(withJob.data!.executions.edges.map((e: any) => e.node.job.name)).toEqual(['Mine', 'Mine', 'Mine', 'Mine', 'Mine']);
      expect(statements.filter((s) => /"jobs"|\bjobs\b/.test(s))).toHaveLength(1);
    } finally {
      for (const r of restore) r();
    }
  });

  it('shows the steps of executions that come one by one (lastExecution)', async () => {
    const jobs = await k.gql(`{ jobs { edges { node { name lastExecution { steps { name status } } } } } }`, {}, carol);
    expect(jobs.errors).toBeUndefined();
    expect(jobs.data!.jobs.edges.map((e: any) => [e.node.name, e.node.lastExecution.steps.map((s: any) => s.name)])).toEqual([
      ['One', ['build', 'test']],
      ['Three', ['build', 'test']],
      ['Two', ['build', 'test']],
    ]);
  });

  it('still accepts a cursor cut to the millisecond, as older servers handed out', async () => {
    const cursor = Buffer.from(JSON.stringify(['2026-01-01T00:00:05.000Z', 'ffffffff-ffff-4fff-bfff-ffffffffffff'])).toString('base64url');
    const res = await k.gql(PAGE, { job: jobId, first: 2, after: cursor }, alice);
    expect(res.data!.executions.edges.map((e: any) => e.node.number)).toEqual([5, 4]);
  });

  it('refuses a cursor whose time is not an ISO 8601 UTC instant', async () => {
    for (const at of ['yesterday', '2026-01-01', '2026-01-01T00:00:05.0000000Z', '2026-13-01T00:00:05Z']) {
      const cursor = Buffer.from(JSON.stringify([at, 'ffffffff-ffff-4fff-bfff-ffffffffffff'])).toString('base64url');
      const res = await k.gql(PAGE, { job: jobId, first: 2, after: cursor }, alice);
      expect(res.errors![0]!.extensions!.code, at).toBe('BAD_USER_INPUT');
    }
  });

  it("never shows another owner's executions, by job, by cursor or owner-wide", async () => {
    const mine = await allPages(PAGE, { first: 3 }, alice, (d) => d.executions);
    expect(mine.numbers).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    const theirs = await allPages(PAGE, { first: 1 }, bob, (d) => d.executions);
    expect(theirs.numbers).toEqual([2, 1]);
    const byJob = await k.gql(PAGE, { job: jobId, first: 5 }, bob);
    expect(byJob.data!.executions.edges).toEqual([]);
    // Alice's cursors in bob's hands position bob's own list, nothing more.
    for (const page of mine.pages) {
      const res = await k.gql(PAGE, { first: 20, after: page.pageInfo.endCursor }, bob);
      expect(res.data!.executions.edges.every((e: any) => e.node.number <= 2)).toBe(true);
    }
    const rest = await fetch(`${k.url}/api/v1/retrieve_history_execution/${jobId}`, { headers: { authorization: `Bearer ${alice}` } });
    expect(((await rest.json()) as Array<{ number: number }>).map((e) => e.number)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  });
});
