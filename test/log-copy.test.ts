import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogStream } from '../src/entities/enums.js';
import { LogWriter } from '../src/logs/LogWriter.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

/**
 * Big batches go to Postgres by binary COPY in a transaction (src/logs/storeLines.ts), and
 * log_chunks is tied to executions by statement-level triggers instead of a per-row foreign key.
 * Both on a real Postgres, with an API-only Kiln providing the execution rows.
 */
describe('the COPY path of the log writer', () => {
  let k: TestKiln;
  let pool: pg.Pool;
  let token: string;
  let n = 0;

  async function newJob(): Promise<{ jobId: string; executionId: string }> {
    const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id lastExecution { id } } } }`, { s: `jobs:\n  - name: Copy${++n}\n    steps:\n      - run: "true"\n` }, token);
    const job = res.data!.submitJob.jobs[0];
    return { jobId: job.id, executionId: job.lastExecution.id };
  }

  /** A fresh execution made RUNNING under attempt 1 of worker `w1` (no worker really runs it). */
  async function runningExecution(): Promise<string> {
    const { executionId } = await newJob();
    await pool.query(`update executions set status = 'RUNNING', attempt = 1, worker_id = 'w1', started_at = now() where id = $1`, [executionId]);
    return executionId;
  }

  async function stored(executionId: string) {
    const { rows } = await pool.query(`select seq, stream, step, text, at from log_chunks where execution_id = $1 order by seq`, [executionId]);
    return rows as Array<{ seq: number; stream: string; step: number | null; text: string; at: Date }>;
  }

  async function lastSeq(executionId: string): Promise<number> {
    const { rows } = await pool.query(`select last_seq from executions where id = $1`, [executionId]);
    return rows[0].last_seq;
  }

  /** Exactly `count` lines, appended at once: one batch of that size. */
  function appendMany(log: LogWriter, count: number, text: (i: number) => string, at?: Date): void {
    for (let i = 1; i <= count; i++) log.append(LogStream.STDOUT, 0, text(i), at);
  }

  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
    pool = new pg.Pool({ connectionString: k.databaseUrl, max: 4 });
    token = await k.token('copier');
  });

  afterAll(async () => {
    await pool?.end();
    await k?.stop();
  });

  it('stores every field of a big batch exactly as the INSERT path does', async () => {
    const id = await runningExecution();
    const at = new Date('2031-02-03T04:05:06.789Z');
    const before2000 = new Date('1999-12-31T23:59:59.999Z');
    const log = new LogWriter(pool, id, 0, { fence: { attempt: 1, workerId: 'w1' } });
    const texts = ['plain', '', 'tab\tand \\ backslash', 'ünïcödé ✓ 𝄞 emoji 🚀', 'nul\u0000byte', 'lone \ud800 surrogate', 'x'.repeat(16 * 1024)];
    for (const text of texts) log.append(LogStream.STDERR, 3, text, at);
    log.append(LogStream.SYSTEM, null, 'kiln says', before2000);
    log.append(LogStream.SERVICE, null, '[db] ready', at); // 7 bytes of stream name, not 6
    appendMany(log, 991, (i) => `line ${i}`, at);
    await log.flush();
    const rows = await stored(id);
    expect(rows).toHaveLength(1000);
    expect(rows.slice(0, 9)).toEqual([
      ...texts.map((text, i) => ({
        seq: i + 1,
        stream: 'STDERR',
        step: 3,
        text: text.replace('\u0000', '\uFFFD').replace('\ud800', '\uFFFD'),
        at,
      })),
      { seq: 8, stream: 'SYSTEM', step: null, text: 'kiln says', at: before2000 },
      { seq: 9, stream: 'SERVICE', step: null, text: '[db] ready', at },
    ]);
    expect(rows.at(-1)).toMatchObject({ seq: 1000, stream: 'STDOUT', step: 0, text: 'line 991' });
    expect(await lastSeq(id)).toBe(1000);
  });

  it('stores a flood of many batches line for line while their buffers are reused', async () => {
    const id = await runningExecution();
    const log = new LogWriter(pool, id, 0, { fence: { attempt: 1, workerId: 'w1' } });
    // Long lines now and then make tuples straddle the encoder's buffers.
    const text = (i: number) => (i % 997 === 0 ? `${i} ${'é'.repeat(5000)}` : `line ${i}`);
    const total = 120_000;
    for (let i = 1; i <= total; i++) {
      log.append(LogStream.STDOUT, 0, text(i));
      if (i % 5000 === 0) await (log.backpressure() ?? new Promise((resolve) => setImmediate(resolve)));
    }
    await log.flush();
    const { rows: [summary] } = await pool.query(
      `select count(*)::int as n, min(seq) as first, max(seq) as last, sum(octet_length(text))::bigint as bytes,
              count(*) filter (where text <> case when seq % 997 = 0 then seq || ' ' || repeat('é', 5000) else 'line ' || seq end)::int as wrong
         from log_chunks where execution_id = $1`,
      [id],
    );
    let bytes = 0;
    for (let i = 1; i <= total; i++) bytes += Buffer.byteLength(text(i));
    expect(summary).toEqual({ n: total, first: 1, last: total, bytes: String(bytes), wrong: 0 });
    expect(await lastSeq(id)).toBe(total);
  });

  it('matches the fence on a worker id that needs quoting, and only on it', async () => {
    const id = await runningExecution();
    const workerId = `o'brien\\ "$$" ; drop table log_chunks; --`;
    await pool.query(`update executions set worker_id = $2 where id = $1`, [id, workerId]);
    const stranger = new LogWriter(pool, id, 0, { fence: { attempt: 1, workerId: `o'brien` } });
    appendMany(stranger, 1000, (i) => `stranger ${i}`);
    await stranger.flush();
    expect(await stored(id)).toEqual([]);
    const owner = new LogWriter(pool, id, 0, { fence: { attempt: 1, workerId } });
    appendMany(owner, 1000, (i) => `owner ${i}`);
    await owner.flush();
    expect((await stored(id)).map((r) => r.text).slice(0, 2)).toEqual(['owner 1', 'owner 2']);
    expect(await lastSeq(id)).toBe(1000);
  });

  it('writes nothing, and leaves last_seq alone, once the execution was handed back to another attempt', async () => {
    const id = await runningExecution();
    const log = new LogWriter(pool, id, 0, { fence: { attempt: 1, workerId: 'w1' } });
    appendMany(log, 1000, (i) => `before ${i}`);
    await log.flush();
    expect(await lastSeq(id)).toBe(1000);
    // The hand-back: the next attempt, as the lease reaper makes it, with its own line at last_seq + 1.
    await pool.query(`update executions set status = 'QUEUED', attempt = 2, worker_id = null, last_seq = last_seq + 1 where id = $1`, [id]);
    await pool.query(`insert into log_chunks (execution_id, seq, stream, step, text, at) values ($1, 1001, 'SYSTEM', null, 'handed back', now())`, [id]);
    appendMany(log, 5000, (i) => `after ${i}`);
    await log.flush();
    const rows = await stored(id);
    expect(rows).toHaveLength(1001);
    expect(rows.at(-1)).toMatchObject({ seq: 1001, text: 'handed back' });
    expect(await lastSeq(id)).toBe(1001);
  });

  it('waits for a hand-back that holds the row, then writes nothing', async () => {
    const id = await runningExecution();
    const log = new LogWriter(pool, id, 0, { fence: { attempt: 1, workerId: 'w1' } });
    const handBack = await pool.connect();
    try {
      await handBack.query('begin');
      await handBack.query(`update executions set status = 'QUEUED', attempt = 2, worker_id = null, last_seq = last_seq + 1 where id = $1`, [id]);
      appendMany(log, 2000, (i) => `racing ${i}`);
      const flushed = log.flush();
      // The batch is now waiting for the row; the hand-back adds its line and commits.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await handBack.query(`insert into log_chunks (execution_id, seq, stream, step, text, at) values ($1, 1, 'SYSTEM', null, 'handed back', now())`, [id]);
      await handBack.query('commit');
      await flushed;
    } finally {
      handBack.release();
    }
    expect((await stored(id)).map((r) => r.text)).toEqual(['handed back']);
    expect(await lastSeq(id)).toBe(1);
  });

  it('fails the writer, storing nothing of the batch, when a seq is already taken', async () => {
    const id = await runningExecution();
    await pool.query(`insert into log_chunks (execution_id, seq, stream, step, text, at) values ($1, 700, 'SYSTEM', null, 'squatter', now())`, [id]);
    const log = new LogWriter(pool, id, 0, { fence: { attempt: 1, workerId: 'w1' } });
    appendMany(log, 1000, (i) => `line ${i}`);
    await expect(log.flush()).rejects.toThrow(/duplicate key/);
    expect((await stored(id)).map((r) => r.text)).toEqual(['squatter']);
    expect(await lastSeq(id)).toBe(0);
  });
});

describe('log_chunks tied to executions without a per-row foreign key', () => {
  let k: TestKiln;
  let pool: pg.Pool;
  let token: string;

  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
    pool = new pg.Pool({ connectionString: k.databaseUrl, max: 4 });
    token = await k.token('tied');
  });

  afterAll(async () => {
    await pool?.end();
    await k?.stop();
  });

  async function newJob(name: string): Promise<{ jobId: string; executionId: string }> {
    const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id lastExecution { id } } } }`, { s: `jobs:\n  - name: ${name}\n    steps:\n      - run: "true"\n` }, token);
    const job = res.data!.submitJob.jobs[0];
    return { jobId: job.id, executionId: job.lastExecution.id };
  }

  const insertLine = (executionId: string, seq: number) =>
    pool.query(`insert into log_chunks (execution_id, seq, stream, step, text, at) values ($1, $2, 'STDOUT', 0, 'x', now())`, [executionId, seq]);

  it('refuses lines of an execution that does not exist, as the foreign key did (23503)', async () => {
    await expect(insertLine('00000000-0000-4000-8000-000000000000', 1)).rejects.toMatchObject({ code: '23503' });
    const { executionId } = await newJob('Mixed');
    // One statement naming an existing execution and a missing one stores neither.
    await expect(
      pool.query(
        `insert into log_chunks (execution_id, seq, stream, step, text, at)
         values ($1, 1, 'STDOUT', 0, 'x', now()), ('00000000-0000-4000-8000-000000000000', 1, 'STDOUT', 0, 'y', now())`,
        [executionId],
      ),
    ).rejects.toMatchObject({ code: '23503' });
    const { rows } = await pool.query(`select count(*)::int as n from log_chunks where execution_id = $1`, [executionId]);
    expect(rows[0].n).toBe(0);
  });

  it("deletes an execution's lines with it, also when its job is deleted", async () => {
    const a = await newJob('Deleted');
    const b = await newJob('ByJob');
    const kept = await newJob('Kept');
    for (const { executionId } of [a, b, kept]) for (let seq = 1; seq <= 3; seq++) await insertLine(executionId, seq);
    await pool.query(`delete from executions where id = $1`, [a.executionId]);
    const del = await k.gql(`mutation($id: ID!) { deleteJob(id: $id) }`, { id: b.jobId }, token);
    expect(del.data!.deleteJob).toBe(true);
    const { rows } = await pool.query(`select execution_id, count(*)::int as n from log_chunks group by execution_id`);
    expect(rows).toEqual([{ execution_id: kept.executionId, n: 3 }]);
  });

  it('keeps a line from being stored for an execution deleted meanwhile', async () => {
    const { executionId } = await newJob('Racing');
    const deleter = await pool.connect();
    try {
      await deleter.query('begin');
      await deleter.query(`delete from executions where id = $1`, [executionId]);
      // The handler is attached now: the refusal can arrive before the commit's reply does.
      const inserting = insertLine(executionId, 1).then(
        () => 'stored',
        (error: unknown) => error,
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      await deleter.query('commit');
      expect(await inserting).toMatchObject({ code: '23503' });
    } finally {
      deleter.release();
    }
  });
});
