import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pgm from 'pg';
import type pg from 'pg';
import { inTransaction } from '../src/util/sql.js';
import { EventHub } from '../src/events/EventHub.js';
import { stepsOfSnapshot } from '../src/events/executionSnapshot.js';
import { logLinesAfter } from '../src/events/followLogs.js';
import { archiveLogToStore } from '../src/logs/archive.js';
import {
  KilnClient,
  ExecutionLogsDocument,
  ExecutionUpdatedDocument,
  SubmitJobDocument,
  TriggerJobDocument,
  type ExecutionUpdatedSubscription,
} from '@kiln/sdk';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { LiveRun } from './helpers/liveRun.js';

/** Live events without Docker: the test plays the worker through the same writes (LiveRun). */
let k: TestKiln;
let client: KilnClient;
let jobId: string;

const JOB = 'jobs:\n  - name: Live\n    schedule: "0 0 1 1 *"\n    steps:\n      - run: echo one\n      - run: echo two\n';

async function newExecution(): Promise<LiveRun> {
  const { triggerJob } = await client.request(TriggerJobDocument, { id: jobId });
  return new LiveRun(k.kiln.deps.pool, triggerJob.id, { flushMs: 5, maxBatch: 200 });
}

/** Collects a subscription's log seqs (and texts) until it completes. */
function collectLogs(c: KilnClient, executionId: string, afterSeq: number) {
  const seqs: number[] = [];
  const texts: string[] = [];
  const done = (async () => {
    for await (const { executionLogs } of c.subscribe(ExecutionLogsDocument, { executionId, afterSeq })) {
      seqs.push(executionLogs.seq);
      texts.push(executionLogs.text);
    }
  })();
  return { seqs, texts, done };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  k = await startTestKiln({ worker: false });
  client = new KilnClient({ url: k.url, token: await k.token('alice') });
  const { submitJob } = await client.request(SubmitJobDocument, { spec: JOB });
  jobId = submitJob.jobs[0]!.id;
});
afterAll(async () => {
  await client?.close();
  await k?.stop();
});

describe('executionLogs: replay then live', () => {
  it('gives a subscriber from the start and one joining mid-run every line once, in order, then completes both', async () => {
    const run = await newExecution();
    await run.start();
    const first = collectLogs(client, run.executionId, 0);
    let written = 0;
    // Lines arrive in many small batches while the subscribers join.
    while (written < 3000) {
      run.lines(written + 1, 100);
      written += 100;
      await sleep(5);
    }
    await waitFor(async () => (first.seqs.length >= 1000 ? true : undefined), 20_000, 'the first subscriber to read 1000 lines');
    const joinAt = first.seqs[first.seqs.length - 1]!;
    const second = collectLogs(client, run.executionId, joinAt);
    while (written < 6000) {
      run.lines(written + 1, 100);
      written += 100;
      await sleep(5);
    }
    await run.finish();
    await Promise.all([first.done, second.done]);
    expect(first.seqs).toEqual(range(1, 6000));
    expect(first.texts.at(-1)).toBe('line 6000');
    expect(second.seqs).toEqual(range(joinAt + 1, 6000));
  });

  it('completes at once for a finished execution asked for lines after its last one', async () => {
    const run = await newExecution();
    await run.start();
    run.lines(1, 10);
    await run.finish();
    const after = collectLogs(client, run.executionId, 10);
    await after.done;
    expect(after.seqs).toEqual([]);
    const all = collectLogs(client, run.executionId, 0);
    await all.done;
    expect(all.seqs).toEqual(range(1, 10));
  });

  it('replays from the archive once the chunks are gone from Postgres', async () => {
    const run = await newExecution();
    await run.start();
    run.lines(1, 1200);
    await run.finish();
    const { pool, store } = k.kiln.deps;
    const key = await archiveLogToStore(pool, store, run.executionId);
    await pool.query(`update executions set log_key = $2 where id = $1`, [run.executionId, key]);
    await pool.query(`delete from log_chunks where execution_id = $1`, [run.executionId]);
    const replay = collectLogs(client, run.executionId, 700);
    await replay.done;
    expect(replay.seqs).toEqual(range(701, 1200));
    expect(replay.texts[0]).toBe('line 701');
  });

  it('loses nothing when the LISTEN connection drops mid-run', async () => {
    const run = await newExecution();
    await run.start();
    const sub = collectLogs(client, run.executionId, 0);
    run.lines(1, 500);
    await waitFor(async () => (sub.seqs.length >= 500 ? true : undefined), 20_000, 'the first 500 lines');
    await k.kiln.deps.pool.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'kiln-events' and datname = current_database()`);
    // Written while nobody listens: only the reconnection's re-read can find these.
    run.lines(501, 500);
    await run.log.flush();
    await sleep(500);
    run.lines(1001, 500);
    await run.finish();
    await sub.done;
    expect(sub.seqs).toEqual(range(1, 1500));
  });
});

describe('a subscriber slower than the shared tail', () => {
  it('falls back to Postgres for what the tail dropped and still gets every line once', async () => {
    const run = await newExecution();
    await run.start();
    const { orm, pool, store } = k.kiln.deps;
    // A tiny tail, so that the slow reader falls behind it many times over.
    const hub = await EventHub.start({ orm, pool, store, log: () => {}, tailLimits: { maxLines: 50, fetchPage: 20 } });
    try {
      const lines = logLinesAfter(hub, run.executionId, 0, 'alice');
      const seqs: number[] = [];
      const reading = (async () => {
        for await (const line of lines) {
          seqs.push(line.seq);
          if (line.seq % 100 === 0) await sleep(20);
        }
      })();
      for (let n = 1; n <= 2000; n += 100) {
        run.lines(n, 100);
        await sleep(2);
      }
      await run.finish();
      await reading;
      expect(seqs).toEqual(range(1, 2000));
      expect(hub.tailCount).toBe(0);
    } finally {
      await hub.stop();
    }
  });
});

describe('the execution-state trigger', () => {
  it('notifies, in a transaction changing several owners\' executions, only those of owners someone follows', async () => {
    const bob = new KilnClient({ url: k.url, token: await k.token('bob') });
    const { pool, orm, store } = k.kiln.deps;
    const hub = await EventHub.start({ orm, pool, store, log: () => {} });
    const listening = new pgm.Client({ connectionString: k.databaseUrl });
    await listening.connect();
    try {
      const { submitJob } = await bob.request(SubmitJobDocument, { spec: JOB });
      const bobs = (await bob.request(TriggerJobDocument, { id: submitJob.jobs[0]!.id })).triggerJob.id;
      const alice = await newExecution();
      const alices = alice.executionId;
      const follow = await hub.follow('alice');
      const heard: string[] = [];
      listening.on('notification', (n) => heard.push((JSON.parse(n.payload!) as { executionId: string }).executionId));
      await listening.query('listen kiln_execution_state');
      // The unfollowed owner's row first: its answer must not stand for the next owner's.
      const bump = async (ids: string[]) => {
        await inTransaction(pool, async (sql) => {
          for (const id of ids) await sql(`update executions set attempt = attempt + 1 where id = $1`, [id]);
        });
      };
      await bump([bobs, alices]);
      await bump([bobs]);
      await bump([alices, bobs]);
      await waitFor(async () => (heard.length >= 2 ? true : undefined), 10_000, 'two notifications');
      await sleep(300);
      expect(heard).toEqual([alices, alices]);
      follow.release();
      await alice.start();
      await alice.finish();
    } finally {
      await listening.end();
      await hub.stop();
      await bob.close();
    }
  });
});

describe('executionUpdated', () => {
  type Update = ExecutionUpdatedSubscription['executionUpdated'];
  const shape = (u: Update) => `${u.status} ${u.steps.map((s) => s.status).join(',')}`;

  it('does not send a change committed before the subscription began, however late its notification arrives', async () => {
    const run = await newExecution();
    const { orm, pool, store } = k.kiln.deps;
    const hub = await EventHub.start({ orm, pool, store, log: () => {} });
    // A session inside a transaction receives its notifications only at its end (Postgres's
    // NOTIFY docs): holding the hub's listener in one delays every notification past the
    // subscriber's registration, in the order they were committed.
    const listening = (hub as unknown as { listener: { client: pg.Client } }).listener.client;
    const interest = await hub.follow('alice');
    try {
      await listening.query('begin');
      await run.start(); // committed before the subscription: QUEUED -> RUNNING
      const seen: string[] = [];
      const follow = await hub.follow('alice');
      const stop = hub.watchExecutions({
        owner: 'alice',
        jobId: null,
        executionId: run.executionId,
        startMark: follow.startMark,
        deliver: (e) => seen.push(`${e.status} ${(stepsOfSnapshot(e) ?? []).map((s) => s.status).join(',')}`),
      });
      await run.step(0, 'RUNNING'); // committed after it
      await listening.query('commit');
      await waitFor(async () => (seen.length > 0 ? true : undefined), 10_000, 'the change after the start');
      await sleep(200);
      expect(seen).toEqual(['RUNNING RUNNING,PENDING']);
      stop();
      follow.release();
    } finally {
      interest.release();
      await hub.stop();
    }
    await run.finish();
  });

  it('sends each status change once, in order, to watchers of the execution, the job and the owner', async () => {
    const run = await newExecution();
    const updates = (variables: { executionId?: string; jobId?: string }, until: number) => {
      const seen: Update[] = [];
      const done = (async () => {
        for await (const { executionUpdated } of client.subscribe(ExecutionUpdatedDocument, variables)) {
          if (executionUpdated.id === run.executionId) seen.push(executionUpdated);
          if (seen.length === until) break;
        }
      })();
      return { seen, done };
    };
    const byExecution = updates({ executionId: run.executionId }, 99);
    const byJob = updates({ jobId }, 5);
    const byOwner = updates({}, 5);
    await sleep(300); // the three subscriptions are in place
    await run.start();
    await run.step(0, 'RUNNING');
    await run.step(0, 'SUCCEEDED', 0);
    await run.step(1, 'RUNNING');
    await run.step(1, 'FAILED', 2);
    await run.finish('FAILED');
    const expected = [
      'RUNNING PENDING,PENDING',
      'RUNNING RUNNING,PENDING',
      'RUNNING SUCCEEDED,PENDING',
      'RUNNING SUCCEEDED,RUNNING',
      'RUNNING SUCCEEDED,FAILED',
      'FAILED SUCCEEDED,FAILED',
    ];
    // The execution's own subscription completes by itself once the execution is settled.
    await byExecution.done;
    expect(byExecution.seen.map(shape)).toEqual(expected);
    expect(byExecution.seen[4]!.steps[1]!.exitCode).toBe(2);
    expect(byExecution.seen.at(-1)).toMatchObject({ status: 'FAILED', exitCode: 1, job: { id: jobId } });
    await Promise.all([byJob.done, byOwner.done]);
    expect(byJob.seen.map(shape)).toEqual(expected.slice(0, 5));
    expect(byOwner.seen.map(shape)).toEqual(expected.slice(0, 5));
  });

  it('completes at once when the execution has already finished', async () => {
    const run = await newExecution();
    await run.start();
    await run.finish();
    const seen: unknown[] = [];
    for await (const update of client.subscribe(ExecutionUpdatedDocument, { executionId: run.executionId })) seen.push(update);
    expect(seen).toEqual([]);
  });
});
