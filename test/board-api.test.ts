import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnClient } from '@kiln/sdk';
import { BoardDocument, BoardJobDocument, TriggerJobDocument } from '@kiln/sdk';
import { submit } from './helpers/ledger.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

let k: TestKiln;
let alice: string;
let bob: string;
let nightly: string;
let hourly: string;

const jobFile = (names: string[], schedule: string) =>
  `jobs:\n${names.map((n) => `  - name: ${n}\n    schedule: "${schedule}"\n    steps: [{run: "true"}]\n`).join('')}`;

beforeAll(async () => {
  k = await startTestKiln({ worker: false });
  [alice, bob] = await Promise.all([k.token('alice'), k.token('bob')]);
  [nightly, hourly] = await submit(k.gql, alice, jobFile(['Nightly', 'Hourly', 'Quiet'], '0 2 * * *'));
  await submit(k.gql, bob, jobFile(['BobsJob'], '@hourly'));
  const client = new KilnClient({ url: k.url, token: alice });
  // No worker runs here: each run is finished by hand so that the next trigger is accepted.
  for (let i = 0; i < 23; i++) {
    const { triggerJob } = await client.request(TriggerJobDocument, { id: nightly! });
    await k.kiln.deps.pool.query(`update executions set status = 'SUCCEEDED', started_at = now(), finished_at = now() where id = $1`, [triggerJob.id]);
  }
  await client.request(TriggerJobDocument, { id: hourly! });
  // The ledger: a fired tick, then a missed one (newest), for Nightly; none for the others.
  await k.kiln.deps.pool.query(
    `insert into ticks (job_id, fire_time, outcome, catch_up, recorded_at) values ($1, now() - interval '2 days', 'FIRED', false, now()), ($1, now() - interval '1 day', 'MISSED', false, now())`,
    [nightly],
  );
});
afterAll(async () => {
  await k?.stop();
});

describe("the board's query", () => {
  it("gives each of the caller's jobs its 20 newest runs, newest first, and the ledger's newest tick", async () => {
    const client = new KilnClient({ url: k.url, token: alice });
    const { jobs } = await client.request(BoardDocument, { first: 100 });
    const byName = Object.fromEntries(jobs.edges.map((e) => [e.node.name, e.node]));
    expect(Object.keys(byName).sort()).toEqual(['Hourly', 'Nightly', 'Quiet']);
    expect(byName.Nightly!.recentRuns.map((r) => r.number)).toEqual(Array.from({ length: 20 }, (_, i) => 23 - i));
    expect(byName.Hourly!.recentRuns.map((r) => [r.number, r.status, r.trigger])).toEqual([[1, 'QUEUED', 'MANUAL']]);
    expect(byName.Quiet!.recentRuns).toEqual([]);
    expect(byName.Nightly!.lastTick).toMatchObject({ outcome: 'MISSED', catchUp: false });
    expect(byName.Hourly!.lastTick).toBeNull();
    // Another owner's board holds only its own.
    const bobs = await new KilnClient({ url: k.url, token: bob }).request(BoardDocument, { first: 100 });
    expect(bobs.jobs.edges.map((e) => [e.node.name, e.node.recentRuns.length])).toEqual([['BobsJob', 0]]);
    const stolen = await new KilnClient({ url: k.url, token: bob }).request(BoardJobDocument, { id: nightly! });
    expect(stolen.job).toBeNull();
  });

  it('reads the runs and the ticks of a whole page in one statement each, whatever the number of jobs', async () => {
    const statements: string[] = [];
    const pool = k.kiln.deps.pool as any;
    const original = pool.query;
    pool.query = function (this: unknown, text: unknown, ...rest: unknown[]) {
      if (typeof text === 'string') statements.push(text);
      return original.call(this, text, ...rest);
    };
    try {
      const res = await k.gql(`{ jobs(first: 100) { edges { node { name recentRuns { id } lastTick { outcome } } } } }`, {}, alice);
      expect(res.errors).toBeUndefined();
      expect(res.data!.jobs.edges).toHaveLength(3);
    } finally {
      pool.query = original;
    }
    expect(statements.filter((s) => /from executions x/.test(s))).toHaveLength(1);
    expect(statements.filter((s) => /from ticks x/.test(s))).toHaveLength(1);
  });

  it('is accepted by the cost rule at the largest page, and a strip longer than 50 is refused', async () => {
    // The SDK's Board query takes $first as a variable, which the rule counts at the page cap (100).
    const client = new KilnClient({ url: k.url, token: alice });
    await expect(client.request(BoardDocument, { first: 100 })).resolves.toBeDefined();
    const tooLong = await k.gql(`{ jobs { edges { node { recentRuns(count: 51) { id } } } } }`, {}, alice);
    expect(tooLong.errors?.[0]?.message).toMatch(/count must be between 1 and 50/);
    const aliased = await k.gql(`{ jobs { edges { node { a: recentRuns(count: 2) { number } b: recentRuns(count: 0) { number } } } } }`, {}, alice);
    expect(aliased.errors?.[0]?.message).toMatch(/count must be between 1 and 50/);
  });
});
