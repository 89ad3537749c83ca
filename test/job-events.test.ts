import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BoardJobUpdatedDocument,
  DeleteJobDocument,
  KilnApiError,
  KilnClient,
  PauseJobDocument,
  ResumeJobDocument,
  SubmitJobDocument,
  TriggerJobDocument,
  type BoardJobUpdatedSubscription,
} from '@kiln/sdk';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { LiveRun } from './helpers/liveRun.js';

/**
 * `jobUpdated` (docs/design.md#job-events) over graphql-ws, two users: each sees their own jobs'
 * submits, pauses, resumes and deletions, in order, and nothing of the other's. No Docker: the
 * runs are played through the worker's writes (LiveRun).
 */
let k: TestKiln;
let alice: KilnClient;
let bob: KilnClient;
let carol: KilnClient;

type JobEvent = BoardJobUpdatedSubscription['jobUpdated'];

const file = (name: string, schedule: string) => `jobs:\n  - name: ${name}\n    schedule: "${schedule}"\n    steps: [{run: "true"}]\n`;

/** A running `jobUpdated` subscription: what it delivered so far, and how it ended. */
function follow(client: KilnClient, jobId?: string) {
  const events: JobEvent[] = [];
  const state: { ended: boolean; error: unknown } = { ended: false, error: undefined };
  const done = (async () => {
    try {
      for await (const { jobUpdated } of client.subscribe(BoardJobUpdatedDocument, jobId === undefined ? {} : { jobId })) events.push(jobUpdated);
    } catch (err) {
      state.error = err;
    } finally {
      state.ended = true;
    }
  })();
  return { events, state, done };
}

async function submit(client: KilnClient, yaml: string): Promise<string> {
  return (await client.request(SubmitJobDocument, { spec: yaml })).submitJob.jobs[0]!.id;
}

/**
 * Submits `name` again and again until the subscription delivers its event: from then on the
 * subscription is live (a subscriber gets what is committed after it started, no replay).
 * Returns the probe job's id, whose events the caller leaves out.
 */
async function probe(client: KilnClient, sub: ReturnType<typeof follow>, name: string): Promise<string> {
  const id = await submit(client, file(name, '@yearly'));
  await waitFor(
    async () => {
      if (sub.events.some((e) => e.id === id)) return true;
      await submit(client, file(name, '@yearly'));
      return undefined;
    },
    15_000,
    `${name}'s event`,
  );
  return id;
}

const without = (events: JobEvent[], ids: string[]) => events.filter((e) => !ids.includes(e.id));

beforeAll(async () => {
  k = await startTestKiln({ worker: false });
  const [a, b, c] = await Promise.all([k.token('alice'), k.token('bob'), k.token('carol')]);
  alice = new KilnClient({ url: k.url, token: a });
  bob = new KilnClient({ url: k.url, token: b });
  carol = new KilnClient({ url: k.url, token: c });
});
afterAll(async () => {
  await Promise.all([alice?.close(), bob?.close(), carol?.close()]);
  await k?.stop();
});

describe('jobUpdated', () => {
  it("tells alice of her own submits, pauses, resumes and deletions, in order, and bob of none of them", async () => {
    const mine = follow(alice);
    const bobs = follow(bob);
    const aliceProbe = await probe(alice, mine, 'AliceProbe');
    const bobProbe = await probe(bob, bobs, 'BobProbe');

    const id = await submit(alice, file('Nightly', '0 2 * * *'));
    await submit(alice, file('Nightly', '0 3 * * *'));
    await alice.request(PauseJobDocument, { id });
    await alice.request(PauseJobDocument, { id }); // already paused: no change, no event
    await alice.request(ResumeJobDocument, { id });
    await alice.request(ResumeJobDocument, { id }); // already running: no event
    await alice.request(DeleteJobDocument, { id });

    const expected = [
      { id, change: 'CREATED', paused: false, deleted: false },
      { id, change: 'UPDATED', paused: false, deleted: false },
      { id, change: 'PAUSED', paused: true, deleted: false },
      { id, change: 'RESUMED', paused: false, deleted: false },
      { id, change: 'DELETED', paused: false, deleted: true },
    ];
    await waitFor(async () => (without(mine.events, [aliceProbe]).length >= expected.length ? true : undefined), 10_000, "alice's five events");
    // Bob's subscription is still live after alice's changes: his own later submit reaches him,
    // and NOTIFY delivers in commit order, so anything of alice's would have come before it.
    const before = bobs.events.length;
    await submit(bob, file('BobProbe', '@yearly'));
    await waitFor(async () => (bobs.events.length > before ? true : undefined), 10_000, "bob's own later event");

    expect(without(mine.events, [aliceProbe])).toEqual(expected);
    expect(bobs.events.every((e) => e.id === bobProbe)).toBe(true);
    expect(bobs.events.map((e) => e.change)).toContain('CREATED');
    expect(mine.events.some((e) => e.id === bobProbe)).toBe(false);
    expect(mine.state.error).toBeUndefined();
    expect(bobs.state.error).toBeUndefined();
  });

  it('narrowed to one job: only its events, completing after its deletion; another owner\'s job is not found', async () => {
    const one = await submit(alice, file('One', '@daily'));
    const other = await submit(alice, file('Other', '@daily'));
    const narrowed = follow(alice, one);
    const bobTries = follow(bob, one);
    await bobTries.done;
    expect(bobTries.state.error).toBeInstanceOf(KilnApiError);
    expect((bobTries.state.error as KilnApiError).code).toBe('NOT_FOUND');
    expect(bobTries.events).toEqual([]);

    // Live once a pause of `one` (resumed again) comes through.
    await waitFor(
      async () => {
        if (narrowed.events.length > 0) return true;
        await alice.request(PauseJobDocument, { id: one });
        await alice.request(ResumeJobDocument, { id: one });
        return undefined;
      },
      15_000,
      "the narrowed subscription's first event",
    );
    await alice.request(PauseJobDocument, { id: other });
    await alice.request(DeleteJobDocument, { id: other });
    await alice.request(DeleteJobDocument, { id: one });
    await narrowed.done;
    expect(narrowed.state.error).toBeUndefined();
    expect(narrowed.events.every((e) => e.id === one)).toBe(true);
    expect(narrowed.events.at(-1)).toEqual({ id: one, change: 'DELETED', paused: false, deleted: true });
    expect(narrowed.events.slice(0, -1).every((e) => e.change === 'PAUSED' || e.change === 'RESUMED')).toBe(true);
  });

  it('announces every job of a large file (several NOTIFYs of one transaction), in the file\'s order', async () => {
    const mine = follow(alice);
    const probeId = await probe(alice, mine, 'BigProbe');
    const names = Array.from({ length: 250 }, (_, i) => `Big${String(i).padStart(3, '0')}`);
    const yaml = `jobs:\n${names.map((n) => `  - name: ${n}\n    schedule: "@yearly"\n    steps: [{run: "true"}]\n`).join('')}`;
    const jobs = (await alice.request(SubmitJobDocument, { spec: yaml })).submitJob.jobs;
    await waitFor(async () => (without(mine.events, [probeId]).length >= jobs.length ? true : undefined), 15_000, 'the 250 events');
    expect(without(mine.events, [probeId])).toEqual(jobs.map((j) => ({ id: j.id, change: 'CREATED', paused: false, deleted: false })));
  });

  it('sends no NOTIFY for an owner nobody follows, nor for runs and their ticks of one who is followed', async () => {
    const listener = new pg.Client(k.kiln.deps.pool.options);
    await listener.connect();
    const heard: Array<{ owner: string; jobs: unknown[] }> = [];
    listener.on('notification', (msg) => msg.channel === 'kiln_job' && heard.push(JSON.parse(msg.payload!)));
    await listener.query('listen kiln_job');
    try {
      const mine = follow(alice);
      const marker = await probe(alice, mine, 'Marker');

      // Carol has no subscriber: her changes notify nobody.
      const carols = await submit(carol, file('CarolsJob', '@hourly'));
      await carol.request(PauseJobDocument, { id: carols });
      await carol.request(DeleteJobDocument, { id: carols });
      // Alice is followed, but a run of her job, start to finish, and the scheduler's writes are no job event.
      const job = await submit(alice, file('Runs', '@yearly'));
      const { triggerJob } = await alice.request(TriggerJobDocument, { id: job });
      const run = new LiveRun(k.kiln.deps.pool, triggerJob.id);
      await run.start();
      await run.finish('SUCCEEDED');
      await k.kiln.deps.pool.query(`update jobs set next_run_at = now() + interval '1 day', execution_count = execution_count + 1 where id = $1`, [job]);
      // The last word: NOTIFY delivers in commit order, so all the above came before this one, or never.
      await alice.request(PauseJobDocument, { id: marker });
      const changes = () => heard.flatMap((h) => h.jobs as Array<[string, string, boolean]>).filter(([id, change]) => !(id === marker && change !== 'PAUSED'));
      await waitFor(async () => (changes().some(([id]) => id === marker) ? true : undefined), 10_000, "the marker's NOTIFY");
      expect(changes()).toEqual([
        [job, 'CREATED', false],
        [marker, 'PAUSED', true],
      ]);
      // The owner travels as a hash: no user's name in the channel, any length of `sub` fits.
      expect(heard.every((h) => /^[0-9a-f]{64}$/.test(h.owner))).toBe(true);
    } finally {
      await listener.end();
    }
  });
});
